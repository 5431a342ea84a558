"""Page + SiteConfig -> Listing / Article. Pure; the only stage that imports selectolax.

A page is decoded once (`decode_html`) and parsed once. Each field is read through its FieldChain
(the first spec that yields a usable value wins); where a site gives no selector, or its selectors
match nothing, the page's own metadata fills in: JSON-LD, OpenGraph / article:*, meta author,
Twitter cards, <time datetime>, <link rel=canonical>, <title>. Every value records where it came
from in Article.origins. Metadata is only read when a fallback is needed.

All text is NFC, whitespace-collapsed and free of characters XML 1.0 forbids; links are absolute
http(s) (or mailto); `content` is sanitised HTML (nh3).
"""

from __future__ import annotations

import codecs
import html
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal, TypeAlias
from urllib.parse import urljoin, urlsplit

import nh3
from charset_normalizer import from_bytes
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from feedmaker import patterns
from feedmaker.config import FieldSpec, SiteConfig
from feedmaker.dates import parse_date
from feedmaker.errors import ExtractError
from feedmaker.models import Article, Listing, Page

log = logging.getLogger(__name__)

Kind = Literal["text", "link", "image", "date", "content"]
Value = str | datetime

_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_URL_INVISIBLE = re.compile("[\t\n\r]")
_PLAIN_ABSOLUTE = re.compile(
    r"^https?://[^\x00-\x20/?#\\@]+(?:[/?#][^\x00-\x1f\x7f\ufffe\uffff\ud800-\udfff]*)?\Z", re.IGNORECASE
)
_PLAIN_ROOTED = re.compile(r"^/(?![/\\])[^\x00-\x20\\\x7f\ufffe\uffff\ud800-\udfff]*\Z")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_C0_AND_SPACE = "".join(chr(i) for i in range(0x21))
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_IMAGE_SCHEMES = frozenset({"http", "https"})

ARTICLE_TYPES = frozenset(
    {
        "Article", "NewsArticle", "BlogPosting", "ReportageNewsArticle", "AnalysisNewsArticle",
        "OpinionNewsArticle", "ReviewNewsArticle", "BackgroundNewsArticle", "AskPublicNewsArticle",
        "TechArticle", "ScholarlyArticle", "Report", "SatiricalArticle", "SocialMediaPosting",
        "LiveBlogPosting", "DiscussionForumPosting", "Posting", "Blog", "MedicalScholarlyArticle",
    }
)  # fmt: skip

# Meta keys (name=, property= or itemprop=, lowercased) tried for each field, in order.
# Dublin Core first, as Readability.js orders them: rarer than og:title, and written for the document.
_META_HEADLINE = ("dc.title", "dcterms.title", "og:title", "twitter:title", "parsely-title")
_DC_PREFIX = re.compile(r"^(dc|dcterms?):")
_META_DATE = (
    "article:published_time", "og:published_time", "og:article:published_time", "datepublished",
    "publishdate", "publish-date", "pubdate", "parsely-pub-date", "sailthru.date", "dc.date.issued",
    "dcterms.created", "dc.date", "date", "article.published", "published-date", "cxenseparse:recs:publishtime",
)  # fmt: skip
_META_AUTHOR = (
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
_WORD = re.compile(r"\w+")
_JSONLD_WRAPPER = re.compile(r"^(?:\s*(?://\s*)?(?:<!--|<!\[CDATA\[))+|(?:(?://\s*)?(?:-->|\]\]>)\s*)+$")
_META_IMAGE = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src")
_META_SUMMARY = ("og:description", "description", "twitter:description")
_TITLE_SEPARATORS = re.compile(r"\s+(?:[|\-\u2013\u2014\u00b7\u2022»:]|::)\s+")
_BYLINE_PREFIX = re.compile(r"^(?:(?i:by|von|par|por|door)[\s:]+|By(?=[A-Z][a-z]))")

# ---------------------------------------------------------------------------------------- text


def clean_text(value: str) -> str:
    """NFC, whitespace collapsed, characters XML 1.0 forbids removed."""
    value = _XML_FORBIDDEN.sub("", value)
    return unicodedata.normalize("NFC", " ".join(value.split()))


def _clean_html(value: str) -> str:
    return unicodedata.normalize("NFC", _XML_FORBIDDEN.sub("", value)).strip()


# ------------------------------------------------------------------------------------ decoding

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:\-]+)", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:\-]+)", re.IGNORECASE)
# WHATWG Encoding: labels browsers decode as a superset, so bytes the page really uses are not lost.
_SUPERSETS = {
    "latin_1": "cp1252", "iso8859-1": "cp1252", "ascii": "cp1252", "iso8859-9": "cp1254",
    "iso8859-11": "cp874", "shift_jis": "cp932", "euc_kr": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
    "utf-16": "utf-8", "utf-16-le": "utf-8", "utf-16-be": "utf-8",  # a <meta> cannot truly say UTF-16
}  # fmt: skip
_ALIASES = {"x-sjis": "shift_jis", "windows-31j": "cp932", "x-euc-jp": "euc_jp", "tis-620": "cp874"}


