"""What every part of the store stands on: an engine's transactions (read, write, write retried after a lost
race), whether the database can be reached, the worker's name and the clock. The engines (sqlite.py,
postgres.py) implement `_transaction`, and say which of their errors mean the database cannot be reached
(`_connection_error`).

Reachability: the first call that cannot reach the database (server restarting, network partition) marks
the store away and logs one WARNING. While it is away, calls fail at once with StoreError instead of each
waiting for a connection, and one call in a while goes through as a probe: after PROBE_FIRST seconds, then
twice as long after each failed probe, up to PROBE_MAX. The first call that reaches the database again
logs one INFO and clears the outage from `write_error` (which /healthz reports as failing meanwhile).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

from feedmaker.errors import StoreError
from feedmaker.models import utcnow
from feedmaker.store.rows import Db

__all__ = ["PROBE_FIRST", "PROBE_MAX", "WRITE_ATTEMPTS", "Transactions", "default_worker"]

log = logging.getLogger(__name__)

# A write that lost a deadlock or serialisation race against another worker is run again this many times.
WRITE_ATTEMPTS = 5
# While the database is away, a probe goes through after this long, then twice as long each time, up to
# PROBE_MAX: a restart is noticed within a second, and a long partition costs one attempt per 10 s.
PROBE_FIRST = 0.5
PROBE_MAX = 10.0
_T = TypeVar("_T")


@dataclass(slots=True, kw_only=True)
class _Outage:
    """The database cannot be reached since `since`; the next probe may go through at `probe_at`."""

    since: datetime  # the store's clock, for the status page
    started: float  # monotonic, for "reachable again after N s"
    reason: str  # the error that told, on one line
    cause: BaseException | None  # the engine's error, the cause of each call refused meanwhile
    wait: float  # seconds from the last failed probe to the next one
    probe_at: float  # monotonic


def default_worker() -> str:
    """This process's name in leases and run records: FEEDMAKER_WORKER, else host:pid."""
    return os.environ.get("FEEDMAKER_WORKER") or f"{socket.gethostname()}:{os.getpid()}"


