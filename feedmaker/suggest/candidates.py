"""Candidate item selectors: container sets seeded from the page's links, then selectors that match them."""

from __future__ import annotations

import math

from feedmaker.extract import Node
from feedmaker.suggest.nodes import ancestors, flat_text, link_of, stable_classes, stable_id
from feedmaker.suggest.page import MIN_ITEMS, ListingPage

__all__ = ["container_sets", "item_selectors"]

_MAX_CANDIDATES = 40  # item selectors fully evaluated per page


def _link_nodes(page: ListingPage) -> list[tuple[Node, str]]:
    own = page.url.split("#", 1)[0]
    out = []
    for a in page.root.css("a[href]"):
        url = link_of(a, page.url)
        if url is not None and url != own:
            out.append((a, url))
    return out


def container_sets(page: ListingPage) -> list[list[Node]]:
    """Sets of sibling-like nodes each holding one article URL, from two directions (see module docstring)."""
    links = _link_nodes(page)
    sets: dict[frozenset[int], list[Node]] = {}

    def add(nodes: list[Node]) -> None:
        if len(nodes) >= MIN_ITEMS:
            sets.setdefault(frozenset(n.mem_id for n in nodes), nodes)

    # Links grouped by their structural path, climbed while each ancestor still holds one URL.
    paths: dict[tuple[str, ...], list[tuple[Node, str]]] = {}
    for a, url in links:
        key = tuple(_signature(n) for n in [a, *ancestors(a, page.root)[:2]])
        paths.setdefault(key, []).append((a, url))
    for group in paths.values():
        if len({u for _, u in group}) < MIN_ITEMS:
            continue
        add([a for a, _ in group])
        level = [(a, u) for a, u in group]
        for _ in range(8):
            by_parent: dict[int, tuple[Node, set[str]]] = {}
            for node, u in level:
                parent = node.parent
                if parent is None or parent.tag in ("body", "html", None):
                    by_parent = {}
                    break
                by_parent.setdefault(parent.mem_id, (parent, set()))[1].add(u)
            if not by_parent or any(len(urls) > 1 for _, urls in by_parent.values()):
                break
            level = [(node.parent, u) for node, u in level if node.parent is not None]
            add([p for p, _ in by_parent.values()])

    # Children of one parent that each hold a link: lists and grids, also of mixed markup.
    url_of = {a.mem_id: u for a, u in links}
    parents: dict[int, tuple[Node, dict[int, tuple[Node, str]]]] = {}
    for a, _ in links:
        child = a
        for parent in ancestors(a, page.root)[:8]:
            entry = parents.setdefault(parent.mem_id, (parent, {}))
            entry[1].setdefault(child.mem_id, (child, url_of[a.mem_id]))
            child = parent
    for _, children in parents.values():
        if len(children) >= MIN_ITEMS and len({u for _, u in children.values()}) >= MIN_ITEMS:
            add([c for c, _ in children.values()])
    return list(sets.values())


def _signature(node: Node) -> str:
    return (node.tag or "") + "".join(f".{c}" for c in sorted(stable_classes(node)))


def item_selectors(page: ListingPage, sets: list[list[Node]]) -> list[str]:
    """Selectors for the container sets, the most promising sets first, at most _MAX_CANDIDATES of them."""

    def promise(nodes: list[Node]) -> float:
        sample = nodes[:: max(1, len(nodes) // 12)]
        lengths = [min(len(flat_text(n)), 300) for n in sample]
        headings = sum(1 for n in sample if n.css_first("h1, h2, h3, h4, h5, h6") is not None)
        bad = sum(1 for n in sample if page.in_chrome(n))
        avg = sum(lengths) / len(lengths)
        return (
            math.sqrt(len(nodes))
            * min(avg, 200)
            * (1 + headings / len(sample))
            * (1 - 0.8 * bad / len(sample))
        )

    ranked = sorted(sets, key=promise, reverse=True)
    out: list[str] = []
    for nodes in ranked:
        for css in _selectors_for(nodes):
            if css not in out:
                out.append(css)
        if len(out) >= _MAX_CANDIDATES:
            break
    return out


def _selectors_for(nodes: list[Node]) -> list[str]:
    tags = {n.tag for n in nodes}
    order = _shared_classes(nodes)
    tag = next(iter(tags)) if len(tags) == 1 else None
    own: list[str] = []
    if tag is not None:
        if order:
            own.append(tag + "".join(f".{c}" for c in order[:3]))
            own.extend(f"{tag}.{c}" for c in order[:3])
        elif tag not in ("div", "span", "a", "p"):
            own.append(tag)
    else:
        own.extend(f".{c}" for c in order[:3])
    context = _context(nodes)
    out = [*own]
    if context is not None:
        inner = own[:2] if own else []
        if tag is not None and tag not in inner:
            inner.append(tag)
        if not inner:
            inner = ["*"]
        out.extend(f"{context} > {x}" for x in inner)
    return out


def _shared_classes(nodes: list[Node]) -> list[str]:
    """The stable classes every node has, in the first node's order."""
    common = set(stable_classes(nodes[0]))
    for n in nodes[1:]:
        common &= set(stable_classes(n))
    return [c for c in stable_classes(nodes[0]) if c in common]


def _context(nodes: list[Node]) -> str | None:
    """A selector for the nodes' parents, when they have one in common (tag plus shared classes, or an id)."""
    parents = [n.parent for n in nodes]
    if any(p is None for p in parents):
        return None
    ps = [p for p in parents if p is not None]
    if len({p.mem_id for p in ps}) == 1 and (ident := stable_id(ps[0])):
        return f"#{ident}"
    tags = {p.tag for p in ps}
    if len(tags) != 1:
        return None
    order = _shared_classes(ps)
    tag = ps[0].tag or ""
    if order:
        return tag + "".join(f".{c}" for c in order[:2])
    return tag if tag not in ("div", "span") else None
