"""Scheduling stage: SiteConfig.schedule -> one APScheduler 3 job per site on the asyncio loop.

Each job calls `crawl.crawl_site` and then `Publisher.publish` (in a worker thread) for the feeds touching that
site; there is no crawl logic here. The Publisher (site -> feeds map) is built once per config load, so a
run's cost does not grow with the number of sites configured. `apply_config` swaps in a reloaded config: jobs of added sites are added,
of removed sites removed, of sites with a new schedule replaced. A site that keeps failing backs off by itself: with N consecutive failures (from the store) a run is
skipped until interval x 2^N (cap 24 h) has passed since the last run started, and the first good run resets N.

On a shared store (PostgreSQL, several daemons) APScheduler stays each process's timer, and a lease in the
store decides who works (leases.py, as for `run --once`): a run claims its (site, slot) first, where the slot
is the interval-long window of epoch time the run falls in, so every worker names the same slot whatever its
own jitter. The winner renews the lease while the run lasts; the others wait for it to expire (its worker
died) and take the run over, until the slot ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from feedmaker.config import Schedule, Settings, SiteConfig
from feedmaker.crawl import crawl_site
from feedmaker.errors import FeedmakerError
from feedmaker.fetch import Fetcher
from feedmaker.leases import held_run, lease_length, slot_start
from feedmaker.models import SiteReport, utcnow
from feedmaker.publish import Published, Publisher
from feedmaker.store import Store

__all__ = [
    "PHASE_ORIGIN",
    "Changes",
    "PhasedInterval",
    "SiteRunner",
    "add_site_jobs",
    "apply_config",
    "backoff_wait",
    "interval_seconds",
    "is_due",
    "jitter_seconds",
    "make_scheduler",
    "next_run",
    "phase_seconds",
    "slot_start",
    "trigger_for",
]

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=24)
JITTER_SHARE = 0.1  # of the interval: sites sharing a host drift apart instead of firing together
JITTER_CAP = 300.0  # seconds
FIRST_RUN_SPREAD_CAP = 30.0  # seconds: the start-up runs are spread, but all happen soon after start

Crawl = Callable[..., Awaitable[SiteReport]]
Publish = Callable[..., Published]


def interval_seconds(schedule: Schedule, now: datetime | None = None) -> float:
    """The run interval; for a cron line, the gap between its next two fire times."""
    return schedule.seconds_between_runs(now or utcnow())


def jitter_seconds(schedule: Schedule) -> float:
    return min(interval_seconds(schedule) * JITTER_SHARE, JITTER_CAP)


PHASE_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


class PhasedInterval(IntervalTrigger):  # type: ignore[misc]  # APScheduler 3 ships no types
    """Fire times at the trigger's phase, start_date + k x interval (plus jitter), whatever the previous fire
    time was. APScheduler's IntervalTrigger adds the interval to the previous fire time, jitter included: the
    jitter accumulates (an `every 1m` site ran every 63 s on average) and sites whose first runs came close
    together stay close together, every interval. Here each site keeps a phase of its own (see trigger_for),
    so 5,000 sites every minute are due 83 a second, evenly, instead of all within seconds of each other."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is None:
            first: datetime | None = super().get_next_fire_time(None, now)
            return first
        # The first phase point after the previous fire: a first run placed anywhere (start-up, a late
        # run) is followed by the site's own phase.
        after: datetime | None = super().get_next_fire_time(
            None, previous_fire_time + timedelta(microseconds=1)
        )
        return after


def phase_seconds(site_id: str, interval: float, jitter: float = 0.0) -> float:
    """Where in its interval a site's runs fall: spread evenly over sites by a hash of the id, and the same at
    every start, so a restart does not move a site's runs. Within [0, interval - jitter): phase plus jitter
    stays inside one slot (slot_start), so no run lands in the next slot and leaves its own slot empty."""
    return zlib.crc32(site_id.encode()) / 2**32 * max(0.0, interval - jitter)


def trigger_for(schedule: Schedule, site_id: str = "") -> BaseTrigger:
    if schedule.interval is not None:
        return PhasedInterval(
            seconds=schedule.interval,
            jitter=jitter_seconds(schedule),
            timezone=UTC,
            start_date=PHASE_ORIGIN
            + timedelta(seconds=phase_seconds(site_id, schedule.interval, jitter_seconds(schedule))),
        )
    assert schedule.cron is not None
    return CronTrigger.from_crontab(schedule.cron, timezone=UTC)


