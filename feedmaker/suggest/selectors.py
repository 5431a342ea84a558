"""Selectors that lead from an item to a node, and greedy fallback chains of them (read while searching)."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from feedmaker import patterns
from feedmaker.config import FieldSpec
from feedmaker.extract import BadSelector, Node
from feedmaker.suggest.nodes import ancestors, flat_text, stable_classes
from feedmaker.urls import IMAGE_SCHEMES, absolute, without_fragment

__all__ = ["Reader", "Spec", "fallback_chain", "read_value", "relative", "url_reader"]


def relative(item: Node, node: Node, suffix: str = "") -> list[str]:
    """Selectors leading from `item` to `node`: its tag and classes, then with an ancestor inside the item."""
    tag = node.tag or "*"
    if node.mem_id == item.mem_id:
        return [tag + suffix]
    classes = stable_classes(node)[:3]
    own = [tag, *(f"{tag}.{c}" for c in classes)]
    out = [x + suffix for x in own]
    out.extend(f".{c}{suffix}" for c in classes if tag not in ("a", "img", "time"))
    for up in ancestors(node, item)[:3]:
        up_tag = up.tag or "*"
        out.append(f"{up_tag} {tag}{suffix}")
        out.extend(f"{up_tag}.{c} {tag}{suffix}" for c in stable_classes(up)[:2])
        if (k := _position(up)) is not None:
            out.append(f"{up_tag}:nth-of-type({k}) {tag}{suffix}")
    if (k := _position(node)) is not None:
        out.append(f"{tag}:nth-of-type({k}){suffix}")
    return out


def _position(node: Node) -> int | None:
    """1-based index among same-tag siblings, when there are such siblings (table cells, paragraphs)."""
    parent = node.parent
    if parent is None:
        return None
    same = [c for c in parent.iter() if c.tag == node.tag]
    if len(same) < 2:
        return None
    return next(i for i, c in enumerate(same, 1) if c.mem_id == node.mem_id)


class Spec(NamedTuple):
    """A FieldSpec while searching: hashing pydantic models in the inner loop costs more than the search."""

    css: str
    attr: str | None = None
    regex: str | None = None

    def field(self) -> FieldSpec:
        return FieldSpec(css=self.css, attr=self.attr, regex=self.regex)


Reader = Callable[[Node, Spec], str | None]


def fallback_chain(
    items: Sequence[Node],
    targets: Sequence[str | None],
    proposals: Iterable[Spec],
    read: Reader,
) -> tuple[tuple[Spec, ...], int]:
    """Greedy fallback chain: the spec reading the most targets right, then one for the items it left empty.

    A spec that reads a wrong value is worse than one that reads nothing, since a chain stops at the first value.
    Returns the chain and how many items it reads right.
    """
    counts = Counter(proposals)
    pool = [spec for spec, _ in counts.most_common(16)]
    open_ = [i for i, t in enumerate(targets) if t is not None]
    rest = [i for i, t in enumerate(targets) if t is None]
    chain: list[Spec] = []
    right = 0
    for _ in range(3):
        best: tuple[float, int, Spec, list[int]] | None = None
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


def read_value(node: Node, spec: Spec) -> str | None:
    try:
        hit = node.css_first(spec.css)
    except BadSelector:
        return None
    if hit is None:
        return None
    value = (hit.attributes.get(spec.attr) or "").strip() if spec.attr else flat_text(hit)
    if value and spec.regex:
        value = patterns.captured(spec.regex, value) or ""
    return value or None


def url_reader(base: str) -> Reader:
    @functools.lru_cache(maxsize=4096)
    def resolve(value: str) -> str | None:
        url = absolute(value, base, IMAGE_SCHEMES)
        return without_fragment(url) if url is not None else None

    def read(node: Node, spec: Spec) -> str | None:
        value = read_value(node, spec)
        return resolve(value) if value else None

    return read
