"""State: sqlite3. Article -> AddResult (Added | Updated | Duplicate), stored Entry rows -> feed.

One file (or ":memory:") holds the entries, the other sites' sightings of each story (sources), the
upstream conditional-GET validators and the run history used for drift and failure detection. Headline,
author and summary are capped as they are stored (`cap_text`, HEADLINE_MAX, AUTHOR_MAX, SUMMARY_MAX).

Durability: WAL with synchronous=FULL. NORMAL survives a killed process but may lose the last commits on
power loss; a lost entry would be minted again with a new id after the feed that published the old id
was fsynced to disk, so readers would see the story twice. An fsync per add costs a few ms, and a run
adds at most a few hundred articles.

Migrations: `PRAGMA user_version` counts the steps applied. Each step runs in one BEGIN IMMEDIATE ...
COMMIT transaction (sqlite DDL is transactional) that also sets the version, and rolls back on any
error, so a crash leaves a whole version and never half of one. The version is re-read inside the
transaction, so two processes opening a new file at once apply each step once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from feedmaker.errors import StoreError
from feedmaker.models import (
    Added,
    AddResult,
    Article,
    Duplicate,
    Entry,
    RobotsFile,
    SiteReport,
    Updated,
    Validators,
    as_utc,
    utcnow,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
RUNS_KEPT = 500  # run records kept per site; enough for drift and failure history

# Each step is applied in one transaction together with `PRAGMA user_version = <its index + 1>`.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE entries (
            id TEXT PRIMARY KEY,
            site TEXT NOT NULL,
            key TEXT NOT NULL,
            url_key TEXT NOT NULL UNIQUE,
            url TEXT NOT NULL,
            headline TEXT NOT NULL,
            published TEXT,
            author TEXT,
            summary TEXT,
            image TEXT,
            content TEXT,
            origins TEXT NOT NULL DEFAULT '[]',
            first_seen TEXT NOT NULL,
            updated TEXT NOT NULL
        )""",
        "CREATE INDEX entries_key ON entries (key, first_seen)",
        "CREATE INDEX entries_site_newest ON entries (site, coalesce(published, first_seen) DESC, id)",
        """CREATE TABLE sources (
            url_key TEXT PRIMARY KEY,
            entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            site TEXT NOT NULL,
            first_seen TEXT NOT NULL
        )""",
        "CREATE INDEX sources_entry ON sources (entry_id, first_seen)",
        "CREATE INDEX sources_site ON sources (site, entry_id)",
        """CREATE TABLE validators (
            url TEXT PRIMARY KEY,
            etag TEXT,
            last_modified TEXT,
            saved TEXT NOT NULL
        )""",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            site TEXT NOT NULL,
            ok INTEGER NOT NULL,
            started TEXT NOT NULL,
            finished TEXT NOT NULL,
            pages INTEGER NOT NULL,
            items INTEGER NOT NULL,
            new INTEGER NOT NULL,
            updated INTEGER NOT NULL,
            duplicates INTEGER NOT NULL,
            not_modified INTEGER NOT NULL,
            errors TEXT NOT NULL,
            warnings TEXT NOT NULL,
            fill TEXT NOT NULL
        )""",
        "CREATE INDEX runs_site ON runs (site, id)",
    ),
    (
        # Hosts paused by Retry-After, so the pause outlives the process (`run --once` from cron).
        """CREATE TABLE host_pauses (
            host TEXT PRIMARY KEY,
            until TEXT NOT NULL
        )""",
    ),
    (
        # robots.txt files, so that a `run --once` from cron asks each host at most once a day.
        """CREATE TABLE robots (
            url TEXT PRIMARY KEY,
            fetched TEXT NOT NULL,
            status INTEGER NOT NULL,
            body BLOB NOT NULL
        )""",
    ),
    (
        # A source is one site's sighting: the same URL listed by two sites is two sources.
        """CREATE TABLE sources_by_site (
            url_key TEXT NOT NULL,
            site TEXT NOT NULL,
            entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            PRIMARY KEY (url_key, site)
        )""",
        "INSERT INTO sources_by_site (url_key, site, entry_id, url, first_seen) "
        "SELECT url_key, site, entry_id, url, first_seen FROM sources",
        "DROP TABLE sources",
        "ALTER TABLE sources_by_site RENAME TO sources",
        "CREATE INDEX sources_entry ON sources (entry_id, first_seen)",
        "CREATE INDEX sources_site ON sources (site, entry_id)",
    ),
    (
        # New items a site's filters rejected after reading their article page: remembered, so that they are
        # not fetched again every run, nor take the place of later items under max_articles.
        """CREATE TABLE filtered (
            url_key TEXT NOT NULL,
            site TEXT NOT NULL,
            seen TEXT NOT NULL,
            PRIMARY KEY (url_key, site)
        )""",
    ),
    (
        # A change counter per site, bumped in the transaction that changes anything a feed of that site shows
        # (`_touch`): publish compares counters, not rendered bytes, to skip unchanged feeds.
        """CREATE TABLE site_versions (
            site TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        )""",
        # Each source carries its entry's sort key (coalesce(published, first_seen)), so that the sightings of
        # one site are walked newest first through an index and stop at the feed's limit (`entries`).
        "ALTER TABLE sources ADD COLUMN sort TEXT NOT NULL DEFAULT ''",
        "UPDATE sources SET sort = coalesce("
        "(SELECT coalesce(e.published, e.first_seen) FROM entries e WHERE e.id = sources.entry_id), '')",
        "CREATE INDEX sources_site_newest ON sources (site, sort DESC, entry_id)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

# A canonical key shorter than this many words ("read more", "live updates", "morning briefing") is too
# generic to name one story: it merges nothing by key, on one site or across sites (see `is_generic_key`).
GENERIC_KEY_WORDS = 4
# One site repeating a headline at a new URL within this time is the same story moved; later, it is the
# next edition of a recurring title (a daily "Morning briefing" comes back after 24 h).
RECURRING_GAP = timedelta(hours=20)
VALIDATORS_KEPT = timedelta(days=30)
# Text fields are cut to these lengths (at a word, with an ellipsis) as they are stored, so that a page
# with a megabyte "headline" gives a feed entry a reader can show, and the database stays small. Real
# headlines stay well under 300 characters; a summary is a teaser, not the article (content is not cut).
HEADLINE_MAX = 300
SUMMARY_MAX = 2000
AUTHOR_MAX = 200
ELLIPSIS = "\u2026"
_LAST_WORD = re.compile(r"\s+\S*$")

# The stored article fields, in column order (see `_merge` for how a re-sighting changes them).
_MERGED = ("url", "headline", "published", "author", "summary", "image", "content", "origins")
_ENTRY_COLUMNS = (
    "id, site, key, url_key, url, headline, published, author, summary, image, content, origins, first_seen, updated"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# The two index walks of `entries`, each newest first: a site's own entries (entries_site_newest) and the
# entries it sighted later (sources_site_newest, then the entry by primary key). The last column is the sort key.
ENTRIES_OF_SITE = (
    f"SELECT {_ENTRY_COLUMNS}, coalesce(published, first_seen) FROM entries WHERE site = ? "
    "ORDER BY coalesce(published, first_seen) DESC, id"
)
SOURCES_OF_SITE = (
    f"SELECT {', '.join('e.' + c.strip() for c in _ENTRY_COLUMNS.split(','))}, coalesce(e.published, e.first_seen) "
    "FROM sources s CROSS JOIN entries e ON e.id = s.entry_id WHERE s.site = ? ORDER BY s.sort DESC, s.entry_id"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord(SiteReport):
    """A stored SiteReport plus the share of items in which each watched field was filled."""

    fill: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}), hash=False)


def is_generic_key(key: str) -> bool:
    """The one rule for generic headlines: such a key never makes two URLs one story; only a matching
    canonical URL (or a recorded source URL) does. Seven "Read more" links on one page are seven stories."""
    return len(key.split()) < GENERIC_KEY_WORDS


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


def _capped(value: str | None, limit: int) -> str | None:
    return None if value is None else cap_text(value, limit)


def _iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order."""
    return as_utc(moment).isoformat(timespec="microseconds")


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _iso(moment)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _text(value: str) -> str:
    # Lone surrogates cannot be encoded as UTF-8; they only come from broken input, so keep the rest.
    return _SURROGATE.sub("\ufffd", value)


