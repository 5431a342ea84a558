"""crawl_site over a real local site whose pages change between runs: pagination, filters, edited
headlines, new articles, drift and a broken listing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from feedmaker.config import Settings, SiteConfig, load_all
from feedmaker.crawl import Followed, Partition, crawl_site, filter_articles, run_seconds
from feedmaker.extract.fallbacks import ARTICLE_FIELDS, from_nodes
from feedmaker.fetch import Fetcher
from feedmaker.models import Article, SiteReport
from feedmaker.publish import feed_path, publish
from feedmaker.store import SqliteStore, Store
from tests.sites import QuietFiles, serve_dir, write_config

SITE = """name = "Changing"
start_urls = ["{base}/list1.html"]
max_pages = {max_pages}
max_articles = {max_articles}
[list]
item = "li.story"
link = "a"
headline = "a"
date = {{ css = "time", attr = "datetime" }}
next = "a.next"
[filters]
exclude = ["^Sponsored"]
"""


def listing(stories: Sequence[tuple[str, str, str | None]], next_page: str | None = None) -> str:
    items = "".join(
        f'<li class="story"><a href="{slug}.html">{title}</a>'
        + (f'<time datetime="{date}">x</time>' if date else "")
        + "</li>"
        for slug, title, date in stories
    )
    more = f'<a class="next" href="{next_page}">more</a>' if next_page else ""
    return f"<html><body><ul>{items}</ul>{more}</body></html>"


class World:
    """A local site, its config and the store, with helpers to change pages and run the crawler."""

    def __init__(
        self, tmp_path: Path, base: str, max_pages: int = 2, extra: str = "", max_articles: int = 20
    ) -> None:
        self.root = tmp_path / "www"
        text = SITE.format(base=base, max_pages=max_pages, max_articles=max_articles) + extra
        config = write_config(tmp_path / "config", {"changing": text})
        self.settings: Settings
        self.settings, [self.site] = load_all(config)
        self.store = SqliteStore(tmp_path / "state.db")
        self.changes = 0

    def page(self, name: str, html: str) -> None:
        path = self.root / name
        path.write_text(html, encoding="utf-8")
        # The stdlib server's Last-Modified has 1 s resolution: move each change clearly forward in time.
        self.changes += 1
        os.utime(path, (1_700_000_000 + 60 * self.changes, 1_700_000_000 + 60 * self.changes))

    def run(self) -> SiteReport:
        async def go() -> SiteReport:
            async with Fetcher(self.settings.fetch) as fetcher:
                return await crawl_site(self.site, settings=self.settings, fetcher=fetcher, store=self.store)

        report = asyncio.run(go())
        publish(self.settings, [self.site], self.store)
        return report

    def headlines(self) -> list[str]:
        return [e.article.headline for e in self.store.entries([self.site.id], 100)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, _requests):
        w = World(tmp_path, base)
        yield w
        w.store.close()


def test_pagination_follows_next_up_to_max_pages(world: World) -> None:
    world.page("list1.html", listing([("a", "Alpha story", None)], "list2.html"))
    world.page("list2.html", listing([("b", "Beta story", None)], "list3.html"))
    world.page("list3.html", listing([("c", "Gamma story", None)]))
    report = world.run()
    assert report.ok, report.errors
    assert report.pages == 2
    assert sorted(world.headlines()) == ["Alpha story", "Beta story"]


def test_exclude_filter_drops_matching_items(world: World) -> None:
    world.page("list1.html", listing([("a", "Alpha story", None), ("ad", "Sponsored: buy this", None)]))
    assert world.run().ok
    assert world.headlines() == ["Alpha story"]


def test_new_article_appears_on_the_next_run(world: World) -> None:
    world.page("list1.html", listing([("a", "Alpha story", "2025-01-01T10:00:00Z")]))
    assert world.run().new == 1
    world.page(
        "list1.html",
        listing([("b", "Beta story", "2025-01-02T10:00:00Z"), ("a", "Alpha story", "2025-01-01T10:00:00Z")]),
    )
    second = world.run()
    assert (second.new, second.duplicates) == (1, 1)
    assert world.headlines() == ["Beta story", "Alpha story"]


def test_edited_headline_at_same_url_updates_the_entry_and_keeps_its_id(world: World) -> None:
    world.page("list1.html", listing([("a", "Alpha story", "2025-01-01T10:00:00Z")]))
    world.run()
    [before] = world.store.entries([world.site.id], 10)
    world.page("list1.html", listing([("a", "Alpha story, corrected", "2025-01-01T10:00:00Z")]))
    report = world.run()
    assert (report.new, report.updated) == (0, 1)
    [after] = world.store.entries([world.site.id], 10)
    assert after.id == before.id
    assert after.article.headline == "Alpha story, corrected"


def test_date_selector_rot_is_flagged_with_the_selector(world: World) -> None:
    stories = [(f"s{i}", f"Story number {i}", f"2025-01-0{i}T10:00:00Z") for i in range(1, 5)]
    world.page("list1.html", listing(stories))
    assert not world.run().warnings
    world.page("list1.html", listing([(s, t, None) for s, t, _ in stories]))
    report = world.run()
    assert report.ok
    assert any("drift: list.published" in w and "list.date 'time'" in w for w in report.warnings), (
        report.warnings
    )


def test_zero_items_is_an_error_naming_the_selector_and_the_feed_keeps_last_good_entries(
    world: World,
) -> None:
    world.page("list1.html", listing([("a", "Alpha story", "2025-01-01T10:00:00Z")]))
    assert world.run().ok
    good = feed_path(world.settings, "changing").read_bytes()
    world.page("list1.html", "<html><body><div class='redesigned'>new look</div></body></html>")
    report = world.run()
    assert not report.ok
    [error] = report.errors
    assert "'li.story'" in error
    assert "last good run found 1 items" in error
    assert feed_path(world.settings, "changing").read_bytes() == good
    assert world.store.consecutive_failures("changing") == 1


def test_article_field_drift_is_measured_on_pages_followed_not_on_known_items(tmp_path: Path) -> None:
    """Known items bring no article fields; only newly followed pages that lost the byline are drift."""
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, _requests):
        world = World(tmp_path, base, extra='[article]\nauthor = ".byline"\n')
        try:

            def story(slug: str, byline: bool) -> None:
                author = '<p class="byline">Ann Writer</p>' if byline else "<p>no byline here</p>"
                world.page(f"{slug}.html", f"<html><body><h1>{slug}</h1>{author}</body></html>")

            story("a", byline=True)
            world.page("list1.html", listing([("a", "Alpha story", None)]))
            assert world.run().warnings == ()
            assert world.run().warnings == ()  # nothing new: no article page to measure
            story("b", byline=False)
            world.page("list1.html", listing([("b", "Beta story", None), ("a", "Alpha story", None)]))
            warnings = world.run().warnings
            assert any("drift: article.author" in w and "article.author '.byline'" in w for w in warnings), (
                warnings
            )
        finally:
            world.store.close()


def test_items_that_lost_their_links_are_an_error_naming_the_link_selector(world: World) -> None:
    world.page("list1.html", listing([("a", "Alpha story", None)]))
    assert world.run().ok
    world.page(
        "list1.html", "<html><body><ul><li class='story'><span>Alpha story</span></li></ul></body></html>"
    )
    report = world.run()
    [error] = report.errors
    assert "selector 'a' found no http(s) link in any of the 1 'li.story' item(s)" in error
    assert "last good run found 1 items" in error


def article_world(tmp_path: Path, base: str, **options: object) -> World:
    """A site whose listing links carry no text: headlines come from the article pages (h1)."""
    return World(tmp_path, base, extra='[article]\nheadline = "h1"\n', **options)  # type: ignore[arg-type]


def bare_listing(slugs: Sequence[str]) -> str:
    return (
        "<html><body><ul>"
        + "".join(f'<li class="story"><a href="{s}.html"></a></li>' for s in slugs)
        + "</ul></body></html>"
    )


def test_an_item_whose_article_page_failed_is_retried_next_run_not_hidden_by_a_304(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, _requests):
        world = article_world(tmp_path, base)
        try:
            world.page("list1.html", bare_listing(["a"]))
            first = world.run()
            assert (first.new, first.not_modified) == (0, 0)
            world.page("a.html", "<html><body><h1>Alpha story from the page</h1></body></html>")
            second = world.run()
            assert (second.new, second.not_modified) == (1, 0)
            assert world.headlines() == ["Alpha story from the page"]
            assert world.run().not_modified == 1  # now everything is stored, the listing may be cached
        finally:
            world.store.close()


def test_new_items_past_max_articles_wait_for_the_next_run_with_their_article_pages(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, _requests):
        world = article_world(tmp_path, base, max_articles=1)
        try:
            for slug in ("a", "b"):
                world.page(f"{slug}.html", f"<html><body><h1>Story {slug} from its page</h1></body></html>")
            world.page("list1.html", bare_listing(["a", "b"]))
            first = world.run()
            assert first.new == 1
            assert any("1 new item(s) left for the next run (max_articles = 1)" in w for w in first.warnings)
            assert world.run().new == 1
            assert sorted(world.headlines()) == ["Story a from its page", "Story b from its page"]
        finally:
            world.store.close()


def test_filters_see_headlines_that_come_from_the_article_page(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, _requests):
        world = World(tmp_path, base, extra='[article]\nheadline = "h1"\n')
        try:
            world.page("list1.html", bare_listing(["a", "b"]))
            world.page("a.html", "<html><body><h1>Sponsored: a great offer</h1></body></html>")
            world.page("b.html", "<html><body><h1>Python 4 released today</h1></body></html>")
            assert world.run().new == 1
            assert world.headlines() == ["Python 4 released today"]
        finally:
            world.store.close()


def test_items_that_differ_by_fragment_alone_are_separate_entries(world: World) -> None:
    """A changelog page: #v2-1-0, #v2-0-0 and #v1-9-0 are three releases, not one."""
    world.page(
        "list1.html",
        listing(
            [
                ("changelog.html#v2-1-0", "Version 2.1.0", None),
                ("changelog.html#v2-0-0", "Version 2.0.0", None),
                ("changelog.html#v1-9-0", "Version 1.9.0", None),
            ]
        ),
    )
    assert world.run().new == 3


