"""The shared engine: one PostgreSQL database for any number of feedmaker daemons and `run --once` workers.

psycopg 3 with a psycopg_pool connection pool: the store is called from several threads at once (one per
site run in flight), each call borrows a connection for one transaction. A connection that broke (the
server restarted) is noticed when it is borrowed and replaced. A call waits up to POOL_WAIT for a busy
pool, but fails as soon as the pool's connection attempts fail: the server is away, and the store says so
once and probes it with backoff (transactions.py), each probe waiting AWAY_WAIT; /healthz says `failing`
meanwhile.

Transactions run at READ COMMITTED; the add rules in base.py rely on unique constraints for the races
between workers (`story_keys` for a canonical key, entries.url_key for a URL), and a transaction that the
server aborts to break a deadlock between two workers runs again (`_retryable`).

Migrations: the `schema_version` table lists the steps applied. Each step runs in one transaction that
holds a transaction-level advisory lock, re-reads the version, applies its statements and records its
number, so a crash leaves a whole version and two workers starting at once apply each step once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Self

import psycopg
import psycopg.conninfo
import psycopg.errors
import psycopg_pool
from psycopg.rows import TupleRow

from feedmaker.errors import StoreError
from feedmaker.models import utcnow
from feedmaker.store import schema
from feedmaker.store.base import Cursor, Db, Store

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore", "display_url"]

log = logging.getLogger(__name__)

POOL_SIZE = 8  # connections per process: site runs in flight plus the server's reads
POOL_WAIT = 10.0  # seconds a call waits for a busy pool's connection before it fails
AWAY_WAIT = 1.0  # seconds a call waits for a connection once the store is known away (each probe)
CONNECT_TIMEOUT = 5  # seconds per connection attempt
# The pool's own reconnection attempts (1 s, then doubling) give up after this long; the next call's demand
# starts a new one at once, so a probe (every PROBE_MAX s at most) finds a server back without the pool's
# backoff growing to minutes over a long outage.
RECONNECT_TIMEOUT = 10.0
# Class 08 (connection exception) and 57P (operator intervention: admin shutdown, crash shutdown, cannot
# connect now) mean the server is away; every other SQLSTATE is an answer.
_AWAY_STATES = ("08", "57P")
# Any fixed number: it names the advisory lock that serialises migrations across workers.
MIGRATION_LOCK = 0x66656564  # "feed"

# The schema of sqlite's MIGRATIONS, in PostgreSQL types (BYTEA, identity columns); times are the same
# fixed-width UTC text, so that both engines compare and sort them alike.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        schema.entries_table("seq BIGINT GENERATED ALWAYS AS IDENTITY,"),
        "CREATE INDEX entries_key ON entries (key, first_seen)",
        "CREATE INDEX entries_site_newest ON entries (site, (coalesce(published, first_seen)) DESC, id)",
        schema.sources_table("sources"),
        *schema.SOURCES_INDEXES,
        schema.VALIDATORS,
        schema.runs_table("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
        "CREATE INDEX runs_site ON runs (site, id)",
        schema.HOST_PAUSES,
        """CREATE TABLE robots (
            url TEXT PRIMARY KEY,
            fetched TEXT NOT NULL,
            status INTEGER NOT NULL,
            body BYTEA NOT NULL
        )""",
        schema.FILTERED,
        # One row per canonical key ever minted: its row lock is what a worker holds while it decides
        # whether a sighting is a new story (see base.py), so two workers never mint the same story twice.
        """CREATE TABLE story_keys (
            key TEXT PRIMARY KEY,
            claimed TEXT NOT NULL
        )""",
    ),
    (
        # As sqlite's step 6: site-run leases and the worker of each run.
        schema.LEASES,
        "ALTER TABLE runs ADD COLUMN worker TEXT",
    ),
    (
        # One request in flight per host and the delay between requests, across every worker.
        schema.HOST_TURNS,
    ),
    (
        # As sqlite's step 8: per-site change counters and the sources' sort key with its index.
        """CREATE TABLE site_versions (
            site TEXT PRIMARY KEY,
            version BIGINT NOT NULL
        )""",
        *schema.SOURCES_SORT,
    ),
    (
        # As sqlite's step 9: each sighting keeps its own fields.
        *schema.SOURCES_FIELDS,
    ),
    (
        # As sqlite's step 10: rendered feeds, served alike by every instance.
        *schema.feeds_tables("BYTEA"),
    ),
    (
        # As sqlite's step 11: dates in the page's offset, modified dates, feeds' first writes.
        *schema.DATES,
    ),
    (
        # As sqlite's step 12: claims on robots.txt fetches.
        schema.ROBOTS_CLAIMS,
    ),
    (
        # As sqlite's step 13: validators by the time they were saved.
        schema.VALIDATORS_SAVED,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def display_url(conninfo: str) -> str:
    """The connection string without its password, for messages and the status page."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable connection string)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class _Db:
    """A psycopg connection speaking the store's `?` placeholders (no SQL of ours holds a literal ? or %)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._conn.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)


class _Connection(psycopg.Connection[TupleRow]):
    """The pool's connections: a failed attempt to open one is told to `on_failure` (the pool only logs it)."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        on_failure: Callable[[psycopg.Error], None] = kwargs.pop("on_failure")
        try:
            return super().connect(conninfo, **kwargs)
        except psycopg.Error as exc:
            on_failure(exc)
            raise


