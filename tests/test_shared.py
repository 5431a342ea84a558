"""Politeness shared by the workers of one store (issue 13 item 2): Retry-After pauses and robots.txt files
reach a worker that is already running, not only one that starts later. Each test runs on SQLite (two stores
on one file, as two processes on one machine) and on PostgreSQL (the session's own server)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from feedmaker.errors import Blocked
from feedmaker.fetch import Fetcher
from feedmaker.fetch.gate import Pauses
from feedmaker.models import Page, utcnow
from feedmaker.store import Store, open_store
from tests.fetch_support import NOW, FakeClock, Script, make_settings, raw

HOST = "news.example"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgres"])
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Store]]:
    """Two workers' stores on one database."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    open_store(url, state_dir=tmp_path).close()  # migrated once, as the first daemon does
    stores = [open_store(url, state_dir=tmp_path, worker=f"w{n}") for n in range(2)]
    try:
        yield stores
    finally:
        for store in stores:
            store.close()


def fetcher(store: Store, script: Script) -> Fetcher:
    return Fetcher(make_settings(), transport=httpx.MockTransport(script), shared=store, backoff=0.001)


# -- Retry-After pauses ------------------------------------------------------------------------------


def test_a_pause_one_worker_saves_holds_the_hosts_turn_for_the_other(workers: list[Store]):
    a, b = workers
    assert b.take_host_turn(HOST, hold=10) == 0.0
    b.end_host_turn(HOST, delay=0.0)
    a.save_host_pauses({HOST: utcnow() + timedelta(seconds=120)})
    assert 119 < b.take_host_turn(HOST, hold=10) <= 120
    assert set(b.host_pauses()) == {HOST}
    assert b.take_host_turn("other.example", hold=10) == 0.0  # other hosts are not held


def test_a_pause_saved_while_a_turn_is_in_flight_outlasts_the_end_of_that_turn(workers: list[Store]):
    """The request that met the Retry-After ends its turn after the pause is saved (or before): either
    way the next request waits for the pause, not just the delay."""
    a, b = workers
    assert a.take_host_turn(HOST, hold=10) == 0.0
    b.save_host_pauses({HOST: utcnow() + timedelta(seconds=120)})
    a.end_host_turn(HOST, delay=1.0)
    assert 119 < b.take_host_turn(HOST, hold=10) <= 120


@pytest.mark.anyio
async def test_a_running_fetcher_honours_a_pause_another_worker_met_without_asking_the_host(
    workers: list[Store],
):
    """Worker b is already running (it fetched from the host before); a meets a Retry-After. b's next
    fetch, whose pause check may still be up to a second stale, waits at the shared turn, learns of the
    pause and is refused; so is its fetch after that. The host hears nothing more from b."""
    met = Script(raw(429, headers={"Retry-After": "120"}))
    other = Script(raw(200, b"ok"))
    async with fetcher(workers[0], met) as a, fetcher(workers[1], other) as b:
        assert isinstance(await b.fetch(f"https://{HOST}/first"), Page)
        with pytest.raises(Blocked, match="Retry-After"):
            await a.fetch(f"https://{HOST}/a")
        started = time.monotonic()
        with pytest.raises(Blocked) as queued:
            await b.fetch(f"https://{HOST}/b")
        assert time.monotonic() - started < 3.0  # refused once the pause is read, not after 120 s
        with pytest.raises(Blocked) as later:
            await b.fetch(f"https://{HOST}/c")
        assert isinstance(await b.fetch("https://other.example/"), Page)
    assert "host paused until" in queued.value.reason
    assert (later.value.url, "host paused until" in later.value.reason) == (f"https://{HOST}/c", True)
    assert other.urls == [f"https://{HOST}/first", "https://other.example/"]
    assert b.paused_hosts().keys() == {HOST}  # kept by b too, for the store at its exit


# -- robots.txt ----------------------------------------------------------------------------------------


class CountingSite(BaseHTTPRequestHandler):
    """robots.txt (slow to answer, so both workers want it at once) and any page; counts every request."""

    asked: ClassVar[Counter[str]] = Counter()

    def do_GET(self) -> None:
        self.asked[self.path] += 1
        if self.path == "/robots.txt":
            time.sleep(0.3)
            body = b"User-agent: *\nDisallow: /private/\n"
        else:
            body = b"<p>page</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if self.path == "/robots.txt" else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    CountingSite.asked.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), CountingSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def crawler(store: Store) -> Fetcher:
    return Fetcher(make_settings(obey_robots=True), shared=store)


