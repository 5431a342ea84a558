"""Listing page + SiteConfig -> Listing: the items (each with a link) and the next-page URL."""

from __future__ import annotations

import logging

from feedmaker.config import ListSelectors, SiteConfig
from feedmaker.errors import ExtractError
from feedmaker.extract.article import article_from
from feedmaker.extract.fallbacks import ARTICLE_FIELDS, from_nodes
from feedmaker.extract.fields import Value, node_text, read_chain
from feedmaker.extract.metadata import Document, Firsts, Node
from feedmaker.models import Article, Listing, Page
from feedmaker.text import clean_text
from feedmaker.urls import host_of, without_fragment

__all__ = ["extract_listing", "listing_document", "read_item"]

log = logging.getLogger(__name__)


def read_item(doc: Document, node: Node, selectors: ListSelectors) -> Article | None:
    """One listing item as `selectors` read it (None without a link): what `check` and `suggest` show."""
    firsts: Firsts = {}
    link = read_chain(doc, node, selectors.link, "link", firsts)
    if link is None:
        return None
    url, link_origin, link_node = link
    values: dict[str, tuple[Value, str]] = {"url": (url, link_origin)}
    for name, kind, _ in ARTICLE_FIELDS:
        hit = read_chain(doc, node, getattr(selectors, name), kind, firsts)
        if hit is not None:
            values[name] = (hit[0], hit[1])
    if "headline" not in values and selectors.headline is None and link_node is not None:
        text = clean_text(node_text(link_node))
        if text:
            values["headline"] = (text, "link-text")
    if "date" not in values:
        fell = from_nodes(doc, node, (("time[datetime]", "datetime"),), "date")
        if fell is not None:
            values["date"] = fell
    return article_from(doc, values)


def listing_document(html: str, url: str) -> Document:
    """A listing page held as text (`suggest`) parsed as extraction parses a fetched one: links resolve
    against `url`; there is no site config yet, so dates without an offset are read in UTC."""
    page = Page(url=url, body=html.encode("utf-8", "replace"), encoding="utf-8")
    host = host_of(url) or "site"
    return Document(
        page, SiteConfig(id="suggest", name=host, start_urls=(url,), list=ListSelectors(item="*"))
    )


def extract_listing(page: Page, site: SiteConfig) -> Listing:
    """Items of a listing page (at most site.max_items, each with a link) and its next-page URL."""
    doc = Document(page, site)
    nodes = doc.tree.css(site.list.item)
    if not nodes:
        raise ExtractError(page.url, site.list.item)
    items: list[Article] = []
    seen: set[str] = set()
    filters = site.filters
    filtered = bool(filters.include or filters.exclude)  # without patterns, keeps() keeps everything
    linked = 0
    for node in nodes:
        item = read_item(doc, node, site.list)
        if item is None:
            log.debug("site=%s item without link url=%s", site.id, page.url)
            continue
        linked += 1
        if item.url in seen:
            continue
        # An item whose headline comes from its article page is filtered by the crawler once it has one.
        if filtered and item.headline and not filters.keeps(item.headline, item.summary):
            continue
        seen.add(item.url)
        items.append(item)
        if len(items) >= site.max_items:
            break
    if not linked:
        # Items but no links is a redesign as much as no items is: say which selector found nothing.
        links = " / ".join(spec.css for spec in site.list.link)
        raise ExtractError(
            page.url, links, f"found no http(s) link in any of the {len(nodes)} {site.list.item!r} item(s)"
        )
    next_url = None
    if site.list.next:
        hit = read_chain(doc, doc.tree, site.list.next, "link")
        if hit is not None and without_fragment(str(hit[0])) != without_fragment(page.url):
            next_url = str(hit[0])
    return Listing(url=page.url, items=tuple(items), next_url=next_url)
