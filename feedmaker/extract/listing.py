"""Listing page + SiteConfig -> Listing: the items (each with a link) and the next-page URL."""

from __future__ import annotations

import logging

from feedmaker import patterns
from feedmaker.config import ListSelectors, SiteConfig
from feedmaker.errors import ExtractError
from feedmaker.extract.article import article_from
from feedmaker.extract.fallbacks import from_nodes
from feedmaker.extract.fields import Kind, Value, finish, node_text, read_chain, read_spec
from feedmaker.extract.metadata import Document, Firsts, Node, select, select_first
from feedmaker.extract.plan import ChainPlan, ListingPlan, listing_plan
from feedmaker.models import Article, Listing, Page
from feedmaker.text import clean_text
from feedmaker.urls import LINK_SCHEMES, absolute, host_of, without_fragment

__all__ = ["extract_listing", "item_failed", "listing_document", "read_item"]

log = logging.getLogger(__name__)


class ItemScopes:
    """item.css_first(css) for every item of a listing at once: one tree-wide query per selector.

    selectolax parses a selector afresh on every call (~5 µs, more than reading a field costs), so 50
    items x 7 fields paid for 350 parses. `item.css_first(css)` is the first node, in document order,
    of the item and its descendants that matches `css` in the whole document's context (ancestors
    outside the item count, as in a browser's querySelector), which is the first node of
    `tree.css(css)` (document order) lying in that item. Which item a node lies in is found by
    walking up its parents, memoised per node. Items inside other items would need every enclosing
    item; such pages keep per-item queries (`nested`)."""

    def __init__(self, doc: Document, items: list[Node]) -> None:
        self.tree = doc.tree
        self.items = {item.mem_id for item in items}
        # node mem_id -> the item it lies in, or None: every item's ancestors lie in none.
        self.owner: dict[int, int | None] = {key: key for key in self.items}
        self.nested = False
        for item in items:
            up = item.parent
            while up is not None and (key := up.mem_id) not in self.owner:
                self.owner[key] = None
                up = up.parent
            if up is not None and up.mem_id in self.items:
                self.nested = True
        self.firsts: dict[str, dict[int, Node]] = {}

    def first(self, css: str, item: int) -> Node | None:
        column = self.firsts.get(css)
        if column is None:
            column = self.column(css)
        return column.get(item)

    def column(self, css: str) -> dict[int, Node]:
        """item mem_id -> its first match of `css`, for every item that has one."""
        found = self.firsts[css] = {}
        owner = self.owner
        for match in select(self.tree, css):
            key = match.mem_id
            where = owner.get(key, _UNKNOWN)
            if where == _UNKNOWN:
                path = [key]
                node = match.parent
                while node is not None:
                    key = node.mem_id
                    where = owner.get(key, _UNKNOWN)
                    if where != _UNKNOWN:
                        break
                    path.append(key)
                    node = node.parent
                else:
                    where = None
                for key in path:
                    owner[key] = where
            if where is not None and where not in found:
                found[where] = match
        return found


_UNKNOWN = -1  # a node not yet in ItemScopes.owner (a mem_id is an address, never -1)

# Below this many items the per-item queries cost less than walking up from every tree-wide match.
_BATCHED_ITEMS = 8


def read_item(
    doc: Document, node: Node, selectors: ListSelectors, firsts: Firsts | None = None
) -> Article | None:
    """One listing item as `selectors` read it (None without a link): what `check` and `suggest` show.
    `firsts`: the item's css_first memo, when the caller keeps one."""
    return _read(doc, node, listing_plan(selectors), None, {} if firsts is None else firsts)


def _read(
    doc: Document, node: Node, plan: ListingPlan, scopes: ItemScopes | None, firsts: Firsts
) -> Article | None:
    """read_item on a compiled plan; with `scopes` (a batched listing), the item's first matches come
    from its tree-wide columns, else from node.css_first memoised in `firsts`."""
    key = node.mem_id
    link = _chain(doc, node, key, plan.link, "link", scopes, firsts)
    if link is None:
        return None
    url, link_origin, link_node = link
    values: dict[str, tuple[Value, str]] = {"url": (url, link_origin)}
    for name, kind, chain in plan.fields:
        hit = _chain(doc, node, key, chain, kind, scopes, firsts)
        if hit is not None:
            values[name] = (hit[0], hit[1])
    if "headline" not in values and plan.headline_from_link and link_node is not None:
        text = clean_text(node_text(link_node))
        if text:
            values["headline"] = (text, "link-text")
    if "date" not in values:
        fell = from_nodes(doc, node, _ITEM_DATE, "date")
        if fell is not None:
            values["date"] = fell
    return article_from(doc, values)


_ITEM_DATE = (("time[datetime]", "datetime"),)


def _chain(
    doc: Document,
    node: Node,
    key: int,
    chain: ChainPlan,
    kind: Kind,
    scopes: ItemScopes | None,
    firsts: Firsts,
) -> tuple[Value, str, Node | None] | None:
    """fields.read_chain in one item, on a compiled chain: the first spec that yields a value wins."""
    value: Value | None
    for spec in chain:
        if spec.all:
            value, match = read_spec(doc, node, spec.spec, kind, firsts)
            if value is not None:
                return value, spec.label, match
            continue
        css = spec.css
        if scopes is not None:
            column = scopes.firsts.get(css)
            match = (column if column is not None else scopes.column(css)).get(key)
        elif css in firsts:
            match = firsts[css]
        else:
            match = firsts[css] = select_first(node, css)
        if match is None:
            continue
        # As fields._raw_value reads it.
        attr = spec.attr
        if attr:
            raw = match.attributes.get(attr)
        elif kind == "content":
            raw = match.inner_html
        else:
            raw = match.text(deep=True)
        if raw is None:
            continue
        if spec.regex:
            raw = patterns.captured(spec.regex, raw) or ""
        if not raw or raw.isspace():
            continue
        # fields.finish, with its two commonest kinds inline (a call per field adds up over a listing).
        if kind == "text":
            value = clean_text(raw) or None
        elif kind == "link":
            value = absolute(raw, doc.base, LINK_SCHEMES, doc.origin)
        else:
            value = finish(doc, kind, raw, spec.format)
        if value is not None:
            return value, spec.label, match
    return None


def item_failed(doc: Document, node: Node, site: SiteConfig, exc: Exception) -> None:
    """Log a bug met reading one item, naming the item by its link when that much can be read."""
    try:
        link = read_chain(doc, node, site.list.link, "link")
        where = str(link[0]) if link is not None else f"without a link on {doc.url}"
    except Exception:  # the link itself is what failed
        where = f"on {doc.url}"
    log.error("item %s: listing: %s: %s", where, type(exc).__name__, exc, exc_info=exc)


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
    nodes = select(doc.tree, site.list.item)
    if not nodes:
        raise ExtractError(page.url, site.list.item)
    items: list[Article] = []
    seen: set[str] = set()
    filters = site.filters
    filtered = bool(filters.include or filters.exclude)  # without patterns, keeps() keeps everything
    linked = 0
    plan = listing_plan(site.list)
    scopes = ItemScopes(doc, nodes) if len(nodes) >= _BATCHED_ITEMS else None
    if scopes is not None and scopes.nested:
        scopes = None
    for node in nodes:
        try:
            item = _read(doc, node, plan, scopes, {})
        except Exception as exc:  # a bug on one odd item costs that item, not the site's run
            item_failed(doc, node, site, exc)
            linked += 1
            continue
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
