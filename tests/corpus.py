"""The shared corpora as feedmaker inputs: where they are, pages, SiteConfigs translated from Mercury's
per-site extractors, ground truth, the Atom RELAX NG schema, and one scoring function. Used by the
corpus tier of the tests (marker `corpus`, skipped when the folder is absent: tests/conftest.py) and by
benchmarks/.

The one setting that locates them: FEEDMAKER_CORPORA, else `shared/corpora` beside the repository
(`../shared/corpora` from its root). Nothing is read when this module is imported.

Mercury (postlight-parser) selector entries translate as follows:
  "css"                          -> FieldSpec(css)
  ["css", "attr"]                -> FieldSpec(css, attr)
  ['meta[name="x"]', "value"]    -> FieldSpec('meta[name="x"], meta[property="x"]', attr="content"), and
                                    the same with attr="value": Mercury rewrites <meta property=.. content=..>
                                    to name=/value= before selecting, and most saved fixtures are stored
                                    after that rewrite, so both spellings occur in the corpus
  anything with "<function omitted>", or a list of several selectors (content only) -> skipped
  date_published.format (moment.js) -> a strptime format where every token has one; else dropped
  date_published.timezone        -> SiteConfig.timezone
"""

from __future__ import annotations

import html
import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lxml import etree
from pydantic import ValidationError

from feedmaker.config import ArticleSelectors, FieldSpec, ListSelectors, SiteConfig
from feedmaker.models import Article, Page

CORPORA_ENV = "FEEDMAKER_CORPORA"
CORPORA = Path(os.environ.get(CORPORA_ENV) or Path(__file__).resolve().parents[2] / "shared" / "corpora")
ATOM_SCHEMA = CORPORA / "atom-schema" / "atom-rfc4287.rng"
POSTLIGHT = CORPORA / "postlight-parser"
READABILITY = CORPORA / "mozilla-readability"
LISTINGS = CORPORA / "listings"
# The pages are 2009-2026 snapshots; "now" sits after all of them so no real date is "in the future".
CORPUS_NOW = datetime(2027, 1, 1, tzinfo=UTC)
READABILITY_URL = "http://fakehost/test/page.html"

FIELDS = ("headline", "date", "author", "image", "url")
_MERCURY_FIELDS = {
    "title": "headline",
    "date_published": "date",
    "author": "author",
    "lead_image_url": "image",
    "dek": "summary",
    "content": "content",
}
_FUNCTION = "<function omitted>"
_META_NAME = re.compile(r"""^\s*meta\[name=(["']?)([^"'\]]+)\1\]\s*$""", re.IGNORECASE)

