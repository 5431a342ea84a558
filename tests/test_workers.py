"""workers.py: page extraction in worker processes with a time budget, and crawl.py's per-run deadline.

Pages come from a real server on 127.0.0.1; jobs cross a real process boundary. The pathological page is
deep nesting (`"<div>" * 60000`: seconds of parsing on any machine, as the cost grows with the square of the
depth; 20000 took 6 s on one machine and 0.5 s on another), far over the 0.5 s budget the tests use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from feedmaker.canon import headline_key
from feedmaker.config import LimitSettings, Settings, SiteConfig, load_all, load_settings
from feedmaker.crawl import crawl_all, crawl_site
from feedmaker.errors import ExtractError, ParseAborted
from feedmaker.extract import extract_listing
from feedmaker.fetch import Fetcher
from feedmaker.models import Page, SiteReport, Validators, utcnow
from feedmaker.store import SqliteStore, Store
from feedmaker.urls import item_url_key
from feedmaker.workers import PagePool, with_keys
from tests.hostile_server import HostileHandler, HostileServer, serve_routes
from tests.sites import serve_dir, write_config
from tests.test_daemon import descendants, process_alive, wait_for

DEEP = b"<html><body>" + b"<div>" * 60_000 + b"</body></html>"

SITE = """name = "{name}"
start_urls = ["{url}"]
allow_private_network = true
max_articles = {max_articles}
[list]
item = "li.story"
link = "a"
headline = "a"
"""
ARTICLE_SITE = SITE.replace('headline = "a"\n', "") + '[article]\nheadline = "h1"\n'


def listing_html(slugs: list[str], prefix: str, *, text: bool = True) -> bytes:
    items = "".join(
        f'<li class="story"><a href="{prefix}{s}.html">{"Story " + s + " of the day" if text else ""}</a></li>'
        for s in slugs
    )
    return f"<html><body><ul>{items}</ul></body></html>".encode()


def page(url: str, body: bytes) -> Page:
    return Page(url=url, body=body, encoding="utf-8", validators=Validators(), fetched_at=utcnow())


@pytest.fixture(scope="module")
def pool() -> Iterator[PagePool]:
    with PagePool(workers=1, budget=0.5) as one:
        yield one


@pytest.fixture
def site(tmp_path: Path) -> SiteConfig:
    config = write_config(
        tmp_path / "config", {"good": SITE.format(name="Good", url="http://127.0.0.1/", max_articles=20)}
    )
    return load_all(config)[1][0]


def test_a_listing_comes_back_from_a_worker_equal_to_in_process_extraction(pool: PagePool, site: SiteConfig):
    listed = page("http://127.0.0.1/list.html", listing_html(["a", "b"], "/"))
    result = asyncio.run(pool.listing(listed, site))
    assert result == extract_listing(listed, site)
    assert [item.headline for item in result.items] == ["Story a of the day", "Story b of the day"]


def test_a_keyed_listing_carries_the_keys_the_run_would_compute(pool: PagePool, site: SiteConfig):
    body = b"".join(
        f'<li class="story"><a href="/{href}">Story {n} of the day</a></li>'.encode()
        for n, href in enumerate(["a.html", "b.html#comments", "c.html#v2-1"])
    )
    listed = page("http://127.0.0.1/list.html", b"<html><body><ul>" + body + b"</ul></body></html>")
    keyed = asyncio.run(pool.keyed_listing(listed, site))
    assert keyed == with_keys(extract_listing(listed, site), site)
    items = keyed.listing.items
    assert keyed.url_keys == tuple(item_url_key(i.url) for i in items)
    # A fragment that only points into the page is no part of the item's identity; one naming it is.
    assert keyed.url_keys[1:] == ("http://127.0.0.1/b.html", "http://127.0.0.1/c.html#v2-1")
    assert keyed.keys == tuple(headline_key(site, i.headline) for i in items)
    assert keyed.keys[0] == headline_key(site, "Story 0 of the day") != ""


def test_an_extract_error_crosses_the_process_boundary_with_its_type_and_fields(
    pool: PagePool, site: SiteConfig
):
    empty = page("http://127.0.0.1/empty.html", b"<html><body><p>nothing listed</p></body></html>")
    with pytest.raises(ExtractError) as raised:
        asyncio.run(pool.listing(empty, site))
    with pytest.raises(ExtractError) as direct:
        extract_listing(empty, site)
    assert str(raised.value) == str(direct.value)
    assert (raised.value.url, raised.value.selector) == (direct.value.url, direct.value.selector)


def test_a_page_over_budget_is_aborted_naming_url_and_budget_and_its_worker_is_replaced(
    pool: PagePool, site: SiteConfig
):
    [before] = pool.pids()
    began = time.monotonic()
    with pytest.raises(
        ParseAborted, match=r"^page took more than 0\.5 s to parse: http://127\.0\.0\.1/deep\.html$"
    ):
        asyncio.run(pool.listing(page("http://127.0.0.1/deep.html", DEEP), site))
    assert time.monotonic() - began < 3
    [after] = pool.pids()
    assert after != before
    assert not process_alive(before)
    # The replacement serves the next job.
    result = asyncio.run(pool.listing(page("http://127.0.0.1/list.html", listing_html(["c"], "/")), site))
    assert [item.url for item in result.items] == ["http://127.0.0.1/c.html"]


def test_a_worker_killed_mid_job_is_an_error_for_that_page_and_the_next_job_works(
    pool: PagePool, site: SiteConfig
):
    async def go() -> None:
        job = asyncio.ensure_future(pool.run(time.sleep, 0.4, url="http://127.0.0.1/sleepy"))
        await asyncio.sleep(0.2)
        os.kill(pool.pids()[0], signal.SIGKILL)
        with pytest.raises(
            ParseAborted,
            match=r"^page worker died \(exit code -9\) while parsing: http://127\.0\.0\.1/sleepy$",
        ):
            await job

    asyncio.run(go())
    assert asyncio.run(pool.run(len, "four", url="http://127.0.0.1/len")) == 4


def test_close_stops_busy_and_idle_workers_at_once():
    pool = PagePool(workers=2, budget=30)
    pool.start()
    pids = pool.pids()
    assert len(pids) == 2
    assert all(process_alive(pid) for pid in pids)
    outcome: list[BaseException] = []

    def busy() -> None:
        try:
            asyncio.run(pool.run(time.sleep, 30, url="http://127.0.0.1/forever"))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=busy)
    thread.start()
    time.sleep(0.3)
    began = time.monotonic()
    pool.close()
    thread.join(5)
    assert time.monotonic() - began < 3
    assert not thread.is_alive()
    assert [type(exc) for exc in outcome] == [ParseAborted]
    assert not any(process_alive(pid) for pid in pids)


# --- crawl.py through the pool: a hostile listing or article page costs its own site or item only


@contextmanager
def serve_sites(article_secs: dict[str, float]) -> Iterator[HostileServer]:
    def good_list(h: HostileHandler) -> None:
        h.reply(200, listing_html(["a", "b"], "/good/"))

    def deep(h: HostileHandler) -> None:
        h.reply(200, DEEP)

    def bare_list(h: HostileHandler) -> None:
        h.reply(200, listing_html(["a", "b", "c", "d"], "/slow/", text=False))

    def slow_article(h: HostileHandler) -> None:
        time.sleep(article_secs["secs"])
        h.reply(200, f"<html><body><h1>Page {h.path} headline</h1></body></html>".encode())

    with serve_routes(
        {
            "/good/list.html": good_list,
            "/bad/list.html": deep,
            "/deep/": deep,
            "/slow/list.html": bare_list,
            "/slow/": slow_article,
        }
    ) as server:
        yield server


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with serve_sites({"secs": 0.0}) as running:
        yield running


def load(tmp_path: Path, sites: dict[str, str], limits: str) -> tuple[Settings, list[SiteConfig]]:
    return load_all(write_config(tmp_path / "config", sites, extra=f"[limits]\n{limits}\n"))


def test_a_listing_over_the_parse_budget_fails_its_site_only(tmp_path: Path, server: HostileServer):
    settings, sites = load(
        tmp_path,
        {
            "good": SITE.format(name="Good", url=server.url("/good/list.html"), max_articles=20),
            "bad": SITE.format(name="Bad", url=server.url("/bad/list.html"), max_articles=20),
        },
        "parse_seconds = 0.5",
    )
    bad_url = server.url("/bad/list.html")

    async def go() -> dict[str, list[str]]:
        with (
            SqliteStore(tmp_path / "state.db") as store,
            PagePool(workers=1, budget=settings.limits.parse_seconds) as pool,
        ):
            async with Fetcher(settings.fetch) as fetcher:
                reports = await crawl_all(settings, sites, fetcher=fetcher, store=store, pool=pool)
                # The pool still works after the bad page: a second run of the good site reads its listing again.
                again = await crawl_site(
                    next(s for s in sites if s.id == "good"),
                    settings=settings,
                    fetcher=fetcher,
                    store=store,
                    pool=pool,
                )
            assert again.ok, again.errors
            by_site = {r.site: list(r.errors) for r in reports}
            by_site["stored"] = [e.article.headline for e in store.entries(["good"], 10)]
            return by_site

    outcome = asyncio.run(go())
    assert outcome["bad"] == [f"extract failed: page took more than 0.5 s to parse: {bad_url}"]
    assert outcome["good"] == []
    assert sorted(outcome["stored"]) == ["Story a of the day", "Story b of the day"]


def test_an_article_page_over_the_parse_budget_is_that_items_warning(tmp_path: Path, server: HostileServer):
    """The listing gave a headline, so the item is kept from the listing; the warning names the page."""

    def one_item(h: HostileHandler) -> None:
        h.reply(200, listing_html(["a"], "/deep/"))

    with serve_routes({"/list.html": one_item, "/deep/": lambda h: h.reply(200, DEEP)}) as deep_server:
        listing = (
            SITE.format(name="Deep", url=deep_server.url("/list.html"), max_articles=20)
            + '[article]\nauthor = ".byline"\n'
        )
        settings, [site] = load(tmp_path, {"deep": listing}, "parse_seconds = 0.5")

        async def go() -> tuple[list[str], list[str], bool]:
            with SqliteStore(tmp_path / "state.db") as store, PagePool(workers=1, budget=0.5) as pool:
                async with Fetcher(settings.fetch) as fetcher:
                    report = await crawl_site(
                        site, settings=settings, fetcher=fetcher, store=store, pool=pool
                    )
                return (
                    list(report.warnings),
                    [e.article.headline for e in store.entries(["deep"], 10)],
                    report.ok,
                )

        warnings, stored, ok = asyncio.run(go())
    assert ok
    assert (
        f"article page skipped: page took more than 0.5 s to parse: {deep_server.url('/deep/a.html')}"
        in warnings
    )
    assert stored == ["Story a of the day"]


def test_article_pages_not_done_within_the_site_run_budget_wait_for_the_next_run(tmp_path: Path):
    """Four article pages of one host, 1 s each (one request per host at a time), 2.5 s per run: some are
    left for the next run, unstored (their headline is on the article page only), and the next run gets them."""
    secs = {"secs": 1.0}
    with serve_sites(secs) as server:
        settings, [site] = load(
            tmp_path,
            {"slow": ARTICLE_SITE.format(name="Slow", url=server.url("/slow/list.html"), max_articles=20)},
            "site_run_seconds = 2.5",
        )

        async def go(store: Store) -> tuple[float, SiteReport]:
            async with Fetcher(settings.fetch) as fetcher:
                began = time.monotonic()
                report = await crawl_site(site, settings=settings, fetcher=fetcher, store=store)
                return time.monotonic() - began, report

        with SqliteStore(tmp_path / "state.db") as store:
            seconds, first = asyncio.run(go(store))
            stored = sorted(e.article.headline for e in store.entries(["slow"], 10))
            secs["secs"] = 0.0
            _, second = asyncio.run(go(store))
            everything = sorted(e.article.headline for e in store.entries(["slow"], 10))
    assert seconds < 2.5 + 1.5
    late = 4 - first.new
    assert 1 <= first.new <= 3
    assert first.ok
    assert (
        f"{late} new item(s) left for the next run: their article pages were not done within the site run "
        "budget of 2.5 s ([limits] site_run_seconds)"
    ) in first.warnings
    assert len(stored) == first.new
    assert all(h.startswith("Page /slow/") for h in stored)
    assert second.new == late
    assert everything == [f"Page /slow/{s}.html headline" for s in "abcd"]


def test_the_shipped_config_documents_the_default_limits():
    settings = load_settings(Path(__file__).parent.parent / "config" / "feedmaker.toml")
    assert settings.limits == LimitSettings()
    assert (settings.limits.parse_seconds, settings.limits.site_run_seconds, settings.limits.workers) == (
        10.0,
        300.0,
        None,
    )


def test_a_workers_log_records_are_logged_again_by_the_parent(
    caplog: pytest.LogCaptureFixture, site: SiteConfig
):
    """An item without a link is logged at DEBUG inside extraction; the record reaches the parent's log."""
    caplog.set_level(logging.DEBUG, logger="feedmaker")
    body = b'<html><body><ul><li class="story">no link here</li><li class="story"><a href="/x.html">Story x of the day</a></li></ul></body></html>'
    with PagePool(workers=1, budget=5) as debug_pool:
        asyncio.run(debug_pool.listing(page("http://127.0.0.1/list.html", body), site))
    assert "site=good item without link url=http://127.0.0.1/list.html" in caplog.messages


