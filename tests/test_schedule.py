"""schedule.py: one APScheduler job per site, back-off after failures, drain at shutdown. No test sleeps for a run."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from feedmaker.config import Settings, SiteConfig
from feedmaker.errors import FeedError
from feedmaker.fetch import Fetcher
from feedmaker.models import Article, SiteReport
from feedmaker.publish import Published
from feedmaker.schedule import (
    PHASE_ORIGIN,
    SiteRunner,
    add_site_jobs,
    apply_config,
    backoff_wait,
    interval_seconds,
    is_due,
    jitter_seconds,
    make_scheduler,
    next_run,
    phase_seconds,
    slot_start,
    trigger_for,
)
from feedmaker.store import SqliteStore, Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NO_FETCHER = cast(Fetcher, object())


def make_site(site_id: str, schedule: str) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "id": site_id,
            "name": site_id.title(),
            "start_urls": ["https://news.example/"],
            "schedule": schedule,
            "list": {"item": "article"},
        }
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store() -> Iterator[Store]:
    with SqliteStore(":memory:") as s:
        yield s


class Clock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment


class FakeCrawl:
    """Stands in for crawl_site: records the run in the store as the real one does, ok or failed as told."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.fail = False
        self.calls: list[str] = []

    async def __call__(
        self, site: SiteConfig, *, settings: Settings, fetcher: Any, store: Store, now: Any
    ) -> SiteReport:
        self.calls.append(site.id)
        errors = ("fetch failed: https://news.example/: HTTP 503",) if self.fail else ()
        report = SiteReport(
            site=site.id,
            started=self.clock(),
            finished=self.clock() + timedelta(seconds=3),
            items=5,
            new=1,
            errors=errors,
        )
        store.record_run(report)
        return report


class FakePublish:
    def __init__(self) -> None:
        self.calls: list[set[str] | None] = []

    def __call__(
        self, settings: Settings, sites: Any, store: Store, *, only: set[str] | None = None
    ) -> Published:
        self.calls.append(only)
        return Published()


def test_one_job_per_site_with_id_trigger_and_limits():
    """`every N` becomes an IntervalTrigger with jitter; a cron line a UTC CronTrigger; one instance, coalesced."""
    sites = [make_site("news", "every 30m"), make_site("blog", "*/15 * * * *"), make_site("tiny", "every 2s")]
    scheduler = make_scheduler()
    runner = SiteRunner(Settings(), sites, fetcher=NO_FETCHER, store=cast(Store, None))
    add_site_jobs(scheduler, runner, sites)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert sorted(jobs) == ["site:blog", "site:news", "site:tiny"]
    news = jobs["site:news"]
    assert isinstance(news.trigger, IntervalTrigger)
    assert news.trigger.interval == timedelta(minutes=30)
    assert news.trigger.jitter == 180.0
    assert str(news.trigger.timezone) == "UTC"
    assert isinstance(jobs["site:blog"].trigger, CronTrigger)
    assert str(jobs["site:blog"].trigger.timezone) == "UTC"
    assert str(jobs["site:blog"].trigger.fields[6]) == "*/15"  # minute field
    for job in jobs.values():
        assert job.max_instances == 1
        assert job.coalesce is True
        assert job.misfire_grace_time >= 30
        assert job.args == (job.id.removeprefix("site:"),)


def test_jitter_is_a_capped_share_of_the_interval():
    assert jitter_seconds(make_site("a", "every 2s").schedule) == pytest.approx(0.2)
    assert jitter_seconds(make_site("a", "every 1h").schedule) == 300.0
    assert interval_seconds(make_site("a", "*/15 * * * *").schedule, T0) == 900.0
    assert interval_seconds(make_site("a", "0 6 * * *").schedule, T0) == 86400.0


@pytest.mark.anyio
async def test_adding_jobs_again_replaces_them():
    sites = [make_site("news", "every 30m")]
    scheduler = make_scheduler()
    runner = SiteRunner(Settings(), sites, fetcher=NO_FETCHER, store=cast(Store, None))
    add_site_jobs(scheduler, runner, sites)
    add_site_jobs(scheduler, runner, [make_site("news", "every 1h")])
    scheduler.start(paused=True)  # pending jobs are only de-duplicated once they reach the job store
    try:
        jobs = scheduler.get_jobs()
        assert [j.id for j in jobs] == ["site:news"]
        assert jobs[0].trigger.interval == timedelta(hours=1)
    finally:
        scheduler.shutdown(wait=False)


