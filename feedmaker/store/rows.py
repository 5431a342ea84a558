"""Rows as the store keeps them: text caps, UTC timestamps as fixed-width text, Article <-> entry rows, and
the part of a DB-API connection both engines offer. Plain functions, no SQL of their own but column lists.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

from feedmaker.models import Article, Entry, Sighting, as_utc, entry_updated

__all__ = [
    "AUTHOR_MAX", "ENTRY_COLUMNS", "ENTRY_FIELDS", "ENTRY_FIRST_SEEN", "HEADLINE_MAX", "MERGED", "PUBLISHED",
    "SIGHTING_COLUMNS", "SIGHTING_FIELDS", "SIGHTING_FIRST_SEEN", "SUMMARY_MAX", "Cursor", "Db", "article_values",
    "cap_text", "capped", "chunks", "clean", "clean_or_none", "entry_from_row", "entry_sighting", "fixed_zone",
    "from_iso", "in_offset", "iso", "iso_or_none", "offset_or_none", "sighting_from_row",
]  # fmt: skip

# Text fields are cut to these lengths (at a word, with an ellipsis) as they are stored, so that a page
# with a megabyte "headline" gives a feed entry a reader can show, and the database stays small. Real
# headlines stay well under 300 characters; a summary is a teaser, not the article (content is not cut).
HEADLINE_MAX = 300
SUMMARY_MAX = 2000
AUTHOR_MAX = 200
ELLIPSIS = "\u2026"
_LAST_WORD = re.compile(r"\s+\S*$")

# The stored article fields, in column order (see `_merge` for how a re-sighting changes them). Both
# `entries` (a story's first sighting) and `sources` (its other sightings) hold them and are written through
# `article_values`: a field added here needs a migration step adding its column to both tables. Dates are
# stored as UTC text (text order is time order, for the walks) with the page's offset beside, in seconds.
MERGED = (
    "url", "headline", "published", "author", "summary", "image", "content", "origins",
    "published_offset", "modified", "modified_offset",
)  # fmt: skip
ENTRY_COLUMNS = f"id, site, key, url_key, {', '.join(MERGED)}, first_seen, updated"
SIGHTING_COLUMNS = f"entry_id, site, url_key, {', '.join(MERGED)}, first_seen, updated"
# Where the fields start in a row of each column list, and where first_seen follows them.
ENTRY_FIELDS = slice(4, 4 + len(MERGED))
ENTRY_FIRST_SEEN = 4 + len(MERGED)
SIGHTING_FIELDS = slice(3, 3 + len(MERGED))
SIGHTING_FIRST_SEEN = 3 + len(MERGED)
PUBLISHED = MERGED.index("published")
_SURROGATE = re.compile("[\x00\ud800-\udfff]")


def cap_text(value: str, limit: int) -> str:
    """`value` if it fits in `limit` characters, else cut at the last word break that keeps at least half
    of it (a hard cut for one endless word) and ended with an ellipsis, `limit` characters at most."""
    if len(value) <= limit:
        return value
    cut = value[: limit - len(ELLIPSIS)]
    word = _LAST_WORD.search(cut)
    if word and word.start() >= limit // 2:
        cut = cut[: word.start()]
    return cut.rstrip(" \t\n,;:-") + ELLIPSIS


def capped(value: str | None, limit: int) -> str | None:
    return None if value is None else cap_text(value, limit)


def iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order."""
    return as_utc(moment).isoformat(timespec="microseconds")


def iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def offset_or_none(moment: datetime | None) -> int | None:
    """The UTC offset `moment` was given in, in seconds (stored beside its UTC text)."""
    offset = None if moment is None else moment.utcoffset()
    return None if offset is None else int(offset.total_seconds())


def in_offset(text: str | None, offset: int | None) -> datetime | None:
    """A stored UTC text back in the offset it was given in (UTC for rows stored before offsets were)."""
    if text is None:
        return None
    moment = from_iso(text)
    return moment if offset is None else moment.astimezone(fixed_zone(offset))


@functools.lru_cache(maxsize=256)  # few distinct offsets; timezone objects are immutable
def fixed_zone(seconds: int) -> timezone:
    return UTC if seconds == 0 else timezone(timedelta(seconds=seconds))


def clean(value: str) -> str:
    # Lone surrogates cannot be encoded as UTF-8, nor NUL stored in PostgreSQL text; they only come from
    # broken input, so keep the rest.
    return _SURROGATE.sub("\ufffd", value)


def clean_or_none(value: str | None) -> str | None:
    return None if value is None else clean(value)


def chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """One open transaction of an engine: `?` placeholders, rows as tuples."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


def article_values(article: Article) -> tuple[str | int | None, ...]:
    """The merged fields of an article, in MERGED order, as stored (text fields capped)."""
    return (
        clean(article.url),
        clean(cap_text(article.headline, HEADLINE_MAX)),
        iso_or_none(article.published),
        clean_or_none(capped(article.author, AUTHOR_MAX)),
        clean_or_none(capped(article.summary, SUMMARY_MAX)),
        clean_or_none(article.image),
        clean_or_none(article.content),
        json.dumps([list(pair) for pair in article.origins]),
        offset_or_none(article.published),
        iso_or_none(article.modified),
        offset_or_none(article.modified),
    )


def _article(site: str, fields: Sequence[Any]) -> Article:
    (
        url,
        headline,
        published,
        author,
        summary,
        image,
        content,
        origins,
        published_offset,
        modified,
        modified_offset,
    ) = fields
    return Article(
        site=site,
        url=url,
        headline=headline,
        published=in_offset(published, published_offset),
        modified=in_offset(modified, modified_offset),
        author=author,
        summary=summary,
        image=image,
        content=content,
        origins=tuple((str(name), str(where)) for name, where in json.loads(origins)),
    )


def entry_from_row(row: tuple[Any, ...], sources: tuple[str, ...]) -> Entry:
    """An ENTRY_COLUMNS row as the story's Entry: its first sighting's fields and the stored id."""
    # The stored `updated` is when the row last changed; what feeds show is entry_updated's.
    entry_id, site, key, _url_key, *fields, first_seen, _changed = row
    article, seen = _article(site, fields), from_iso(first_seen)
    return Entry(
        id=entry_id,
        key=key,
        article=article,
        first_seen=seen,
        updated=entry_updated(article, seen),
        sources=sources,
    )


def entry_sighting(row: tuple[Any, ...]) -> Sighting:
    """The first sighting of a story, from its ENTRY_COLUMNS row."""
    _entry_id, site, _key, url_key, *fields, first_seen, _changed = row
    return _sighting(site, url_key, fields, first_seen)


def sighting_from_row(row: tuple[Any, ...]) -> Sighting:
    """A later sighting, from its SIGHTING_COLUMNS row of `sources`."""
    _entry_id, site, url_key, *fields, first_seen, _changed = row
    return _sighting(site, url_key, fields, first_seen)


def _sighting(site: str, url_key: str, fields: Sequence[Any], first_seen: str) -> Sighting:
    article, seen = _article(site, fields), from_iso(first_seen)
    return Sighting(article=article, url_key=url_key, first_seen=seen, updated=entry_updated(article, seen))
