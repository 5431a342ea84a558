"""Site-run leases on a shared store: of every daemon and `run --once` worker on one database, exactly one
runs a site for a schedule slot (the interval-long window of epoch time the run falls in, so every worker
names the same slot whatever its own jitter or cron minute).

`held_run` claims the (site, slot) lease, renews it every third of its length while the run lasts and
marks it done at the end; a run cancelled (shutdown) or crashed gives the slot back at once. A worker that
finds the lease held waits for it: when the holder finishes, nobody runs the slot again; when the holder
dies (its lease lapses unrenewed), the waiter takes the run over, until the slot ends. While the store is
unreachable the waiter keeps asking, so a run whose holder lost the database is still taken over once it
is back. schedule.py's SiteRunner and cli.py's `run --once` both run sites through it.

The lease is LEASE long, or FEEDMAKER_LEASE seconds (`lease_length`): a shorter lease hands a dead worker's
sites over sooner, at the cost of more renewals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta

from feedmaker.config import Schedule, SiteConfig
from feedmaker.errors import ConfigError, FeedmakerError
from feedmaker.models import utcnow
from feedmaker.store import Store
from feedmaker.store.history import HELD_RUN, HeldRun

__all__ = ["LEASE", "LEASE_VAR", "Leases", "held_run", "lease_length", "slot_start"]

log = logging.getLogger(__name__)

# A site run's lease: renewed every third of it, so a worker that dies mid-run gives its site up to
# another worker within this time.
LEASE = timedelta(seconds=60)
LEASE_VAR = "FEEDMAKER_LEASE"
LEASE_RANGE = (1, 86400)  # seconds: a renewal a third of a second apart at least, a day at most
# While the store cannot be reached, a waiter asks again after this long (then twice that, up to a quarter
# lease): one failed claim must not cost the slot, nor a dead database a busy loop.
RETRY_FIRST = 0.5


def lease_length(environ: Mapping[str, str] = os.environ) -> timedelta:
    """FEEDMAKER_LEASE (whole seconds) when set, else LEASE. Raises ConfigError naming the variable."""
    value = environ.get(LEASE_VAR, "").strip()
    if not value:
        return LEASE
    low, high = LEASE_RANGE
    if not value.isdigit() or not low <= int(value) <= high:
        raise ConfigError(LEASE_VAR, "", f"must be whole seconds from {low} to {high}, got {value!r}")
    return timedelta(seconds=int(value))


def slot_start(schedule: Schedule, now: datetime) -> datetime:
    """The schedule slot a run at `now` belongs to: the interval-long window of epoch time holding it."""
    interval = schedule.seconds_between_runs(now)
    return datetime.fromtimestamp(math.floor(now.timestamp() / interval) * interval, UTC)


@contextlib.asynccontextmanager
async def held_run(store: Store, site: SiteConfig, slot: datetime, lease: timedelta) -> AsyncIterator[bool]:
    """True inside when this worker holds the run of `site` for `slot` (and renews it meanwhile); False
    when another worker ran it, or the slot ended first. The lease is done when the block ends normally,
    and released at once when it raises (cancelled at shutdown, a crash)."""
    if not await _claim(store, site, slot, lease):
        yield False
        return
    renewing = asyncio.create_task(_renew(store, site.id, slot, lease))
    # record_run marks the lease done with the run, and refuses once another worker holds it.
    held = HELD_RUN.set(HeldRun(site=site.id, slot=slot, worker=store.worker))
    done = False
    try:
        yield True
        done = True
    finally:
        HELD_RUN.reset(held)
        renewing.cancel()
        await _finish(store, site.id, slot, done=done)


async def _claim(store: Store, site: SiteConfig, slot: datetime, lease: timedelta) -> bool:
    end = slot + timedelta(seconds=site.schedule.seconds_between_runs(slot))
    quarter = lease.total_seconds() / 4
    retry = RETRY_FIRST
    while True:
        try:
            claim = await asyncio.to_thread(store.claim_run, site.id, slot, lease=lease)
        except FeedmakerError as exc:
            if utcnow() + timedelta(seconds=retry) >= end:
                level = logging.DEBUG if store.unreachable_since is not None else logging.WARNING
                log.log(level, "site=%s run skipped: cannot claim it reason=%s", site.id, exc)
                return False
            # The store says once that it is away (transactions.py); each waiting site says nothing more.
            await asyncio.sleep(retry)
            retry = min(retry * 2, quarter)
            continue
        retry = RETRY_FIRST
        if claim.won:
            return True
        if claim.done or claim.expires >= end:
            log.debug("site=%s slot=%s run by worker=%s", site.id, slot.isoformat(), claim.worker)
            return False
        # The holder may die: ask again as its lease lapses (it renews it while alive), and at least every
        # quarter lease, so a finished run releases the waiters soon.
        wait = (claim.expires - utcnow()).total_seconds()
        await asyncio.sleep(min(max(wait, 0.0) + lease.total_seconds() / 20, quarter))


async def _renew(store: Store, site_id: str, slot: datetime, lease: timedelta) -> None:
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        try:
            kept = await asyncio.to_thread(store.renew_run, site_id, slot, lease=lease)
        except FeedmakerError as exc:
            log.debug("site=%s lease not renewed reason=%s", site_id, exc)
            continue
        if not kept:
            log.warning(
                "site=%s lease lost slot=%s: another worker took the run over", site_id, slot.isoformat()
            )
            return


async def _finish(store: Store, site_id: str, slot: datetime, *, done: bool) -> None:
    try:
        await asyncio.to_thread(store.finish_run, site_id, slot, done=done)
    except FeedmakerError as exc:
        # The lease lapses by itself; another worker may then run the slot again (at worst twice, and the
        # store's unique constraints keep each story once). A store away has said so once already.
        level = logging.DEBUG if store.unreachable_since is not None else logging.WARNING
        log.log(level, "site=%s lease not released reason=%s", site_id, exc)


class Leases:
    """`run --once`'s leases: each site's run for the slot it falls in now, held as a daemon holds it; the
    sites another worker ran are told to `on_skip` (for the summary)."""

    def __init__(
        self,
        store: Store,
        *,
        lease: timedelta | None = None,
        now: Callable[[], datetime] = utcnow,
        on_skip: Callable[[str], None] | None = None,
    ) -> None:
        self.store, self.lease, self.now = store, lease or lease_length(), now
        self.on_skip = on_skip  # called with each site id another worker ran this slot

    @contextlib.asynccontextmanager
    async def hold(self, site: SiteConfig) -> AsyncIterator[bool]:
        async with held_run(self.store, site, slot_start(site.schedule, self.now()), self.lease) as held:
            if not held and self.on_skip is not None:
                self.on_skip(site.id)
            yield held