# moment.js tokens, longest first, to strptime directives (None: no strptime equivalent).
_MOMENT = (
    ("YYYY", "%Y"), ("YY", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("M", "%m"),
    ("DD", "%d"), ("Do", None), ("D", "%d"), ("dddd", "%A"), ("ddd", "%a"), ("HH", "%H"), ("H", "%H"),
    ("hh", "%I"), ("h", "%I"), ("mm", "%M"), ("m", "%M"), ("ss", "%S"), ("s", "%S"), ("A", "%p"), ("a", "%p"),
    ("ZZ", "%z"), ("Z", "%z"), ("zz", None), ("z", None),
)  # fmt: skip


def missing_corpora() -> str | None:
    """Why the corpora cannot be used (a one-line reason), or None when the folder is there."""
    if CORPORA.is_dir():
        return None
    return f"shared corpora not found at {CORPORA} (set {CORPORA_ENV} to their folder)"


@cache
def atom_schema() -> etree.RelaxNG | None:
    """RFC 4287's RELAX NG schema, or None where the corpora (which hold it) are absent."""
    return etree.RelaxNG(file=str(ATOM_SCHEMA)) if ATOM_SCHEMA.is_file() else None


def moment_to_strptime(fmt: str) -> str | None:
    """Translate a moment.js format; None when some token has no strptime equivalent."""
    out: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "[":
            end = fmt.find("]", i)
            literal = fmt[i + 1 : end] if end > 0 else fmt[i + 1 :]
            out.append(literal.replace("%", "%%"))
            i = end + 1 if end > 0 else len(fmt)
            continue
        for token, directive in _MOMENT:
            if fmt.startswith(token, i):
                if directive is None:
                    return None
                out.append(directive)
                i += len(token)
                break
        else:
            out.append(fmt[i].replace("%", "%%"))
            i += 1
    return "".join(out)


def _specs(entry: Any, fmt: str | None) -> tuple[FieldSpec, ...]:
    try:
        return _translate(entry, fmt)
    except ValidationError:
        return ()  # a selector lexbor rejects (Mercury's cheerio was laxer, e.g. ".entry-content.")


def _translate(entry: Any, fmt: str | None) -> tuple[FieldSpec, ...]:
    if isinstance(entry, str):
        return (FieldSpec(css=entry, format=fmt),)
    if not isinstance(entry, list) or len(entry) != 2 or _FUNCTION in entry:
        return ()
    css, attr = entry
    if not isinstance(css, str) or not isinstance(attr, str) or re.search(r"[.#\[\s>]", attr):
        return ()  # a list of several selectors (Mercury's multi-match content), not [selector, attribute]
    if attr == "value":
        m = _META_NAME.match(css)
        if m:
            css = f'meta[name="{m.group(2)}"], meta[property="{m.group(2)}"]'
        return (FieldSpec(css=css, attr="content", format=fmt), FieldSpec(css=css, attr="value", format=fmt))
    return (FieldSpec(css=css, attr=attr, format=fmt),)


def site_id(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:64] or "site"


def mercury_site(
    name: str, extractor: dict[str, Any] | None, *, url: str, selectors: bool = True
) -> SiteConfig:
    """A SiteConfig with Mercury's selectors as `[article]`; selectors=False gives a fallbacks-only site
    (it keeps the time zone: that is site configuration, not a selector)."""
    chains: dict[str, tuple[FieldSpec, ...]] = {}
    timezone = "UTC"
    for mercury_name, field in _MERCURY_FIELDS.items():
        spec = (extractor or {}).get(mercury_name)
        if not isinstance(spec, dict) or not isinstance(spec.get("selectors"), list):
            continue
        fmt = moment_to_strptime(spec["format"]) if isinstance(spec.get("format"), str) else None
        if field == "date" and isinstance(spec.get("timezone"), str):
            timezone = spec["timezone"]
        specs = tuple(s for entry in spec["selectors"] for s in _specs(entry, fmt))
        if specs and selectors:
            chains[field] = specs
    # Only a zone Mercury names is set: without one, the site is configured as a user would leave it.
    zone: dict[str, Any] = {"timezone": timezone} if timezone != "UTC" else {}
    return SiteConfig(
        id=site_id(name),
        name=name,
        start_urls=(url,),
        **zone,
        list=ListSelectors(item="article"),
        article=ArticleSelectors(**chains) if chains else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusPage:
    name: str
    path: Path
    url: str
    truth: dict[str, Any]
    site: SiteConfig  # Mercury's selectors translated
    bare: SiteConfig  # no article selectors: fallbacks only

    @property
    def body(self) -> bytes:
        """The page with Mercury's meta rewrite undone (see `unmercury`): what the site served."""
        return _read(self.path)

    @property
    def raw(self) -> bytes:
        """The bytes exactly as stored in the corpus."""
        return self.path.read_bytes()

    def page(self) -> Page:
        return Page(url=self.url, body=self.body, encoding=None, fetched_at=CORPUS_NOW)


@cache
def _read(path: Path) -> bytes:
    return unmercury(path.read_bytes())


_META_TAG = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)
_META_VALUE = re.compile(rb"(\s)value(\s*=)", re.IGNORECASE)
_META_CONTENT = re.compile(rb"\scontent\s*=", re.IGNORECASE)
# OpenGraph namespaces are `property=` in the wild; twitter:* and the rest are `name=`.
_META_OG_NAME = re.compile(
    rb"""(\s)name(\s*=\s*["']?(?:og|article|fb|book|profile|music|video):)""", re.IGNORECASE
)


def unmercury(body: bytes) -> bytes:
    """Undo the rewrite most postlight fixtures were saved after (Mercury's normalize-meta-tags turned
    every <meta content=> into value= and property= into name=): value= becomes content= again, and
    name="og:*" / "article:*" / "fb:*" ... becomes property=. Every tool then reads the page as the site
    served it, rather than one that only a reader of `value=` understands."""

    def restore(m: re.Match[bytes]) -> bytes:
        tag = m.group(0)
        if not _META_CONTENT.search(tag):
            tag = _META_VALUE.sub(rb"\1content\2", tag, count=1)
        return _META_OG_NAME.sub(rb"\1property\2", tag, count=1)

    return _META_TAG.sub(restore, body)


def _ground_truth(root: Path) -> list[dict[str, Any]]:
    with (root / "ground_truth.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@cache
def postlight_pages() -> tuple[CorpusPage, ...]:
    extractors = json.loads((POSTLIGHT / "selectors.json").read_text(encoding="utf-8"))
    pages = []
    for truth in _ground_truth(POSTLIGHT):
        name = truth["extractor"]
        pages.append(
            CorpusPage(
                name=Path(truth["source_file"]).stem,
                path=POSTLIGHT / truth["source_file"],
                url=truth["url"],
                truth=truth,
                site=mercury_site(name, extractors.get(name), url=truth["url"]),
                bare=mercury_site(name, extractors.get(name), url=truth["url"], selectors=False),
            )
        )
    return tuple(pages)


@cache
def readability_pages() -> tuple[CorpusPage, ...]:
    pages = []
    for truth in _ground_truth(READABILITY):
        name = Path(truth["upstream_dir"]).name
        bare = mercury_site(name, None, url=READABILITY_URL)
        pages.append(
            CorpusPage(
                name=name,
                path=READABILITY / truth["source_file"],
                url=READABILITY_URL,
                truth=truth,
                site=bare,
                bare=bare,
            )
        )
    return tuple(pages)


# ------------------------------------------------------------------------------------- scoring


RULES = """\
Comparison rules (the same for every column):
  input     every tool reads the same bytes: the corpus page with Mercury's meta rewrite undone
            (<meta value=> -> content=, name="og:*" -> property=), i.e. the page as the site served it;
            feedmaker's own date fixtures (tests/pages/dates) as stored, each with its fetch time
  headline  HTML-unescaped, NFC, whitespace collapsed, case-insensitive
  author    as headline, a leading "By" dropped, then split into names on , ; & " and " and newlines
            (so "A, B and C" == "A; B; C"); the ordered name lists must be equal
  date      at the finest granularity the tool reports: feedmaker to the minute in UTC (to the day
            where the truth only has a day); htmldate's find_date(original_date=True) and trafilatura
            (whose dates are htmldate's) report YYYY-MM-DD only, so theirs are compared to the day
  date@day  every tool to the day: the reported day must be the truth instant's calendar date in some
            zone between UTC-12 and UTC+14 (the page's own zone is unknown); a truth of "absent" needs
            no date
  image,url scheme http/https alike, host lowercased, #fragment and one trailing "/" dropped; the
            postlight url truth is the URL the page was fetched from (upstream never asserts a
            canonical URL), so that row measures agreement with the fetch URL"""


def norm_text(value: str | None) -> str:
    text = unicodedata.normalize("NFC", html.unescape(value or ""))
    return " ".join(text.split()).casefold()


_AUTHOR_SPLIT = re.compile(r"\s*(?:[,;&\n]|\band\b)\s*", re.IGNORECASE)


def norm_author(value: str | None) -> tuple[str, ...]:
    text = unicodedata.normalize("NFC", html.unescape(value or "")).strip()
    text = re.sub(r"^by\b[\s:]*", "", text, flags=re.IGNORECASE)
    return tuple(n for part in _AUTHOR_SPLIT.split(text) if (n := norm_text(part)))


def same_minute(found: datetime | None, expected: str | None) -> bool:
    if found is None or expected is None:
        return found is None and expected is None
    if len(expected) == 10:  # the corpus only knows the day
        return found.astimezone(UTC).date().isoformat() == expected
    want = datetime.fromisoformat(expected.replace("Z", "+00:00"))
    if want.tzinfo is None:
        want = want.replace(tzinfo=UTC)
    return found.astimezone(UTC).replace(second=0, microsecond=0) == want.astimezone(UTC).replace(
        second=0, microsecond=0
    )


def same_day(found: date | None, expected: str | None) -> bool:
    """`found` (a day, or an instant taken as its UTC day) is the truth's date somewhere on Earth."""
    if found is None or expected is None:
        return found is None and expected is None
    day = found.astimezone(UTC).date() if isinstance(found, datetime) else found
    if len(expected) == 10:
        return day.isoformat() == expected
    want = datetime.fromisoformat(expected.replace("Z", "+00:00"))
    if want.tzinfo is None:
        want = want.replace(tzinfo=UTC)
    want = want.astimezone(UTC)
    return (want - timedelta(hours=12)).date() <= day <= (want + timedelta(hours=14)).date()


def norm_url(value: str | None) -> str:
    text = html.unescape(value or "").strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.scheme.lower() not in ("http", "https"):
        return text
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path
    return urlunsplit(("http", parts.netloc.lower(), path, parts.query, ""))


_CHECKS: dict[str, tuple[str, Callable[[Article], Any], Callable[[Any], Any]]] = {
    "headline": ("headline", lambda a: norm_text(a.headline), norm_text),
    "author": ("author", lambda a: norm_author(a.author), norm_author),
    "image": ("image", lambda a: norm_url(a.image), norm_url),
    "url": ("url", lambda a: norm_url(a.url), norm_url),
}


def annotated(page: CorpusPage, field: str) -> bool:
    """Whether the ground truth says something about `field` (an asserted null counts: expect absent)."""
    key = "published" if field in ("date", "date@day") else field
    if page.truth.get(key) is not None:
        return True
    asserted = page.truth.get("asserted_fields") or []
    return field in ("date", "date@day") and "date_published" in asserted


def correct(page: CorpusPage, article: Article | None, field: str, *, day_only: bool = False) -> bool:
    """Whether `article` has the truth's `field`; day_only: the tool only reports days (see RULES)."""
    if article is None:
        return False
    if field == "date@day" or (field == "date" and day_only):
        return same_day(article.published, page.truth.get("published"))
    if field == "date":
        return same_minute(article.published, page.truth.get("published"))
    key, got, want = _CHECKS[field]
    return bool(got(article) == want(page.truth.get(key)))


@dataclass(slots=True)
class Score:
    hits: int = 0
    total: int = 0
    misses: list[str] | None = None

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else 0.0


def score(
    pages: Iterable[CorpusPage],
    extract: Callable[[CorpusPage], Article | None],
    fields: Sequence[str] = FIELDS,
    *,
    day_only: bool = False,
) -> dict[str, Score]:
    scores = {f: Score(misses=[]) for f in fields}
    for page in pages:
        article = extract(page)
        for field in fields:
            if not annotated(page, field):
                continue
            s = scores[field]
            s.total += 1
            if correct(page, article, field, day_only=day_only):
                s.hits += 1
            elif s.misses is not None:
                s.misses.append(page.name)
    return scores


def table(title: str, columns: dict[str, dict[str, Score]]) -> str:
    fields = list(dict.fromkeys(f for scores in columns.values() for f in scores))
    width = max(14, *(len(c) + 2 for c in columns))
    lines = [title, "field".ljust(10) + "".join(c.rjust(width) for c in columns)]
    for field in fields:
        cells = []
        for scores in columns.values():
            s = scores.get(field)
            cells.append((f"{s.rate:6.1%} {s.hits}/{s.total}" if s and s.total else "-").rjust(width))
        lines.append(field.ljust(10) + "".join(cells))
    return "\n".join(lines)