def test_generic_listing_headlines_are_replaced_by_the_article_pages_in_a_worker_too(
    tmp_path: Path, server: HostileServer
):
    def read_more(h: HostileHandler) -> None:
        h.reply(
            200,
            b"<html><body><ul>"
            + b"".join(
                f'<li class="story"><a href="/slow/{s}.html">Read more</a></li>'.encode() for s in "abc"
            )
            + b"</ul></body></html>",
        )

    with serve_routes(
        {
            "/list.html": read_more,
            "/slow/": lambda h: h.reply(200, f"<h1>Page {h.path} headline</h1>".encode()),
        }
    ) as site_server:
        text = (
            SITE.format(name="More", url=site_server.url("/list.html"), max_articles=20)
            + '[article]\nheadline = "h1"\n'
        )
        settings, [site] = load(tmp_path, {"more": text}, "parse_seconds = 5")

        async def go() -> list[str]:
            with SqliteStore(tmp_path / "state.db") as store, PagePool(workers=1, budget=5) as pool:
                async with Fetcher(settings.fetch) as fetcher:
                    report = await crawl_site(
                        site, settings=settings, fetcher=fetcher, store=store, pool=pool
                    )
                assert (report.new, report.duplicates) == (3, 0), report
                return sorted(e.article.headline for e in store.entries(["more"], 10))

        assert asyncio.run(go()) == [f"Page /slow/{s}.html headline" for s in "abc"]