def test_an_edited_site_config_rereads_a_listing_that_would_answer_304(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, _requests):
        world = World(tmp_path, base)
        try:
            world.page("list1.html", listing([("a", "Alpha story", "2025-01-01T10:00:00Z")]))
            assert world.run().new == 1
            assert world.run().not_modified == 1
            _, [world.site] = load_all(
                write_config(
                    tmp_path / "config",
                    {
                        "changing": SITE.format(base=base, max_pages=2, max_articles=5)
                        + '\n[canonical]\nstrip = ["^Breaking: "]\n'
                    },
                )
            )
            edited = world.run()
            assert edited.not_modified == 0
            assert edited.pages == 1
        finally:
            world.store.close()


def test_a_bug_in_one_site_is_reported_not_raised(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.page("list1.html", listing([("a", "Alpha story", None)]))

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("could not convert string to float: '²'")

    monkeypatch.setattr("feedmaker.crawl.extract_listing", broken)
    report = world.run()
    assert report.errors == (
        "internal error (a bug; the log has the traceback): ValueError: could not convert string to float: '²'",
    )


def test_items_filtered_after_their_article_page_are_remembered_and_do_not_starve_later_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, requests):
        world = World(tmp_path, base, max_articles=2, extra='[article]\nsummary = "p.summary"\n')
        try:
            for n, summary in (
                (1, "Sponsored by a bank"),
                (2, "Sponsored by a car maker"),
                (3, "The council met"),
            ):
                world.page(f"a{n}.html", f'<html><body><p class="summary">{summary}</p></body></html>')
            world.page("list1.html", listing([(f"a{n}", f"Story number {n}", None) for n in (1, 2, 3)]))
            world.site = world.site.model_copy(
                update={"filters": world.site.filters.model_copy(update={"exclude": ("sponsored by",)})}
            )
            assert world.run().new == 0
            assert world.run().new == 1
            assert world.headlines() == ["Story number 3"]
            third = world.run()
            assert third.not_modified == 1
            assert [r for r in requests if r.startswith("/a")].count("/a1.html") == 1
        finally:
            world.store.close()