@pytest.mark.anyio
async def test_first_run_is_soon_after_start_and_spread_by_jitter():
    sites = [make_site(f"s{i}", "every 10m") for i in range(20)]
    scheduler = make_scheduler()
    runner = SiteRunner(Settings(), sites, fetcher=NO_FETCHER, store=cast(Store, None))
    start = datetime.now(UTC)
    add_site_jobs(scheduler, runner, sites, first_run=start)
    scheduler.start(paused=True)
    try:
        times = [next_run(scheduler, s.id) for s in sites]
        assert all(t is not None and start <= t <= start + timedelta(seconds=30) for t in times)
        assert len(set(times)) > 1
        assert next_run(scheduler, "unknown") is None
    finally:
        scheduler.shutdown(wait=False)


def test_backoff_doubles_per_failure_and_caps_at_a_day():
    assert backoff_wait(60, 0) == timedelta(0)
    assert backoff_wait(60, 1) == timedelta(minutes=2)
    assert backoff_wait(60, 3) == timedelta(minutes=8)
    assert backoff_wait(3600, 10) == timedelta(hours=24)
    assert backoff_wait(60, 10_000) == timedelta(hours=24)


def test_is_due_skips_until_the_backoff_has_passed():
    def due(minutes_since_last: float, failures: int) -> bool:
        return is_due(
            interval=600, failures=failures, last_started=T0, now=T0 + timedelta(minutes=minutes_since_last)
        )

    assert due(10, 0)
    assert not due(10, 1)
    assert due(20, 1)  # 2 intervals
    assert not due(30, 2)
    assert due(40, 2)  # 4 intervals
    assert due(19.9, 1)  # half an interval of slack for jitter
    assert not due(23 * 60, 20)
    assert due(24 * 60, 20)  # the cap
    assert is_due(interval=600, failures=3, last_started=None, now=T0)


@pytest.mark.anyio
async def test_failing_site_backs_off_and_recovers_by_itself(store: Store):
    clock = Clock(T0)
    crawl, published = FakeCrawl(clock), FakePublish()
    site = make_site("news", "every 10m")
    runner = SiteRunner(
        Settings(), [site], fetcher=NO_FETCHER, store=store, now=clock, crawl=crawl, publish=published
    )

    crawl.fail = True
    assert (await runner.run("news")) is not None  # failure 1
    assert published.calls == []  # a failed run never rewrites the feed
    assert runner.retry_after("news") == T0 + timedelta(
        minutes=15
    )  # 2 intervals less half an interval of slack
    clock.moment += timedelta(minutes=10)
    assert await runner.run("news") is None  # skipped: 1 failure -> wait 20 min
    clock.moment += timedelta(minutes=10)
    assert await runner.run("news") is not None  # failure 2
    for _ in range(3):
        clock.moment += timedelta(minutes=10)
        assert await runner.run("news") is None  # 2 failures -> wait 40 min
    crawl.fail = False
    clock.moment += timedelta(minutes=10)
    report = await runner.run("news")
    assert report is not None
    assert report.ok
    assert store.consecutive_failures("news") == 0
    assert runner.retry_after("news") is None
    assert published.calls == [{"news"}]
    clock.moment += timedelta(minutes=10)
    assert await runner.run("news") is not None  # back on the normal schedule
    assert crawl.calls == ["news"] * 4


@pytest.mark.anyio
async def test_a_crashing_run_is_logged_and_does_not_raise(store: Store, caplog: pytest.LogCaptureFixture):
    async def broken(site: SiteConfig, **kwargs: Any) -> SiteReport:
        raise RuntimeError("bug")

    runner = SiteRunner(
        Settings(), [make_site("news", "every 10m")], fetcher=NO_FETCHER, store=store, crawl=broken
    )
    assert await runner.run("news") is None
    assert "site=news run crashed" in caplog.text