@pytest.mark.anyio
async def test_two_workers_crawling_one_host_fetch_its_robots_txt_once_and_both_obey_it(
    workers: list[Store], site: str
):
    async with crawler(workers[0]) as a, crawler(workers[1]) as b:
        pages = await asyncio.gather(*(f.fetch(f"{site}/news/{n}") for n in range(3) for f in (a, b)))
        assert all(isinstance(p, Page) for p in pages)
        for f in (a, b):
            with pytest.raises(Blocked, match=r"robots\.txt disallows"):
                await f.fetch(f"{site}/private/x")
    assert CountingSite.asked["/robots.txt"] == 1
    assert sum(CountingSite.asked.values()) == 7  # robots.txt and the six pages; nothing under /private/


@pytest.mark.anyio
async def test_a_worker_started_later_reads_robots_txt_from_the_store(workers: list[Store], site: str):
    async with crawler(workers[0]) as a:
        assert isinstance(await a.fetch(f"{site}/one"), Page)
    async with crawler(workers[1]) as b:  # no preload: a running daemon meeting the host for the first time
        assert isinstance(await b.fetch(f"{site}/two"), Page)
    assert CountingSite.asked["/robots.txt"] == 1


def test_a_robots_fetch_claim_is_one_workers_until_released_or_lapsed(workers: list[Store]):
    a, b = workers
    url = "https://news.example/robots.txt"
    assert a.claim_robots_fetch(url, hold=0.3)
    assert not b.claim_robots_fetch(url, hold=0.3)
    a.release_robots_fetch(url)  # a's fetch failed: b need not wait
    assert b.claim_robots_fetch(url, hold=0.3)
    assert not a.claim_robots_fetch(url, hold=0.3)
    time.sleep(0.35)  # b died holding it
    assert a.claim_robots_fetch(url, hold=0.3)


@pytest.mark.anyio
async def test_a_failed_robots_fetch_is_not_kept_and_the_other_worker_tries_itself(workers: list[Store]):
    """A 503 means "disallow all" for an hour, per worker: it is not saved, and the claim is released so
    the other worker asks at once rather than waiting out the claim."""
    failing = Script(raw(503))
    async with (
        Fetcher(
            make_settings(obey_robots=True), transport=httpx.MockTransport(failing), shared=workers[0]
        ) as a,
        Fetcher(
            make_settings(obey_robots=True), transport=httpx.MockTransport(failing), shared=workers[1]
        ) as b,
    ):
        for f in (a, b):
            with pytest.raises(Blocked, match="unreachable"):
                await f.fetch(f"https://{HOST}/page")
    assert failing.urls == [f"https://{HOST}/robots.txt"] * 2
    assert workers[0].robots_file(f"https://{HOST}/robots.txt") is None


class Board:
    """A stand-in store for `Pauses`: the pauses every worker saved, and how often they were read."""

    def __init__(self) -> None:
        self.pauses: dict[str, datetime] = {}
        self.reads = 0

    def host_pauses(self) -> dict[str, datetime]:
        self.reads += 1
        return dict(self.pauses)

    def save_host_pauses(self, pauses: Mapping[str, datetime]) -> None:
        self.pauses.update(pauses)


@pytest.mark.anyio
async def test_pauses_are_saved_at_once_and_others_are_read_at_most_once_per_interval():
    clock, board = FakeClock(), Board()
    pauses = Pauses(clock, lambda: NOW, shared=board, read_every=1.0)
    await pauses.check("https://a.example/", "a.example")
    await pauses.pause("mine.example", 60)
    assert board.pauses == {"mine.example": NOW + timedelta(seconds=60)}
    board.pauses["theirs.example"] = NOW + timedelta(seconds=30)  # another worker's, saved just now
    await pauses.check("https://theirs.example/", "theirs.example")  # read 0.0 s ago: not known yet
    clock.now += 1.0
    with pytest.raises(Blocked, match="host paused until 2025-01-01T00:00:30Z"):
        await pauses.check("https://theirs.example/", "theirs.example")
    assert board.reads == 2
    clock.now += 30.0
    await pauses.check("https://theirs.example/", "theirs.example")  # over: resumed on our clock
