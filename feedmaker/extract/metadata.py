"""Page + SiteConfig -> Document: the parsed page plus its metadata index (meta, rel=canonical, JSON-LD)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from selectolax.lexbor import LexborCSSSelector, LexborHTMLParser, LexborNode, SelectolaxError

from feedmaker.config import SiteConfig
from feedmaker.errors import ExtractError
from feedmaker.extract.decode import parser_input
from feedmaker.locales import reads_day_first, zone_for_locale
from feedmaker.models import Page
from feedmaker.urls import IMAGE_SCHEMES, absolute, host_of, plain_origin, site_of

__all__ = [
    "ARTICLE_TYPES", "BadSelector", "Document", "Firsts", "Node", "Tree", "jsonld_image", "jsonld_names", "jsonld_text", "looks_like_url",
    "select", "select_first",
]  # fmt: skip

ARTICLE_TYPES = frozenset(
    {
        "Article", "NewsArticle", "BlogPosting", "ReportageNewsArticle", "AnalysisNewsArticle",
        "OpinionNewsArticle", "ReviewNewsArticle", "BackgroundNewsArticle", "AskPublicNewsArticle",
        "TechArticle", "ScholarlyArticle", "Report", "SatiricalArticle", "SocialMediaPosting",
        "LiveBlogPosting", "DiscussionForumPosting", "Posting", "Blog", "MedicalScholarlyArticle",
    }
)  # fmt: skip

# Dublin Core is spelt both dc.title and dc:title; the index keys use the dot.
_DC_PREFIX = re.compile(r"^(dc|dcterms?):")
_JSONLD_WRAPPER = re.compile(r"^(?:\s*(?://\s*)?(?:<!--|<!\[CDATA\[))+|(?:(?://\s*)?(?:-->|\]\]>)\s*)+$")
# One walk of the whole tree gathers every node the metadata fallbacks read (a walk costs about a
# tenth of the parse, so one per field would add up). Each selector here has its own element type,
# so a node's tag says which one it matched.
_INDEX_CSS = 'meta[content], meta[value], link[rel~="canonical" i][href], script[type*="ld+json" i]'
# tree.css_first per selector, memoised per scope: specs often repeat a selector (content=, then
# value=; a listing's headline and link in the same <a>).
Firsts: TypeAlias = dict[str, LexborNode | None]
# The parsed page's types, for modules that walk a Document's tree (suggest) without importing selectolax.
Node: TypeAlias = LexborNode
Tree: TypeAlias = LexborHTMLParser
BadSelector = SelectolaxError


class _Engine(threading.local):
    """lexbor's selector engine, one per thread (it keeps the state of the search it runs)."""

    def __init__(self) -> None:
        # selectolax's stub leaves __init__ unannotated, and find_first out (a public cpdef method: what
        # css_first itself calls).
        self.selector = LexborCSSSelector()  # type: ignore[no-untyped-call]
        self.find_first: Callable[[str, LexborNode], list[LexborNode]] = self.selector.find_first  # type: ignore[attr-defined]


_ENGINE = _Engine()


def select(scope: LexborNode | LexborHTMLParser, css: str) -> list[LexborNode]:
    """scope.css(css), run by one selector engine per thread: each parsed page otherwise builds its own
    on its first query, ~20 µs on the 50-item listing (a tenth of its parse; fresh memory more than
    instructions)."""
    node = scope.root if isinstance(scope, LexborHTMLParser) else scope
    return _ENGINE.selector.find(css, node) if node is not None else []


def select_first(scope: LexborNode | LexborHTMLParser, css: str) -> LexborNode | None:
    """scope.css_first(css), as `select` runs it."""
    node = scope.root if isinstance(scope, LexborHTMLParser) else scope
    if node is None:
        return None
    found = _ENGINE.find_first(css, node)
    return found[0] if found else None