def _codec(label: str) -> str | None:
    label = label.strip().strip("\"'").lower()
    try:
        name = codecs.lookup(_ALIASES.get(label, label)).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def decode_html(body: bytes, declared: str | None) -> str:
    """Bytes -> text: BOM, then the HTTP charset, then <meta> in the first 4 KiB, then detection.

    One deviation from WHATWG order: a body that decodes as strict UTF-8 is UTF-8, whatever the header
    or <meta> says. Text in cp1252, Shift_JIS, EUC-* etc. is practically never valid UTF-8 once it has
    a non-ASCII byte, while stale labels on re-encoded pages are common (every non-UTF-8 <meta> in the
    postlight corpus labels UTF-8 bytes). So a UTF-8 label that fails strict decoding falls through,
    and the check costs nothing: most pages are UTF-8 and are decoded exactly once.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    candidates: list[str] = []
    if declared:
        m = _HEADER_CHARSET.search(declared)
        candidates.append(m.group(1) if m else declared)
    m_meta = _META_CHARSET.search(body[:4096])
    if m_meta:
        candidates.append(m_meta.group(1).decode("ascii", "replace"))
    for label in candidates:
        codec = _codec(label)
        if codec is None:
            continue
        if codec == "utf-8":
            continue  # it was not: strict UTF-8 failed above
        return body.decode(codec, errors="replace")
    best = from_bytes(body).best()
    if best is not None and best.encoding:
        codec = _codec(best.encoding) or "utf-8"
        return body.decode(codec, errors="replace")
    return body.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------- URLs


def _plain_origin(base: str) -> str | None:
    """The "scheme://host" of a base URL that _PLAIN_ABSOLUTE accepts; None for any other."""
    if not _PLAIN_ABSOLUTE.match(base):
        return None
    start = base.index("//") + 2
    # The host ends at the first "/", "?" or "#": "https://news.example?x=1" has the origin "https://news.example".
    ends = [i for i in (base.find(c, start) for c in "/?#") if i >= 0]
    return base[: min(ends)] if ends else base


def _absolute(raw: str, base: str, schemes: frozenset[str], origin: str | None = None) -> str | None:
    """An absolute URL with an allowed scheme, or None. Tabs and newlines are dropped first, as
    browsers do, so "java\\tscript:" is seen for what it is. `origin` is _plain_origin(base), when
    the caller has it already."""
    # Browsers ignore leading and trailing spaces and controls in an href ("…/story/1 ", "/story/2\n").
    raw = raw.strip(_C0_AND_SPACE)
    if _PLAIN_ABSOLUTE.match(raw):  # the common cases, without urljoin's cost
        return unicodedata.normalize("NFC", raw).replace(" ", "%20")
    if _PLAIN_ROOTED.match(raw) and "/." not in raw and "http" in schemes:
        origin = origin or _plain_origin(base)
        if origin is not None:
            return unicodedata.normalize("NFC", origin + raw)
    raw = _URL_INVISIBLE.sub("", raw).strip(_C0_AND_SPACE)
    if not raw:
        return None
    try:
        url = urljoin(base, raw)
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in schemes:
        return None
    if parts.scheme.lower() != "mailto" and not parts.netloc:
        return None
    return unicodedata.normalize("NFC", _XML_FORBIDDEN.sub("", url)).replace(" ", "%20")


def sanitize_html(html: str, base_url: str) -> str:
    """Untrusted HTML -> safe HTML: no script/style/iframe/on*/javascript:; relative URLs made absolute."""

    # ammonia parses URLs as browsers do (tabs, newlines, entities, case), so "jav&#x09;ascript:" is
    # seen as javascript: and dropped; its own rewriting is much faster than a Python callback per URL.
    try:
        return _clean_html(_sanitize(html, ("rewrite_with_base", base_url)))
    except ValueError:  # a base URL ammonia cannot parse: drop relative URLs rather than guess
        return _clean_html(_sanitize(html, "deny"))


def _sanitize(html: str, url_relative: Literal["deny"] | tuple[Literal["rewrite_with_base"], str]) -> str:
    cleaned: str = nh3.clean(
        html,
        clean_content_tags={"script", "style", "template", "noscript", "textarea", "title"},
        url_schemes=set(_LINK_SCHEMES),
        url_relative=url_relative,
        link_rel="noopener noreferrer nofollow",
    )
    return cleaned


# ------------------------------------------------------------------------------------ document


_BOM_PREFIXES = tuple(bom for bom, _ in _BOMS)
_CHUNK = 16384


def _is_utf8(body: bytes, chunk_size: int = _CHUNK) -> bool:
    """Whether body.decode("utf-8") would succeed, without decoding all of it. ASCII bytes are whole
    characters and never part of a multi-byte sequence, so only chunks holding other bytes need
    decoding; an incremental decoder carries a sequence cut at a chunk's end into the next chunk
    (and that chunk's first byte, if it is ASCII, ends such a sequence in an error, as it should)."""
    decoder = _utf8_decoder()
    try:
        for start in range(0, len(body), chunk_size):
            chunk = body[start : start + chunk_size]
            decoder.decode(chunk[:1] if chunk.isascii() else chunk)
        decoder.decode(b"", True)
    except UnicodeDecodeError:
        return False
    return True


_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _parser_input(body: bytes, declared: str | None) -> bytes | str:
    """What to hand lexbor: the bytes themselves when they are UTF-8 (lexbor reads bytes as UTF-8),
    saving a decode + re-encode of the whole page; decoded text otherwise."""
    if body.isascii():
        return body
    if not body.startswith(_BOM_PREFIXES) and _is_utf8(body):
        return body
    return decode_html(body, declared)


# One walk of the whole tree gathers every node the metadata fallbacks read (a walk costs about a
# tenth of the parse, so one per field would add up). Each selector here has its own element type,
# so a node's tag says which one it matched.
_INDEX_CSS = 'meta[content], meta[value], link[rel~="canonical" i][href], script[type*="ld+json" i]'
# tree.css_first per selector, memoised per scope: specs often repeat a selector (content=, then
# value=; a listing's headline and link in the same <a>).
_Firsts: TypeAlias = dict[str, LexborNode | None]


class _Document:
    """One parsed page plus the metadata read from it on demand."""

    __slots__ = (
        "_canonical", "_dates", "_first", "_hosts", "_jsonld", "_meta", "_scripts", "_site_names",
        "base", "now", "origin", "page", "site", "tree", "url", "zone",
    )  # fmt: skip

    def __init__(self, page: Page, site: SiteConfig) -> None:
        self.page, self.site, self.url, self.now = page, site, page.url, page.fetched_at
        try:
            self.tree = LexborHTMLParser(_parser_input(page.body, page.encoding))
        except (SelectolaxError, ValueError) as exc:
            raise ExtractError(page.url, "html", f"could not be parsed: {exc}") from exc
        head = self.tree.head  # <base> only counts in <head>; searching there alone is ~20x cheaper
        base_node = head.css_first("base[href]") if head is not None else None
        href = base_node.attributes.get("href") if base_node is not None else None
        self.base = (href and _absolute(href, page.url, _IMAGE_SCHEMES)) or page.url
        self.origin = _plain_origin(self.base)
        self.zone = site.zone
        self._meta: dict[str, str] | None = None
        self._canonical: LexborNode | None = None
        self._scripts: list[LexborNode] = []
        self._jsonld: dict[str, Any] | None = None
        self._site_names: list[str] | None = None
        self._dates: dict[tuple[str, str | None], datetime | None] = {}
        self._first: _Firsts = {}
        self._hosts: dict[str, str] = {}

    def _index(self) -> dict[str, str]:
        """Walk the tree once for meta, <link rel=canonical> and JSON-LD scripts."""
        found: dict[str, str] = {}
        canonical: LexborNode | None = None
        scripts: list[LexborNode] = []
        # `value=` is not HTML, but pages saved by Mercury-based tools carry it instead of `content=`.
        # The whole tree is searched: a stray element in <head> makes parsers move later metas to <body>.
        for node in self.tree.css(_INDEX_CSS):
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
            self._jsonld = next(_jsonld_articles(self._scripts), {})
        return self._jsonld

    def site_names(self) -> list[str]:
        if self._site_names is None:
            names = [self.site.name, self.meta.get("og:site_name", ""), self.meta.get("application-name", "")]
            publisher = self.jsonld.get("publisher")
            if isinstance(publisher, dict) and isinstance(publisher.get("name"), str):
                names.append(publisher["name"])
            host = (urlsplit(self.url).hostname or "").removeprefix("www.")
            names.append(host)
            names.append(host.split(".")[0])
            self._site_names = [n for n in names if n]
        return list(self._site_names)

    def host(self, url: str) -> str:
        """The URL's host name without "www." (memoised: the page's own URL is asked for often)."""
        host = self._hosts.get(url)
        if host is None:
            host = self._hosts[url] = (urlsplit(url).hostname or "").removeprefix("www.")
        return host


def _jsonld_articles(scripts: Sequence[LexborNode]) -> Iterator[dict[str, Any]]:
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


def _jsonld_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _jsonld_names(value: Any) -> list[str]:
    """Author names from a string, a Person/Organization, or a list of those; URLs are not names."""
    if isinstance(value, list):
        return [name for element in value for name in _jsonld_names(element)]
    if isinstance(value, dict):
        value = value.get("name")
    if isinstance(value, str) and value.strip() and not _looks_like_url(value):
        return [value]
    return []


def _jsonld_image(value: Any) -> str | None:
    if isinstance(value, list):
        return next((found for element in value if (found := _jsonld_image(element))), None)
    if isinstance(value, dict):
        value = value.get("url") or value.get("contentUrl")
    return value if isinstance(value, str) else None


_URL_LIKE = re.compile(r"^\s*(?:https?:)?//|^\s*www\.", re.IGNORECASE)


def _looks_like_url(text: str) -> bool:
    return _URL_LIKE.match(text) is not None


# -------------------------------------------------------------------------------- field reading


def _node_text(node: LexborNode) -> str:
    # No separator: "<h1>Beasts<span>:</span> A</h1>" is "Beasts: A"; source whitespace is kept anyway.
    return node.text(deep=True)


def _spec_label(spec: FieldSpec) -> str:
    return f"selector:{spec.css}" + (f"@{spec.attr}" if spec.attr else "")


def _raw_value(node: LexborNode, spec: FieldSpec, kind: Kind) -> str | None:
    """The raw string `spec` reads from `node`, or None when it has none (or only whitespace)."""
    if spec.attr:
        raw = node.attributes.get(spec.attr)
    elif kind == "content":
        raw = node.inner_html
    else:
        raw = _node_text(node)
    if raw is None:
        return None
    if spec.regex:
        raw = patterns.captured(spec.regex, raw) or ""
    return raw if raw and not raw.isspace() else None


def _first_node(scope: LexborNode | LexborHTMLParser, css: str, firsts: _Firsts | None) -> LexborNode | None:
    """scope.css_first(css), memoised in `firsts` (one dict per scope) when given."""
    if firsts is None:
        return scope.css_first(css)
    if css in firsts:
        return firsts[css]
    node = firsts[css] = scope.css_first(css)
    return node


def _finish(doc: _Document, kind: Kind, raw: str, fmt: str | None = None) -> Value | None:
    """A raw string as the field's type, or None when it is not usable."""
    if kind == "text":
        return clean_text(raw) or None
    # URLs are not whitespace-collapsed first: a tab inside "java\tscript:" must vanish, not become a space.
    if kind == "link":
        return _absolute(raw, doc.base, _LINK_SCHEMES, doc.origin)
    if kind == "image":
        return _absolute(raw, doc.base, _IMAGE_SCHEMES, doc.origin)
    if kind == "date":
        text = clean_text(raw)
        key = (text, fmt)  # listings repeat dates ("24 Mar 2026" on many rows): parse each once
        if key in doc._dates:
            return doc._dates[key]
        found = doc._dates[key] = parse_date(text, tz=doc.zone, fmt=fmt, now=doc.now)
        return found
    sanitized = sanitize_html(raw, doc.base)
    return sanitized or None


def _read_spec(
    doc: _Document,
    scope: LexborNode | LexborHTMLParser,
    spec: FieldSpec,
    kind: Kind,
    firsts: _Firsts | None = None,
) -> tuple[Value | None, LexborNode | None]:
    """The value `spec` reads in `scope` (the first match; with all=True, every match's text joined,
    or the first match that yields a value) and the first node matched."""
    if not spec.all:
        node = _first_node(scope, spec.css, doc._first if scope is doc.tree else firsts)
        raw = _raw_value(node, spec, kind) if node is not None else None
        if raw is None:
            return None, None
        value = _finish(doc, kind, raw, spec.format)
        return (value, node) if value is not None else (None, None)
    nodes = scope.css(spec.css)
    values = [raw for node in nodes if (raw := _raw_value(node, spec, kind)) is not None]
    if not values:
        return None, None
    if kind in ("text", "content"):
        finished = [v for raw in values if isinstance(v := _finish(doc, kind, raw, spec.format), str)]
        joined = ", " if kind == "text" else "\n"
        return (joined.join(finished) or None), nodes[0]
    for raw in values:
        value = _finish(doc, kind, raw, spec.format)
        if value is not None:
            return value, nodes[0]
    return None, None


def _read_chain(
    doc: _Document,
    scope: LexborNode | LexborHTMLParser,
    chain: Sequence[FieldSpec] | None,
    kind: Kind,
    firsts: _Firsts | None = None,
) -> tuple[Value, str, LexborNode | None] | None:
    for spec in chain or ():
        value, node = _read_spec(doc, scope, spec, kind, firsts)
        if value is not None:
            return value, _spec_label(spec), node
    return None


# ------------------------------------------------------------------------------------ fallbacks

Fallback = Callable[[_Document], "tuple[Value, str] | None"]


def _from_meta(doc: _Document, keys: Sequence[str], kind: Kind) -> tuple[Value, str] | None:
    for key in keys:
        raw = doc.meta.get(key)
        if raw is None or (kind == "text" and _looks_like_url(raw)):
            continue
        value = _finish(doc, kind, raw)
        if value is not None:
            return value, f"meta:{key}"
    return None


def _from_jsonld(doc: _Document, key: str, kind: Kind) -> tuple[Value, str] | None:
    data = doc.jsonld
    if not data:
        return None
    if key == "author":
        names = [clean_text(n) for n in _jsonld_names(data.get("author"))]
        raw = ", ".join(dict.fromkeys(n for n in names if n))
    elif key == "image":
        raw = _jsonld_image(data.get("image")) or ""
    else:
        raw = _jsonld_text(data.get(key)) or ""
    if "&" in raw:
        # JSON-LD is JSON, but many pages entity-encode its strings as if it were HTML ("&#8217;", "&amp;").
        # Only complete references: html.unescape alone would turn "?w=800&region=eu" into "®ion=eu".
        raw = _ENTITY.sub(lambda m: html.unescape(m.group(0)), raw)
    value = _finish(doc, kind, raw) if raw.strip() else None
    return (value, "json-ld") if value is not None else None


def _headline_fallback(doc: _Document) -> tuple[Value, str] | None:
    """The page's lone <h1> when it agrees with the page's own title metadata (JSON-LD headline,
    og:title, twitter:title, Dublin Core / Parse.ly title, or <title> minus the site name); that
    metadata when the h1 says something else (a logo, a kicker, a section name); the h1 alone when the
    page has no title metadata."""
    h1 = _from_h1(doc)
    titles = [
        hit
        for hit in (
            _from_jsonld(doc, "headline", "text"),
            _from_meta(doc, _META_HEADLINE, "text"),
            _from_title(doc),
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
    ca, cb = _compact(a), _compact(b)
    if not ca or not cb:
        return False
    if (ca in cb or cb in ca) and min(len(ca), len(cb)) >= max(len(ca), len(cb)) / 2:
        return True
    wa, wb = set(_WORD.findall(a.casefold())), set(_WORD.findall(b.casefold()))
    return bool(wa and wb) and len(wa & wb) / min(len(wa), len(wb)) >= 0.6


def _from_h1(doc: _Document) -> tuple[Value, str] | None:
    """The page's only <h1>, when it looks like a headline (a lone logo or a one-word h1 is not)."""
    nodes = doc.tree.css("h1")
    if len(nodes) != 1:
        return None
    value = clean_text(_node_text(nodes[0]))
    return (value, "h1") if len(value.split()) >= 3 and len(value) <= 300 else None


def _from_title(doc: _Document) -> tuple[Value, str] | None:
    node = doc.tree.css_first("title")
    if node is None:
        return None
    value = clean_text(node.text(deep=True))
    return (value, "title") if value else None


def _date_fallback(doc: _Document) -> tuple[Value, str] | None:
    """JSON-LD, meta, <time datetime>, then what the page prints: <time> text, [itemprop=datePublished],
    elements whose class names a date (only text with a four-digit year: no "2 hours ago" from a
    sidebar), and last a /YYYY/MM/DD/ in the page URL (a day, midnight in the site's zone)."""
    found = _from_jsonld(doc, "datePublished", "date") or _from_meta(doc, _META_DATE, "date")
    if found:
        return found
    return (
        _from_nodes(doc, doc.tree, (("time[datetime]", "datetime"),), "date")
        or _from_nodes(doc, doc.tree, _DATE_NODES, "date", printed=True)
        or _date_from_url(doc)
    )


def _date_from_url(doc: _Document) -> tuple[Value, str] | None:
    m = _URL_DATE.search(urlsplit(doc.url).path)
    if m is None:
        return None
    value = parse_date("-".join(m.groups()), tz=doc.zone, now=doc.now)
    return (value, "url") if value is not None else None


def _from_nodes(
    doc: _Document,
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
            raw = attrs.get(attr) or attrs.get("content") or _node_text(node)
            if printed and (len(raw) > 200 or not _YEAR.search(raw)):
                continue
            value = _finish(doc, kind, raw) if raw else None
            if value is not None:
                return value, css
    return None


def _author_fallback(doc: _Document) -> tuple[Value, str] | None:
    """JSON-LD, meta author, itemprop=author / rel=author, then byline-looking elements. A value that
    is the site's or publisher's own name ("Condé Nast", "ABC News") is not taken for an author."""
    names = {_compact(n) for n in doc.site_names()} - {""}
    for hit in (_from_jsonld(doc, "author", "text"), _from_meta(doc, _META_AUTHOR, "text")):
        if hit is not None and _compact(str(hit[0])) not in names:
            return hit
    return _from_nodes(doc, doc.tree, _AUTHOR_NODES, "text") or _from_byline(doc, names)


def _from_byline(doc: _Document, site_names: set[str]) -> tuple[Value, str] | None:
    """A name in an element whose class says author/byline: its text up to the first separator
    ("Pete Evans · CBC News"), "By " dropped, and only when it reads as a name (see _looks_like_name)."""
    for css in _BYLINE_NODES:
        for node in doc.tree.css(css)[:20]:
            text = _BYLINE_PREFIX.sub("", clean_text(_BYLINE_END.split(_node_text(node).strip(), 1)[0]))
            if _looks_like_name(text) and _compact(text) not in site_names:
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


def _image_fallback(doc: _Document) -> tuple[Value, str] | None:
    return (
        _from_meta(doc, _META_IMAGE[:3], "image")
        or _from_jsonld(doc, "image", "image")
        or _from_meta(doc, _META_IMAGE[3:], "image")
        or _from_nodes(doc, doc.tree, (('link[rel="image_src"]', "href"),), "image")
    )


def _summary_fallback(doc: _Document) -> tuple[Value, str] | None:
    return (
        _from_meta(doc, _META_SUMMARY[:1], "text")
        or _from_jsonld(doc, "description", "text")
        or _from_meta(doc, _META_SUMMARY[1:], "text")
    )


def _url_fallback(doc: _Document) -> tuple[Value, str] | None:
    """rel=canonical, og:url, JSON-LD url, in that order; one on another site than the page (a
    syndicated copy's canonical points at the original publisher) is skipped: the entry links to the
    site the feed follows."""
    node = doc.canonical
    url = _absolute(node.attributes.get("href") or "", doc.base, _IMAGE_SCHEMES) if node is not None else None
    if url is not None and _same_site(doc, url):
        return url, "link:canonical"
    for hit in (_from_meta(doc, ("og:url",), "link"), _from_jsonld(doc, "url", "link")):
        if hit is not None and _same_site(doc, str(hit[0])):
            return hit
    return None


def _same_site(doc: _Document, url: str) -> bool:
    """Whether `url` is on the page's site (the same host, or one a subdomain of the other)."""
    a, b = doc.host(url), doc.host(doc.url)
    return a == b or a.endswith("." + b) or b.endswith("." + a)


_ARTICLE_FIELDS: tuple[tuple[str, Kind, Fallback | None], ...] = (
    ("headline", "text", _headline_fallback),
    ("date", "date", _date_fallback),
    ("author", "text", _author_fallback),
    ("summary", "text", _summary_fallback),
    ("image", "image", _image_fallback),
    ("content", "content", None),
)


def strip_title_affixes(title: str, site_names: Sequence[str]) -> str:
    """Drop a leading or trailing segment ("Headline | Site", "Site - Headline") that names the site.

    Only whole segments between spaced separators that equal a known site name go: "Spider-Man - Far
    From Home review" keeps every word unless a site is called "Far From Home review".
    """
    names = {_compact(n) for n in site_names} - {""}
    parts = _TITLE_SEPARATORS.split(title)
    if len(parts) < 2 or not names:
        return title
    separators = _TITLE_SEPARATORS.findall(title)
    while len(parts) > 1 and _compact(parts[-1]) in names:
        parts.pop()
        separators.pop()
    while len(parts) > 1 and _compact(parts[0]) in names:
        parts.pop(0)
        separators.pop(0)
    out = parts[0]
    for separator, part in zip(separators, parts[1:], strict=True):
        out += separator + part
    return out


def _compact(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


# --------------------------------------------------------------------------------------- article


def _article_values(doc: _Document, *, known: frozenset[str] = frozenset()) -> dict[str, tuple[Value, str]]:
    """Field name -> (value, origin) for the article page; fields in `known` are not looked for."""
    selectors = doc.site.article
    found: dict[str, tuple[Value, str]] = {}
    for name, kind, fallback in _ARTICLE_FIELDS:
        if name in known:
            continue
        chain = getattr(selectors, name) if selectors is not None else None
        hit = _read_chain(doc, doc.tree, chain, kind)
        if hit is not None:
            found[name] = (hit[0], hit[1])
        elif fallback is not None:
            fell = fallback(doc)
            if fell is not None:
                found[name] = fell
    if "headline" in found and _TITLE_SEPARATORS.search(str(found["headline"][0])):
        headline, origin = found["headline"]
        found["headline"] = (strip_title_affixes(str(headline), doc.site_names()), origin)
    if "author" in found:
        author, origin = found["author"]
        found["author"] = (_BYLINE_PREFIX.sub("", str(author)), origin)
    if "url" not in known:
        fell_url = _url_fallback(doc)
        found["url"] = fell_url if fell_url is not None else (doc.url, "page")
    return found


def _text_value(values: dict[str, tuple[Value, str]], name: str) -> str | None:
    value = values.get(name)
    return value[0] if value is not None and isinstance(value[0], str) else None


def _article_from(doc: _Document, values: dict[str, tuple[Value, str]]) -> Article:
    date = values.get("date")
    return Article(
        site=doc.site.id,
        url=str(values["url"][0]),
        headline=_text_value(values, "headline") or "",
        published=date[0] if date is not None and isinstance(date[0], datetime) else None,
        author=_text_value(values, "author"),
        summary=_text_value(values, "summary"),
        image=_text_value(values, "image"),
        content=_text_value(values, "content"),
        origins=tuple((name, origin) for name, (_, origin) in values.items()),
    )


def _require_headline(doc: _Document, article: Article) -> Article:
    if not article.headline:
        chain = doc.site.article.headline if doc.site.article is not None else None
        selector = chain[0].css if chain else "headline"
        raise ExtractError(doc.url, selector, "matched nothing and the page has no title metadata")
    return article


def extract_fields(page: Page, site: SiteConfig) -> Article:
    """Article-page fields on their own (`check --url`, benchmarks). Raises ExtractError without a headline."""
    doc = _Document(page, site)
    return _require_headline(doc, _article_from(doc, _article_values(doc)))


_MERGED = ("headline", "published", "author", "summary", "image", "content")
_ORIGIN_NAME = {"published": "date"}


def extract_article(page: Page, site: SiteConfig, item: Article) -> Article:
    """The article page's fields merged under the listing item's: a listing value wins unless empty."""
    doc = _Document(page, site)
    # What the listing already gave is not read again: it would lose the merge anyway.
    known = frozenset(
        _ORIGIN_NAME.get(name, name) for name in _MERGED if getattr(item, name) not in (None, "")
    )
    values = _article_values(doc, known=known | {"url"})
    values["url"] = (item.url, "listing")
    found = _article_from(doc, values)
    updates: dict[str, Any] = {}
    origins = list(item.origins)
    for name in _MERGED:
        if getattr(item, name) in (None, "") and getattr(found, name) not in (None, ""):
            updates[name] = getattr(found, name)
            origin_name = _ORIGIN_NAME.get(name, name)
            origins = [o for o in origins if o[0] != origin_name]
            where = found.origin(origin_name)
            if where is not None:
                origins.append((origin_name, where))
    merged = replace(item, **updates, origins=tuple(origins))
    return _require_headline(doc, merged)


# --------------------------------------------------------------------------------------- listing


def _item_fields(doc: _Document, node: LexborNode) -> Article | None:
    selectors = doc.site.list
    firsts: _Firsts = {}
    link = _read_chain(doc, node, selectors.link, "link", firsts)
    if link is None:
        return None
    url, link_origin, link_node = link
    values: dict[str, tuple[Value, str]] = {"url": (url, link_origin)}
    for name, kind, _ in _ARTICLE_FIELDS:
        hit = _read_chain(doc, node, getattr(selectors, name), kind, firsts)
        if hit is not None:
            values[name] = (hit[0], hit[1])
    if "headline" not in values and selectors.headline is None and link_node is not None:
        text = clean_text(_node_text(link_node))
        if text:
            values["headline"] = (text, "link-text")
    if "date" not in values:
        fell = _from_nodes(doc, node, (("time[datetime]", "datetime"),), "date")
        if fell is not None:
            values["date"] = fell
    return _article_from(doc, values)


def extract_listing(page: Page, site: SiteConfig) -> Listing:
    """Items of a listing page (at most site.max_items, each with a link) and its next-page URL."""
    doc = _Document(page, site)
    nodes = doc.tree.css(site.list.item)
    if not nodes:
        raise ExtractError(page.url, site.list.item)
    items: list[Article] = []
    seen: set[str] = set()
    filters = site.filters
    filtered = bool(filters.include or filters.exclude)  # without patterns, keeps() keeps everything
    linked = 0
    for node in nodes:
        item = _item_fields(doc, node)
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
        raise ExtractError(page.url, links, f"found no http(s) link in any of the {len(nodes)} {site.list.item!r} item(s)")
    next_url = None
    if site.list.next:
        hit = _read_chain(doc, doc.tree, site.list.next, "link")
        if hit is not None and _same_page(str(hit[0])) != _same_page(page.url):
            next_url = str(hit[0])
    return Listing(url=page.url, items=tuple(items), next_url=next_url)


def _same_page(url: str) -> str:
    return url.split("#", 1)[0]
