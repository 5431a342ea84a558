"""Listing page + SiteConfig -> Listing: the items (each with a link) and the next-page URL."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from feedmaker import patterns
from feedmaker.config import ListSelectors, SiteConfig
from feedmaker.errors import ExtractError
from feedmaker.extract.article import article_from
from feedmaker.extract.fallbacks import from_nodes
from feedmaker.extract.fields import Kind, Value, finish, node_text, read_chain, read_spec
from feedmaker.extract.metadata import Document, Firsts, Node, select, select_first
from feedmaker.extract.plan import ChainPlan, ListingPlan, SpecPlan, listing_plan
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
        known = owner.get
        for match in select(self.tree, css):
            key = match.mem_id
            where = known(key, _UNKNOWN)
            if where == _UNKNOWN:
                # Most matches lie a level or two under their item: their parent is known by now.
                parent = match.parent
                where = known(parent.mem_id, _UNKNOWN) if parent is not None else None
                if where == _UNKNOWN:
                    where = self._climb(parent)
                owner[key] = where
            if where is not None and where not in found:
                found[where] = match
        return found

    def _climb(self, node: Node | None) -> int | None:
        """The item `node` lies in (None: none), memoised for it and every ancestor walked through."""
        owner = self.owner
        path: list[int] = []
        where: int | None = None
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
        return where


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
    return _finish_item(doc, node, plan, values, link_node)


def _finish_item(
    doc: Document, node: Node, plan: ListingPlan, values: dict[str, tuple[Value, str]], link_node: Node | None
) -> Article:
    """An item's Article from the values its selectors read: the headline from the link's text and the
    date from its <time datetime> where the selectors gave none."""
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

Read = Article | Exception | None  # an item, the bug met reading it, or None: it has no link


def _read_columns(doc: Document, nodes: Sequence[Node], plan: ListingPlan, scopes: ItemScopes) -> list[Read]:
    """_read for each of `nodes` (a batched listing), a field at a time: each spec's attributes and
    column are looked up once per field rather than once per item and field (about a tenth off the
    generated 50-item listing's extraction). What an item reads does not depend on the others, so the
    results are _read's."""
    count = len(nodes)
    keys = [node.mem_id for node in nodes]
    failed: list[Exception | None] = [None] * count
    urls, url_origins, link_nodes = _column(doc, nodes, keys, plan.link, "link", scopes, failed, range(count))
    linked = [i for i in range(count) if urls[i] is not None and failed[i] is None]
    columns = [
        (name, *_column(doc, nodes, keys, chain, kind, scopes, failed, linked)[:2])
        for name, kind, chain in plan.fields
    ]
    reads: list[Read] = []
    for i, node in enumerate(nodes):
        url, problem = urls[i], failed[i]
        if problem is not None or url is None:
            reads.append(problem)
            continue
        values: dict[str, tuple[Value, str]] = {"url": (url, url_origins[i])}
        for name, found, origins in columns:
            value = found[i]
            if value is not None:
                values[name] = (value, origins[i])
        try:
            reads.append(_finish_item(doc, node, plan, values, link_nodes[i]))
        except Exception as exc:  # handed back: extract_listing logs it and drops the item
            reads.append(exc)
    return reads


def _column(
    doc: Document,
    nodes: Sequence[Node],
    keys: list[int],
    chain: ChainPlan,
    kind: Kind,
    scopes: ItemScopes,
    failed: list[Exception | None],
    rows: Iterable[int],
) -> tuple[list[Value | None], list[str], list[Node | None]]:
    """One field of the items at `rows`: value, origin and matched node per item; a bug in one item is
    put in `failed` (its first), and that item is not read further."""
    count = len(nodes)
    values: list[Value | None] = [None] * count
    origins = [""] * count
    matches: list[Node | None] = [None] * count
    pending = list(rows)
    for spec in chain:
        if not pending:
            break
        column = None if spec.all else scopes.firsts.get(spec.css)
        if column is None and not spec.all:
            column = scopes.column(spec.css)
        left: list[int] = []
        for i in pending:
            if failed[i] is not None:
                continue
            try:
                if column is None:
                    value, match = read_spec(doc, nodes[i], spec.spec, kind)
                else:
                    match = column.get(keys[i])
                    value = _value(doc, match, spec, kind) if match is not None else None
            except Exception as exc:  # the item is dropped, the others read on (extract_listing)
                failed[i] = exc
                continue
            if value is None:
                left.append(i)
            else:
                values[i], origins[i], matches[i] = value, spec.label, match
        pending = left
    return values, origins, matches


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
        value = _value(doc, match, spec, kind)
        if value is not None:
            return value, spec.label, match
    return None


def _value(doc: Document, match: Node, spec: SpecPlan, kind: Kind) -> Value | None:
    """What `spec` reads from its match, as fields._raw_value and fields.finish read it."""
    attr = spec.attr
    if attr:
        raw = match.attributes.get(attr)
    elif kind == "content":
        raw = match.inner_html
    else:
        raw = match.text(deep=True)
    if raw is None:
        return None
    if spec.regex:
        raw = patterns.captured(spec.regex, raw) or ""
    if not raw or raw.isspace():
        return None
    # fields.finish, with its two commonest kinds inline (a call per field adds up over a listing).
    if kind == "text":
        return clean_text(raw) or None
    if kind == "link":
        return absolute(raw, doc.base, LINK_SCHEMES, doc.origin)
    return finish(doc, kind, raw, spec.format)


def _reads(doc: Document, nodes: Sequence[Node], plan: ListingPlan, scopes: ItemScopes | None) -> list[Read]:
    if scopes is not None:
        return _read_columns(doc, nodes, plan, scopes)
    reads: list[Read] = []
    for node in nodes:
        try:
            reads.append(_read(doc, node, plan, None, {}))
        except Exception as exc:  # the item is dropped, the others read on (extract_listing)
            reads.append(exc)
    return reads


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
    done = 0
    # Items are read a run at a time, each run as long as the items still wanted: reading stops about
    # where the per-item loop would, when max_items are in hand.
    while done < len(nodes) and len(items) < site.max_items:
        run = nodes[done : done + max(site.max_items - len(items), _BATCHED_ITEMS)]
        done += len(run)
        for node, item in zip(run, _reads(doc, run, plan, scopes), strict=True):
            if isinstance(item, Exception):  # a bug on one odd item costs that item, not the site's run
                item_failed(doc, node, site, item)
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
