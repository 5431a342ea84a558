"""Faults under running workers: the store's reachability state (one WARNING when the database goes away,
fail fast and probe with backoff meanwhile, one INFO when back), a run recorded only by its lease's holder,
and three `feedmaker run` daemons on one PostgreSQL server that is restarted, then stopped for longer
than the lease (a partition)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from feedmaker.errors import ConfigError, StoreError
from feedmaker.leases import LEASE, held_run, lease_length
from feedmaker.models import SiteReport
from feedmaker.pages import Status, render_status
from feedmaker.store import open_store
from feedmaker.store.rows import iso
from feedmaker.store.transactions import PROBE_FIRST, PROBE_MAX, Transactions
from tests.sites import QuietFiles, write_config

REPO = Path(__file__).parent.parent
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# -- the reachability state, on an engine that is up or down at will --------------------------------------


class Gone(Exception):
    """The stand-in engine's connection error."""


class FlakyEngine(Transactions):
    """Transactions whose database is reachable while `up`; counts the attempts that reached the engine."""

    def __init__(self) -> None:
        super().__init__("flaky://db", now=lambda: T0, worker="w")
        self.up, self.attempts, self.clock = True, 0, 100.0
        self._clock = lambda: self.clock

    def close(self) -> None:
        pass

    @contextlib.contextmanager
    def _transaction(self, *, write: bool, action: str) -> Iterator[Any]:
        self.attempts += 1
        if not self.up:
            raise StoreError(f"{self.path}: {action}: gone") from Gone("server closed the connection")
        yield None

    def _connection_error(self, exc: BaseException | None) -> bool:
        return isinstance(exc, Gone)

    def write(self) -> None:
        with self._write("write"):
            pass


def test_an_outage_logs_once_fails_fast_and_probes_with_doubling_backoff_up_to_the_cap(
    caplog: pytest.LogCaptureFixture,
):
    store = FlakyEngine()
    store.write()
    store.up = False
    with caplog.at_level(logging.INFO, logger="feedmaker.store.transactions"):
        with pytest.raises(StoreError):
            store.write()
        assert store.unreachable_since == T0
        assert store.write_error is not None
        probes: list[float] = []
        for _ in range(320):  # 40 s of calls, 1/8 s apart (exact in binary)
            before = store.attempts
            with pytest.raises(StoreError, match=r"gone|store unreachable"):
                store.write()
            if store.attempts > before:
                probes.append(store.clock)
            store.clock += 0.125
        store.up = True
        store.clock += PROBE_MAX
        store.write()
    gaps = [round(b - a, 1) for a, b in zip([100.0, *probes], probes, strict=False)]
    assert gaps[:6] == [PROBE_FIRST, 1.0, 2.0, 4.0, 8.0, PROBE_MAX]
    assert set(gaps[5:]) == {PROBE_MAX}
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "store unreachable (flaky://db): server closed the connection; retrying with backoff",
        f"store reachable again (flaky://db) after {40 + PROBE_MAX:.0f} s",
    ]
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert store.unreachable_since is None
    assert store.write_error is None


def test_a_refusal_is_an_answer_so_it_ends_the_outage_but_is_kept_as_the_write_error():
    store = FlakyEngine()
    store.up = False
    with pytest.raises(StoreError):
        store.write()
    store.up, store.clock = True, store.clock + PROBE_FIRST
    with pytest.raises(StoreError, match="refused"), store._write("write"):
        raise StoreError("flaky://db: write: refused (disk full)")
    assert store.unreachable_since is None
    assert str(store.write_error) == "flaky://db: write: refused (disk full)"


def test_sqlite_is_never_away(tmp_path: Path):
    with open_store("sqlite:///x.db", state_dir=tmp_path) as store:
        assert not store._connection_error(OSError("disk I/O error"))
        assert store.unreachable_since is None


def test_the_status_page_shows_since_when_the_store_is_unreachable():
    page = render_status(Status(unreachable_since=T0, write_error="db: gone"), [])
    assert "store unreachable since 2025-03-01 12:00:00 UTC" in page
    assert "store unreachable" not in render_status(Status(), [])


