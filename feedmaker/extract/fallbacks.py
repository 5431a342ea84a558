"""Fallbacks for fields a site's selectors do not give: the page's own metadata and markup, with origins."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from feedmaker.dates import parse_date
from feedmaker.extract.fields import Kind, Value, finish, node_text
from feedmaker.extract.metadata import Document, jsonld_image, jsonld_names, jsonld_text, looks_like_url
from feedmaker.text import clean_text, compact, fold, strip_title_affixes
from feedmaker.urls import IMAGE_SCHEMES, absolute, same_site

__all__ = [
    "ARTICLE_FIELDS", "META_AUTHOR", "META_DATE", "META_IMAGE", "META_SUMMARY", "Fallback", "author_fallback",
    "date_fallback", "from_jsonld", "from_meta", "from_nodes", "from_title", "image_fallback", "url_fallback",
]  # fmt: skip

_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Meta keys (name=, property= or itemprop=, lowercased) tried for each field, in order.
# Dublin Core first, as Readability.js orders them: rarer than og:title, and written for the document.
_META_HEADLINE = ("dc.title", "dcterms.title", "og:title", "twitter:title", "parsely-title")
META_DATE = (
    "article:published_time", "og:published_time", "og:article:published_time", "datepublished",
    "publishdate", "publish-date", "pubdate", "parsely-pub-date", "sailthru.date", "dc.date.issued",
    "dcterms.created", "dc.date", "date", "article.published", "published-date", "cxenseparse:recs:publishtime",
)  # fmt: skip
META_AUTHOR = (
    "author", "article:author", "dc.creator", "dcterms.creator", "parsely-author", "sailthru.author", "byl",
)  # fmt: skip
_AUTHOR_NODES = (
    ('[itemprop~="author"] [itemprop~="name"]', "content"),
    ('[itemprop~="author"]', "content"),
    ('a[rel~="author" i]', ""),
)
# Byline elements, most specific first: a class naming an author's name, then an author, then a byline.
_BYLINE_NODES = (
    '[class*="author" i][class*="name" i], [class*="byline" i][class*="name" i]',
    '[class*="author" i], [class*="byline" i] a',
    '[class*="byline" i]',
)
_BYLINE_END = re.compile(r"\s[·|•]\s|\n|,")
_NAME_PARTICLES = frozenset(
    {"de", "da", "del", "della", "di", "du", "la", "le", "van", "von", "der", "den", "y", "and", "bin", "al"}
)
_DATE_NODES = (
    ("time", "datetime"),
    ('[itemprop~="datePublished"]', "datetime"),
    ('[class*="publish" i], [class*="posted" i], [class*="date" i], [class*="timestamp" i]', "datetime"),
    ('[id*="date" i], [class*="time" i], [class*="byline" i]', "datetime"),
)
_YEAR = re.compile(r"(?<!\d)(?:19[7-9]\d|20\d\d)(?!\d)")
_URL_DATE = re.compile(r"/((?:19|20)\d\d)/([01]\d)/([0-3]\d)(?:/|$)")
META_IMAGE = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src")
META_SUMMARY = ("og:description", "description", "twitter:description")
BYLINE_PREFIX = re.compile(r"^(?:(?i:by|von|par|por|door)[\s:]+|By(?=[A-Z][a-z]))")


Fallback = Callable[[Document], "tuple[Value, str] | None"]


def from_meta(doc: Document, keys: Sequence[str], kind: Kind) -> tuple[Value, str] | None:
    for key in keys:
        raw = doc.meta.get(key)
        if raw is None or (kind == "text" and looks_like_url(raw)):
            continue
        value = finish(doc, kind, raw)
        if value is not None:
            return value, f"meta:{key}"
    return None


def from_jsonld(doc: Document, key: str, kind: Kind) -> tuple[Value, str] | None:
    data = doc.jsonld
    if not data:
        return None
    if key == "author":
        names = [clean_text(n) for n in jsonld_names(data.get("author"))]
        raw = ", ".join(dict.fromkeys(n for n in names if n))
    elif key == "image":
        raw = jsonld_image(data.get("image")) or ""
    else:
        raw = jsonld_text(data.get(key)) or ""
    if "&" in raw:
        # JSON-LD is JSON, but many pages entity-encode its strings as if it were HTML ("&#8217;", "&amp;").
        # Only complete references: html.unescape alone would turn "?w=800&region=eu" into "®ion=eu".
        raw = _ENTITY.sub(lambda m: html.unescape(m.group(0)), raw)
    value = finish(doc, kind, raw) if raw.strip() else None
    return (value, "json-ld") if value is not None else None


def headline_fallback(doc: Document) -> tuple[Value, str] | None:
    """The page's lone <h1> when it agrees with the page's own title metadata (JSON-LD headline,
    og:title, twitter:title, Dublin Core / Parse.ly title, or <title> minus the site name); that
    metadata when the h1 says something else (a logo, a kicker, a section name); the h1 alone when the
    page has no title metadata."""
    h1 = _from_h1(doc)
    titles = [
        hit
        for hit in (
            from_jsonld(doc, "headline", "text"),
            from_meta(doc, _META_HEADLINE, "text"),
            from_title(doc),
        )
        if hit is not None
    ]
    if h1 is not None:
        names = doc.site_names()
        if not titles or any(_similar(str(h1[0]), strip_title_affixes(str(t[0]), names)) for t in titles):
            return h1
    return titles[0] if titles else None


def _similar(a: str, b: str) -> bool:
    """Whether two titles name the same story: one contains the other and is at least half as long,
    or most of the shorter one's words are in the other."""
    ca, cb = compact(a), compact(b)
    if not ca or not cb:
        return False
    if (ca in cb or cb in ca) and min(len(ca), len(cb)) >= max(len(ca), len(cb)) / 2:
        return True
    wa, wb = set(fold(a).split()), set(fold(b).split())
    return bool(wa and wb) and len(wa & wb) / min(len(wa), len(wb)) >= 0.6


