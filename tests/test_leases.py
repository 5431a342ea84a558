"""schedule.py + store leases on PostgreSQL: of several daemons sharing one database, exactly one runs each
(site, slot); a worker that dies mid-run gives its site up to another within the lease time."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from feedmaker.config import Settings, SiteConfig
from feedmaker.fetch import Fetcher
from feedmaker.models import SiteReport, utcnow
from feedmaker.publish import Published
from feedmaker.schedule import SiteRunner, slot_start
from feedmaker.store import Store, open_store

NO_FETCHER = cast(Fetcher, object())
SITE = SiteConfig.model_validate(
    {
        "id": "news",
        "name": "News",
        "start_urls": ["https://news.example/"],
        "schedule": "every 1h",
        "list": {"item": "article"},
    }
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SlowCrawl:
    """Stands in for crawl_site: takes `seconds`, records the run, and notes which worker ran it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ran_by: list[str] = []

    async def __call__(
        self, site: SiteConfig, *, settings: Settings, fetcher: Any, store: Store, now: Any
    ) -> SiteReport:
        self.ran_by.append(store.worker)
        started = utcnow()
        await asyncio.sleep(self.seconds)
        report = SiteReport(site=site.id, started=started, finished=utcnow(), items=1)
        await asyncio.to_thread(store.record_run, report)
        return report


def no_publish(settings: Settings, sites: Any, store: Store, *, only: set[str] | None = None) -> Published:
    return Published()


@pytest.fixture
def stores(postgres_url: str, tmp_path: Path) -> Iterator[list[Store]]:
    opened = [open_store(postgres_url, state_dir=tmp_path, worker=f"w{n}") for n in range(3)]
    yield opened
    for store in opened:
        store.close()


def runner(store: Store, crawl: SlowCrawl, lease: timedelta | None = None) -> SiteRunner:
    return SiteRunner(
        Settings(), [SITE], fetcher=NO_FETCHER, store=store, crawl=crawl, publish=no_publish, lease=lease
    )


@pytest.mark.anyio
async def test_three_workers_firing_for_one_slot_run_the_site_once(stores: list[Store]):
    crawl = SlowCrawl(0.3)
    reports = await asyncio.gather(*(runner(s, crawl, timedelta(seconds=2)).run(SITE.id) for s in stores))
    assert len(crawl.ran_by) == 1
    assert sum(r is not None for r in reports) == 1
    last = stores[0].last_run(SITE.id)
    assert last is not None
    assert last.worker == crawl.ran_by[0]
    claim = stores[1].claim_run(SITE.id, slot_start(SITE.schedule, utcnow()), lease=timedelta(seconds=60))
    assert claim.done
    assert not claim.won


@pytest.mark.anyio
async def test_a_dead_workers_lease_is_taken_over_within_the_lease_time(stores: list[Store]):
    lease = timedelta(seconds=1)
    dead, alive = stores[0], stores[1]
    assert dead.claim_run(SITE.id, slot_start(SITE.schedule, utcnow()), lease=lease).won  # and never renews
    crawl = SlowCrawl(0.0)
    started = time.monotonic()
    report = await runner(alive, crawl, lease).run(SITE.id)
    waited = time.monotonic() - started
    assert report is not None
    assert crawl.ran_by == ["w1"]
    assert 0.5 < waited < 1.0 + 2.0


@pytest.mark.anyio
async def test_a_live_worker_renews_its_lease_so_nobody_takes_over_a_long_run(stores: list[Store]):
    lease = timedelta(seconds=0.6)
    crawl = SlowCrawl(2.0)  # more than three leases long
    first = asyncio.create_task(runner(stores[0], crawl, lease).run(SITE.id))
    await asyncio.sleep(0.2)
    second = await runner(stores[1], crawl, lease).run(SITE.id)
    assert second is None
    assert await first is not None
    assert crawl.ran_by == ["w0"]


@pytest.mark.anyio
async def test_a_run_cancelled_at_shutdown_gives_its_slot_back_at_once(stores: list[Store]):
    lease = timedelta(seconds=30)
    crawl = SlowCrawl(5.0)
    first = asyncio.create_task(runner(stores[0], crawl, lease).run(SITE.id))
    await asyncio.sleep(0.3)
    first.cancel()
    assert await first is None
    quick = SlowCrawl(0.0)
    started = time.monotonic()
    assert await runner(stores[1], quick, lease).run(SITE.id) is not None
    assert quick.ran_by == ["w1"]
    assert time.monotonic() - started < 5.0  # not a 30 s lease wait


def test_the_status_page_names_the_worker_of_each_sites_last_run():
    from datetime import UTC, datetime

    from feedmaker.serve import SiteStatus, Status, render_status

    ran = datetime(2025, 1, 2, tzinfo=UTC)
    status = Status(
        sites=(
            SiteStatus(site="a", name="A", last_run=ran, worker="box-2:<41>"),
            SiteStatus(site="b", name="B", last_run=ran),
        )
    )
    page = render_status(status, [])
    assert "by box-2:&lt;41&gt;" in page
    assert page.count("<small>by ") == 1


@pytest.mark.anyio
async def test_two_workers_gates_keep_one_request_in_flight_and_the_delay_per_host(stores: list[Store]):
    """Two processes' fetch gates sharing one store: their turns on one host never overlap or come closer
    than `delay`, measured from the end of one to the start of the next."""
    from feedmaker.fetch.gate import Gates

    delay = 0.3
    spans: list[tuple[float, float, str]] = []

    async def requests(store: Store) -> None:
        gates = Gates(time.monotonic, 4, turns=store, hold=10.0)
        for _ in range(4):
            async with gates.turn("news.example", delay):
                began = time.monotonic()
                await asyncio.sleep(0.05)
                spans.append((began, time.monotonic(), store.worker))

    await asyncio.gather(requests(stores[0]), requests(stores[1]))
    spans.sort()
    assert len(spans) == 8
    assert {w for _, _, w in spans} == {"w0", "w1"}
    gaps = [later[0] - earlier[1] for earlier, later in itertools.pairwise(spans)]
    assert min(gaps) >= delay - 0.01, gaps


