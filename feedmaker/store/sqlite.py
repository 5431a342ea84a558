"""The embedded engine: one sqlite3 file (or ":memory:"), for a single machine. The default.

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
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from feedmaker.errors import StoreError
from feedmaker.models import utcnow
from feedmaker.store.base import Cursor, Store

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteStore"]

BUSY_TIMEOUT_MS = 5000

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
        # Site-run leases: which worker runs a site for one schedule slot (see Store.claim_run), and which
        # worker ran each recorded run, for the status page.
        """CREATE TABLE leases (
            site TEXT NOT NULL,
            slot TEXT NOT NULL,
            worker TEXT NOT NULL,
            claimed TEXT NOT NULL,
            expires TEXT NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (site, slot)
        )""",
        "ALTER TABLE runs ADD COLUMN worker TEXT",
    ),
    (
        # One request in flight per host and the delay between requests, across every worker.
        """CREATE TABLE host_turns (
            host TEXT PRIMARY KEY,
            holder TEXT,
            held_until TEXT NOT NULL,
            next_allowed TEXT NOT NULL
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


class _Db:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)


class SqliteStore(Store):
    """A Store in one sqlite file. A lock serialises the calls of several threads; other processes may
    use the same file concurrently (the busy timeout waits for their write lock)."""

    JOIN_IN_ORDER = "CROSS JOIN"

    def __init__(
        self, path: str | Path, *, now: Callable[[], datetime] = utcnow, worker: str | None = None
    ) -> None:
        super().__init__(str(path), now=now, worker=worker)
        self._lock = threading.RLock()
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

    def close(self) -> None:
        with self._lock:
            self._db.close()

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
    def _transaction(self, *, write: bool, action: str) -> Iterator[_Db]:
        # IMMEDIATE takes the write lock up front, so the busy timeout applies and a read-then-write never
        # fails halfway with SQLITE_BUSY.
        begin = "BEGIN IMMEDIATE" if write else "BEGIN"
        with self._lock:
            try:
                self._db.execute(begin)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {action}: {exc}") from exc
            try:
                yield _Db(self._db)
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    # The original error says more; sqlite rolls back on close anyway.
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: {action}: {exc}") from exc
                raise