def _from_h1(doc: Document) -> tuple[Value, str] | None:
    """The page's only <h1>, when it looks like a headline (a lone logo or a one-word h1 is not)."""
    nodes = doc.tree.css("h1")
    if len(nodes) != 1:
        return None
    value = clean_text(node_text(nodes[0]))
    return (value, "h1") if len(value.split()) >= 3 and len(value) <= 300 else None


def from_title(doc: Document) -> tuple[Value, str] | None:
    node = doc.tree.css_first("title")
    if node is None:
        return None
    value = clean_text(node.text(deep=True))
    return (value, "title") if value else None


def date_fallback(doc: Document) -> tuple[Value, str] | None:
    """JSON-LD, meta, <time datetime>, then what the page prints: <time> text, [itemprop=datePublished],
    elements whose class names a date (only text with a four-digit year: no "2 hours ago" from a
    sidebar), and last a /YYYY/MM/DD/ in the page URL (a day, midnight in the site's zone)."""
    found = from_jsonld(doc, "datePublished", "date") or from_meta(doc, META_DATE, "date")
    if found:
        return found
    return (
        from_nodes(doc, doc.tree, (("time[datetime]", "datetime"),), "date")
        or from_nodes(doc, doc.tree, _DATE_NODES, "date", printed=True)
        or _date_from_url(doc)
    )


def _date_from_url(doc: Document) -> tuple[Value, str] | None:
    m = _URL_DATE.search(urlsplit(doc.url).path)
    if m is None:
        return None
    value = parse_date("-".join(m.groups()), tz=doc.zone, now=doc.now)
    return (value, "url") if value is not None else None