@pytest.mark.parametrize(
    ("value", "expected"), [("", LEASE), ("3", timedelta(seconds=3)), ("86400", timedelta(days=1))]
)
def test_feedmaker_lease_sets_the_lease_in_whole_seconds(value: str, expected: timedelta):
    assert lease_length({"FEEDMAKER_LEASE": value}) == expected


@pytest.mark.parametrize("value", ["0", "86401", "2.5", "soon", "-3"])
def test_a_bad_feedmaker_lease_is_refused_naming_the_variable(value: str):
    with pytest.raises(ConfigError, match=r"^FEEDMAKER_LEASE: must be whole seconds from 1 to 86400"):
        lease_length({"FEEDMAKER_LEASE": value})


# -- a run is recorded by its lease's holder only -------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_worker_whose_lease_was_taken_over_does_not_record_the_slots_run(tmp_path: Path):
    from feedmaker.config import SiteConfig

    site = SiteConfig.model_validate(
        {"id": "news", "name": "News", "start_urls": ["https://news.example/"], "list": {"item": "a"}}
    )
    now = [T0]
    slot, lease = T0.replace(minute=0), timedelta(seconds=3)
    late = open_store("sqlite:///shared.db", state_dir=tmp_path, worker="late", now=lambda: now[0])
    other = open_store("sqlite:///shared.db", state_dir=tmp_path, worker="other", now=lambda: now[0])
    report = SiteReport(site="news", started=T0, finished=T0, items=1)
    try:
        async with held_run(late, site, slot, lease) as won:
            assert won
            now[0] += timedelta(seconds=10)  # its lease lapsed (the database was away), and...
            assert other.claim_run("news", slot, lease=lease).won  # ...another worker took the slot
            assert late.record_run(report) is False
        with late._read("check") as db:
            assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        assert other.record_run(report) is True  # outside held_run: no lease to check
        async with held_run(other, site, slot + timedelta(hours=1), lease) as won:
            assert won
            assert other.record_run(report) is True
            claim = late.claim_run("news", slot + timedelta(hours=1), lease=lease)
            assert claim.done  # recorded and done in one transaction
    finally:
        late.close()
        other.close()


# -- three daemons on one PostgreSQL server ------------------------------------------------------------

SITES = 4
INTERVAL = 10  # seconds between a site's runs: several slots within the test, each longer than the lease
LEASE_SECONDS = 3
UNREACHABLE = "store unreachable ("
REACHABLE = "store reachable again ("


class SlowFiles(QuietFiles):
    """Static files; a listing page answers after the server's `slow` seconds (runs in flight hold leases)."""

    def do_GET(self) -> None:
        if self.path.endswith("index.html"):
            time.sleep(self.server.slow)  # type: ignore[attr-defined]
        super().do_GET()


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def health(self) -> int | None:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=5, trust_env=False).status_code
        except httpx.TransportError:
            return None

    def feed(self, site: str) -> int:
        return httpx.get(f"{self.url}/feeds/{site}.atom", timeout=5, trust_env=False).status_code

    def count(self, line: str) -> int:
        return self.log().count(line)


@dataclass
class Fleet:
    workers: list[Worker]
    servers: list[ThreadingHTTPServer]
    roots: list[Path]
    url: str  # the store
    postgres: Any

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            return db.execute(sql).fetchall()

    def add_story(self, n: int) -> None:
        for i, root in enumerate(self.roots):
            stories = sorted(root.glob("story-*.html"))
            (root / f"story-{n}.html").write_text("<p>story</p>", encoding="utf-8")
            items = "".join(
                f'<article><h2><a href="/{p.name}">Site {i} story number {p.stem[6:]} is here</a></h2></article>'
                for p in [*stories, root / f"story-{n}.html"]
            )
            page = root / "index.html"
            page.write_text(f"<html><body>{items}</body></html>", encoding="utf-8")
            os.utime(page, (1_700_000_000 + n * 10, 1_700_000_000 + n * 10))


