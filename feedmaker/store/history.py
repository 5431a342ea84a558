"""What past runs left behind: run records (the status page, drift and failure counts) and conditional-GET
validators of fetched pages.

On a shared store a run is recorded only by the worker that holds its lease (`HELD_RUN`, set by leases.py's
held_run): a worker whose lease lapsed while the database was away, and was taken over, must not record the
slot's run beside the new holder's, so the record and the lease's `done` are written in one transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from feedmaker.models import SiteReport, Validators
from feedmaker.store.rows import Db, clean, clean_or_none, from_iso, iso
from feedmaker.store.transactions import Transactions

__all__ = ["HELD_RUN", "RUNS_KEPT", "VALIDATORS_KEPT", "HeldRun", "History", "RunRecord"]

log = logging.getLogger(__name__)

RUNS_KEPT = 500  # run records kept per site; enough for drift and failure history
VALIDATORS_KEPT = timedelta(days=30)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord(SiteReport):
    """A stored SiteReport plus the share of items in which each watched field was filled."""

    fill: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    # Which feedmaker process ran it (None: recorded before workers were named); not part of what ran.
    worker: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldRun:
    """leases -> record_run: the lease the run in this context holds."""

    site: str
    slot: datetime
    worker: str


# Set by held_run around a leased run (an asyncio task's context, copied into asyncio.to_thread); unset
# for runs that need no lease (one daemon alone on its store).
HELD_RUN: ContextVar[HeldRun | None] = ContextVar("HELD_RUN", default=None)


class History(Transactions):
    """Run records and validators (see the module docstring)."""

    # -- conditional GET state -----------------------------------------------------------------------

    def validators(self, url: str) -> Validators:
        with self._read(f"read validators of {url!r}") as db:
            row = db.execute(
                "SELECT etag, last_modified FROM validators WHERE url = ?", (clean(url),)
            ).fetchone()
        return Validators() if row is None else Validators(etag=row[0], last_modified=row[1])

    def save_validators(self, url: str, v: Validators) -> None:
        with self._write(f"save validators of {url!r}") as db:
            self._save_validators(db, url, v)

    def _save_validators(self, db: Db, url: str, v: Validators) -> None:
        if v.etag is None and v.last_modified is None:
            db.execute("DELETE FROM validators WHERE url = ?", (clean(url),))
        else:
            db.execute(
                "INSERT INTO validators (url, etag, last_modified, saved) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, "
                "last_modified = excluded.last_modified, saved = excluded.saved",
                (clean(url), clean_or_none(v.etag), clean_or_none(v.last_modified), iso(self._now())),
            )

    # -- run history ---------------------------------------------------------------------------------

    def record_run(self, report: SiteReport, *, fill: Mapping[str, float] = MappingProxyType({})) -> bool:
        """Append one run of one site; keeps the newest RUNS_KEPT runs per site. Under a lease (HELD_RUN)
        the lease is marked done in the same transaction, and False (nothing written) says that this worker
        no longer holds it: another worker took the slot's run over."""
        held = HELD_RUN.get()
        recorded = self._write_retrying(
            f"record run of site {report.site}", lambda db: self._record_run(db, report, fill, held)
        )
        if not recorded and held is not None:
            log.warning(
                "site=%s run not recorded: lease of slot=%s lost to another worker",
                report.site,
                held.slot.isoformat(),
            )
        return recorded

    def _record_run(
        self, db: Db, report: SiteReport, fill: Mapping[str, float], held: HeldRun | None
    ) -> bool:
        if held is not None and held.site == report.site:
            kept = db.execute(
                "UPDATE leases SET done = 1, expires = ? WHERE site = ? AND slot = ? AND worker = ? AND done = 0",
                (iso(self._now()), held.site, iso(held.slot), held.worker),
            ).rowcount
            if not kept:
                return False
        db.execute(
            "INSERT INTO runs (site, ok, started, finished, pages, items, new, updated, duplicates, "
            "not_modified, errors, warnings, fill, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                report.site,
                int(report.ok),
                iso(report.started),
                iso(report.finished),
                report.pages,
                report.items,
                report.new,
                report.updated,
                report.duplicates,
                report.not_modified,
                json.dumps(list(report.errors)),
                json.dumps(list(report.warnings)),
                json.dumps(dict(sorted(fill.items()))),
                self.worker,
            ),
        )
        db.execute(
            "DELETE FROM runs WHERE site = ? AND id <= "
            "(SELECT id FROM runs WHERE site = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (report.site, report.site, RUNS_KEPT),
        )
        # Validators of pages not fetched for a month (old config versions, moved listings) are dead weight.
        db.execute("DELETE FROM validators WHERE saved < ?", (iso(report.finished - VALIDATORS_KEPT),))
        return True

    def last_run(self, site: str) -> RunRecord | None:
        return self._run(site, "")

    def last_good_run(self, site: str) -> RunRecord | None:
        return self._run(site, "AND ok = 1")

    def _run(self, site: str, condition: str) -> RunRecord | None:
        with self._read(f"read runs of site {site}") as db:
            row = db.execute(
                "SELECT site, started, finished, pages, items, new, updated, duplicates, not_modified, "
                f"errors, warnings, fill, worker FROM runs WHERE site = ? {condition} ORDER BY id DESC LIMIT 1",
                (site,),
            ).fetchone()
        if row is None:
            return None
        return RunRecord(
            site=row[0],
            started=from_iso(row[1]),
            finished=from_iso(row[2]),
            pages=row[3],
            items=row[4],
            new=row[5],
            updated=row[6],
            duplicates=row[7],
            not_modified=row[8],
            errors=tuple(json.loads(row[9])),
            warnings=tuple(json.loads(row[10])),
            fill=MappingProxyType({str(k): float(v) for k, v in json.loads(row[11]).items()}),
            worker=row[12],
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