def test_a_store_outlives_a_postgres_restart_failing_meanwhile_and_losing_no_committed_entry(
    postgres_server: Any, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Server stopped under an open store: calls fail with StoreError (write_error set, so /healthz says
    failing) within the pool wait; once it is back, a probe finds it within PROBE_MAX and a write clears it."""
    from feedmaker.errors import StoreError
    from feedmaker.models import Article
    from feedmaker.store import postgres
    from feedmaker.store.transactions import PROBE_MAX

    monkeypatch.setattr(postgres, "POOL_WAIT", 2.0)
    store = open_store(postgres_url, state_dir=tmp_path)
    try:
        before = [
            store.add(
                Article(site="a", url=f"https://a.example/{n}", headline=f"Kept story number {n} here"),
                key=f"kept story number {n} here",
                url_key=f"https://a.example/{n}",
            ).entry.id
            for n in range(5)
        ]
        postgres_server.stop("fast")
        try:
            started = time.monotonic()
            with pytest.raises(StoreError):
                store.add(
                    Article(site="a", url="https://a.example/x", headline="During the outage"),
                    key="during the outage here",
                    url_key="https://a.example/x",
                )
            assert time.monotonic() - started < 15
            assert store.write_error is not None
        finally:
            postgres_server.start()
        deadline = time.monotonic() + PROBE_MAX + 5
        while True:
            try:
                after = store.add(
                    Article(site="a", url="https://a.example/y", headline="After the restart it works"),
                    key="after the restart it works",
                    url_key="https://a.example/y",
                )
                break
            except StoreError:  # refused at once until the next probe
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert store.write_error is None
        assert store.unreachable_since is None
        assert {e.id for e in store.entries(["a"], 100)} == {*before, after.entry.id}
    finally:
        store.close()


WORKER = """
import asyncio, sys
from datetime import datetime, timedelta
from feedmaker.config import Settings, SiteConfig
from feedmaker.models import SiteReport, utcnow
from feedmaker.publish import Published
from feedmaker.schedule import SiteRunner
from feedmaker.store import open_store

url, name, moment, count = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3]), int(sys.argv[4])
sites = [SiteConfig.model_validate({"id": f"s{n}", "name": f"S{n}", "start_urls": ["https://news.example/"],
         "schedule": "every 1h", "list": {"item": "article"}}) for n in range(count)]

async def crawl(site, *, settings, fetcher, store, now):
    print("start", site.id, flush=True)
    started = utcnow()
    await asyncio.sleep(1.0)
    report = SiteReport(site=site.id, started=started, finished=utcnow(), items=1)
    await asyncio.to_thread(store.record_run, report)
    return report

async def main():
    with open_store(url, state_dir=".", worker=name) as store:
        runner = SiteRunner(Settings(), sites, fetcher=None, store=store, crawl=crawl, now=lambda: moment,
                            publish=lambda *a, **k: Published(), lease=timedelta(seconds=2))
        await asyncio.gather(*(runner.run(s.id) for s in sites))

asyncio.run(main())
"""


def test_kill_9_of_one_of_three_workers_mid_run_loses_and_doubles_nothing(postgres_url: str, tmp_path: Path):
    """Its sites' leases lapse (2 s) and the two others run them: every site ran once for the slot."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    moment = utcnow().isoformat()
    count = 12
    open_store(postgres_url, state_dir=tmp_path).close()  # migrated once, as the first daemon does
    env = {**os.environ, "PYTHONPATH": str(root)}

    def spawn(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, postgres_url, name, moment, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )

    victim = spawn("w0")
    assert victim.stdout is not None
    line = victim.stdout.readline()
    assert line.startswith("start"), victim.communicate()[1]  # it holds its sites and is mid-run now
    workers = [victim, spawn("w1"), spawn("w2")]
    time.sleep(0.3)  # the others are up and waiting on the victim's leases
    started = time.monotonic()
    victim.kill()
    victim.communicate()  # reaps it and closes its pipes
    outputs = [w.communicate(timeout=60) for w in workers[1:]]
    took = time.monotonic() - started
    assert [w.returncode for w in workers[1:]] == [0, 0], [err for _, err in outputs]
    with open_store(postgres_url, state_dir=tmp_path) as store, store._read("check") as db:
        runs = dict(db.execute("SELECT site, count(*) FROM runs GROUP BY site").fetchall())
        leases = db.execute("SELECT count(*), sum(done) FROM leases").fetchone()
        workers_seen = {row[0] for row in db.execute("SELECT DISTINCT worker FROM runs")}
    assert runs == {f"s{n}": 1 for n in range(count)}
    assert tuple(leases) == (count, count)
    assert workers_seen & {"w1", "w2"}  # the survivors took the victim's sites over
    assert took < 2.0 + 1.0 * count  # within the lease, plus the runs themselves


def test_without_postgres_binaries_the_tier_skips_with_one_reason(monkeypatch: pytest.MonkeyPatch):
    import glob
    import shutil

    from tests import postgres_server

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    bindir, reason = postgres_server.find_bindir()
    assert bindir is None
    assert reason == "PostgreSQL binaries (initdb, pg_ctl) not found; install Debian's postgresql package"