@pytest.mark.anyio
async def test_a_failed_publish_is_a_warning_and_the_run_still_counts(
    store: Store, caplog: pytest.LogCaptureFixture
):
    def full_disk(*args: Any, **kwargs: Any) -> Published:
        raise FeedError("output/news.atom: cannot write: No space left on device")

    clock = Clock(T0)
    runner = SiteRunner(
        Settings(),
        [make_site("news", "every 10m")],
        fetcher=NO_FETCHER,
        store=store,
        now=clock,
        crawl=FakeCrawl(clock),
        publish=full_disk,
    )
    report = await runner.run("news")
    assert report is not None
    assert report.ok
    assert (
        "site=news publish failed reason=output/news.atom: cannot write: No space left on device"
        in caplog.text
    )
    assert "Traceback" not in caplog.text


@pytest.mark.anyio
async def test_drain_waits_for_quick_runs_and_cancels_slow_ones(
    store: Store, caplog: pytest.LogCaptureFixture
):
    release = asyncio.Event()

    async def crawl(site: SiteConfig, **kwargs: Any) -> SiteReport:
        if site.id == "slow":
            await asyncio.sleep(60)
        else:
            await release.wait()
        return SiteReport(site=site.id, started=T0, finished=T0)

    sites = [make_site("slow", "every 10m"), make_site("quick", "every 10m")]
    runner = SiteRunner(
        Settings(), sites, fetcher=NO_FETCHER, store=store, crawl=crawl, publish=FakePublish()
    )
    tasks = [asyncio.create_task(runner.run("slow")), asyncio.create_task(runner.run("quick"))]
    await asyncio.sleep(0)
    assert runner.in_flight == 2
    asyncio.get_running_loop().call_later(0.05, release.set)
    cancelled = await runner.drain(0.3)
    assert cancelled == 1
    slow, quick = await asyncio.gather(*tasks)
    assert slow is None
    assert quick is not None
    assert runner.in_flight == 0
    assert "site=slow run cancelled at shutdown" in caplog.text


@pytest.mark.anyio
async def test_apply_config_adds_removes_and_reschedules_jobs_without_a_restart():
    sites = [make_site("keep", "every 10m"), make_site("gone", "every 10m"), make_site("slower", "every 2s")]
    scheduler = make_scheduler()
    runner = SiteRunner(Settings(), sites, fetcher=NO_FETCHER, store=cast(Store, None))
    add_site_jobs(scheduler, runner, sites)
    scheduler.start(paused=True)
    try:
        edited = SiteConfig.model_validate({**make_site("keep", "every 10m").model_dump(), "max_pages": 3})
        reloaded = [edited, make_site("slower", "every 1h"), make_site("fresh", "every 5m")]
        now = datetime.now(UTC)
        changes = apply_config(scheduler, runner, Settings(feed_size=7), reloaded, now=now)
        assert (changes.added, changes.removed, changes.rescheduled, changes.edited) == (
            ("fresh",),
            ("gone",),
            ("slower",),
            ("keep",),
        )
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert sorted(jobs) == ["site:fresh", "site:keep", "site:slower"]
        assert jobs["site:slower"].trigger.interval == timedelta(hours=1)
        fresh = next_run(scheduler, "fresh")
        assert fresh is not None
        assert now <= fresh <= now + timedelta(seconds=30)  # an added site runs soon, as at start-up
        assert runner.sites["keep"].max_pages == 3  # the next run uses the edited config
        assert runner.settings.feed_size == 7
    finally:
        scheduler.shutdown(wait=False)


@pytest.mark.anyio
async def test_a_job_of_a_site_removed_by_a_reload_does_nothing(store: Store):
    clock = Clock(T0)
    crawl = FakeCrawl(clock)
    runner = SiteRunner(
        Settings(),
        [make_site("news", "every 10m")],
        fetcher=NO_FETCHER,
        store=store,
        now=clock,
        crawl=crawl,
        publish=FakePublish(),
    )
    runner.configure(Settings(), [make_site("other", "every 10m")])
    assert await runner.run("news") is None
    assert crawl.calls == []