def log_a_bug(url: str) -> str:
    """A job that meets a bug and logs it as extraction does: once, with its traceback."""
    missing: dict[str, int] = {}
    try:
        missing["absent"]  # the bug
    except KeyError as exc:
        logging.getLogger("feedmaker.extract.listing").error(
            "item %s: listing: KeyError: %s", url, exc, exc_info=exc
        )
    return url


def test_a_bug_logged_in_a_worker_reaches_the_parent_with_its_traceback(caplog: pytest.LogCaptureFixture):
    with PagePool(workers=1, budget=5) as one:
        assert (
            asyncio.run(one.run(log_a_bug, "http://127.0.0.1/a.html", url="http://127.0.0.1/a.html"))
            == "http://127.0.0.1/a.html"
        )
    [message] = [
        m
        for m in caplog.messages
        if m.startswith("item http://127.0.0.1/a.html: listing: KeyError: 'absent'")
    ]
    assert "Traceback (most recent call last)" in message
    assert "in log_a_bug" in message


def test_every_shipped_site_config_crosses_the_process_boundary_unchanged():
    """Each job pickles its SiteConfig: a config type that does not pickle would fail every page."""
    _, sites = load_all(Path(__file__).parent.parent / "config")
    assert sites
    for one in sites:
        assert pickle.loads(pickle.dumps(one)) == one