def answers(worker: Worker, code: int) -> Callable[[], bool]:
    """Whether the worker's /healthz answers `code` now."""
    return lambda: worker.health() == code


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def fleet(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    import psycopg

    tmp = tmp_path_factory.mktemp("faults")
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE faults")
    url = postgres_server.url("faults")
    open_store(url, state_dir=tmp).close()  # migrated once, as the first daemon does
    # One server per site, each on its own loopback address: host turns are per host across workers.
    servers, roots = [], []
    for n in range(SITES):
        root = tmp / f"www{n}"
        root.mkdir()
        server = ThreadingHTTPServer((f"127.0.0.{n + 2}", 0), partial(SlowFiles, directory=str(root)))
        server.requests, server.slow = [], 0.0  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        roots.append(root)
    sites = {
        f"s{n}": f"""name = "Site {n}"
start_urls = ["http://127.0.0.{n + 2}:{s.server_port}/index.html"]
schedule = "every {INTERVAL}s"
allow_private_network = true
max_articles = 0
[list]
item = "article"
link = {{ css = "h2 a", attr = "href" }}
headline = "h2"
"""
        for n, s in enumerate(servers)
    }
    fleet = Fleet([], servers, roots, url, postgres_server)
    fleet.add_story(1)
    env = {**os.environ, "FEEDMAKER_STORE": url, "FEEDMAKER_LEASE": str(LEASE_SECONDS)}
    for n in range(3):
        port = free_port()
        config = write_config(
            tmp / f"w{n}" / "config", sites, extra=f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        )
        log_path = tmp / f"w{n}.log"
        with log_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "feedmaker", "--config", str(config), "run"],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**env, "FEEDMAKER_WORKER": f"w{n}"},
            )
        fleet.workers.append(Worker(f"w{n}", proc, f"http://127.0.0.1:{port}", log_path))
    try:
        for w in fleet.workers:
            wait_for(answers(w, 200), 20, f"{w.name}'s server")
        wait_for(lambda: len(fleet.rows("SELECT DISTINCT site FROM runs")) == SITES, 20, "a run of each site")
        yield fleet
    finally:
        for w in fleet.workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in fleet.workers:
            try:
                w.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        for server in servers:
            server.shutdown()
            server.server_close()


def check_each_slot_recorded_once(fleet: Fleet) -> None:
    """No (site, slot) has two runs, and every lease marked done has its one run."""
    doubled = fleet.rows(
        "SELECT site, floor(extract(epoch FROM started::timestamptz) / "
        f"{INTERVAL}) AS slot, count(*) FROM runs GROUP BY site, slot HAVING count(*) > 1"
    )
    assert doubled == []
    runs = dict(fleet.rows("SELECT site, count(*) FROM runs GROUP BY site"))
    done = dict(fleet.rows("SELECT site, count(*) FROM leases WHERE done = 1 GROUP BY site"))
    assert runs == done
    stories = fleet.rows("SELECT key, count(*) FROM entries GROUP BY key HAVING count(*) > 1")
    assert stories == []


def outage(fleet: Fleet, seconds: float) -> tuple[list[int], list[int]]:
    """Stop the server for `seconds` under the workers; their log lines about it, before and after."""
    seen = [(w.count(UNREACHABLE), w.count(REACHABLE)) for w in fleet.workers]
    assert [w.feed("s0") for w in fleet.workers] == [200, 200, 200]  # each instance has loaded the feeds
    fleet.postgres.stop("fast")
    began = time.monotonic()
    try:
        for w in fleet.workers:
            wait_for(answers(w, 503), max(seconds, 5), f"{w.name}'s /healthz to fail")
        # Meanwhile every instance serves the feeds it has loaded (its polls of the store fail quietly).
        while True:
            assert [w.feed("s0") for w in fleet.workers] == [200, 200, 200]
            if time.monotonic() - began >= seconds:
                break
            time.sleep(0.3)
    finally:
        fleet.postgres.start()
    for w in fleet.workers:
        wait_for(answers(w, 200), PROBE_MAX + 5, f"{w.name}'s /healthz to recover")
    return (
        [w.count(UNREACHABLE) - u for w, (u, _) in zip(fleet.workers, seen, strict=True)],
        [w.count(REACHABLE) - r for w, (_, r) in zip(fleet.workers, seen, strict=True)],
    )