def backoff_wait(interval: float, failures: int) -> timedelta:
    """How long after a failed run's start the next run may start: interval x 2^failures, at most 24 h."""
    if failures <= 0:
        return timedelta(0)
    return min(timedelta(seconds=interval * 2 ** min(failures, 32)), MAX_BACKOFF)


def is_due(*, interval: float, failures: int, last_started: datetime | None, now: datetime) -> bool:
    if failures <= 0 or last_started is None:
        return True
    # Half an interval of slack: fire times carry jitter, so the run at exactly 2^N intervals must not be missed.
    return now - last_started + timedelta(seconds=interval / 2) >= backoff_wait(interval, failures)


class SiteRunner:
    """The body of every site job: back-off check, crawl, publish. Tracks in-flight runs for shutdown, the
    entries each published feed holds, and whether the last feed write failed."""

    def __init__(
        self,
        settings: Settings,
        sites: Sequence[SiteConfig],
        *,
        fetcher: Fetcher,
        store: Store,
        now: Callable[[], datetime] = utcnow,
        crawl: Crawl = crawl_site,
        publish: Publish | None = None,
        lease: timedelta | None = None,
    ) -> None:
        self.settings = settings
        # Runs are claimed only where other processes share the store; alone, the state lock suffices.
        shared = getattr(store, "SHARED", False)  # tests pass stand-ins
        self.lease = lease or (lease_length() if shared else None)
        self.sites = {s.id: s for s in sites}
        self.publisher = Publisher(settings, sites)
        self.fetcher, self.store, self.now = fetcher, store, now
        # `publish` replaces the Publisher (tests): called as publish.publish(settings, sites, store, only=...).
        self.crawl, self.publish = crawl, publish
        self._running: set[asyncio.Task[object]] = set()
        self.feed_entries: dict[str, int] = {}  # feed id -> entries in its file, from the last publish of it
        self.publish_error: str | None = None  # why the last feed write failed; None once a write succeeds

    def configure(self, settings: Settings, sites: Sequence[SiteConfig]) -> None:
        """Use this config from the next run on; runs in flight finish with the one they started with."""
        self.settings, self.sites = settings, {s.id: s for s in sites}
        self.publisher = Publisher(settings, sites, previous=self.publisher)

    async def publish_feeds(self, only: set[str] | None = None) -> Published:
        """Publish in a worker thread: its fsyncs must not stall the loop that serves HTTP."""
        try:
            if self.publish is None:
                published = await asyncio.to_thread(self.publisher.publish, self.store, only=only)
            else:
                published = await asyncio.to_thread(
                    self.publish, self.settings, list(self.sites.values()), self.store, only=only
                )
        except FeedmakerError as exc:
            self.publish_error = str(exc)
            raise
        # Only a file actually replaced shows the output dir takes writes again; an unchanged feed writes nothing.
        if published.written:
            self.publish_error = None
        self.feed_entries.update(published.entries)
        return published

    def retry_after(self, site_id: str) -> datetime | None:
        """When a backing-off site may run again; None when it is not backing off."""
        site = self.sites[site_id]
        failures = self.store.consecutive_failures(site.id)
        last = self.store.last_run(site.id) if failures else None
        if last is None:
            return None
        interval = interval_seconds(site.schedule)
        if is_due(interval=interval, failures=failures, last_started=last.started, now=self.now()):
            return None
        return last.started + backoff_wait(interval, failures) - timedelta(seconds=interval / 2)

    async def run(self, site_id: str) -> SiteReport | None:
        """One scheduled run of one site; None when skipped (backing off) or cancelled at shutdown."""
        site = self.sites.get(site_id)
        if site is None:
            return None  # removed by a reload just as its job fired
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            # Store reads wait behind other sites' writes (the store has one lock): off the loop as well.
            try:
                retry = await asyncio.to_thread(self.retry_after, site.id)
            except (
                FeedmakerError
            ) as exc:  # store away: the store logs that once; the claim below waits for it
                log.debug("site=%s back-off unknown reason=%s", site.id, exc)
                retry = None
            if retry is not None:
                failures = await asyncio.to_thread(self.store.consecutive_failures, site.id)
                log.info(
                    "site=%s run skipped: backing off after %d failure(s) until %s",
                    site.id,
                    failures,
                    retry.isoformat(timespec="seconds"),
                )
                return None
            # On a shared store the lease decides who runs (leases.py); a cancelled run gives its slot back.
            held = (
                held_run(self.store, site, slot_start(site.schedule, self.now()), self.lease)
                if self.lease is not None
                else contextlib.nullcontext(True)
            )
            async with held as won:
                if not won:
                    return None
                report = await self.crawl(
                    site, settings=self.settings, fetcher=self.fetcher, store=self.store, now=self.now
                )
            # A failed run never replaces a good feed: the file on disk stays the last good one.
            if report.ok:
                try:
                    published = await self.publish_feeds(only={site.id})
                except FeedmakerError as exc:
                    # The old file stays in place and the next good run writes it; the daemon carries on.
                    log.warning("site=%s publish failed reason=%s", site.id, exc)
                    return report
                for path in published.written:
                    log.debug("site=%s feed written path=%s", site.id, path)
            return report
        except asyncio.CancelledError:
            log.warning("site=%s run cancelled at shutdown", site.id)
            return None
        except Exception:
            # A bug in one site's run must not stop the daemon; the traceback is the report.
            log.exception("site=%s run crashed", site.id)
            return None
        finally:
            if task is not None:
                self._running.discard(task)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def drain(self, grace: float) -> int:
        """Wait up to `grace` s for running crawls, then cancel the rest. Returns how many were cancelled."""
        running = set(self._running)
        if not running:
            return 0
        _, pending = await asyncio.wait(running, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        return len(pending)


def make_scheduler() -> AsyncIOScheduler:
    return AsyncIOScheduler(timezone=UTC)


def add_site_jobs(
    scheduler: AsyncIOScheduler,
    runner: SiteRunner,
    sites: Sequence[SiteConfig],
    *,
    first_run: datetime | None = None,
) -> list[Job]:
    """One job per site. With `first_run`, every site also runs once soon after it, spread by its jitter."""
    jobs = []
    for site in sites:
        interval = interval_seconds(site.schedule)
        trigger = trigger_for(site.schedule, site.id)
        extra: dict[str, datetime | None] = {}
        if first_run is not None:
            spread = min(jitter_seconds(site.schedule), FIRST_RUN_SPREAD_CAP)
            # Soon (a demo's feeds fill within seconds); the run after falls on the site's phase.
            extra["next_run_time"] = first_run + timedelta(seconds=random.uniform(0, spread))
        elif isinstance(trigger, PhasedInterval):
            # No sooner than an interval from now, as APScheduler's own trigger starts: then on the phase.
            extra["next_run_time"] = trigger.get_next_fire_time(None, utcnow() + timedelta(seconds=interval))
        job = scheduler.add_job(
            runner.run,
            trigger=trigger,
            args=[site.id],
            id=f"site:{site.id}",
            name=site.id,
            max_instances=1,
            coalesce=True,
            # A run starting this late (loop blocked, machine suspended) is dropped; the next one will come.
            misfire_grace_time=int(min(max(30.0, interval / 2), 3600.0)),
            replace_existing=True,
            **extra,
        )
        jobs.append(job)
    return jobs


def next_run(scheduler: AsyncIOScheduler, site_id: str) -> datetime | None:
    job = scheduler.get_job(f"site:{site_id}")
    when: datetime | None = getattr(job, "next_run_time", None) if job else None
    return when


@dataclass(frozen=True, slots=True, kw_only=True)
class Changes:
    """apply_config -> daemon: which site ids a reload added, removed, rescheduled or otherwise edited."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rescheduled: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()


def apply_config(
    scheduler: AsyncIOScheduler,
    runner: SiteRunner,
    settings: Settings,
    sites: Sequence[SiteConfig],
    *,
    now: datetime,
) -> Changes:
    """Swap in a reloaded config without a restart. Added sites run soon after `now` as at start-up;
    rescheduled ones keep their back-off state and follow the new trigger from now."""
    old, new = runner.sites, {s.id: s for s in sites}
    changes = Changes(
        added=tuple(i for i in new if i not in old),
        removed=tuple(i for i in old if i not in new),
        rescheduled=tuple(i for i in new if i in old and new[i].schedule != old[i].schedule),
        edited=tuple(i for i in new if i in old and new[i].schedule == old[i].schedule and new[i] != old[i]),
    )
    runner.configure(settings, sites)
    for site_id in changes.removed:
        with contextlib.suppress(JobLookupError):
            scheduler.remove_job(f"site:{site_id}")
    add_site_jobs(scheduler, runner, [new[i] for i in changes.added], first_run=now)
    add_site_jobs(scheduler, runner, [new[i] for i in changes.rescheduled])
    return changes
