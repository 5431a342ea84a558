"""Listing page -> a suggested site config: find the repeated article blocks and the selectors that read them.

`suggest(html, url) -> Suggestion`; `Suggestion.to_toml(site_name)` is the text of a `config/sites/*.toml`.
Pure: no I/O, no clock. The approach follows html2rss's auto_source:

1. Seed item containers from the links: the children of any node holding three or more linked children, and,
   for each group of links that share a structural path, their ancestors up to the last level at which every
   ancestor still holds one article URL.
2. Turn each container set into item selectors (`tag.class`, with a parent for context when needed); stable
   classes only, so ids, hashes and state classes (`is-active`, `css-1x2y3z`) never end up in a config.
3. For each selector, find the headline, link, date, summary and image of every item, derive relative selectors
   (a fallback chain where one selector is not enough) and read the page with them, as extract does.
4. Rank the selectors by what they read: many items, headline-length text, article-like URLs, headings, dates,
   images, and nothing from nav/footer/aside/menus/comments.
5. On front pages that spread their stories over differently classed groups (lead, latest, topic rows), join
   the best selector with its peers into one selector list (`li.tout, div.dek`) when that list ranks higher.

Field selectors are run with selectolax's `node.css_first`, which also matches the item node itself.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from feedmaker import patterns
from feedmaker.config import FieldSpec, ListSelectors
from feedmaker.errors import ExtractError

MIN_ITEMS = 3
# Below this a "list" is a menu or a tag cloud: a nav bar scores about 0.01, a real list 1 and up.
MIN_SCORE = 0.2
_SAMPLE = 16  # items looked at when deriving field selectors; the preview reads them all
_MAX_CANDIDATES = 40  # item selectors fully evaluated per page
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "head", "html", "body"})
_IDENT = re.compile(r"^-?[A-Za-z_][A-Za-z0-9_-]*$")
_STATE_CLASSES = frozenset(
    {
        "active",
        "selected",
        "show",
        "shown",
        "hidden",
        "hide",
        "open",
        "opened",
        "closed",
        "current",
        "first",
        "last",
        "odd",
        "even",
        "clearfix",
        "visible",
        "invisible",
        "in",
        "fade",
        "loaded",
        "lazy",
        "lazyload",
        "lazyloaded",
        "sticky",
        "focus",
        "hover",
        "disabled",
        "new",
    }
)
_STATE_PREFIX = ("is-", "has-", "js-", "u-is-", "ng-", "v-", "wp-image-")
_HASHY = re.compile(
    r"^(?:css|sc|jsx|svelte|emotion|styled|tw)-|[0-9]{3,}|(?=.*[A-Z])(?=.*[0-9])"  # generated, numbered
    r"|^[A-Z][A-Za-z]+-[A-Za-z]{5,7}$"  # styled-components: SummaryItemWrapper-iwvBff
    r"|^(?=[a-z])(?=(?:[^A-Z]*[A-Z]){2})[A-Za-z]{5,8}$"  # bare hashes: clSLtF, jBLKxE
)
_BAD_WORDS = frozenset(
    {
        "nav",
        "navbar",
        "navigation",
        "menu",
        "menubar",
        "footer",
        "breadcrumb",
        "breadcrumbs",
        "sidebar",
        "widget",
        "widgets",
        "comment",
        "comments",
        "share",
        "sharing",
        "social",
        "pagination",
        "pager",
        "cookie",
        "cookies",
        "masthead",
        "skip",
        "toolbar",
        "dropdown",
        "login",
        "subscribe",
    }
)
_BAD_TAGS = frozenset({"nav", "footer", "aside", "header", "form", "menu"})
_TITLE_CLASS = re.compile(r"(?:^|[-_])(?:title|headline|heading|header)(?:$|[-_])", re.I)
_DATE_CLASS = re.compile(r"date|time|publish|posted|dateline|byline|meta", re.I)
_SUMMARY_CLASS = re.compile(
    r"summary|excerpt|description|desc|dek|teaser|standfirst|intro|lead|abstract|content", re.I
)
_TAGGY_PATH = re.compile(  # first path segment (after a language prefix): /tag/x, /en-gb/author/y
    r"^(?:/[a-z]{2}(?:[-_][a-zA-Z]{2})?)?/(?:tag|tags|category|categories|topic|topics|author|authors|section|user|users|profile|login|signin|"
    r"signup|register|subscribe|newsletters?|search|about|contact|privacy|terms|help|account)(?:/|$)",
    re.I,
)
_GENERIC_TEXT = re.compile(
    r"^(?:read|view|learn|see|continue|more|full|weiterlesen|mehr|lire|leer|\W)+(?:\s+\w+){0,3}\W*$", re.I
)
_IMAGE_ATTRS = ("src", "data-src", "data-lazy-src", "data-original", "data-srcset", "srcset")

# (pattern, strptime format): dates printed in a site's own way. ISO 8601 needs no format.
_DATE_FORMATS: tuple[tuple[str, str], ...] = (
    (r"\d{1,2} [A-Z][a-z]{2} \d{4}", "%d %b %Y"),
    (r"\d{1,2} [A-Z][a-z]{3,8} \d{4}", "%d %B %Y"),
    (r"[A-Z][a-z]{2} \d{1,2}, \d{4}", "%b %d, %Y"),
    (r"[A-Z][a-z]{3,8} \d{1,2}, \d{4}", "%B %d, %Y"),
    (r"\d{4}/\d{2}/\d{2}", "%Y/%m/%d"),
    (r"\d{1,2}\.\d{1,2}\.\d{4}", "%d.%m.%Y"),
)
_YEAR = re.compile(r"(?:19|20)\d\d")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviewItem:
    """One item as the suggested selectors read it (URLs absolute, text with whitespace collapsed)."""

    url: str
    headline: str
    date: str | None = None
    summary: str | None = None
    image: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One way to read the page: the `[list]` selectors, what they read, and how much we like it."""

    selectors: ListSelectors
    items: tuple[PreviewItem, ...]
    score: float
    matched: int  # nodes the item selector matched; items are those that gave a link and a headline

    @property
    def item(self) -> str:
        return self.selectors.item