def test_listing_pages_after_the_site_run_budget_are_left_unread_and_the_listing_is_not_cached(
    tmp_path: Path,
):
    """Page 1 takes 1 s of a 0.5 s run budget: page 2 is not read (a warning names it), page 1's items are
    stored, and the next run asks for page 1 without If-None-Match, so page 2 is read once there is time."""

    def first_page(h: HostileHandler) -> None:
        time.sleep(1.0)
        body = listing_html(["a"], "/pages/").replace(
            b"</ul>", b'</ul><a class="next" href="/pages/2.html">more</a>'
        )
        h.reply(200, body, {"ETag": '"p1"'})

    def second_page(h: HostileHandler) -> None:
        h.reply(200, listing_html(["b"], "/pages/"))

    with serve_routes({"/pages/1.html": first_page, "/pages/2.html": second_page}) as server:
        text = (
            SITE.format(name="Paged", url=server.url("/pages/1.html"), max_articles=20)
            .replace('headline = "a"\n', 'headline = "ul a"\nnext = "a.next"\n')
            .replace("allow_private_network = true", "allow_private_network = true\nmax_pages = 3")
        )
        text = text.replace('link = "a"', 'link = "ul a"')
        settings, [site] = load(tmp_path, {"paged": text}, "site_run_seconds = 0.5")

        async def go(store: Store) -> SiteReport:
            async with Fetcher(settings.fetch) as fetcher:
                return await crawl_site(site, settings=settings, fetcher=fetcher, store=store)

        with SqliteStore(tmp_path / "state.db") as store:
            first = asyncio.run(go(store))
            stored = [e.article.headline for e in store.entries(["paged"], 10)]
            asyncio.run(go(store))
        asks = [hit for hit in server.hits if hit.path == "/pages/1.html"]
    assert first.ok, first.errors
    assert stored == ["Story a of the day"]
    assert (
        f"listing page not read: the site run budget of 0.5 s is used up: {server.url('/pages/2.html')}"
        in first.warnings
    )
    assert len(asks) == 2
    assert "If-None-Match" not in asks[1].headers


def test_workers_of_a_killed_run_stop_on_their_own_cpu_limit(tmp_path: Path):
    """SIGKILL to `run --once` while a worker parses a pathological listing: the parent can no longer kill the
    worker, so the kernel does (RLIMIT_CPU, set per job from the budget) and nothing is left running."""
    www = tmp_path / "www"
    (www / "deep").mkdir(parents=True)
    (www / "deep" / "index.html").write_bytes(b"<html><body>" + b"<div>" * 200_000 + b"</body></html>")
    with serve_dir(www) as (base, requests):
        config = write_config(
            tmp_path / "config",
            {"deep": SITE.format(name="Deep", url=f"{base}/deep/index.html", max_articles=20)},
            extra="[limits]\nparse_seconds = 1\n",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "feedmaker", "--config", str(config), "run", "--once"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: "/deep/index.html" in requests, 15, "the pathological listing to be fetched")
            time.sleep(0.3)
            left = descendants(proc.pid)
            assert len(left) >= 3  # the forkserver and two page workers at least
            proc.kill()
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # Soft limit = CPU used + 1 s budget, rounded up, + 1 s; generous for a loaded machine.
    wait_for(lambda: not any(process_alive(pid) for pid in left), 20, "the orphaned page workers to stop")