class Document:
    """One parsed page plus the metadata read from it on demand."""

    __slots__ = (
        "_canonical", "_dayfirst", "_jsonld", "_meta", "_queried", "_scripts", "_site_names",
        "base", "dates", "firsts", "now", "origin", "page", "site", "tree", "url", "zone",
    )  # fmt: skip

    def __init__(self, page: Page, site: SiteConfig) -> None:
        self.page, self.site, self.url, self.now = page, site, page.url, page.fetched_at
        try:
            self.tree = LexborHTMLParser(parser_input(page.body, page.encoding))
        except (SelectolaxError, ValueError) as exc:
            raise ExtractError(page.url, "html", f"could not be parsed: {exc}") from exc
        head = self.tree.head  # <base> only counts in <head>; searching there alone is ~20x cheaper
        base_node = select_first(head, "base[href]") if head is not None else None
        href = base_node.attributes.get("href") if base_node is not None else None
        self.base = (href and absolute(href, page.url, IMAGE_SCHEMES)) or page.url
        self.origin = plain_origin(self.base)
        self.zone = site.zone if "timezone" in site.model_fields_set else self._page_zone() or site.zone
        self._meta: dict[str, str] | None = None
        self._canonical: LexborNode | None = None
        self._scripts: list[LexborNode] = []
        self._jsonld: dict[str, Any] | None = None
        self._site_names: list[str] | None = None
        self._dayfirst: tuple[bool | None] | None = None
        self.dates: dict[tuple[str, str | None], datetime | None] = {}
        self.firsts: Firsts = {}
        self._queried: dict[str, list[LexborNode]] = {}

    def _index(self) -> dict[str, str]:
        """Walk the tree once for meta, <link rel=canonical> and JSON-LD scripts."""
        found: dict[str, str] = {}
        canonical: LexborNode | None = None
        scripts: list[LexborNode] = []
        # `value=` is not HTML, but pages saved by Mercury-based tools carry it instead of `content=`.
        # The whole tree is searched: a stray element in <head> makes parsers move later metas to <body>.
        for node in select(self.tree, _INDEX_CSS):
            tag = node.tag
            if tag == "meta":
                attrs = node.attributes
                content = attrs.get("content") or attrs.get("value")
                if not content or content.isspace():
                    continue
                for key in (attrs.get("property"), attrs.get("name"), attrs.get("itemprop")):
                    if not key:
                        continue
                    # RDFa allows several names in one attribute: property="og:title twitter:title".
                    # Dublin Core is spelt both dc.title and dc:title; keys use the dot.
                    for name in key.lower().split():
                        if name.startswith("dc"):
                            m = _DC_PREFIX.match(name)
                            if m is not None:
                                name = f"{m.group(1)}.{name[m.end() :]}"
                        if name not in found:
                            found[name] = content
            elif tag == "script":
                scripts.append(node)
            elif canonical is None:  # the first <link rel=canonical href>, as css_first would find
                canonical = node
        self._canonical, self._scripts, self._meta = canonical, scripts, found
        return found

    def nodes(self, css: str) -> list[LexborNode]:
        """select(tree, css), kept for the page: fallbacks ask some twice (the h1 for the headline and
        for the byline's date; the printed dates again for the time of a bare day). Not to be mutated."""
        found = self._queried.get(css)
        if found is None:
            found = self._queried[css] = select(self.tree, css)
        return found

    @property
    def meta(self) -> dict[str, str]:
        """First non-empty content per meta name / property / itemprop, keys lowercased."""
        meta = self._meta
        return self._index() if meta is None else meta

    @property
    def canonical(self) -> LexborNode | None:
        """The first <link rel=canonical href> of the page."""
        if self._meta is None:
            self._index()
        return self._canonical

    @property
    def jsonld(self) -> dict[str, Any]:
        """The first schema.org article object in the page's JSON-LD (or {})."""
        if self._jsonld is None:
            if self._meta is None:
                self._index()
            self._jsonld = next(jsonld_articles(self._scripts), {})
        return self._jsonld

    def _page_zone(self) -> ZoneInfo | None:
        """For a site that names no time zone: the zone its page's <html lang> implies (ja -> Asia/Tokyo),
        so a zone-less time printed by a Japanese site is not read as UTC."""
        html = select_first(self.tree, "html")
        zone = zone_for_locale(html.attributes.get("lang") if html is not None else None)
        return ZoneInfo(zone) if zone else None

    @property
    def dayfirst(self) -> bool | None:
        """How this page writes an ambiguous numeric date (dates.reads_day_first): by the site's configured
        language, else the page's <html lang>, else its og:locale, else the site's time zone."""
        if self._dayfirst is None:
            html = select_first(self.tree, "html")
            lang = html.attributes.get("lang") if html is not None else None
            locale = self.site.language or lang or self.meta.get("og:locale")
            self._dayfirst = (reads_day_first(locale, self.zone.key),)
        return self._dayfirst[0]

    def site_names(self) -> list[str]:
        if self._site_names is None:
            names = [self.site.name, self.meta.get("og:site_name", ""), self.meta.get("application-name", "")]
            publisher = self.jsonld.get("publisher")
            if isinstance(publisher, dict) and isinstance(publisher.get("name"), str):
                names.append(publisher["name"])
            # The host names the site too ("Story | arstechnica.com"), as does its site's first label.
            names.append(host_of(self.url))
            names.append(site_of(self.url).split(".")[0])
            self._site_names = [n for n in names if n]
        return list(self._site_names)