def _text_or_none(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Store:
    """The feedmaker database. Every method is atomic and safe to call from one thread at a time or
    several (a lock serialises them); other processes may use the same file concurrently."""

    def __init__(self, path: str | Path, *, now: Callable[[], datetime] = utcnow) -> None:
        self.path = str(path)
        self._now = now
        self._lock = threading.RLock()
        # The last write transaction's failure (disk full, read-only file); None once one commits. The
        # daemon's /healthz reports it: a store that cannot write keeps nothing new.
        self.write_error: StoreError | None = None
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open database: {exc}") from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self.path != ":memory:":
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{self.path}: cannot switch to WAL journal (got {mode!r})")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"{self.path}: cannot prepare database: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _migrate(self) -> None:
        for version, statements in enumerate(MIGRATIONS, start=1):
            with self._write(f"migrate to schema version {version}") as db:
                current = db.execute("PRAGMA user_version").fetchone()[0]
                if current > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path}: schema version {current} is newer than this feedmaker ({SCHEMA_VERSION})"
                    )
                if current >= version:
                    continue
                for statement in statements:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        """One read transaction: the queries inside see one snapshot (entries and their sources)."""
        with self._transaction("BEGIN", action) as db:
            yield db

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction. IMMEDIATE takes the write lock up front, so the busy timeout applies
        and a read-then-write never fails halfway with SQLITE_BUSY."""
        try:
            with self._transaction("BEGIN IMMEDIATE", action) as db:
                yield db
        except StoreError as exc:
            self.write_error = exc
            raise
        self.write_error = None

    @contextlib.contextmanager
    def _transaction(self, begin: str, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute(begin)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {action}: {exc}") from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    # The original error says more; sqlite rolls back on close anyway.
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: {action}: {exc}") from exc
                raise

    # -- entries -------------------------------------------------------------------------------------

    def add(self, article: Article, *, key: str, url_key: str) -> AddResult:
        """Store one sighting of a story, committed before returning (see `add_many` for the rules)."""
        return self.add_many([(article, key, url_key)])[0]

    def add_many(self, sightings: Sequence[tuple[Article, str, str]]) -> list[AddResult]:
        """Store (article, key, url_key) sightings in ONE transaction, committed before returning: one disk
        sync per site run instead of one per article. Each sighting, in order:

        1. `url_key` is a stored entry's URL, seen by the same site: merge (see `_merge`). A changed field
           gives Updated (updated = now, key = the new key); otherwise Duplicate. Seen by another site:
           Duplicate, unchanged, recorded as that site's source.
        2. `url_key` was already recorded as another sighting (source) of an entry: Duplicate of that
           entry, unchanged (first-seen wins, even if this copy's headline was edited since).
        3. An entry has `key` and the key is not generic (see `_copied_from`): Duplicate; the first-seen
           entry keeps its id and fields, and this URL and site are recorded once as a source.
        4. Otherwise Added, with an id minted here once ("urn:uuid:<uuid4>").
        """
        if not sightings:
            return []
        now = _iso(self._now())
        what = f"add {sightings[0][0].url!r}" if len(sightings) == 1 else f"add {len(sightings)} articles"
        with self._write(what) as db:
            return [self._add(db, a, key=_text(key), url_key=_text(url_key), now=now) for a, key, url_key in sightings]

    def _add(self, db: sqlite3.Connection, article: Article, *, key: str, url_key: str, now: str) -> AddResult:
        row = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE url_key = ?", (url_key,)).fetchone()
        if row is not None:
            if row[1] != _text(article.site):
                # Another site lists the same URL: first-seen wins, or two sites' extractions of one page
                # would overwrite each other on every run; the sighting makes it part of that site's feed.
                self._record_source(db, row[0], article, url_key=url_key, now=now)
                return Duplicate(self._entry_by_id(db, row[0]), article.url)
            return self._merge(db, row, article, key=key, now=now)
        source = db.execute("SELECT entry_id FROM sources WHERE url_key = ?", (url_key,)).fetchone()
        if source is not None:
            self._record_source(db, source[0], article, url_key=url_key, now=now)
            return Duplicate(self._entry_by_id(db, source[0]), article.url)
        row = self._copied_from(db, article, key=key, now=now)
        if row is not None:
            self._record_source(db, row[0], article, url_key=url_key, now=now)
            log.debug("site=%s duplicate of entry=%s url=%s", article.site, row[0], article.url)
            return Duplicate(self._entry_by_id(db, row[0]), article.url)
        entry_id = f"urn:uuid:{uuid.uuid4()}"
        db.execute(
            f"INSERT INTO entries ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry_id, _text(article.site), key, url_key, *_article_values(article), now, now),
        )
        self._touch(db, entry_id)
        log.debug("site=%s added entry=%s url=%s", article.site, entry_id, article.url)
        return Added(self._entry_by_id(db, entry_id))

    def _record_source(self, db: sqlite3.Connection, entry_id: str, article: Article, *, url_key: str, now: str) -> None:
        inserted = db.execute(
            "INSERT OR IGNORE INTO sources (url_key, site, entry_id, url, first_seen, sort) "
            "SELECT ?, ?, id, ?, ?, coalesce(published, first_seen) FROM entries WHERE id = ?",
            (url_key, _text(article.site), _text(article.url), now, entry_id),
        )
        if inserted.rowcount:
            # The entry joins this site's feed and gains a link in every feed holding it.
            self._touch(db, entry_id)

    def _touch(self, db: sqlite3.Connection, entry_id: str) -> None:
        """Bump the change counter of every site whose feed shows this entry: its own site and the sites
        that sighted it (sources)."""
        db.execute(
            "INSERT INTO site_versions (site, version) "
            "SELECT site, 1 FROM (SELECT site FROM entries WHERE id = ? UNION SELECT site FROM sources WHERE entry_id = ?) "
            "WHERE true ON CONFLICT (site) DO UPDATE SET version = version + 1",
            (entry_id, entry_id),
        )

    def site_versions(self, sites: Iterable[str]) -> dict[str, int]:
        """Each site's change counter (0 for a site never changed): equal counters, equal feed entries."""
        keys = sorted(set(sites))
        found = dict.fromkeys(keys, 0)
        with self._read("read site versions") as db:
            for chunk in _chunks(keys):
                marks = ", ".join("?" * len(chunk))
                found.update(db.execute(f"SELECT site, version FROM site_versions WHERE site IN ({marks})", chunk))
        return found

    def _copied_from(self, db: sqlite3.Connection, article: Article, *, key: str, now: str) -> tuple[Any, ...] | None:
        """The stored entry that a sighting at a new URL repeats, by canonical key; None for a new story.

        A generic key (`is_generic_key`: "Read more", "Live updates") matches nothing, on any site.
        Across sites a key match is the same story, however late (farms re-post wire copy months after).
        On one site, the same headline at a new URL is the same story moved when it is close in time to the
        site's latest entry with that key (publish dates compared when both have one, else first sight with
        now), and otherwise the next edition of a recurring title.
        """
        if is_generic_key(key):
            return None
        rows: list[tuple[Any, ...]] = db.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE key = ? ORDER BY first_seen, rowid", (key,)
        ).fetchall()
        if not rows:
            return None
        same_site = [r for r in rows if r[1] == _text(article.site)]
        if same_site:
            last = same_site[-1]
            if last[6] and article.published:
                gap = abs(as_utc(article.published) - _time(last[6]))
            else:
                gap = _time(now) - _time(last[12])
            return last if gap < RECURRING_GAP else None
        return rows[0]

    def _merge(self, db: sqlite3.Connection, row: tuple[Any, ...], article: Article, *, key: str, now: str) -> AddResult:
        """A re-sighting of a stored URL by its own site. Text fields take new non-None values (an edited
        headline); the URL keeps its first form (rotating tracking parameters map to one url_key) and a
        known date stays (re-reading "2 hours ago" every run must not move it); the origins of changed
        fields follow them. Only a real change gives Updated."""
        stored = dict(zip(_MERGED, row[4:12], strict=True))
        fresh = dict(zip(_MERGED, _article_values(article), strict=True))
        changes = {
            name: fresh[name]
            for name in ("headline", "author", "summary", "image", "content")
            if fresh[name] and fresh[name] != stored[name]  # "" (no headline on the listing) is no value
        }
        if stored["published"] is None and fresh["published"] is not None:
            changes["published"] = fresh["published"]
        entry_id = row[0]
        key = key or row[2]  # a sighting without a headline (known by its URL) keeps the stored key
        if changes:
            origins = dict(json.loads(stored["origins"] or "[]"))
            new_origins = dict(json.loads(fresh["origins"] or "[]"))
            for name in changes:
                origin_key = "date" if name == "published" else name
                if origin_key in new_origins:
                    origins[origin_key] = new_origins[origin_key]
            changes["origins"] = json.dumps([list(pair) for pair in origins.items()])
            assignments = ", ".join(f"{name} = ?" for name in changes)
            db.execute(
                f"UPDATE entries SET {assignments}, key = ?, updated = ? WHERE id = ?",
                (*changes.values(), key, now, entry_id),
            )
            if "published" in changes:
                db.execute(
                    "UPDATE sources SET sort = (SELECT coalesce(published, first_seen) FROM entries WHERE id = ?) "
                    "WHERE entry_id = ?",
                    (entry_id, entry_id),
                )
            self._touch(db, entry_id)
            log.debug("site=%s updated entry=%s fields=%s", article.site, entry_id, ",".join(changes))
            return Updated(self._entry_by_id(db, entry_id))
        if key != row[2]:
            # A new canonical key for unchanged fields (the canon rules changed): follow it silently, so a
            # canon upgrade does not mark every stored entry as updated.
            db.execute("UPDATE entries SET key = ? WHERE id = ?", (key, entry_id))
        return Duplicate(self._entry_by_id(db, entry_id), article.url)

    def _entry_by_id(self, db: sqlite3.Connection, entry_id: str) -> Entry:
        row = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row, self._sources(db, [entry_id]).get(entry_id, ()))

    def _sources(self, db: sqlite3.Connection, entry_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for chunk in _chunks(entry_ids):
            marks = ", ".join("?" * len(chunk))
            # A source at the entry's own URL (another site listing the same page) adds no link.
            for entry_id, url in db.execute(
                "SELECT s.entry_id, s.url FROM sources s JOIN entries e ON e.id = s.entry_id "
                f"WHERE s.entry_id IN ({marks}) AND s.url_key != e.url_key ORDER BY s.first_seen, s.url",
                chunk,
            ):
                if url not in found.get(entry_id, ()):
                    found.setdefault(entry_id, []).append(url)
        return {entry_id: tuple(urls) for entry_id, urls in found.items()}

    def known_urls(self, site: str, url_keys: Iterable[str]) -> set[str]:
        """Which of these canonical URLs are stored already, as an entry or a source, from any site."""
        return self._present(
            f"look up known URLs for site {site}",
            "SELECT url_key FROM entries WHERE url_key IN ({marks}) UNION SELECT url_key FROM sources WHERE url_key IN ({marks})",
            url_keys,
            lambda chunk: (*chunk, *chunk),
        )

    def filtered_urls(self, site: str, url_keys: Iterable[str]) -> set[str]:
        """Which of these canonical URLs this site's filters rejected before (see `mark_filtered`)."""
        return self._present(
            f"look up filtered URLs for site {site}",
            "SELECT url_key FROM filtered WHERE site = ? AND url_key IN ({marks})",
            url_keys,
            lambda chunk: (site, *chunk),
        )

    def _present(
        self, action: str, query: str, url_keys: Iterable[str], params: Callable[[Sequence[str]], tuple[str, ...]]
    ) -> set[str]:
        """The url_keys a query finds, asked in chunks that stay under SQLite's parameter limit."""
        keys = sorted({_text(k) for k in url_keys})
        found: set[str] = set()
        with self._read(action) as db:
            for chunk in _chunks(keys):
                sql = query.format(marks=", ".join("?" * len(chunk)))
                found.update(r[0] for r in db.execute(sql, params(chunk)))
        return found

    def mark_filtered(self, site: str, url_keys: Iterable[str]) -> None:
        now = _iso(self._now())
        with self._write(f"remember filtered URLs of site {site}") as db:
            db.executemany(
                "INSERT OR IGNORE INTO filtered (url_key, site, seen) VALUES (?, ?, ?)", [(_text(k), site, now) for k in url_keys]
            )

    def entries(self, sites: Sequence[str], limit: int) -> list[Entry]:
        """The newest `limit` entries first seen on these sites or seen there later as a source (so a
        site's own feed never misses a story another site had first), by coalesce(published, first_seen)
        desc, then id. Each story appears once, with the id it got at first sight.

        Cost is flat in history size: per site, two index walks newest first (its entries, its sources) that
        stop after `limit` distinct entries, then a merge of at most 2 x sites x limit rows."""
        if not sites or limit <= 0:
            return []
        found: dict[str, tuple[Any, ...]] = {}
        with self._read(f"read entries of {', '.join(sites)}") as db:
            for site in dict.fromkeys(sites):
                for query in (ENTRIES_OF_SITE, SOURCES_OF_SITE):
                    seen: set[str] = set()
                    # Rows arrive lazily from the index walk; a site with two sightings of one entry repeats
                    # it, so the walk stops at `limit` distinct entries rather than at a row count.
                    with contextlib.closing(db.execute(query, (site,))) as walk:
                        for row in walk:
                            if row[0] not in seen:
                                seen.add(row[0])
                                found.setdefault(row[0], row)
                                if len(seen) >= limit:
                                    break
            # Newest first, ties by id: sort by the tie-break, then (stable) by the key.
            rows = sorted(sorted(found.values(), key=lambda r: str(r[0])), key=lambda r: str(r[-1]), reverse=True)[:limit]
            sources = self._sources(db, [r[0] for r in rows])
        return [_entry(r[:-1], sources.get(r[0], ())) for r in rows]

    def entry_count(self, site: str | None = None) -> int:
        with self._read("count entries") as db:
            if site is None:
                row = db.execute("SELECT count(*) FROM entries").fetchone()
            else:
                row = db.execute("SELECT count(*) FROM entries WHERE site = ?", (site,)).fetchone()
        return int(row[0])

    # -- conditional GET state -----------------------------------------------------------------------

    def validators(self, url: str) -> Validators:
        with self._read(f"read validators of {url!r}") as db:
            row = db.execute("SELECT etag, last_modified FROM validators WHERE url = ?", (_text(url),)).fetchone()
        return Validators() if row is None else Validators(etag=row[0], last_modified=row[1])

    def save_validators(self, url: str, v: Validators) -> None:
        with self._write(f"save validators of {url!r}") as db:
            if v.etag is None and v.last_modified is None:
                db.execute("DELETE FROM validators WHERE url = ?", (_text(url),))
            else:
                db.execute(
                    "INSERT INTO validators (url, etag, last_modified, saved) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, "
                    "last_modified = excluded.last_modified, saved = excluded.saved",
                    (_text(url), _text_or_none(v.etag), _text_or_none(v.last_modified), _iso(self._now())),
                )

    # -- run history ---------------------------------------------------------------------------------

    def host_pauses(self) -> dict[str, datetime]:
        """Hosts paused by Retry-After that have not resumed yet."""
        now = _iso(self._now())
        with self._read("read host pauses") as db:
            return {host: _time(until) for host, until in db.execute("SELECT host, until FROM host_pauses WHERE until > ?", (now,))}

    def save_host_pauses(self, pauses: Mapping[str, datetime]) -> None:
        """Replace the stored pauses with these (expired ones are dropped)."""
        with self._write("save host pauses") as db:
            db.execute("DELETE FROM host_pauses")
            db.executemany("INSERT INTO host_pauses (host, until) VALUES (?, ?)", [(h, _iso(u)) for h, u in pauses.items()])

    def robots_files(self) -> list[tuple[str, datetime, RobotsFile]]:
        with self._read("read robots.txt cache") as db:
            rows = db.execute("SELECT url, fetched, status, body FROM robots").fetchall()
        return [(url, _time(fetched), RobotsFile(status, bytes(body))) for url, fetched, status, body in rows]

    def save_robots_files(self, files: Iterable[tuple[str, datetime, RobotsFile]]) -> None:
        """Replace the kept robots.txt files with these."""
        with self._write("save robots.txt cache") as db:
            db.execute("DELETE FROM robots")
            db.executemany(
                "INSERT INTO robots (url, fetched, status, body) VALUES (?, ?, ?, ?)",
                [(url, _iso(fetched), f.status, f.body) for url, fetched, f in files],
            )

    def record_run(self, report: SiteReport, *, fill: Mapping[str, float] = MappingProxyType({})) -> None:
        """Append one run of one site; keeps the newest RUNS_KEPT runs per site."""
        with self._write(f"record run of site {report.site}") as db:
            db.execute(
                "INSERT INTO runs (site, ok, started, finished, pages, items, new, updated, duplicates, "
                "not_modified, errors, warnings, fill) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    report.site,
                    int(report.ok),
                    _iso(report.started),
                    _iso(report.finished),
                    report.pages,
                    report.items,
                    report.new,
                    report.updated,
                    report.duplicates,
                    report.not_modified,
                    json.dumps(list(report.errors)),
                    json.dumps(list(report.warnings)),
                    json.dumps(dict(sorted(fill.items()))),
                ),
            )
            db.execute(
                "DELETE FROM runs WHERE site = ? AND id <= "
                "(SELECT id FROM runs WHERE site = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (report.site, report.site, RUNS_KEPT),
            )
            # Validators of pages not fetched for a month (old config versions, moved listings) are dead weight.
            db.execute("DELETE FROM validators WHERE saved < ?", (_iso(report.finished - VALIDATORS_KEPT),))

    def last_run(self, site: str) -> RunRecord | None:
        return self._run(site, "")

    def last_good_run(self, site: str) -> RunRecord | None:
        return self._run(site, "AND ok = 1")

    def _run(self, site: str, condition: str) -> RunRecord | None:
        with self._read(f"read runs of site {site}") as db:
            row = db.execute(
                "SELECT site, started, finished, pages, items, new, updated, duplicates, not_modified, "
                f"errors, warnings, fill FROM runs WHERE site = ? {condition} ORDER BY id DESC LIMIT 1",
                (site,),
            ).fetchone()
        if row is None:
            return None
        return RunRecord(
            site=row[0],
            started=_time(row[1]),
            finished=_time(row[2]),
            pages=row[3],
            items=row[4],
            new=row[5],
            updated=row[6],
            duplicates=row[7],
            not_modified=row[8],
            errors=tuple(json.loads(row[9])),
            warnings=tuple(json.loads(row[10])),
            fill=MappingProxyType({str(k): float(v) for k, v in json.loads(row[11]).items()}),
        )

    def consecutive_failures(self, site: str) -> int:
        """Failed runs since the last good one (all of them if none was good)."""
        with self._read(f"count failures of site {site}") as db:
            row = db.execute(
                "SELECT count(*) FROM runs WHERE site = ? AND ok = 0 AND id > "
                "coalesce((SELECT max(id) FROM runs WHERE site = ? AND ok = 1), 0)",
                (site, site),
            ).fetchone()
        return int(row[0])


def _article_values(article: Article) -> tuple[str | None, ...]:
    """The merged fields of an article, in _MERGED order, as stored (text fields capped)."""
    return (
        _text(article.url),
        _text(cap_text(article.headline, HEADLINE_MAX)),
        _iso_or_none(article.published),
        _text_or_none(_capped(article.author, AUTHOR_MAX)),
        _text_or_none(_capped(article.summary, SUMMARY_MAX)),
        _text_or_none(article.image),
        _text_or_none(article.content),
        json.dumps([list(pair) for pair in article.origins]),
    )


def _entry(row: tuple[Any, ...], sources: tuple[str, ...]) -> Entry:
    (entry_id, site, key, _url_key, url, headline, published, author, summary, image, content, origins,
     first_seen, updated) = row  # fmt: skip
    article = Article(
        site=site,
        url=url,
        headline=headline,
        published=None if published is None else _time(published),
        author=author,
        summary=summary,
        image=image,
        content=content,
        origins=tuple((str(name), str(where)) for name, where in json.loads(origins)),
    )
    return Entry(
        id=entry_id, key=key, article=article, first_seen=_time(first_seen), updated=_time(updated), sources=sources
    )