def from_nodes(
    doc: Document,
    scope: LexborNode | LexborHTMLParser,
    selectors: Sequence[tuple[str, str]],
    kind: Kind,
    *,
    printed: bool = False,
) -> tuple[Value, str] | None:
    """The first usable value of the first few nodes per selector: the attribute, else content=, else
    the text. printed=True (dates read off the page): only short text with a four-digit year counts."""
    for css, attr in selectors:
        for node in scope.css(css)[: 20 if printed else 5]:
            attrs = node.attributes
            raw = attrs.get(attr) or attrs.get("content") or node_text(node)
            if printed and (len(raw) > 200 or not _YEAR.search(raw)):
                continue
            value = finish(doc, kind, raw) if raw else None
            if value is not None:
                return value, css
    return None


def author_fallback(doc: Document) -> tuple[Value, str] | None:
    """JSON-LD, meta author, itemprop=author / rel=author, then byline-looking elements. A value that
    is the site's or publisher's own name ("Condé Nast", "ABC News") is not taken for an author."""
    names = {compact(n) for n in doc.site_names()} - {""}
    for hit in (from_jsonld(doc, "author", "text"), from_meta(doc, META_AUTHOR, "text")):
        if hit is not None and compact(str(hit[0])) not in names:
            return hit
    return from_nodes(doc, doc.tree, _AUTHOR_NODES, "text") or _from_byline(doc, names)


def _from_byline(doc: Document, site_names: set[str]) -> tuple[Value, str] | None:
    """A name in an element whose class says author/byline: its text up to the first separator
    ("Pete Evans · CBC News"), "By " dropped, and only when it reads as a name (see _looks_like_name)."""
    for css in _BYLINE_NODES:
        for node in doc.tree.css(css)[:20]:
            text = BYLINE_PREFIX.sub("", clean_text(_BYLINE_END.split(node_text(node).strip(), 1)[0]))
            if _looks_like_name(text) and compact(text) not in site_names:
                return text, css
    return None


def _looks_like_name(text: str) -> bool:
    """1-4 words, no digits, each capitalised or a particle ("de", "van"); or a short CJK name."""
    if not text or len(text) > 60 or any(ch.isdigit() for ch in text):
        return False
    if not any(ch.isascii() for ch in text):
        return len(text) <= 12 and " " not in text
    words = text.split()
    return 1 < len(words) <= 4 and all(w[0].isupper() or w in _NAME_PARTICLES for w in words)


def image_fallback(doc: Document) -> tuple[Value, str] | None:
    return (
        from_meta(doc, META_IMAGE[:3], "image")
        or from_jsonld(doc, "image", "image")
        or from_meta(doc, META_IMAGE[3:], "image")
        or from_nodes(doc, doc.tree, (('link[rel="image_src"]', "href"),), "image")
    )


def summary_fallback(doc: Document) -> tuple[Value, str] | None:
    return (
        from_meta(doc, META_SUMMARY[:1], "text")
        or from_jsonld(doc, "description", "text")
        or from_meta(doc, META_SUMMARY[1:], "text")
    )


def url_fallback(doc: Document) -> tuple[Value, str] | None:
    """rel=canonical, og:url, JSON-LD url, in that order; one on another site than the page (a
    syndicated copy's canonical points at the original publisher) is skipped: the entry links to the
    site the feed follows."""
    node = doc.canonical
    url = absolute(node.attributes.get("href") or "", doc.base, IMAGE_SCHEMES) if node is not None else None
    if url is not None and same_site(url, doc.url):
        return url, "link:canonical"
    for hit in (from_meta(doc, ("og:url",), "link"), from_jsonld(doc, "url", "link")):
        if hit is not None and same_site(str(hit[0]), doc.url):
            return hit
    return None


ARTICLE_FIELDS: tuple[tuple[str, Kind, Fallback | None], ...] = (
    ("headline", "text", headline_fallback),
    ("date", "date", date_fallback),
    ("author", "text", author_fallback),
    ("summary", "text", summary_fallback),
    ("image", "image", image_fallback),
    ("content", "content", None),
)