def test_known_items_without_a_listing_headline_are_quiet_and_let_the_listing_be_cached(
    tmp_path: Path,
) -> None:
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, _requests):
        world = article_world(tmp_path, base)
        try:
            world.page("a.html", "<html><body><h1>Alpha story from the page</h1></body></html>")
            world.page("list1.html", bare_listing(["a"]))
            assert world.run().new == 1
            world.page("list1.html", bare_listing(["a"]) + "<!-- changed -->")
            second = world.run()
            assert (second.new, second.duplicates, second.warnings) == (0, 1, ())
            assert world.run().not_modified == 1
            assert world.headlines() == ["Alpha story from the page"]
        finally:
            world.store.close()


def test_a_fragment_key_does_not_change_when_more_items_appear(world: World) -> None:
    world.page("list1.html", listing([("changelog.html#v1-0-0", "Version 1.0.0 released", None)]))
    assert world.run().new == 1
    world.page(
        "list1.html",
        listing(
            [
                ("changelog.html#v1-1-0", "Version 1.1.0 released", None),
                ("changelog.html#v1-0-0", "Version 1.0.0 released", None),
            ]
        ),
    )
    second = world.run()
    assert (second.new, second.duplicates) == (1, 1)


def test_the_filter_step_keeps_known_items_and_sorts_new_ones_into_kept_rejected_and_left_out() -> None:
    """One step on its own: frozen values in, a frozen value out; nothing fetched or stored."""
    site = SiteConfig.model_validate(
        {
            "id": "news",
            "name": "News",
            "start_urls": ["https://news.example/"],
            "list": {"item": "li"},
            "filters": {"exclude": ["^Sponsored"]},
        }
    )

    def item(slug: str, headline: str) -> Article:
        return Article(site="news", url=f"https://news.example/{slug}", headline=headline)

    known = (item("old", "Old story"), "old story", "news.example/old")
    todo = tuple((f"news.example/{slug}", item(slug, slug)) for slug in ("kept", "ad", "blank", "gone"))
    followed = Followed(
        todo=todo,
        done=(item("kept", "Kept story"), item("ad", "Sponsored: buy"), item("blank", ""), None),
        deferred=2,
        followed=True,
    )
    result = filter_articles(site, Partition(known=(known,), fresh=todo), followed)
    assert [(a.headline, url_key) for a, _, url_key in result.sightings] == [
        ("Old story", "news.example/old"),
        ("Kept story", "news.example/kept"),
    ]
    assert result.rejected == ("news.example/ad",)
    assert result.left_out == 4  # two deferred, one without a headline, one whose page failed
    assert result.warnings == ("https://news.example/blank: no headline found; item skipped",)


