"""Article page + SiteConfig (+ the listing's item) -> Article: selectors first, then fallbacks; origins kept."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from feedmaker import patterns
from feedmaker.config import SiteConfig
from feedmaker.errors import ExtractError
from feedmaker.extract.fallbacks import ARTICLE_FIELDS, BYLINE_PREFIX, url_fallback
from feedmaker.extract.fields import Value, read_chain
from feedmaker.extract.metadata import Document
from feedmaker.models import Article, Page
from feedmaker.text import clean_text, strip_title_affixes

__all__ = ["article_from", "article_values", "display_headline", "extract_article", "extract_fields"]

log = logging.getLogger(__name__)


def article_values(doc: Document, *, known: frozenset[str] = frozenset()) -> dict[str, tuple[Value, str]]:
    """Field name -> (value, origin) for the article page; fields in `known` are not looked for."""
    selectors = doc.site.article
    found: dict[str, tuple[Value, str]] = {}
    for name, kind, fallback in ARTICLE_FIELDS:
        if name in known:
            continue
        chain = getattr(selectors, name) if selectors is not None else None
        try:
            hit = read_chain(doc, doc.tree, chain, kind)
            if hit is not None:
                found[name] = (hit[0], hit[1])
            elif fallback is not None:
                fell = fallback(doc)
                if fell is not None:
                    found[name] = fell
        except Exception as exc:  # a bug on one odd page costs that field, not the item
            log.error("item %s: %s: %s: %s", doc.url, name, type(exc).__name__, exc, exc_info=exc)
    if "headline" in found:
        headline, origin = found["headline"]
        found["headline"] = (strip_title_affixes(str(headline), doc.site_names()), origin)
    if "author" in found:
        author, origin = found["author"]
        found["author"] = (BYLINE_PREFIX.sub("", str(author)), origin)
    if "url" not in known:
        fell_url = url_fallback(doc)
        found["url"] = fell_url if fell_url is not None else (doc.url, "page")
    return found


def _text_value(values: dict[str, tuple[Value, str]], name: str) -> str | None:
    value = values.get(name)
    return value[0] if value is not None and isinstance(value[0], str) else None


def display_headline(site: SiteConfig, headline: str) -> str:
    """The headline as readers see it: with `[canonical] strip_display`, the site's `strip` patterns
    removed (as canon.py removes them for the key), unless that would leave nothing."""
    if not site.canonical.strip_display or not headline:
        return headline
    text = headline
    for pattern in site.canonical.strip:
        text = patterns.blank_out(pattern, text)
    return clean_text(text) or headline


def article_from(doc: Document, values: dict[str, tuple[Value, str]]) -> Article:
    """The Article of a listing item or an article page: the one place both are built, so the display
    headline is cleaned here."""
    # A listing builds one per item: one pass sorts the values by type, rather than a lookup per field.
    texts: dict[str, str] = {}
    instants: dict[str, datetime] = {}
    for name, (value, _) in values.items():
        if isinstance(value, str):
            texts[name] = value
        else:
            instants[name] = value
    headline = texts.get("headline") or ""
    site = doc.site
    if headline and site.canonical.strip_display:
        headline = display_headline(site, headline)
    return Article(
        site=site.id,
        url=str(values["url"][0]),
        headline=headline,
        published=instants.get("date"),
        modified=instants.get("modified"),
        author=texts.get("author"),
        summary=texts.get("summary"),
        image=texts.get("image"),
        content=texts.get("content"),
        origins=tuple([(name, origin) for name, (_, origin) in values.items()]),
    )


def _require_headline(doc: Document, article: Article) -> Article:
    if not article.headline:
        chain = doc.site.article.headline if doc.site.article is not None else None
        selector = chain[0].css if chain else "headline"
        raise ExtractError(doc.url, selector, "matched nothing and the page has no title metadata")
    return article


def extract_fields(page: Page, site: SiteConfig) -> Article:
    """Article-page fields on their own (`check --url`, benchmarks). Raises ExtractError without a headline."""
    doc = Document(page, site)
    return _require_headline(doc, article_from(doc, article_values(doc)))


_MERGED = ("headline", "published", "modified", "author", "summary", "image", "content")
_ORIGIN_NAME = {"published": "date"}


def extract_article(page: Page, site: SiteConfig, item: Article, generic_headline: bool = False) -> Article:
    """The article page's fields merged under the listing item's: a listing value wins unless empty, and
    a `generic_headline` ("Read more") gives way to the page's headline when the page has one."""
    doc = Document(page, site)
    # What the listing already gave is not read again: it would lose the merge anyway.
    open_ = [
        name
        for name in _MERGED
        if getattr(item, name) in (None, "") or (generic_headline and name == "headline")
    ]
    known = frozenset(_ORIGIN_NAME.get(name, name) for name in _MERGED if name not in open_)
    values = article_values(doc, known=known | {"url"})
    values["url"] = (item.url, "listing")
    found = article_from(doc, values)
    updates: dict[str, Any] = {}
    origins = list(item.origins)
    for name in open_:
        if getattr(found, name) not in (None, ""):
            updates[name] = getattr(found, name)
            origin_name = _ORIGIN_NAME.get(name, name)
            origins = [o for o in origins if o[0] != origin_name]
            where = found.origin(origin_name)
            if where is not None:
                origins.append((origin_name, where))
    merged = replace(item, **updates, origins=tuple(origins))
    return _require_headline(doc, merged)
