"""What every part of the store stands on: an engine's transactions (read, write, write retried after a lost
race), the worker's name and the clock. The engines (sqlite.py, postgres.py) implement `_transaction`.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

from feedmaker.errors import StoreError
from feedmaker.models import utcnow
from feedmaker.store.rows import Db

__all__ = ["WRITE_ATTEMPTS", "Transactions", "default_worker"]

log = logging.getLogger(__name__)

# A write that lost a deadlock or serialisation race against another worker is run again this many times.
WRITE_ATTEMPTS = 5
_T = TypeVar("_T")


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

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[Db]:
        """One read transaction: the queries inside see one snapshot (entries and their sources)."""
        with self._transaction(write=False, action=action) as db:
            yield db

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[Db]:
        """One write transaction; its failure is kept in `write_error` until a write commits."""
        try:
            with self._transaction(write=True, action=action) as db:
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