def jsonld_articles(scripts: Sequence[LexborNode]) -> Iterator[dict[str, Any]]:
    for script in scripts:
        raw = script.text(deep=True).strip()
        # Wrappers some pages keep from XHTML habits: <!-- --> and <![CDATA[ ]]> (also // commented).
        # They can only begin with "<" or "/" and end with ">" (raw is stripped): only then is the
        # pattern run, as its trailing half is otherwise tried at every position of a long text.
        if raw.startswith(("<", "/")) or raw.endswith(">"):
            raw = _JSONLD_WRAPPER.sub("", raw)
        raw = raw.strip().rstrip(";")
        try:
            data = json.loads(raw, strict=False)
        except (ValueError, RecursionError):
            continue
        yield from _article_objects(data, depth=0)


def _article_objects(data: Any, depth: int) -> Iterator[dict[str, Any]]:
    if depth > 4:
        return
    if isinstance(data, list):
        for element in data:
            yield from _article_objects(element, depth + 1)
    elif isinstance(data, dict):
        types = data.get("@type")
        type_set = (
            {types}
            if isinstance(types, str)
            else {t for t in types if isinstance(t, str)}
            if isinstance(types, list)
            else set()
        )
        if type_set & ARTICLE_TYPES:
            yield data
        for key in ("@graph", "mainEntity"):
            if key in data:
                yield from _article_objects(data[key], depth + 1)


def jsonld_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def jsonld_names(value: Any) -> list[str]:
    """Author names from a string, a Person/Organization, or a list of those; URLs are not names."""
    if isinstance(value, list):
        return [name for element in value for name in jsonld_names(element)]
    if isinstance(value, dict):
        value = value.get("name")
    if isinstance(value, str) and value.strip() and not looks_like_url(value):
        return [value]
    return []


def jsonld_image(value: Any) -> str | None:
    if isinstance(value, list):
        return next((found for element in value if (found := jsonld_image(element))), None)
    if isinstance(value, dict):
        value = value.get("url") or value.get("contentUrl")
    return value if isinstance(value, str) else None


_URL_LIKE = re.compile(r"^\s*(?:https?:)?//|^\s*www\.", re.IGNORECASE)


def looks_like_url(text: str) -> bool:
    return _URL_LIKE.match(text) is not None