class PostgresStore(Store):
    """A Store in a PostgreSQL database shared by several workers."""

    ROW_ORDER = "seq"
    SHARED = True

    def __init__(
        self,
        conninfo: str,
        *,
        now: Callable[[], datetime] = utcnow,
        worker: str | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        super().__init__(display_url(conninfo), now=now, worker=worker)
        # Failed connection attempts (the pool's, in its threads) and the last one's reason, for `_borrow`.
        self._connect_failures = 0
        self._connect_error = ""
        self._connections: psycopg_pool.ConnectionPool[_Connection] = psycopg_pool.ConnectionPool(
            conninfo,
            connection_class=_Connection,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=POOL_WAIT,
            reconnect_timeout=RECONNECT_TIMEOUT,
            check=psycopg_pool.ConnectionPool.check_connection,
            kwargs={"connect_timeout": CONNECT_TIMEOUT, "on_failure": self._connect_failed},
            name="feedmaker",
        )
        try:
            self._connections.open(wait=True, timeout=POOL_WAIT)
        except psycopg.Error as exc:
            self._connections.close()
            raise StoreError(f"{self.path}: cannot connect: {exc}") from exc
        try:
            self._migrate(MIGRATIONS)
        except BaseException:
            self._connections.close()
            raise

    def close(self) -> None:
        self._connections.close()

    def _schema_version(self, db: Db) -> int:
        # The advisory lock serialises workers starting at once until this step's transaction ends.
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        return int(db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    def _mark_schema_version(self, db: Db, version: int) -> None:
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    @contextlib.contextmanager
    def _transaction(self, *, write: bool, action: str) -> Iterator[Db]:
        try:
            conn = self._borrow()
            try:
                with conn, conn.transaction():
                    yield _Db(conn)
            finally:
                self._connections.putconn(conn)
        except psycopg.Error as exc:
            raise StoreError(f"{self.path}: {action}: {exc}") from exc

    def _connect_failed(self, exc: psycopg.Error) -> None:
        self._connect_error = " ".join(str(exc).split())
        self._connect_failures += 1

    def _borrow(self) -> _Connection:
        """A connection within POOL_WAIT (AWAY_WAIT while the store is away), asked for a second at a time:
        once a connection attempt failed meanwhile, the server is away and waiting longer tells nothing."""
        limit = AWAY_WAIT if self.unreachable_since is not None else POOL_WAIT
        started = time.monotonic()
        failures = self._connect_failures
        while True:
            left = limit - (time.monotonic() - started)
            try:
                return self._connections.getconn(timeout=min(left, AWAY_WAIT))
            except psycopg_pool.PoolTimeout:
                if self._connect_failures > failures:
                    # No SQLSTATE: a connection error (`_connection_error`), with the reason the attempt gave.
                    raise psycopg.OperationalError(f"cannot connect: {self._connect_error}") from None
                if left <= AWAY_WAIT:
                    raise

    def _retryable(self, exc: BaseException | None) -> bool:
        return isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)

    def _connection_error(self, exc: BaseException | None) -> bool:
        if isinstance(exc, psycopg_pool.PoolTimeout):
            return True
        if isinstance(exc, psycopg.errors.TransactionRollback):
            return False  # a lost race (40001, 40P01) is run again (`_retryable`), not an outage
        if not isinstance(exc, psycopg.OperationalError):
            return False
        return exc.sqlstate is None or exc.sqlstate.startswith(_AWAY_STATES)

    def _claim_key(self, db: Db, key: str, now: str) -> None:
        # The upsert takes the key's row lock until commit: a second worker deciding about the same story
        # waits here, then its look-up (a new snapshot at READ COMMITTED) sees the entry the first minted.
        db.execute(
            "INSERT INTO story_keys (key, claimed) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET claimed = excluded.claimed",
            (key, now),
        )