def test_a_run_the_store_cannot_record_is_reported_failed_not_raised(world: World) -> None:
    """As on a full disk: the report says why, and the store remembers the failure for /healthz."""
    world.page("list1.html", listing([("a", "Alpha story", None)]))
    assert world.run().ok
    assert world.store.write_error is None
    with contextlib.closing(sqlite3.connect(world.store.path)) as db, db:
        db.execute(
            "CREATE TRIGGER full BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    world.page("list1.html", listing([("b", "Beta story", None), ("a", "Alpha story", None)]))
    report = world.run()
    assert not report.ok
    assert report.errors[-1].startswith("run not recorded: ")
    assert report.errors[-1].endswith("record run of site changing: database or disk is full")
    assert world.store.write_error is not None


# --- one bad item never costs a site its run; generic headlines; the run budget; hosts in parallel


def test_a_bug_on_one_listing_item_drops_that_item_with_a_warning_naming_its_url(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from feedmaker.extract import listing as listing_module

    real = from_nodes

    def trips_on_beta(doc: Any, node: Any, *args: Any) -> Any:
        if "b.html" in (node.html or ""):
            raise ZeroDivisionError("a fallback tripped on a strange node")
        return real(doc, node, *args)

    monkeypatch.setattr(listing_module, "from_nodes", trips_on_beta)
    world.page(
        "list1.html",
        listing([("a", "Alpha story", None), ("b", "Beta story", None), ("c", "Gamma story", None)]),
    )
    with caplog.at_level(logging.ERROR, logger="feedmaker"):
        report = world.run()
    assert report.ok, report.errors
    assert sorted(world.headlines()) == ["Alpha story", "Gamma story"]
    [record] = [r for r in caplog.records if "ZeroDivisionError" in r.getMessage()]
    assert (
        record.getMessage()
        == f"item {world.site.start_urls[0].rsplit('/', 1)[0]}/b.html: listing: ZeroDivisionError: a fallback tripped on a strange node"
    )
    assert record.exc_info is not None  # a bug: logged once, with its traceback


def test_a_bug_in_one_article_page_field_drops_that_field_and_a_bug_in_one_page_keeps_the_listing_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from feedmaker.extract import article as article_module

    def author_trips_on_b(doc: Any) -> Any:
        if doc.url.endswith("/b.html"):
            raise OverflowError("date value out of range")
        return None

    fields = tuple(
        (name, kind, author_trips_on_b if name == "author" else fallback)
        for name, kind, fallback in ARTICLE_FIELDS
    )
    monkeypatch.setattr(article_module, "ARTICLE_FIELDS", fields)
    real = article_module.extract_article

    def page_c_breaks(page: Any, site: Any, item: Any, *rest: Any) -> Any:
        if page.url.endswith("/c.html"):
            raise KeyError("absurd")
        return real(page, site, item, *rest)

    monkeypatch.setattr("feedmaker.crawl.extract_article", page_c_breaks)
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, _requests):
        world = World(tmp_path, base, extra='[article]\nheadline = "h1"\n')
        try:
            for slug in "abc":
                world.page(f"{slug}.html", f"<html><body><h1>Story {slug} from its page</h1></body></html>")
            world.page(
                "list1.html",
                listing([("a", "", None), ("b", "", None), ("c", "Story c from the listing", None)]),
            )
            with caplog.at_level(logging.ERROR, logger="feedmaker"):
                report = world.run()
            assert report.ok, report.errors
            assert sorted(world.headlines()) == [
                "Story a from its page",
                "Story b from its page",
                "Story c from the listing",
            ]
            messages = [r.getMessage() for r in caplog.records if r.exc_info]
            assert f"item {base}/b.html: author: OverflowError: date value out of range" in messages
            assert f"item {base}/c.html: article: KeyError: 'absurd'" in report.warnings
        finally:
            world.store.close()


def test_generic_listing_headlines_give_way_to_the_article_pages_headlines(tmp_path: Path) -> None:
    """Seven "Read more" links: seven entries, titled from their pages, and a second run keeps those titles."""
    (tmp_path / "www").mkdir()
    with serve_dir(tmp_path / "www") as (base, _requests):
        world = World(tmp_path, base, extra='[article]\nheadline = "h1"\n')
        try:
            slugs = [f"s{n}" for n in range(7)]
            for n, slug in enumerate(slugs):
                world.page(
                    f"{slug}.html", f"<html><body><h1>Story number {n} told in full</h1></body></html>"
                )
            world.page("list1.html", listing([(slug, "Read more", None) for slug in slugs]))
            first = world.run()
            assert (first.new, first.duplicates) == (7, 0), first
            expected = sorted(f"Story number {n} told in full" for n in range(7))
            assert sorted(world.headlines()) == expected
            world.page(
                "list1.html", listing([(slug, "Read more", None) for slug in slugs]) + " "
            )  # re-read, not 304
            second = world.run()
            assert second.updated == 0
            assert sorted(world.headlines()) == expected
        finally:
            world.store.close()


def test_generic_listing_headlines_without_article_selectors_stay_and_stay_apart(world: World) -> None:
    world.page("list1.html", listing([(f"s{n}", "Read more", None) for n in range(7)]))
    report = world.run()
    assert (report.new, report.duplicates) == (7, 0)
    assert world.headlines() == ["Read more"] * 7


@pytest.mark.parametrize(
    ("schedule", "limit", "expected"),
    [
        ("every 2s", 300.0, 1.6),  # 80% of the interval
        ("every 1h", 300.0, 300.0),  # the configured limit
        ("every 10m", 900.0, 480.0),
        ("*/5 * * * *", 600.0, 240.0),  # cron: of the gap between fires
        ("0 3 * * *", 300.0, 300.0),
    ],
)
def test_a_site_runs_budget_is_its_limit_and_well_under_its_schedule_interval(
    tmp_path: Path, schedule: str, limit: float, expected: float
) -> None:
    text = SITE.format(base="http://127.0.0.1", max_pages=1, max_articles=1) + f'schedule = "{schedule}"\n'
    # schedule is a top-level key: it must come before the first table
    text = f'schedule = "{schedule}"\n' + text.replace(f'schedule = "{schedule}"\n', "")
    settings, [site] = load_all(
        write_config(tmp_path / "config", {"s": text}, extra=f"[limits]\nsite_run_seconds = {limit}\n")
    )
    assert run_seconds(site, settings) == pytest.approx(expected)


class SlowArticles(QuietFiles):
    """Article pages that take ARTICLE_SECS each; the listing at /list.html links to both hosts."""

    def do_GET(self) -> None:
        server: Any = self.server
        if self.path == "/robots.txt":
            self.send_error(404)
            return
        if self.path == "/list.html":
            body = listing([(url, "", None) for url in server.links]).encode()
        else:
            time.sleep(ARTICLE_SECS)
            body = (
                f"<html><body><h1>Page {self.path} on {server.server_address[0]}</h1></body></html>".encode()
            )
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ARTICLE_SECS = 1.0


@contextlib.contextmanager
def slow_server(host: str) -> Iterator[Any]:
    server: Any = ThreadingHTTPServer((host, 0), SlowArticles)
    server.requests, server.links = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_article_pages_of_different_hosts_are_fetched_at_once_and_one_host_one_at_a_time(
    tmp_path: Path,
) -> None:
    """Two slow pages on 127.0.0.1 and two on 127.0.0.2: ~2 s (each host in turn, the hosts side by side), not ~4 s."""
    with slow_server("127.0.0.1") as one, slow_server("127.0.0.2") as two:
        links = [
            f"http://{host}:{srv.server_port}/{n}"
            for host, srv in (("127.0.0.1", one), ("127.0.0.2", two))
            for n in "ab"
        ]
        one.links = links
        text = SITE.format(base=f"http://127.0.0.1:{one.server_port}", max_pages=1, max_articles=10).replace(
            "list1.html", "list.html"
        )
        settings, [site] = load_all(
            write_config(tmp_path / "config", {"two": text + '[article]\nheadline = "h1"\n'})
        )

        async def go(store: Store) -> tuple[float, SiteReport]:
            async with Fetcher(settings.fetch) as fetcher:
                began = time.monotonic()
                report = await crawl_site(site, settings=settings, fetcher=fetcher, store=store)
                return time.monotonic() - began, report

        with SqliteStore(tmp_path / "state.db") as store:
            seconds, report = asyncio.run(go(store))
            stored = sorted(e.article.headline for e in store.entries([site.id], 10))
    assert report.ok, report.errors
    assert stored == sorted(f"Page /{n}.html on {host}" for host in ("127.0.0.1", "127.0.0.2") for n in "ab")
    assert 2 * ARTICLE_SECS <= seconds < 3 * ARTICLE_SECS, seconds


def test_an_item_with_a_date_past_year_9999_is_stored_without_it_and_the_run_is_ok(world: World) -> None:
    """`<time datetime="9999-12-31T23:59:59-14:00">` used to raise OverflowError and fail every run of the site."""
    world.page(
        "list1.html",
        listing(
            [
                ("a", "Alpha story", "2025-01-01T10:00:00Z"),
                ("b", "Beta story", "9999-12-31T23:59:59-14:00"),
                ("c", "Gamma story", None),
            ]
        ),
    )
    report = world.run()
    assert report.ok, report.errors
    dates = {e.article.headline: e.article.published for e in world.store.entries([world.site.id], 10)}
    assert set(dates) == {"Alpha story", "Beta story", "Gamma story"}
    assert dates["Beta story"] is None
    assert dates["Alpha story"] is not None