class Transactions(abc.ABC):
    """An open database: transactions, the clock, and who this worker is. Every method of the store built
    on it is atomic and safe to call from several threads."""

    # Whether other machines' workers use this database too, so site runs are claimed by lease (schedule.py).
    SHARED = False

    def __init__(self, path: str, *, now: Callable[[], datetime] = utcnow, worker: str | None = None) -> None:
        self.path = path  # where the database is, for messages (never with a password)
        self.worker = worker or default_worker()
        self._now = now
        # The last write transaction's failure (disk full, read-only file, server gone); None once one
        # commits. The daemon's /healthz reports it: a store that cannot write keeps nothing new.
        self.write_error: StoreError | None = None
        self._outage: _Outage | None = None  # set while the database cannot be reached
        self._outage_lock = threading.Lock()
        self._clock: Callable[[], float] = time.monotonic  # probe times; tests replace it

    # -- lifecycle -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @abc.abstractmethod
    def _transaction(self, *, write: bool, action: str) -> contextlib.AbstractContextManager[Db]:
        """One transaction, committed when the block ends and rolled back on any error; the engine's
        errors come out as StoreError naming the action, with the engine's error as the cause."""

    def _schema_version(self, db: Db) -> int:
        """The number of migration steps applied (in the transaction of the step about to be applied)."""
        raise NotImplementedError

    def _mark_schema_version(self, db: Db, version: int) -> None:
        """Record that step `version` is applied, in the same transaction as its statements."""
        raise NotImplementedError

    def _migrate(self, migrations: Sequence[Sequence[str]]) -> None:
        """Apply the steps not applied yet, each in its own write transaction that re-reads the version
        first, so a crash leaves whole steps and two processes starting at once apply each step once. A
        database newer than `migrations` is refused rather than written by code that does not know it."""
        newest = len(migrations)
        for version, statements in enumerate(migrations, start=1):
            with self._write(f"migrate to schema version {version}") as db:
                current = self._schema_version(db)
                if current > newest:
                    raise StoreError(
                        f"{self.path}: schema version {current} is newer than this feedmaker ({newest})"
                    )
                if current >= version:
                    continue
                for statement in statements:
                    db.execute(statement)
                self._mark_schema_version(db, version)

    def _retryable(self, exc: BaseException | None) -> bool:
        """Whether a failed write lost a race another worker won, so that running it again can succeed."""
        return False

    def _connection_error(self, exc: BaseException | None) -> bool:
        """Whether the engine's error says the database cannot be reached (server down or restarting, network
        gone), rather than that it refused this transaction. An embedded database is never away."""
        return False

    # -- reachability (see the module docstring) -------------------------------------------------------

    @property
    def unreachable_since(self) -> datetime | None:
        """When the database was found unreachable; None while it answers."""
        outage = self._outage
        return None if outage is None else outage.since

    @contextlib.contextmanager
    def _reaching(self, action: str) -> Iterator[bool]:
        """Around one transaction: refused at once while the database is away and no probe is due; marks
        the store away or back by how the transaction ended. Inside: whether the store is away (this
        transaction is a probe)."""
        probing = self._let_through(action)
        try:
            yield probing
        except StoreError as exc:
            if self._connection_error(exc.__cause__):
                self._lost(exc, probing=probing)
            else:
                self._reached()  # the database answered, if only to refuse
            raise
        self._reached()

    def _let_through(self, action: str) -> bool:
        if self._outage is None:
            return False
        with self._outage_lock:
            outage = self._outage
            if outage is None:
                return False
            now = self._clock()
            if now < outage.probe_at:
                raise StoreError(
                    f"{self.path}: {action}: store unreachable since {outage.since.isoformat(timespec='seconds')}"
                    f" ({outage.reason}); next try in {outage.probe_at - now:.1f} s"
                ) from outage.cause
            # This call probes; the others meanwhile fail at once, until the probe's answer or its wait ends.
            outage.probe_at = now + outage.wait
            return True

    def _lost(self, exc: StoreError, *, probing: bool) -> None:
        reason = " ".join(str(exc.__cause__ or exc).split())
        with self._outage_lock:
            # Every failure while away says the same thing; /healthz shows it until the database is back.
            self.write_error = exc
            outage = self._outage
            if outage is None:
                self._outage = _Outage(
                    since=self._now(), started=self._clock(), reason=reason, cause=exc.__cause__,
                    wait=PROBE_FIRST, probe_at=self._clock() + PROBE_FIRST,
                )  # fmt: skip
                log.warning("store unreachable (%s): %s; retrying with backoff", self.path, reason)
            elif probing:
                outage.wait = min(outage.wait * 2, PROBE_MAX)
                outage.probe_at = self._clock() + outage.wait

    def _reached(self) -> None:
        if self._outage is None:
            return
        with self._outage_lock:
            outage, self._outage = self._outage, None
            if outage is None:
                return
            if self.write_error is not None and self._connection_error(self.write_error.__cause__):
                self.write_error = None
            log.info("store reachable again (%s) after %.0f s", self.path, self._clock() - outage.started)

    # -- transactions ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[Db]:
        """One read transaction: the queries inside see one snapshot (entries and their sources)."""
        with self._reaching(action), self._transaction(write=False, action=action) as db:
            yield db

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[Db]:
        """One write transaction; its failure is kept in `write_error` until a write commits."""
        try:
            with self._reaching(action), self._transaction(write=True, action=action) as db:
                yield db
        except StoreError as exc:
            self.write_error = exc
            raise
        self.write_error = None

    def _write_retrying(self, action: str, work: Callable[[Db], _T]) -> _T:
        """`work` in one write transaction, run again when it lost a race (a deadlock between two
        workers' add_many: the database aborts one of them, and it succeeds once the other committed)."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._write(action) as db:
                    return work(db)
            except StoreError as exc:
                if attempt == WRITE_ATTEMPTS or not self._retryable(exc.__cause__):
                    raise
                log.info("store %s lost a race attempt=%d reason=%s", action, attempt, exc.__cause__)
        raise AssertionError("unreachable")