@pytest.mark.anyio
async def test_a_failed_feed_write_is_remembered_until_a_file_is_written_again(store: Store, tmp_path: Path):
    outcomes: list[Published | FeedError] = [
        FeedError("output/news.atom: cannot write: No space left on device"),
        Published(entries=(("news", 3),)),
        Published(written=(tmp_path / "news.atom",)),
    ]

    def publish(*args: Any, **kwargs: Any) -> Published:
        outcome = outcomes.pop(0)
        if isinstance(outcome, FeedError):
            raise outcome
        return outcome

    clock = Clock(T0)
    runner = SiteRunner(
        Settings(),
        [make_site("news", "every 10m")],
        fetcher=NO_FETCHER,
        store=store,
        now=clock,
        crawl=FakeCrawl(clock),
        publish=publish,
    )
    await runner.run("news")
    assert runner.publish_error == "output/news.atom: cannot write: No space left on device"
    await runner.run("news")  # nothing written (bytes unchanged): no proof the disk takes writes again
    assert runner.publish_error is not None
    assert runner.feed_entries == {"news": 3}
    await runner.run("news")
    assert runner.publish_error is None


@pytest.mark.anyio
async def test_a_run_publishes_only_its_own_feeds_and_a_reload_keeps_what_was_written(tmp_path: Path):
    """The runner's Publisher is built per config: a run of one site of many considers that site's feed
    only; after a reload an unchanged feed is still not rendered again."""
    clock = Clock(T0)
    sites = [make_site(f"s{n}", "every 10m") for n in range(50)]
    settings = Settings(output_dir=tmp_path / "output")
    with SqliteStore(tmp_path / "state.db") as db:
        runner = SiteRunner(settings, sites, fetcher=NO_FETCHER, store=db, now=clock, crawl=FakeCrawl(clock))
        await runner.publish_feeds()
        assert len(runner.feed_entries) == 50
        runner.feed_entries.clear()
        db.add(
            Article(site="s7", url="https://news.example/7", headline="Seven is new today"),
            key="seven is new today",
            url_key="news.example/7",
        )
        assert await runner.run("s7") is not None
        assert runner.feed_entries == {"s7": 1}
        assert (tmp_path / "output" / "s7.atom").read_text(encoding="utf-8").count("Seven is new today") == 1
        mtime = (tmp_path / "output" / "s7.atom").stat().st_mtime_ns
        runner.configure(settings, [*sites, make_site("s50", "every 10m")])
        published = await runner.publish_feeds()
        assert [p.name for p in published.written] == ["s50.atom"]  # the new site's feed only
        assert (tmp_path / "output" / "s7.atom").stat().st_mtime_ns == mtime


def test_interval_runs_keep_their_phase_and_sites_spread_over_the_interval():
    """After a first run anywhere, a site's runs fall on its own phase in the interval, jitter not carried
    over from run to run; many sites' phases spread over the whole interval."""
    site = make_site("news", "every 1m")
    trigger = trigger_for(site.schedule, site.id)
    start = datetime(2026, 1, 1, 12, 0, 3, tzinfo=UTC)  # a first run at an arbitrary point
    fire = start
    for _ in range(30):
        fire = trigger.get_next_fire_time(fire, fire)
        assert fire is not None
        jitter = jitter_seconds(site.schedule)
        offset = (fire - PHASE_ORIGIN).total_seconds() % 60 - phase_seconds(site.id, 60, jitter)
        assert 0 <= offset % 60 <= jitter + 1e-6
    # 30 runs take 30 minutes, not 30 x (interval + mean jitter)
    assert (fire - start).total_seconds() == pytest.approx(30 * 60, abs=70)
    phases = sorted(phase_seconds(f"site-{n}", 60) for n in range(1000))
    assert phases[0] < 1
    assert phases[-1] > 59
    assert sum(1 for p in phases if p < 30) in range(420, 581)


def test_each_run_of_a_phased_site_lands_in_a_slot_of_its_own():
    """Phase plus jitter stays inside one lease slot: consecutive runs fall in consecutive slots, so none
    is pushed into the next slot (where it would take that slot's run and leave its own slot empty)."""
    for n in range(200):
        site = make_site(f"site-{n}", "every 1m")
        trigger = trigger_for(site.schedule, site.id)
        fire = trigger.get_next_fire_time(None, datetime(2026, 1, 1, 12, 0, 3, tzinfo=UTC))
        slots = []
        for _ in range(20):
            assert fire is not None
            slots.append(slot_start(site.schedule, fire))
            fire = trigger.get_next_fire_time(fire, fire)
        assert [(b - a).total_seconds() for a, b in itertools.pairwise(slots)] == [60.0] * 19, site.id
