"""What one item holds, as nodes (title, link, date, summary, image), and the date formats its text needs."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from feedmaker import patterns
from feedmaker.extract import Node
from feedmaker.suggest.nodes import HEADINGS, SKIP_TAGS, TAGGY_PATH, ancestors, class_list, flat_text, link_of
from feedmaker.urls import IMAGE_SCHEMES, absolute

__all__ = ["Anatomy", "date_format", "read_anatomy"]

_TITLE_CLASS = re.compile(r"(?:^|[-_])(?:title|headline|heading|header)(?:$|[-_])", re.I)
_DATE_CLASS = re.compile(r"date|time|publish|posted|dateline|byline|meta", re.I)
_SUMMARY_CLASS = re.compile(
    r"summary|excerpt|description|desc|dek|teaser|standfirst|intro|lead|abstract|content", re.I
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


@dataclass(slots=True)
class Anatomy:
    """What one item holds, as nodes: suggest derives selectors that lead from the item to each of them."""

    title: Node | None
    anchor: Node | None
    url: str | None
    headline: str | None
    date: tuple[Node, str | None, str] | None  # node, attribute, raw value
    summary: tuple[Node, str] | None
    image: tuple[Node, str, str] | None  # node, attribute, absolute URL


def read_anatomy(item: Node, base: str) -> Anatomy:
    nodes = [n for n in item.traverse() if n.tag not in SKIP_TAGS or n.mem_id == item.mem_id]
    anchors = [(n, u) for n in nodes if n.tag == "a" and (u := link_of(n, base)) is not None]
    title, anchor = _title(item, nodes, base)
    if anchor is None and anchors:
        plain = [(n, u) for n, u in anchors if not TAGGY_PATH.search(urlsplit(u).path)] or anchors
        anchor = max(plain, key=lambda au: len(flat_text(au[0])))
    headline = flat_text(title) if title is not None else (flat_text(anchor[0]) if anchor else None)
    skip = {n.mem_id for n in title.traverse()} if title is not None else set()
    return Anatomy(
        title=title,
        anchor=anchor[0] if anchor else None,
        url=anchor[1] if anchor else None,
        headline=headline or None,
        date=_find_date(nodes),
        summary=_find_summary(nodes, skip, headline or ""),
        image=_find_image(nodes, base),
    )


def _title(item: Node, nodes: list[Node], base: str) -> tuple[Node | None, tuple[Node, str] | None]:
    """The headline node and its link: a linked heading, a heading inside a link, a link in a title-ish
    block (`.release-header a`), else the first heading (its link is found by the caller)."""
    headings = [n for n in nodes if n.tag in HEADINGS and len(flat_text(n)) >= 3]
    for h in headings:
        inner = h.css_first("a[href]")
        if inner is not None and (u := link_of(inner, base)) and len(flat_text(inner)) >= 3:
            return h, (inner, u)
        for up in [*ancestors(h, item), item]:
            if up.tag == "a" and (u := link_of(up, base)):
                return h, (up, u)
    for n in nodes:
        if n.mem_id == item.mem_id or not any(_TITLE_CLASS.search(c) for c in class_list(n)):
            continue
        if n.tag == "a" and (u := link_of(n, base)) and len(flat_text(n)) >= 3:
            return n, (n, u)
        for inner in n.css("a[href]"):
            if (
                (u := link_of(inner, base))
                and len(flat_text(inner)) >= 3
                and not TAGGY_PATH.search(urlsplit(u).path)
            ):
                return inner, (inner, u)
    if headings:
        return headings[0], None
    for n in nodes:
        titled = any(_TITLE_CLASS.search(c) for c in class_list(n))
        if (
            titled
            and n.mem_id != item.mem_id
            and n.tag not in ("img", "time")
            and 3 <= len(flat_text(n)) <= 300
        ):
            return n, None
    return None, None


def _find_date(nodes: list[Node]) -> tuple[Node, str | None, str] | None:
    for n in nodes:
        value = n.attributes.get("datetime")
        if value and date_format([value.strip()]) is not None:
            return n, "datetime", value.strip()
    for n in nodes:
        if n.tag == "time" and (t := flat_text(n)) and date_format([t]) is not None:
            return n, None, t
    for n in nodes:
        if n.tag in ("a", "img") or not any(_DATE_CLASS.search(c) for c in class_list(n)):
            continue
        t = flat_text(n)
        if 6 <= len(t) <= 80 and _YEAR.search(t) and date_format([t]) is not None:
            return n, None, t
    # A block holding nothing but a date, as in tables: <td><p>24 Mar 2026</p></td>.
    for n in nodes:
        if n.tag in ("a", "img") or next(iter(n.iter()), None) is not None:
            continue
        t = flat_text(n)
        if 6 <= len(t) <= 40 and _is_date(t):
            return n, None, t
    return None


def _is_date(text: str) -> bool:
    if not _YEAR.search(text):
        return False
    found = date_format([text])
    if found is None:
        return False
    _, regex = found
    part = patterns.captured(regex, text) if regex else None
    return regex is None or (part is not None and len(part) >= len(text) - 3)


def _find_summary(nodes: list[Node], skip: set[int], headline: str) -> tuple[Node, str] | None:
    def fits(n: Node) -> str | None:
        if n.mem_id in skip or n.tag in HEADINGS or n.tag == "a":
            return None
        t = flat_text(n)
        return t if len(t) >= 30 and t != headline and not t.startswith(headline or "\0") else None

    for n in nodes[1:]:
        if n.tag == "p" and (t := fits(n)):
            return n, t
    for n in nodes[1:]:
        if any(_SUMMARY_CLASS.search(c) for c in class_list(n)) and (t := fits(n)):
            return n, t
    return None


def _find_image(nodes: list[Node], base: str) -> tuple[Node, str, str] | None:
    for n in nodes:
        if n.tag != "img":
            continue
        for attr in _IMAGE_ATTRS:
            raw = (n.attributes.get(attr) or "").strip()
            if raw and not raw.startswith("data:") and "," not in raw and " " not in raw:
                url = absolute(raw, base, IMAGE_SCHEMES)
                if url is not None:
                    return n, attr, url
    return None


def date_format(values: Sequence[str]) -> tuple[str | None, str | None] | None:
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
