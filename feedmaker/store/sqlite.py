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
from feedmaker.store import schema
from feedmaker.store.base import Cursor, Db, Store

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteStore"]

BUSY_TIMEOUT_MS = 5000

# Each step is applied in one transaction together with `PRAGMA user_version = <its index + 1>`.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        schema.entries_table(""),
        "CREATE INDEX entries_key ON entries (key, first_seen)",
        "CREATE INDEX entries_site_newest ON entries (site, coalesce(published, first_seen) DESC, id)",
        """CREATE TABLE sources (
            url_key TEXT PRIMARY KEY,
            entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            site TEXT NOT NULL,
            first_seen TEXT NOT NULL
        )""",
        *schema.SOURCES_INDEXES,
        schema.VALIDATORS,
        schema.runs_table("INTEGER PRIMARY KEY"),
        "CREATE INDEX runs_site ON runs (site, id)",
    ),
    (
        # Hosts paused by Retry-After, so the pause outlives the process (`run --once` from cron).
        schema.HOST_PAUSES,
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
        schema.sources_table("sources_by_site"),
        "INSERT INTO sources_by_site (url_key, site, entry_id, url, first_seen) "
        "SELECT url_key, site, entry_id, url, first_seen FROM sources",
        "DROP TABLE sources",
        "ALTER TABLE sources_by_site RENAME TO sources",
        *schema.SOURCES_INDEXES,
    ),
    (
        # New items a site's filters rejected after reading their article page: remembered, so that they are
        # not fetched again every run, nor take the place of later items under max_articles.
        schema.FILTERED,
    ),
    (
        # Site-run leases: which worker runs a site for one schedule slot (see Store.claim_run), and which
        # worker ran each recorded run, for the status page.
        schema.LEASES,
        "ALTER TABLE runs ADD COLUMN worker TEXT",
    ),
    (
        # One request in flight per host and the delay between requests, across every worker.
        schema.HOST_TURNS,
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
        *schema.SOURCES_SORT,
    ),
    (
        # Each sighting keeps its own fields: a site's feed shows its own headline, link and date.
        *schema.SOURCES_FIELDS,
    ),
    (
        # Rendered feeds, so that every server on a shared store answers alike (store/feeds.py). Alone,
        # feedmaker serves its files and leaves this empty; kept in both engines so that the schema is one.
        *schema.feeds_tables("BLOB"),
    ),
    (
        # Dates in the page's offset, modified dates, and when each feed was first written.
        *schema.DATES,
    ),
    (
        # Claims on robots.txt fetches: one worker fetches a host's robots.txt for all (Coordination).
        schema.ROBOTS_CLAIMS,
    ),
    (
        # Validators by the time they were saved, for the prune every run does.
        schema.VALIDATORS_SAVED,
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
            self._migrate(MIGRATIONS)
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"{self.path}: cannot prepare database: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _schema_version(self, db: Db) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def _mark_schema_version(self, db: Db, version: int) -> None:
        db.execute(f"PRAGMA user_version = {int(version)}")

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