@dataclass(frozen=True, slots=True, kw_only=True)
class Suggestion:
    url: str
    title: str | None  # the page's <title>, the default site name
    best: Candidate
    candidates: tuple[Candidate, ...]  # best first; `best` is candidates[0]

    def to_toml(self, site_name: str | None = None) -> str:
        """A site config that `load_site` accepts as it is."""
        name = site_name or self.title or urlsplit(self.url).hostname or "site"
        s = self.best.selectors
        lines = [
            f"# Suggested by `feedmaker suggest` from {_comment(self.url)}",
            f"# {len(self.best.items)} items; the first ones read as:",
            *(f"#   {_comment(it.headline)[:90]}  <{_comment(it.url)}>" for it in self.best.items[:3]),
            f"name = {_toml_str(name)}",
            f"start_urls = [{_toml_str(self.url)}]",
            "",
            "[list]",
            f"item = {_toml_str(s.item)}",
            f"link = {_toml_chain(s.link)}",
        ]
        for key in ("headline", "date", "summary", "image"):
            chain: tuple[FieldSpec, ...] | None = getattr(s, key)
            if chain:
                lines.append(f"{key} = {_toml_chain(chain)}")
        return "\n".join(lines) + "\n"


def suggest(html: str, url: str) -> Suggestion:
    """Find the repeated article blocks of a listing page; `url` is the page's address, the base for its links.

    Raises ExtractError when no block repeats at least three times with a link and a headline.
    """
    tree = LexborHTMLParser(html)
    root = tree.body
    title_node = tree.css_first("title")
    title = _text(title_node) if title_node is not None else None
    if root is None:
        raise ExtractError(url, "*", "no repeated article blocks found")
    page = _Page(tree=tree, root=root, url=url, host=_site_of(url), size=max(1, len(root.text(deep=True))))
    seeds = _container_sets(page)
    selectors = _item_selectors(page, seeds)
    found: list[Candidate] = []
    for css in selectors:
        candidate = _evaluate(page, css)
        if candidate is not None:
            found.append(candidate)
    found = sorted((c for c in found if c.score >= MIN_SCORE), key=lambda c: -c.score)
    if not found:
        raise ExtractError(url, "*", "no repeated article blocks found")
    unique: list[Candidate] = []
    for c in found:
        if not any(_same_items(c, u) for u in unique):
            unique.append(c)
    merged = _merge(page, unique)
    if merged is not None:
        unique.insert(0, merged)
    return Suggestion(url=url, title=title or None, best=unique[0], candidates=tuple(unique[:10]))


def preview(html: str, url: str, selectors: ListSelectors) -> tuple[PreviewItem, ...]:
    """Read a page with `[list]` selectors the way suggest judged them (a small stand-in for extract)."""
    tree = LexborHTMLParser(html)
    items = []
    for node in tree.css(selectors.item):
        item = _read_item(node, selectors, url)
        if item is not None:
            items.append(item)
    return tuple(items)


# -- the page and its text -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Page:
    tree: LexborHTMLParser
    root: LexborNode
    url: str
    host: str
    size: int  # characters of text in the body
    chrome: dict[int, bool] = field(default_factory=dict)  # node -> is page furniture, memoised
    parts: dict[int, _Anatomy] = field(default_factory=dict)  # node -> its anatomy, memoised
    read_url: Reader = field(init=False)

    def __post_init__(self) -> None:
        self.read_url = _read_url(self.url)

    def anatomy(self, node: LexborNode) -> _Anatomy:
        found = self.parts.get(node.mem_id)
        if found is None:
            found = self.parts[node.mem_id] = _anatomy(node, self.url)
        return found

    def in_chrome(self, node: LexborNode) -> bool:
        """Inside the page's furniture: nav, footer, aside, menus, comments, share bars.

        A block holding most of the page is a wrapper, whatever its class says (`experiment-repo-nav`).
        """
        for n in [node, *_ancestors(node, self.root)]:
            known = self.chrome.get(n.mem_id)
            if known is None:
                bad = n.tag in _BAD_TAGS or n.attributes.get("role") in (
                    "navigation",
                    "banner",
                    "contentinfo",
                )
                bad = bad or bool(_words(n) & _BAD_WORDS)
                if bad:
                    bad = len(n.text(deep=True)) < 0.3 * self.size
                known = self.chrome[n.mem_id] = bad
            if known:
                return True
        return False


