"""Fallbacks for fields a site's selectors do not give: the page's own metadata and markup, with origins."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from feedmaker.dates import dates_in_text, parse_date
from feedmaker.extract.fields import Kind, Value, finish, node_text
from feedmaker.extract.metadata import (
    Document,
    jsonld_image,
    jsonld_names,
    jsonld_text,
    looks_like_url,
    select,
    select_first,
)  # fmt: skip
from feedmaker.text import clean_text, compact, fold, strip_title_affixes
from feedmaker.urls import IMAGE_SCHEMES, absolute, same_site

__all__ = [
    "ARTICLE_FIELDS", "META_AUTHOR", "META_DATE", "META_IMAGE", "META_SUMMARY", "Fallback", "author_fallback",
    "date_fallback", "from_jsonld", "from_meta", "from_nodes", "from_title", "image_fallback", "modified_fallback",
    "url_fallback",
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
    nodes = doc.nodes("h1")
    if len(nodes) != 1:
        return None
    value = clean_text(node_text(nodes[0]))
    return (value, "h1") if len(value.split()) >= 3 and len(value) <= 300 else None


def from_title(doc: Document) -> tuple[Value, str] | None:
    node = select_first(doc.tree, "title")
    if node is None:
        return None
    value = clean_text(node.text(deep=True))
    return (value, "title") if value else None


def date_fallback(doc: Document) -> tuple[Value, str] | None:
    """The publication date, never a modified one while a publication date is to be had:
    1. structured publication dates: JSON-LD datePublished, meta (META_DATE), JSON-LD dateCreated,
       <time pubdate>, [itemprop=datePublished];
    2. a /YYYY/MM/DD/ in the URL (a printed date of another day is some other story's);
    3. printed dates (_printed_dates), group by group: in the first group with one, labelled published
       before unlabelled; labelled updated (or in an aside) only when nothing else is printed;
    4. structured modified dates (JSON-LD dateModified, article:modified_time, ...).
    A day without a time, from any of these, takes its time from a printed date of that day."""
    found = _published(doc) or _date_from_url(doc) or _printed_choice(doc)
    if found is None:
        return _structured_modified(doc)
    value, origin = found
    if isinstance(value, datetime) and _is_bare_day(doc, value):
        # A day alone (2016-12-09) is refined by a printed time of that day, never moved off it.
        timed = next((hit for hit in _on_day(doc, value) if not _is_bare_day(doc, hit[0])), None)
        if timed is not None:
            return timed
    return value, origin


def modified_fallback(doc: Document) -> tuple[Value, str] | None:
    """When the page says it last changed: JSON-LD dateModified, modified meta (article:modified_time,
    og:updated_time, ...), [itemprop=dateModified]. Only structured sources: a printed "Updated" date is
    too often another story's or the page chrome's."""
    return _structured_modified(doc) or from_nodes(doc, doc.tree, _MODIFIED_NODES, "date")


def _structured_modified(doc: Document) -> tuple[Value, str] | None:
    return from_jsonld(doc, "dateModified", "date") or from_meta(doc, _META_MODIFIED, "date")


def _printed_choice(doc: Document) -> tuple[datetime, str] | None:
    fallback: tuple[datetime, str] | None = None
    best: tuple[int, int, datetime, str] | None = None
    body_text = len(_PRINTED_NODES) + 1  # the group of the dates standing alone in the body
    for group, rank, value, origin, _ in _printed_dates(doc):
        if (best is not None and group != best[0]) or (group == body_text and fallback is not None):
            break  # the body's text is the last resort: an updated date in the markup comes first
        if rank == 2:
            fallback = fallback or (value, origin)
        elif best is None or rank < best[1]:
            best = (group, rank, value, origin)
    if best is not None:
        return best[2], best[3]
    return fallback


_META_MODIFIED = (
    "article:modified_time", "og:updated_time", "datemodified", "dc.date.modified", "dcterms.modified",
    "last-modified",
)  # fmt: skip
_PUBLISHED_NODES = (("time[pubdate]", "datetime"), ('[itemprop~="datePublished" i]', "datetime"))
_MODIFIED_NODES = (('[itemprop~="dateModified" i]', "datetime"),)
# Where a printed date's machine-readable form is kept, most explicit first.
_DATE_ATTRS = ("datetime", "data-published", "data-datetime", "data-date", "data-time", "data-timestamp")
# Printed dates, by where they are: elements with a date attribute, <time> text, elements whose class or
# id names a date (then, in _near_headline, the text after the headline and the body's lone dates).
_PRINTED_NODES = (
    "[datetime]",
    "time",
    '[class*="publish" i], [class*="posted" i], [class*="date" i], [class*="timestamp" i]',
    '[id*="date" i], [class*="time" i], [class*="byline" i]',
)
# Labels on a printed date (its class, id or text): a publication is preferred over an update.
_PUBLISHED_LABEL = re.compile(
    r"publi|posted|pubdate|released|erschienen|ver(?:ö|oe)ffentlicht|公開|公表|投稿|掲載|发布", re.IGNORECASE
)
_UPDATED_LABEL = re.compile(
    r"updat|modif|edited|revised|aktualisiert|mis à jour|actualiz|更新", re.IGNORECASE
)
_ELSEWHERE = frozenset({"aside", "nav", "footer"})
_CLOCK_SEP = ":\uff1a\u6642"  # ":", fullwidth ":", 時
_RANGE_SEP = "-~\uff0d\u2013\u2014\u301c\uff5e"  # "-", "~", fullwidth "-", en/em dash, wave dashes
_TIME_RANGE = re.compile(
    rf"\D{{0,6}}\d{{1,2}}\s*[{_CLOCK_SEP}]\s*\d{{2}}\s*[{_RANGE_SEP}]\s*\d{{1,2}}\s*[{_CLOCK_SEP}]\s*\d{{2}}"
)
_HIDDEN = frozenset({"script", "style", "noscript", "template"})
_STANDALONE = 40  # the longest text a date stands alone in ("Published: 2019/3/5 10:00 JST")
_BESIDE_HEADLINE = 400  # characters after the headline that a byline's date is printed within


def _published(doc: Document) -> tuple[Value, str] | None:
    return (
        from_jsonld(doc, "datePublished", "date")
        or from_meta(doc, META_DATE, "date")
        or from_jsonld(doc, "dateCreated", "date")
        or from_nodes(doc, doc.tree, _PUBLISHED_NODES, "date")
    )


def _is_bare_day(doc: Document, value: Value) -> bool:
    """Midnight in the site's zone or in UTC: what a date printed without a time becomes."""
    if not isinstance(value, datetime):
        return False
    return any(
        (t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0)
        for t in (value.astimezone(doc.zone), value)
    )


def _on_day(doc: Document, day: datetime) -> Iterator[tuple[datetime, str]]:
    """Printed dates on `day` (in the site's zone), an ambiguous one (04/05/2023) in whichever reading
    falls on that day."""
    want = day.astimezone(doc.zone).date()
    for _, _, value, origin, raw in _printed_dates(doc, standalone=False):
        if value.astimezone(doc.zone).date() == want:
            yield value, origin
            continue
        for dayfirst in (True, False):
            other = parse_date(raw, tz=doc.zone, now=doc.now, dayfirst=dayfirst)
            if other is not None and other.astimezone(doc.zone).date() == want:
                yield other, origin
                break


def _printed_dates(
    doc: Document, *, standalone: bool = True
) -> Iterator[tuple[int, int, datetime, str, str]]:
    """(group, rank, value, origin, raw text) of each date the page prints, in the order of the groups
    (_PRINTED_NODES, the text after the headline, then with standalone=True the dates standing alone in
    the body) and then of the page. Rank 0: labelled published; 1: no label; 2: labelled updated, or in
    an <aside>, <nav> or <footer> (another story's date, or the page's)."""
    for group, css in enumerate(_PRINTED_NODES):
        for node in doc.nodes(css)[:20]:
            attrs = node.attributes
            attr = next((a for a in _DATE_ATTRS if attrs.get(a)), None)
            raw = attrs.get(attr) if attr is not None else None
            text = raw or node_text(node)
            if raw is None and (len(text) > 200 or not _YEAR.search(text)):
                continue  # only a printed date with a year: no "2 hours ago" from a sidebar
            value = finish(doc, "date", text)
            if isinstance(value, datetime):
                label = f"{attrs.get('class') or ''} {attrs.get('id') or ''} {_context(node)}"
                origin = f"{node.tag}[{attr}]" if attr is not None else css
                yield group, _rank(label, node), value, origin, text
    yield from _near_headline(doc, len(_PRINTED_NODES), standalone=standalone)


def _context(node: LexborNode) -> str:
    """The node's text and the text just before it ("Published <time>...")."""
    prev = node.prev
    before = prev.text(deep=True)[-60:] if prev is not None else ""
    return f"{before} {node_text(node)[:80]}"


def _rank(label: str, node: LexborNode) -> int:
    if _PUBLISHED_LABEL.search(label):
        return 0
    if _UPDATED_LABEL.search(label):
        return 2
    parent, depth = node.parent, 0
    while parent is not None and depth < 12:
        if parent.tag in _ELSEWHERE:
            return 2
        parent, depth = parent.parent, depth + 1
    return 1


def _near_headline(
    doc: Document, group: int, *, standalone: bool = True
) -> Iterator[tuple[int, int, datetime, str, str]]:
    """The first full date printed in the text that follows the headline (<h1>): bylines are printed
    beside the headline, in markup that names no date. Then (standalone=True), as the last group, the
    dates that stand alone anywhere in the body."""
    h1 = next((n for n in doc.nodes("h1") if node_text(n).strip()), None)
    if h1 is not None:
        hit = next(_text_dates(doc, _text_after(h1, _BESIDE_HEADLINE), group), None)
        if hit is not None:
            yield hit
    if standalone and doc.tree.body is not None:
        yield from _standalone_dates(doc, doc.tree.body, group + 1)


def _text_after(node: LexborNode, limit: int) -> str:
    """About `limit` characters of the text that follows `node` in the page (scripts and styles skipped),
    read sibling by sibling, climbing to the parent's next sibling when one runs out."""
    parts: list[str] = []
    size = 0
    while size < limit:
        following = node.next
        while following is None:
            parent = node.parent
            if parent is None or parent.tag in ("body", "html"):
                return " ".join(parts)[:limit]
            node = parent
            following = node.next
        node = following
        if node.tag in _HIDDEN:
            continue
        for text in _texts(node):
            parts.append(text)
            size += len(text) + 1
            if size > limit:  # the joined text is `limit` long: the rest of this sibling is cut anyway
                break
    return " ".join(parts)[:limit]


def _texts(node: LexborNode) -> Iterator[str]:
    """The whitespace-collapsed text of each text node in `node` (itself, if it is one), in page order:
    what node.text(deep=True, separator=" ") holds, word for word, read only as far as it is wanted (the
    sibling after a headline is often the whole story)."""
    for text_node in node.traverse(include_text=True, skip_empty=True):
        if text_node.tag == "-text":
            text = " ".join((text_node.text_content or "").split())
            if text:
                yield text


def _standalone_dates(
    doc: Document, body: LexborNode, group: int
) -> Iterator[tuple[int, int, datetime, str, str]]:
    """Dates that stand alone in a short text of their own (a table cell, a <span>), in page order: a
    date inside running prose is one the story mentions (an event), not when it was published."""
    found = 0
    # Whitespace-only text (most of a pretty-printed page's text nodes) holds no year: skipped unvisited.
    for node in body.traverse(include_text=True, skip_empty=True):
        if node.tag != "-text":
            continue
        text = node.text_content or ""
        if (
            not 8 <= len(text) <= 200
            or not _YEAR.search(text)
            or len(stripped := " ".join(text.split())) > _STANDALONE
        ):
            continue
        parent = node.parent
        if parent is not None and parent.tag in _HIDDEN:
            continue
        for hit in _text_dates(doc, stripped, group):
            yield hit
            found += 1
        if found >= 3:
            return


def _text_dates(doc: Document, text: str, group: int) -> Iterator[tuple[int, int, datetime, str, str]]:
    for raw in dates_in_text(text, limit=3):
        at = text.find(raw)
        if _TIME_RANGE.match(text, at + len(raw)) or _TIME_RANGE.search(raw):
            continue  # "6 March 2019, 13:00-16:40": an event's schedule, not a publication time
        value = finish(doc, "date", raw)
        if isinstance(value, datetime):
            before = text[max(0, at - 40) : at]
            rank = 0 if _PUBLISHED_LABEL.search(before) else 2 if _UPDATED_LABEL.search(before) else 1
            yield group, rank, value, "text", raw


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
        nodes = doc.nodes(css) if scope is doc.tree else select(scope, css)
        for node in nodes[: 20 if printed else 5]:
            attrs = node.attributes
            raw = attrs.get(attr) or attrs.get("content") or node_text(node)
            if printed and (len(raw) > 200 or not _YEAR.search(raw)):
                continue
            value = finish(doc, kind, raw) if raw else None
            if value is not None:
                return value, css
    return None


def _date_from_url(doc: Document) -> tuple[datetime, str] | None:
    m = _URL_DATE.search(urlsplit(doc.url).path)
    if m is None:
        return None
    value = parse_date("-".join(m.groups()), tz=doc.zone, now=doc.now)
    return (value, "url") if value is not None else None


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
        for node in doc.nodes(css)[:20]:
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
    ("modified", "date", modified_fallback),
    ("author", "text", author_fallback),
    ("summary", "text", summary_fallback),
    ("image", "image", image_fallback),
    ("content", "content", None),
)
