"""Rows as the store keeps them: text caps, UTC timestamps as fixed-width text, Article <-> entry rows, and
the part of a DB-API connection both engines offer. Plain functions, no SQL of their own but column lists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from feedmaker.models import Article, Entry, Sighting, as_utc

__all__ = [
    "AUTHOR_MAX", "ENTRY_COLUMNS", "HEADLINE_MAX", "MERGED", "SIGHTING_COLUMNS", "SUMMARY_MAX", "Cursor", "Db",
    "article_values", "cap_text", "capped", "chunks", "clean", "clean_or_none", "entry_from_row", "entry_sighting",
    "from_iso", "iso", "iso_or_none", "sighting_from_row",
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
# `article_values`: a field added here needs a migration step adding its column to both tables.
MERGED = ("url", "headline", "published", "author", "summary", "image", "content", "origins")
ENTRY_COLUMNS = "id, site, key, url_key, url, headline, published, author, summary, image, content, origins, first_seen, updated"
SIGHTING_COLUMNS = f"entry_id, site, url_key, {', '.join(MERGED)}, first_seen, updated"
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


def article_values(article: Article) -> tuple[str | None, ...]:
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
    )


def _article(site: str, fields: Sequence[Any]) -> Article:
    url, headline, published, author, summary, image, content, origins = fields
    return Article(
        site=site,
        url=url,
        headline=headline,
        published=None if published is None else from_iso(published),
        author=author,
        summary=summary,
        image=image,
        content=content,
        origins=tuple((str(name), str(where)) for name, where in json.loads(origins)),
    )


def entry_from_row(row: tuple[Any, ...], sources: tuple[str, ...]) -> Entry:
    """An ENTRY_COLUMNS row as the story's Entry: its first sighting's fields and the stored id."""
    entry_id, site, key, _url_key, *fields, first_seen, updated = row
    return Entry(
        id=entry_id,
        key=key,
        article=_article(site, fields),
        first_seen=from_iso(first_seen),
        updated=from_iso(updated),
        sources=sources,
    )


def entry_sighting(row: tuple[Any, ...]) -> Sighting:
    """The first sighting of a story, from its ENTRY_COLUMNS row."""
    _entry_id, site, _key, url_key, *fields, first_seen, updated = row
    return Sighting(
        article=_article(site, fields),
        url_key=url_key,
        first_seen=from_iso(first_seen),
        updated=from_iso(updated),
    )


def sighting_from_row(row: tuple[Any, ...]) -> Sighting:
    """A later sighting, from its SIGHTING_COLUMNS row of `sources`."""
    _entry_id, site, url_key, *fields, first_seen, updated = row
    return Sighting(
        article=_article(site, fields),
        url_key=url_key,
        first_seen=from_iso(first_seen),
        updated=from_iso(updated),
    )