def test_a_postgres_restart_under_three_daemons_is_one_line_each_and_loses_nothing(fleet: Fleet):
    before = {row[0] for row in fleet.rows("SELECT id FROM entries")}
    assert len(before) == SITES
    unreachable, reachable = outage(fleet, 3.0)
    assert unreachable == [1, 1, 1], [w.log()[-3000:] for w in fleet.workers]
    assert reachable == [1, 1, 1]
    fleet.add_story(2)  # the daemons carry on: the next slot's runs store the new stories
    wait_for(lambda: len(fleet.rows("SELECT id FROM entries")) == 2 * SITES, INTERVAL + 10, "new stories")
    assert before <= {row[0] for row in fleet.rows("SELECT id FROM entries")}
    check_each_slot_recorded_once(fleet)
    for w in fleet.workers:
        assert "error connecting in" not in w.log()  # psycopg_pool's line per attempt stays quiet
        assert "feed poll failed" not in w.log()  # nor the feed path's poll of the store, once per second
        assert w.proc.poll() is None


def test_a_partition_longer_than_the_lease_leaves_every_slot_done_once(fleet: Fleet):
    """The server goes away just after a slot starts, while each site's run is in flight (slow listing
    pages), for twice the lease: the holders' leases lapse, and once the server is back, each (site, slot)
    is run and recorded by exactly one worker."""
    for server in fleet.servers:
        server.slow = 1.5  # type: ignore[attr-defined]
    fleet.add_story(3)
    wait_for(lambda: time.time() % INTERVAL < 0.5, INTERVAL + 1, "a slot to start")
    started = datetime.now(UTC)
    slot = iso(datetime.fromtimestamp(started.timestamp() // INTERVAL * INTERVAL, UTC))
    # The runs of this slot hold their leases and wait for their listing pages (waited for, not slept:
    # on a loaded machine the daemons take longer than a fixed pause to claim them).
    wait_for(
        lambda: len(fleet.rows(f"SELECT 1 FROM leases WHERE slot = '{slot}'")) == SITES,
        INTERVAL,
        "every site's run of this slot to be claimed",
    )
    unreachable, reachable = outage(fleet, 2.0 * LEASE_SECONDS)
    assert unreachable == [1, 1, 1], [w.log()[-3000:] for w in fleet.workers]
    assert reachable == [1, 1, 1]
    back = time.time()
    next_slot = iso(datetime.fromtimestamp((back // INTERVAL + 1) * INTERVAL, UTC))
    # Every slot from the first one starting after the server is back is done by exactly one worker.
    wait_for(
        lambda: len(fleet.rows(f"SELECT 1 FROM leases WHERE done = 1 AND slot >= '{next_slot}'")) == SITES,
        INTERVAL + 15,
        "a slot done after the partition",
    )
    check_each_slot_recorded_once(fleet)
    # Every story on the pages is stored once (the restart test, when it ran first, added one more each).
    on_pages = sum(len(list(root.glob("story-*.html"))) for root in fleet.roots)
    assert len(fleet.rows("SELECT id FROM entries")) == on_pages
    # The slot of the partition: each site's run was in flight when the server went away; whoever
    # finished it (the holder, or a worker that took the lapsed lease over) recorded it once.
    partition_slot = iso(datetime.fromtimestamp(started.timestamp() // INTERVAL * INTERVAL, UTC))
    held = fleet.rows(f"SELECT site, done FROM leases WHERE slot = '{partition_slot}' ORDER BY site")
    assert [site for site, _ in held] == [f"s{n}" for n in range(SITES)]
