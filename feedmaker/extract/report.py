"""Page + SiteConfig -> per-selector rows for `check`: what each selector and fallback source yields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from feedmaker.config import SiteConfig
from feedmaker.extract.article import article_values
from feedmaker.extract.fallbacks import (
    ARTICLE_FIELDS,
    META_AUTHOR,
    META_DATE,
    META_IMAGE,
    META_SUMMARY,
    Fallback,
    author_fallback,
    date_fallback,
    from_jsonld,
    from_meta,
    from_title,
    image_fallback,
    url_fallback,
)  # fmt: skip
from feedmaker.extract.fields import Kind, Value, read_spec, spec_label
from feedmaker.extract.metadata import Document
from feedmaker.models import Page

__all__ = ["FieldResult", "field_report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldResult:
    """One row of `check`: what one selector (or fallback source) yielded on a page."""

    field: str  # "item", "headline", "date", ...
    source: str  # "selector:h1@attr", or a fallback such as "json-ld", "meta:og:title", "title"
    matches: int  # nodes matched (listing fields: items in which it matched); fallbacks: 1 if found
    value: str | None  # the cleaned value (dates as ISO 8601), from the first item on listings
    used: bool  # this row's value is the one the Article gets


def field_report(page: Page, site: SiteConfig, *, article: bool = False) -> tuple[FieldResult, ...]:
    """Per-selector results for `check`: the listing's selectors, or (article=True) the article page's
    selectors followed by every fallback source, so an operator can see which one carries a field."""
    doc = Document(page, site)
    return _article_report(doc) if article else _listing_report(doc)


def _show(value: Value | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _listing_report(doc: Document) -> tuple[FieldResult, ...]:
    selectors = doc.site.list
    nodes = doc.tree.css(selectors.item)
    rows = [
        FieldResult(
            field="item",
            source=f"selector:{selectors.item}",
            matches=len(nodes),
            value=None,
            used=bool(nodes),
        )
    ]
    fields: list[tuple[str, Kind]] = [("link", "link"), *((name, kind) for name, kind, _ in ARTICLE_FIELDS)]
    for name, kind in fields:
        chain = selectors.link if name == "link" else getattr(selectors, name)
        winner_found = False
        for spec in chain or ():
            matched, first = 0, None
            for node in nodes:
                value, _ = read_spec(doc, node, spec, kind)
                if value is not None:
                    matched += 1
                    first = first if first is not None else value
            rows.append(
                FieldResult(
                    field=name,
                    source=spec_label(spec),
                    matches=matched,
                    value=_show(first),
                    used=matched > 0 and not winner_found,
                )
            )
            winner_found = winner_found or matched > 0
    if selectors.next:
        for spec in selectors.next:
            value, _ = read_spec(doc, doc.tree, spec, "link")
            rows.append(
                FieldResult(
                    field="next",
                    source=spec_label(spec),
                    matches=len(doc.tree.css(spec.css)),
                    value=_show(value),
                    used=value is not None,
                )
            )
    return tuple(rows)


_REPORT_FALLBACKS: dict[str, tuple[Fallback, ...]] = {
    "headline": (
        lambda d: from_jsonld(d, "headline", "text"),
        lambda d: from_meta(d, ("og:title",), "text"),
        lambda d: from_meta(d, ("twitter:title",), "text"),
        from_title,
    ),
    "date": (
        lambda d: from_jsonld(d, "datePublished", "date"),
        lambda d: from_meta(d, META_DATE, "date"),
        date_fallback,
    ),
    "author": (
        lambda d: from_jsonld(d, "author", "text"),
        lambda d: from_meta(d, META_AUTHOR, "text"),
        author_fallback,
    ),
    "summary": (
        lambda d: from_jsonld(d, "description", "text"),
        lambda d: from_meta(d, META_SUMMARY, "text"),
    ),
    "image": (
        lambda d: from_jsonld(d, "image", "image"),
        lambda d: from_meta(d, META_IMAGE, "image"),
        image_fallback,
    ),
    "url": (url_fallback,),
}


def _article_report(doc: Document) -> tuple[FieldResult, ...]:
    final = article_values(doc)
    rows: list[FieldResult] = []
    for name, kind, _ in (*ARTICLE_FIELDS, ("url", "link", None)):
        chain = getattr(doc.site.article, name, None) if doc.site.article is not None else None
        for spec in chain or ():
            value, _ = read_spec(doc, doc.tree, spec, kind)
            used = name in final and final[name][1] == spec_label(spec)
            rows.append(
                FieldResult(
                    field=name,
                    source=spec_label(spec),
                    matches=len(doc.tree.css(spec.css)),
                    value=_show(value),
                    used=used,
                )
            )
        seen: set[str] = set()
        for fallback in _REPORT_FALLBACKS.get(name, ()):
            hit = fallback(doc)
            if hit is None or hit[1] in seen:
                continue
            seen.add(hit[1])
            used = name in final and final[name][1] == hit[1]
            rows.append(FieldResult(field=name, source=hit[1], matches=1, value=_show(hit[0]), used=used))
    return tuple(rows)
