"""The check report: a listing page (and optionally its first item's article page) + SiteConfig -> CheckReport.

The one account of what a site config extracts: `feedmaker check` renders it as text or JSON and the tests
assert on it. Each value keeps its origin (the selector or the page metadata it came from), each list field
gets a fill count, and the warnings name the selector to fix: a selector that left items empty, a `next`
that matched nothing, a date `format` that matched no date (the general date parser silently read them).
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from feedmaker.config import FieldSpec, Filters, SiteConfig
from feedmaker.errors import ExtractError
from feedmaker.extract import extract_article, extract_fields, extract_listing
from feedmaker.models import Article, Page

__all__ = [
    "FIELDS",
    "CheckReport",
    "FieldStats",
    "FieldValue",
    "ItemReport",
    "build_report",
    "render_json",
    "render_text",
]

FIELDS = ("headline", "url", "published", "modified", "author", "summary", "image", "content")
# Config key under [list] -> the Article attribute it fills.
_LIST_KEYS = {"headline": "headline", "link": "url", "date": "published", "modified": "modified",
              "author": "author", "summary": "summary", "image": "image", "content": "content"}  # fmt: skip
WIDTH = 70  # text rendering shortens values to this many characters unless asked for full width


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldValue:
    name: str  # an Article attribute: headline, url, published, ...
    value: str | None  # dates in ISO 8601; None when empty
    origin: str | None  # "selector:h2 a@href", "json-ld", "meta:og:title", "link-text", ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemReport:
    url: str
    fields: tuple[FieldValue, ...]

    def field(self, name: str) -> FieldValue:
        return next(f for f in self.fields if f.name == name)


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldStats:
    """How one [list] field did over every item."""

    key: str  # the config key: headline, link, date, ...
    selector: str | None  # "h2 / h3@title"; None when the config gives none
    filled: int
    total: int
    origins: tuple[tuple[str, int], ...]  # each origin with the number of items it filled, most first


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    site: str
    path: str
    page_url: str
    item_selector: str
    items: tuple[ItemReport, ...] = ()
    fields: tuple[FieldStats, ...] = ()
    next_url: str | None = None
    article_url: str | None = None
    article: ItemReport | None = None  # the first item merged with its article page
    warnings: tuple[str, ...] = ()
    error: str | None = None  # why the page yielded no item; check exits 1

    @property
    def ok(self) -> bool:
        return self.error is None


def build_report(site: SiteConfig, page: Page, *, follow: Callable[[str], Page] | None = None) -> CheckReport:
    """The report of `page` read as `site`'s listing; with `follow`, the first item's article page too
    (`follow(url)` gives that page). Raises ExtractError when the article page has no headline."""
    head = CheckReport(site=site.id, path=site.path, page_url=page.url, item_selector=site.list.item)
    try:
        listing = extract_listing(page, site)
    except ExtractError as exc:
        return replace(head, error=f"{exc}: 0 items")
    items = listing.items
    if not items:
        filters = site.filters
        reason = (
            f"[filters] removed every item (include {list(filters.include)}, exclude {list(filters.exclude)})"
        )
        return replace(head, error=reason)
    fields = tuple(_stats(site, key, attr, items) for key, attr in _LIST_KEYS.items())
    warnings = [
        f"list.{s.key} {s.selector!r} is empty in {s.total - s.filled}/{s.total} item(s)"
        for s in fields
        if s.selector is not None and s.filled < s.total
    ]
    if listing.next_url is None and site.list.next:
        warnings.append(f"list.next {_label(site.list.next[0])!r} matched nothing")
    warnings += _list_format_warnings(site, page, items, fields)
    article: Article | None = None
    article_page: Page | None = None
    if follow is not None:
        article_page = follow(items[0].url)
        article = extract_article(article_page, site, items[0])
        warnings += _article_format_warnings(site, article_page, items[0], article)
    return replace(
        head,
        items=tuple(_item(i) for i in items),
        fields=fields,
        next_url=listing.next_url,
        article_url=article_page.url if article_page is not None else None,
        article=_item(article) if article is not None else None,
        warnings=tuple(warnings),
    )


def _origin(article: Article, name: str) -> str | None:
    return article.origin("date" if name == "published" else name) or article.origin(name)


def _item(article: Article) -> ItemReport:
    values = []
    for name in FIELDS:
        raw = getattr(article, name)
        value = raw.isoformat() if isinstance(raw, datetime) else (raw or None)
        values.append(FieldValue(name=name, value=value, origin=_origin(article, name) if value else None))
    return ItemReport(url=article.url, fields=tuple(values))


def _label(spec: FieldSpec) -> str:
    return spec.css + (f"@{spec.attr}" if spec.attr else "")


def _stats(site: SiteConfig, key: str, attr: str, items: Sequence[Article]) -> FieldStats:
    chain = getattr(site.list, key)
    filled = [i for i in items if getattr(i, attr)]
    origins = Counter(_origin(i, attr) or "?" for i in filled)
    return FieldStats(
        key=key,
        selector=" / ".join(_label(spec) for spec in chain) if chain else None,
        filled=len(filled),
        total=len(items),
        origins=tuple(origins.most_common()),
    )


# A date `format` that fails falls through to the general parser, which often reads the same text, so
# the value alone cannot tell. The text the selector read is read again as plain text and tried against
# the format directly.


def _text_probe(spec: FieldSpec) -> tuple[FieldSpec, ...]:
    return (FieldSpec(css=spec.css, attr=spec.attr, regex=spec.regex),)


def _matches(text: str, fmt: str) -> bool:
    try:
        datetime.strptime(unicodedata.normalize("NFKC", text).strip(), fmt)
    except ValueError:
        return False
    return True


def _list_format_warnings(
    site: SiteConfig, page: Page, items: Sequence[Article], fields: Sequence[FieldStats]
) -> list[str]:
    date_stats = next(s for s in fields if s.key == "date")
    warnings = []
    for spec in site.list.date or ():
        if not spec.format:
            continue
        # `summary` has no page-level fallback in a listing, so what it reads is the selector's text.
        probe_list = site.list.model_copy(update={"summary": _text_probe(spec)})
        probe = site.model_copy(update={"list": probe_list, "filters": Filters(), "max_items": 10_000})
        texts = {i.url: i.summary for i in extract_listing(page, probe).items if i.summary}
        read = [texts[i.url] for i in items if i.url in texts]
        if any(_matches(text, spec.format) for text in read):
            continue
        where = f"list.date {_label(spec)!r} format {spec.format!r}"
        if read:
            warnings.append(
                f"{where} matched none of {len(read)} date(s) such as {read[0]!r}; {_came_from(date_stats.origins, spec)}"
            )
        elif date_stats.filled:
            warnings.append(f"{where} read no text on any item; {_came_from(date_stats.origins, spec)}")
    return warnings


def _article_format_warnings(site: SiteConfig, page: Page, item: Article, article: Article) -> list[str]:
    if site.article is None or item.published is not None:
        return []  # the listing's date wins: the article page's date is not read
    warnings = []
    for spec in site.article.date or ():
        if not spec.format:
            continue
        probe = site.model_copy(
            update={"article": site.article.model_copy(update={"summary": _text_probe(spec)})}
        )
        try:
            found = extract_fields(page, probe)
        except ExtractError:
            continue
        # Only the selector's own text counts: an article's summary falls back to its meta description.
        text = found.summary if found.origin("summary") == f"selector:{_label(spec)}" else None
        if text is not None and _matches(text, spec.format):
            continue
        origin = article.origin("date")
        came = "no date was found" if origin is None else f"the date came from {origin}"
        if text is not None and origin == f"selector:{_label(spec)}":
            came = "the general date parser read it instead"
        detail = f"did not match {text!r}" if text is not None else "read no text"
        warnings.append(f"article.date {_label(spec)!r} format {spec.format!r} {detail}; {came}")
    return warnings


def _came_from(origins: Sequence[tuple[str, int]], spec: FieldSpec) -> str:
    if not origins:
        return "no date was found"
    own = f"selector:{_label(spec)}"
    parts = [("the general date parser" if origin == own else origin) + f" ({n})" for origin, n in origins]
    return "dates came from " + ", ".join(parts)


# ----------------------------------------------------------------------------------------- rendering


def _shorten(value: str, width: int | None) -> str:
    text = " ".join(value.split())
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _show(item: ItemReport, width: int | None) -> list[str]:
    lines = []
    for f in item.fields:
        shown = _shorten(f.value, width) if f.value else "-- empty --"
        lines.append(f"    {f.name:<9} {shown}" + (f"   [{f.origin}]" if f.origin and f.value else ""))
    return lines


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def render_text(report: CheckReport, *, width: int | None = WIDTH) -> str:
    """What `check` prints: every item's fields, a table per field, the article page, the warnings.
    `width=None` shows values in full."""
    lines = [f"site {report.site} ({report.path}), page {report.page_url}"]
    if report.error is not None and not report.items:
        lines.append(f"error: {report.error}")
        return "\n".join(lines)
    lines.append(f"{len(report.items)} item(s) from list.item {report.item_selector!r}")
    for n, item in enumerate(report.items, 1):
        lines.append(f"  #{n}")
        lines += _show(item, width)
    rows = [("field", "list selector", "filled", "from")]
    for s in report.fields:
        kinds = sorted({origin.split(":")[0] for origin, _ in s.origins})
        rows.append((s.key, s.selector or "-", f"{s.filled}/{s.total}", ",".join(kinds) or "-"))
    lines += _table(rows)
    if report.next_url:
        lines.append(f"next page: {report.next_url}")
    if report.article is not None:
        lines.append(f"article page {report.article_url}")
        lines += _show(report.article, width)
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _item_json(item: ItemReport) -> dict[str, Any]:
    return {"url": item.url, "fields": {f.name: {"value": f.value, "origin": f.origin} for f in item.fields}}


def render_json(report: CheckReport) -> str:
    """The report for programs: full values, origins, fill counts per field, warnings."""
    data = {
        "site": report.site,
        "path": report.path,
        "page": report.page_url,
        "item_selector": report.item_selector,
        "ok": report.ok,
        "error": report.error,
        "items": [_item_json(i) for i in report.items],
        "fields": {
            s.key: {"selector": s.selector, "filled": s.filled, "total": s.total, "origins": dict(s.origins)}
            for s in report.fields
        },
        "next": report.next_url,
        "article": None
        if report.article is None
        else {"page": report.article_url, **_item_json(report.article)},
        "warnings": list(report.warnings),
    }
    return json.dumps(data, ensure_ascii=False, indent=2)