def _text(node: LexborNode) -> str:
    return " ".join(node.text(deep=True, separator=" ").split())


def _classes(node: LexborNode) -> list[str]:
    return (node.attributes.get("class") or "").split()


def _stable(node: LexborNode) -> list[str]:
    """Classes fit for a config: no state, no hashes, no generated numbers, valid CSS identifiers."""
    out = []
    for c in _classes(node):
        low = c.lower()
        if not _IDENT.match(c) or low in _STATE_CLASSES or low.startswith(_STATE_PREFIX) or _HASHY.search(c):
            continue
        if len(c) > 40 or c in out:
            continue
        out.append(c)
    return out


def _stable_id(node: LexborNode) -> str | None:
    value = node.attributes.get("id")
    if (
        not value
        or not _IDENT.match(value)
        or len(value) > 30
        or re.search(r"\d{2,}", value)
        or _HASHY.search(value)
    ):
        return None
    return value


def _site_of(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    labels = host.split(".")
    return ".".join(labels[-2:]) if len(labels) >= 2 else host


def _href(node: LexborNode, base: str) -> str | None:
    raw = (node.attributes.get("href") or "").strip()
    if not raw or raw.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
        return None
    url = urljoin(base, raw)
    if not url.startswith(("http://", "https://")):
        return None
    return url.split("#", 1)[0]


def _ancestors(node: LexborNode, stop: LexborNode) -> list[LexborNode]:
    out = []
    parent = node.parent
    while parent is not None and parent.mem_id != stop.mem_id and parent.tag not in ("html", None):
        out.append(parent)
        parent = parent.parent
    return out


def _words(node: LexborNode) -> set[str]:
    raw = " ".join([*_classes(node), node.attributes.get("id") or "", node.attributes.get("role") or ""])
    return {w for w in re.split(r"[^a-zA-Z]+", raw.lower()) if w}


# -- 1. seeding container sets from links -----------------------------------------------------------------------


def _link_nodes(page: _Page) -> list[tuple[LexborNode, str]]:
    own = page.url.split("#", 1)[0]
    out = []
    for a in page.root.css("a[href]"):
        url = _href(a, page.url)
        if url is not None and url != own:
            out.append((a, url))
    return out


def _container_sets(page: _Page) -> list[list[LexborNode]]:
    """Sets of sibling-like nodes each holding one article URL, from two directions (see module docstring)."""
    links = _link_nodes(page)
    sets: dict[frozenset[int], list[LexborNode]] = {}

    def add(nodes: list[LexborNode]) -> None:
        if len(nodes) >= MIN_ITEMS:
            sets.setdefault(frozenset(n.mem_id for n in nodes), nodes)

    # Links grouped by their structural path, climbed while each ancestor still holds one URL.
    paths: dict[tuple[str, ...], list[tuple[LexborNode, str]]] = {}
    for a, url in links:
        key = tuple(_signature(n) for n in [a, *_ancestors(a, page.root)[:2]])
        paths.setdefault(key, []).append((a, url))
    for group in paths.values():
        if len({u for _, u in group}) < MIN_ITEMS:
            continue
        add([a for a, _ in group])
        level = [(a, u) for a, u in group]
        for _ in range(8):
            by_parent: dict[int, tuple[LexborNode, set[str]]] = {}
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
    parents: dict[int, tuple[LexborNode, dict[int, tuple[LexborNode, str]]]] = {}
    for a, _ in links:
        child = a
        for parent in _ancestors(a, page.root)[:8]:
            entry = parents.setdefault(parent.mem_id, (parent, {}))
            entry[1].setdefault(child.mem_id, (child, url_of[a.mem_id]))
            child = parent
    for _, children in parents.values():
        if len(children) >= MIN_ITEMS and len({u for _, u in children.values()}) >= MIN_ITEMS:
            add([c for c, _ in children.values()])
    return list(sets.values())


def _signature(node: LexborNode) -> str:
    return (node.tag or "") + "".join(f".{c}" for c in sorted(_stable(node)))


# -- 2. item selectors --------------------------------------------------------------------------------------------


def _item_selectors(page: _Page, sets: list[list[LexborNode]]) -> list[str]:
    """Selectors for the container sets, the most promising sets first, at most _MAX_CANDIDATES of them."""

    def promise(nodes: list[LexborNode]) -> float:
        sample = nodes[:: max(1, len(nodes) // 12)]
        lengths = [min(len(_text(n)), 300) for n in sample]
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


def _selectors_for(nodes: list[LexborNode]) -> list[str]:
    tags = {n.tag for n in nodes}
    common = set(_stable(nodes[0]))
    for n in nodes[1:]:
        common &= set(_stable(n))
    order = [c for c in _stable(nodes[0]) if c in common]
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


def _context(nodes: list[LexborNode]) -> str | None:
    """A selector for the nodes' parents, when they have one in common (tag plus shared classes, or an id)."""
    parents = [n.parent for n in nodes]
    if any(p is None for p in parents):
        return None
    ps = [p for p in parents if p is not None]
    if len({p.mem_id for p in ps}) == 1 and (ident := _stable_id(ps[0])):
        return f"#{ident}"
    tags = {p.tag for p in ps}
    if len(tags) != 1:
        return None
    common = set(_stable(ps[0]))
    for p in ps[1:]:
        common &= set(_stable(p))
    order = [c for c in _stable(ps[0]) if c in common]
    tag = ps[0].tag or ""
    if order:
        return tag + "".join(f".{c}" for c in order[:2])
    return tag if tag not in ("div", "span") else None


# -- 3. fields of one item ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Anatomy:
    """What one item holds, as nodes: suggest derives selectors that lead from the item to each of them."""

    title: LexborNode | None
    anchor: LexborNode | None
    url: str | None
    headline: str | None
    date: tuple[LexborNode, str | None, str] | None  # node, attribute, raw value
    summary: tuple[LexborNode, str] | None
    image: tuple[LexborNode, str, str] | None  # node, attribute, absolute URL


def _anatomy(item: LexborNode, base: str) -> _Anatomy:
    nodes = [n for n in item.traverse() if n.tag not in _SKIP_TAGS or n.mem_id == item.mem_id]
    anchors = [(n, u) for n in nodes if n.tag == "a" and (u := _href(n, base)) is not None]
    title, anchor = _title(item, nodes, base)
    if anchor is None and anchors:
        plain = [(n, u) for n, u in anchors if not _TAGGY_PATH.search(urlsplit(u).path)] or anchors
        anchor = max(plain, key=lambda au: len(_text(au[0])))
    headline = _text(title) if title is not None else (_text(anchor[0]) if anchor else None)
    skip = {n.mem_id for n in title.traverse()} if title is not None else set()
    return _Anatomy(
        title=title,
        anchor=anchor[0] if anchor else None,
        url=anchor[1] if anchor else None,
        headline=headline or None,
        date=_find_date(nodes),
        summary=_find_summary(nodes, skip, headline or ""),
        image=_find_image(nodes, base),
    )


def _title(
    item: LexborNode, nodes: list[LexborNode], base: str
) -> tuple[LexborNode | None, tuple[LexborNode, str] | None]:
    """The headline node and its link: a linked heading, a heading inside a link, a link in a title-ish
    block (`.release-header a`), else the first heading (its link is found by the caller)."""
    headings = [n for n in nodes if n.tag in _HEADINGS and len(_text(n)) >= 3]
    for h in headings:
        inner = h.css_first("a[href]")
        if inner is not None and (u := _href(inner, base)) and len(_text(inner)) >= 3:
            return h, (inner, u)
        for up in [*_ancestors(h, item), item]:
            if up.tag == "a" and (u := _href(up, base)):
                return h, (up, u)
    for n in nodes:
        if n.mem_id == item.mem_id or not any(_TITLE_CLASS.search(c) for c in _classes(n)):
            continue
        if n.tag == "a" and (u := _href(n, base)) and len(_text(n)) >= 3:
            return n, (n, u)
        for inner in n.css("a[href]"):
            if (
                (u := _href(inner, base))
                and len(_text(inner)) >= 3
                and not _TAGGY_PATH.search(urlsplit(u).path)
            ):
                return inner, (inner, u)
    if headings:
        return headings[0], None
    for n in nodes:
        titled = any(_TITLE_CLASS.search(c) for c in _classes(n))
        if titled and n.mem_id != item.mem_id and n.tag not in ("img", "time") and 3 <= len(_text(n)) <= 300:
            return n, None
    return None, None


def _find_date(nodes: list[LexborNode]) -> tuple[LexborNode, str | None, str] | None:
    for n in nodes:
        value = n.attributes.get("datetime")
        if value and _date_format([value.strip()]) is not None:
            return n, "datetime", value.strip()
    for n in nodes:
        if n.tag == "time" and (t := _text(n)) and _date_format([t]) is not None:
            return n, None, t
    for n in nodes:
        if n.tag in ("a", "img") or not any(_DATE_CLASS.search(c) for c in _classes(n)):
            continue
        t = _text(n)
        if 6 <= len(t) <= 80 and _YEAR.search(t) and _date_format([t]) is not None:
            return n, None, t
    # A block holding nothing but a date, as in tables: <td><p>24 Mar 2026</p></td>.
    for n in nodes:
        if n.tag in ("a", "img") or next(iter(n.iter()), None) is not None:
            continue
        t = _text(n)
        if 6 <= len(t) <= 40 and _is_date(t):
            return n, None, t
    return None


def _is_date(text: str) -> bool:
    if not _YEAR.search(text):
        return False
    found = _date_format([text])
    if found is None:
        return False
    _, regex = found
    part = patterns.captured(regex, text) if regex else None
    return regex is None or (part is not None and len(part) >= len(text) - 3)


def _find_summary(nodes: list[LexborNode], skip: set[int], headline: str) -> tuple[LexborNode, str] | None:
    def fits(n: LexborNode) -> str | None:
        if n.mem_id in skip or n.tag in _HEADINGS or n.tag == "a":
            return None
        t = _text(n)
        return t if len(t) >= 30 and t != headline and not t.startswith(headline or "\0") else None

    for n in nodes[1:]:
        if n.tag == "p" and (t := fits(n)):
            return n, t
    for n in nodes[1:]:
        if any(_SUMMARY_CLASS.search(c) for c in _classes(n)) and (t := fits(n)):
            return n, t
    return None


def _find_image(nodes: list[LexborNode], base: str) -> tuple[LexborNode, str, str] | None:
    for n in nodes:
        if n.tag != "img":
            continue
        for attr in _IMAGE_ATTRS:
            raw = (n.attributes.get(attr) or "").strip()
            if raw and not raw.startswith("data:") and "," not in raw and " " not in raw:
                return n, attr, urljoin(base, raw)
    return None


# -- 3b. relative selectors and fallback chains -------------------------------------------------------------------


def _relative(item: LexborNode, node: LexborNode, suffix: str = "") -> list[str]:
    """Selectors leading from `item` to `node`: its tag and classes, then with an ancestor inside the item."""
    tag = node.tag or "*"
    if node.mem_id == item.mem_id:
        return [tag + suffix]
    classes = _stable(node)[:3]
    own = [tag, *(f"{tag}.{c}" for c in classes)]
    out = [x + suffix for x in own]
    out.extend(f".{c}{suffix}" for c in classes if tag not in ("a", "img", "time"))
    for up in _ancestors(node, item)[:3]:
        up_tag = up.tag or "*"
        out.append(f"{up_tag} {tag}{suffix}")
        out.extend(f"{up_tag}.{c} {tag}{suffix}" for c in _stable(up)[:2])
        if (k := _position(up)) is not None:
            out.append(f"{up_tag}:nth-of-type({k}) {tag}{suffix}")
    if (k := _position(node)) is not None:
        out.append(f"{tag}:nth-of-type({k}){suffix}")
    return out


def _position(node: LexborNode) -> int | None:
    """1-based index among same-tag siblings, when there are such siblings (table cells, paragraphs)."""
    parent = node.parent
    if parent is None:
        return None
    same = [c for c in parent.iter() if c.tag == node.tag]
    if len(same) < 2:
        return None
    return next(i for i, c in enumerate(same, 1) if c.mem_id == node.mem_id)


class _Spec(NamedTuple):
    """A FieldSpec while searching: hashing pydantic models in the inner loop costs more than the search."""

    css: str
    attr: str | None = None
    regex: str | None = None

    def field(self) -> FieldSpec:
        return FieldSpec(css=self.css, attr=self.attr, regex=self.regex)


Reader = Callable[[LexborNode, _Spec], str | None]


def _chain(
    items: Sequence[LexborNode],
    targets: Sequence[str | None],
    proposals: Iterable[_Spec],
    read: Reader,
) -> tuple[tuple[_Spec, ...], int]:
    """Greedy fallback chain: the spec reading the most targets right, then one for the items it left empty.

    A spec that reads a wrong value is worse than one that reads nothing, since a chain stops at the first value.
    Returns the chain and how many items it reads right.
    """
    counts = Counter(proposals)
    pool = [spec for spec, _ in counts.most_common(16)]
    open_ = [i for i, t in enumerate(targets) if t is not None]
    rest = [i for i, t in enumerate(targets) if t is None]
    chain: list[_Spec] = []
    right = 0
    for _ in range(3):
        best: tuple[float, int, _Spec, list[int]] | None = None
        for spec in pool:
            if spec in chain:
                continue
            hits = wrong = 0
            used = []
            for i in open_:
                value = read(items[i], spec)
                if value is None:
                    continue
                used.append(i)
                if value == targets[i]:
                    hits += 1
                else:
                    wrong += 1
            noise = sum(1 for i in rest if read(items[i], spec) is not None)
            vague = 0.1 * len(open_) if spec.css.split(" ")[-1].split(":")[0] in ("div", "span", "*") else 0.0
            score = hits - 2 * wrong - 0.5 * noise - vague - 0.01 * len(spec.css)
            if hits and (best is None or score > best[0]):
                best = (score, hits, spec, used)
        if best is None or (chain and best[1] < max(1, len(items) // 20)):
            break
        chain.append(best[2])
        right += best[1]
        open_ = [i for i in open_ if i not in set(best[3])]
        if not open_:
            break
    return tuple(chain), right


def _read_value(node: LexborNode, spec: _Spec) -> str | None:
    try:
        hit = node.css_first(spec.css)
    except SelectolaxError:
        return None
    if hit is None:
        return None
    value = (hit.attributes.get(spec.attr) or "").strip() if spec.attr else _text(hit)
    if value and spec.regex:
        value = patterns.captured(spec.regex, value) or ""
    return value or None


def _read_url(base: str) -> Reader:
    @functools.lru_cache(maxsize=4096)
    def resolve(value: str) -> str:
        return urljoin(base, value).split("#", 1)[0]

    def read(node: LexborNode, spec: _Spec) -> str | None:
        value = _read_value(node, spec)
        return resolve(value) if value else None

    return read


def _read_item(
    node: LexborNode, s: ListSelectors, base: str, url_reader: Reader | None = None
) -> PreviewItem | None:
    url_reader = url_reader or _read_url(base)

    def first(chain: tuple[FieldSpec, ...] | None, read: Reader = _read_value) -> str | None:
        for spec in chain or ():
            if (value := read(node, _Spec(spec.css, spec.attr, spec.regex))) is not None:
                return value
        return None

    url = first(s.link, url_reader)
    headline = first(s.headline or (FieldSpec(css="a[href]"),))
    if not url or not headline:
        return None
    return PreviewItem(
        url=url,
        headline=headline,
        date=first(s.date),
        summary=first(s.summary),
        image=first(s.image, url_reader),
    )


def _date_format(values: Sequence[str]) -> tuple[str | None, str | None] | None:
    """(format, regex) that turns most values into dates, or None; ISO 8601 needs no format."""
    if not values:
        return None

    def share(parse: Callable[[str], datetime], part: re.Pattern[str] | None = None) -> float:
        ok = 0
        for value in values:
            m = part.search(value) if part is not None else None
            if part is not None and m is None:
                continue
            try:
                parse(m.group(1) if m is not None else value)
                ok += 1
            except ValueError:
                pass
        return ok / len(values)

    if share(_iso) >= 0.8:
        return None, None
    iso_part = re.compile(f"({_ISO.pattern})")
    if share(_iso, iso_part) >= 0.8:
        return None, iso_part.pattern
    for pattern, fmt in _DATE_FORMATS:
        if share(_strptime(fmt)) >= 0.8:
            return fmt, None
        part = re.compile(f"({pattern})")
        if share(_strptime(fmt), part) >= 0.8:
            return fmt, part.pattern
    return None


def _iso(value: str) -> datetime:
    if not _ISO.fullmatch(value):
        raise ValueError(value)
    return datetime.fromisoformat(value)


def _strptime(fmt: str) -> Callable[[str], datetime]:
    return lambda value: datetime.strptime(value, fmt)


# -- 4. evaluating one item selector ------------------------------------------------------------------------------


def _evaluate(page: _Page, css: str, members: Sequence[str] = ()) -> Candidate | None:
    """Derive the field selectors for the items `css` matches, read the page with them and score the result.

    `members` are the selectors `css` joins (see _merge); each is sampled in proportion to its size, and at
    least MIN_ITEMS times, so that every member's markup proposes field selectors.
    """
    try:
        nodes = page.tree.css(css)
    except SelectolaxError:
        return None
    if not MIN_ITEMS <= len(nodes) <= 1000:
        return None
    ids = {n.mem_id for n in nodes}
    nested = sum(1 for n in nodes if any(a.mem_id in ids for a in _ancestors(n, page.root)))
    if nested > len(nodes) // 10:
        return None
    sample = _sample(nodes) if not members else _stratified(page, nodes, members)
    parts = [page.anatomy(n) for n in sample]
    if sum(1 for p in parts if p.url and p.headline) < MIN_ITEMS:
        return None
    pairs = list(zip(sample, parts, strict=True))

    link, _ = _chain(
        sample,
        [p.url for p in parts],
        (
            _Spec(c, "href")
            for n, p in pairs
            if p.anchor is not None
            for c in _relative(n, p.anchor, "[href]")
        ),
        page.read_url,
    )
    headline, _ = _chain(
        sample,
        [p.headline if p.url else None for p in parts],
        (
            _Spec(c)
            for n, p in pairs
            for target in (p.title or p.anchor,)
            if target is not None
            for c in _relative(n, target, "[href]" if target.tag == "a" else "")
        ),
        _read_value,
    )
    if not link or not headline:
        return None
    summary, summary_right = _chain(
        sample,
        [p.summary[1] if p.summary else None for p in parts],
        (_Spec(c) for n, p in pairs if p.summary for c in _relative(n, p.summary[0])),
        _read_value,
    )
    image, image_right = _chain(
        sample,
        [p.image[2] if p.image else None for p in parts],
        (_Spec(c, p.image[1]) for n, p in pairs if p.image for c in _relative(n, p.image[0])),
        page.read_url,
    )
    half = len(sample) / 2
    selectors = ListSelectors(
        item=css,
        link=tuple(s.field() for s in link),
        headline=tuple(s.field() for s in headline),
        date=_date_chain(sample, parts) or None,
        summary=tuple(s.field() for s in summary) if summary_right >= half else None,
        image=tuple(s.field() for s in image) if image_right >= half else None,
    )
    items = tuple(it for n in nodes if (it := _read_item(n, selectors, page.url, page.read_url)) is not None)
    if len(items) < MIN_ITEMS:
        return None
    richness = sum(min(len(_text(n)), 400) for n in sample) / len(sample) / 400
    score = _score(page, nodes, items, parts, selectors) * (0.4 + 0.6 * richness)
    return Candidate(selectors=selectors, items=items, score=score, matched=len(nodes))


def _sample(nodes: Sequence[LexborNode], size: int = _SAMPLE) -> list[LexborNode]:
    """At most `size` nodes spread evenly over `nodes`."""
    return list(nodes[:: max(1, len(nodes) // size)][:size])


def _stratified(page: _Page, nodes: Sequence[LexborNode], members: Sequence[str]) -> list[LexborNode]:
    """A sample of a merged selector's `nodes`: each member's share, and at least MIN_ITEMS of every member."""
    picked: set[int] = set()
    for css in members:
        group = page.tree.css(css)
        picked.update(n.mem_id for n in _sample(group, max(MIN_ITEMS, round(_SAMPLE * len(group) / len(nodes)))))
    return [n for n in nodes if n.mem_id in picked]  # in page order


def _date_chain(sample: Sequence[LexborNode], parts: Sequence[_Anatomy]) -> tuple[FieldSpec, ...]:
    """The date chain, each spec with the strptime format (and regex) its values need; none if unparseable."""
    chain, right = _chain(
        sample,
        [p.date[2] if p.date else None for p in parts],
        (
            _Spec(c, p.date[1])
            for n, p in zip(sample, parts, strict=True)
            if p.date
            for c in _relative(n, p.date[0], "[datetime]" if p.date[1] else "")
        ),
        _read_value,
    )
    if right < len(sample) / 2:
        return ()
    out = []
    for spec in chain:
        found = _date_format([v for n in sample if (v := _read_value(n, spec)) is not None])
        if found is not None:
            fmt, regex = found
            out.append(FieldSpec(css=spec.css, attr=spec.attr, format=fmt, regex=regex))
    return tuple(out)


def _article_like(url: str, site: str) -> float:
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not segments and not parts.query:
        return 0.0
    if _TAGGY_PATH.search(parts.path):
        return 0.15
    last = segments[-1] if segments else parts.query
    score = 0.3
    if len(segments) >= 2:
        score += 0.2
    if last.count("-") >= 2 or last.count("_") >= 2:
        score += 0.3
    if re.search(r"\d{4,}", parts.path + parts.query) or last.endswith((".html", ".htm", ".php")):
        score += 0.3
    if not (parts.hostname or "").lower().endswith(site):
        score *= 0.8
    return min(score, 1.0)


def _score(
    page: _Page,
    nodes: Sequence[LexborNode],
    items: Sequence[PreviewItem],
    parts: Sequence[_Anatomy],
    selectors: ListSelectors,
) -> float:
    n = len(items)
    urls = {it.url for it in items}
    unique = len(urls) / n
    headlines = [it.headline for it in items]
    avg_len = sum(min(len(h), 120) for h in headlines) / n
    generic = sum(1 for h in headlines if _GENERIC_TEXT.match(h) or not re.search(r"[^\W\d_]", h)) / n
    distinct_headlines = len(set(headlines)) / n
    article = sum(_article_like(u, page.host) for u in urls) / len(urls)
    precision = n / len(nodes)
    spread = nodes[:: max(1, len(nodes) // 20)]
    chrome = sum(1 for node in spread if page.in_chrome(node)) / len(spread)
    headings = sum(1 for p in parts if p.title is not None and p.title.tag in _HEADINGS) / len(parts)
    bonus = 1.0
    bonus += 0.6 if selectors.date else 0.0
    bonus += 0.2 if selectors.image else 0.0
    bonus += 0.2 if selectors.summary else 0.0
    bonus += 0.3 * headings
    # A selector without a class, an id or a semantic tag (`li > a`) matches whatever has that shape.
    # (Each selector of a list: a merged `item` is as vague as its vaguest member.)
    vague = any(not re.search(r"[.#]|article|main|section|\btr\b", css) for css in selectors.item.split(","))
    return float(
        _size_term(n)
        * (0.6 if vague else 1.0)
        * (0.1 + 0.9 * min(avg_len, 40) / 40)
        * 0.75 ** (len(selectors.link) + len(selectors.headline or ()) - 2)  # fallback chains: mixed markup
        * (0.2 + 0.8 * article)
        * precision**0.5
        * unique**2
        * distinct_headlines
        * (1 - 0.9 * generic)
        * (1 - 0.85 * chrome)
        * bonus
    )


def _size_term(n: int) -> float:
    """What the item count adds to a score: sub-linear, and nothing past 60 (a front page, not a sitemap)."""
    return float(min(n, 60) ** 0.6)


def _same_items(a: Candidate, b: Candidate) -> bool:
    urls_a = {it.url for it in a.items}
    urls_b = {it.url for it in b.items}
    return len(urls_a & urls_b) >= 0.9 * max(len(urls_a), len(urls_b))


# -- 5. one feed from several groups of story blocks ------------------------------------------------------------


def _merge(page: _Page, ranked: Sequence[Candidate]) -> Candidate | None:
    """The best group joined with its peers into one selector list (`li.tout, li.latest, div.dek`), or None.

    News front pages spread their stories over differently classed blocks (lead, latest, topic carousels); a
    feed wants all of them. A candidate joins the best one as a peer when it is the same kind of thing:

    - story blocks: most items' headlines are headings with a link, to article-like URLs (_story_blocks);
    - as good per item: its score without the item-count term is at least half the best's, since the count
      term is what makes a small group (three lead stories) rank below a big one, and it is not the question
      here; a worse ratio means another kind of list (related links, tags, a ticker);
    - separate: none of its nodes is, holds or sits inside a node of the groups taken so far (a carousel that
      wraps the best group's items is the same stories again, and a selector list must not match a node twice);
    - new: at least half of its URLs are not read by the groups taken so far.

    The union is then derived and scored like any candidate (_evaluate, with each member sampled) and it wins
    only if it outscores the best group: the ranking that picks between single groups picks between one group
    and several, with no margin of its own. It already charges a mix for what it costs: fallback chains where
    the members' markup differs (0.75 each), fields only some members have (no date bonus unless half the items
    have one), repeated URLs (a lead story also under "latest"), and it counts items only up to 60, so a merge
    wins by adding stories, not by adding selectors.
    """
    best = ranked[0]
    if not _story_blocks(page, best):
        return None
    bar = _per_item(best) / 2
    members = [best.item]
    first = page.tree.css(best.item)
    taken = {n.mem_id for n in first}
    around = {a.mem_id for n in first for a in _ancestors(n, page.root)}
    covered = {it.url for it in best.items}
    for c in ranked[1:]:
        if _per_item(c) < bar or not _story_blocks(page, c):
            continue
        nodes = page.tree.css(c.item)
        ids = {n.mem_id for n in nodes}
        ups = {a.mem_id for n in nodes for a in _ancestors(n, page.root)}
        if ids & (taken | around) or ups & taken:
            continue
        urls = {it.url for it in c.items}
        if len(urls - covered) < len(urls) / 2:
            continue
        members.append(c.item)
        taken |= ids
        around |= ups
        covered |= urls
    if len(members) < 2:
        return None
    merged = _evaluate(page, ", ".join(members), members)
    if merged is None or merged.score <= best.score:
        return None
    return merged


def _per_item(c: Candidate) -> float:
    """The score without its item-count term (see _score): how much each item reads like a story."""
    return c.score / _size_term(len(c.items))


def _story_blocks(page: _Page, c: Candidate) -> bool:
    """Most sampled items have a heading for a headline, with a link, and the items' URLs read as articles."""
    parts = [page.anatomy(n) for n in _sample(page.tree.css(c.item))]
    headed = sum(1 for p in parts if p.url and p.title is not None and p.title.tag in _HEADINGS)
    urls = {it.url for it in c.items}
    article = sum(_article_like(u, page.host) for u in urls) / len(urls)
    return headed >= len(parts) / 2 and article >= 0.5


# -- TOML ---------------------------------------------------------------------------------------------------------


def _toml_str(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(value, ensure_ascii=False)


def _comment(value: str) -> str:
    return " ".join(value.split())


def _toml_spec(spec: FieldSpec) -> str:
    if spec.attr is None and spec.format is None and spec.regex is None and not spec.all:
        return _toml_str(spec.css)
    pairs = [f"css = {_toml_str(spec.css)}"]
    for key in ("attr", "format", "regex"):
        value = getattr(spec, key)
        if value is not None:
            pairs.append(f"{key} = {_toml_str(value)}")
    if spec.all:
        pairs.append("all = true")
    return "{ " + ", ".join(pairs) + " }"


def _toml_chain(chain: Sequence[FieldSpec]) -> str:
    if len(chain) == 1:
        return _toml_spec(chain[0])
    return "[" + ", ".join(_toml_spec(s) for s in chain) + "]"
