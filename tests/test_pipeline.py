"""End to end: site configs -> crawl over a real local server -> canonical dedup -> SQLite -> valid Atom."""

from __future__ import annotations

import itertools
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import pytest

from feedmaker import publish as publish_module
from feedmaker.cli import main
from feedmaker.config import CombinedFeed, Filters, Settings, SiteConfig
from feedmaker.feed import render_atom
from feedmaker.models import Article, Entry, FeedMeta
from feedmaker.publish import Publisher
from feedmaker.store import SqliteStore, Store
from tests.atom import assert_valid_atom
from tests.sites import ARRIVALS, PAGES, serve_dir, write_config

ATOM = "{http://www.w3.org/2005/Atom}"
STORY = "mobile launch vehicles"


def site_toml(name: str, base: str, path: str, *, extra: str = "") -> str:
    return f"""name = "{name}"
start_urls = ["{base}/{path}"]
timezone = "Asia/Seoul"
[list]
item = "article.post"
link = "h2 a"
headline = "h2"
summary = "p.excerpt"
[article]
headline = "h1.headline"
date = [{{ css = "time", attr = "datetime" }}, {{ css = ".date", format = "Date:%Y-%m-%d %H:%M:%S" }}]
author = {{ css = ".byline", regex = "^By (.+)$" }}
image = {{ css = "meta[property='og:image']", attr = "content" }}
content = "div.body"
{extra}"""


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "site").symlink_to(PAGES / "pipeline")
    (root / "listings").symlink_to(PAGES / "html2rss")
    with serve_dir(root) as served:
        yield served


@pytest.fixture
def config(tmp_path: Path, web: tuple[str, list[str]]) -> Path:
    base = web[0]
    return write_config(
        tmp_path / "config",
        {
            "wire": site_toml("Wire Service", base, "site/wire/index.html"),
            "farm": site_toml(
                "GrowthSphere Strategies",
                base,
                "site/farm/index.html",
                extra='[canonical]\nstrip = ["^Indexbit Exchange:\\\\s*"]\n',
            ),
            "mirror": site_toml("Poinbank", base, "site/mirror/index.html"),
        },
        extra='\n[[feed]]\nid = "all"\ntitle = "Everything"\nsites = ["wire", "farm", "mirror"]\n',
    )


def run_once(config: Path) -> int:
    return main(["--config", str(config), "run", "--once"])


def feed_files(config: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((config.parent / "output").glob("*.atom"))}


def test_seed_story_under_three_headlines_is_one_entry(config: Path) -> None:
    """The wire story, the farm's prefixed/suffixed copy and an upper-cased mirror are one entry."""
    assert run_once(config) == 0
    combined = feedparser.parse(feed_files(config)["all"])
    titles = [e.title for e in combined.entries]
    assert sum(STORY in t.lower() for t in titles) == 1, titles
    assert len(titles) == 4  # kim + court + dogs + vatican
    with sqlite3.connect(config.parent / "state" / "feedmaker.db") as db:
        [count] = db.execute("SELECT count(*) FROM entries").fetchone()
    assert count == 4


def test_second_run_adds_nothing_and_rewrites_identical_feeds(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_once(config) == 0
    first = feed_files(config)
    mtimes = {p: p.stat().st_mtime_ns for p in (config.parent / "output").glob("*.atom")}
    capsys.readouterr()
    assert run_once(config) == 0
    out = capsys.readouterr().out
    assert feed_files(config) == first
    assert {p: p.stat().st_mtime_ns for p in (config.parent / "output").glob("*.atom")} == mtimes
    rows = [line.split() for line in out.splitlines() if line.startswith(("wire ", "farm ", "mirror "))]
    assert rows, out
    assert all(row[4] == "0" for row in rows), out  # column "new"


def test_every_feed_validates_against_rfc4287_and_feedparser(config: Path) -> None:
    assert run_once(config) == 0
    files = feed_files(config)
    assert set(files) == {"wire", "farm", "mirror", "all"}
    for data in files.values():
        assert_valid_atom(data)  # the RELAX NG schema where the shared corpora are present


def test_entries_carry_article_page_fields_and_no_script(config: Path) -> None:
    assert run_once(config) == 0
    wire = feedparser.parse(feed_files(config)["wire"])
    kim = next(e for e in wire.entries if STORY in e.title.lower())
    assert kim.author == "Kim Tong-Hyung"
    assert kim.published == "2025-04-08T12:29:11-04:00"  # the wire's own offset (16:29 UTC)
    # Each site's feed shows its own copy, whichever site was stored first; the others are related links.
    assert kim.link.endswith("/site/wire/kim.html")
    assert len([link for link in kim.links if link.rel == "related"]) == 2
    assert kim.id.startswith("urn:uuid:")
    raw = feed_files(config)["wire"].decode()
    assert "alert(" not in raw
    assert "javascript:" not in raw.lower()


def test_zoneless_farm_date_uses_site_timezone(config: Path) -> None:
    assert run_once(config) == 0
    farm = feedparser.parse(feed_files(config)["farm"])
    vatican = next(e for e in farm.entries if "Vatican" in e.title)
    # Printed zone-less as 03:10 on a site in Asia/Seoul: written in that zone (18:10 UTC the day before).
    assert vatican.published == "2025-04-09T03:10:00+09:00"


def test_entry_ids_never_change_across_runs(config: Path) -> None:
    assert run_once(config) == 0
    ids = {e.id for e in feedparser.parse(feed_files(config)["all"]).entries}
    for _ in range(3):
        assert run_once(config) == 0
    assert {e.id for e in feedparser.parse(feed_files(config)["all"]).entries} == ids


def test_unchanged_listing_costs_a_304_on_the_next_run(config: Path, web: tuple[str, list[str]]) -> None:
    assert run_once(config) == 0
    requests = web[1]
    articles_before = sum(1 for r in requests if not r.endswith("index.html") and "robots" not in r)
    assert run_once(config) == 0
    articles_after = sum(1 for r in requests if not r.endswith("index.html") and "robots" not in r)
    assert articles_after == articles_before  # known items are never re-fetched


def test_failing_site_is_named_and_others_still_publish(
    tmp_path: Path, config: Path, web: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    (config / "sites" / "gone.toml").write_text(site_toml("Gone", web[0], "site/nowhere/index.html"))
    assert run_once(config) == 1
    captured = capsys.readouterr()
    assert "failed sites: gone" in captured.err
    assert re.search(r"gone: error: fetch failed: .*/site/nowhere/index.html: HTTP 404", captured.out), (
        captured.out
    )
    assert {"wire", "farm", "mirror", "all"} <= set(feed_files(config))


def test_example_configs_extract_their_corpus_pages(tmp_path: Path, web: tuple[str, list[str]]) -> None:
    """The shipped example configs work on the saved pages of those sites (tests/pages/html2rss), served locally."""
    base = web[0]
    shipped = Path(__file__).parent.parent / "config" / "sites"
    pages = {
        "nuxt-releases": "listings/nuxt-releases.html",
        "apple-security": "listings/apple_support_security_releases.html",
    }
    sites = {}
    for name, path in pages.items():
        text = (shipped / f"{name}.toml").read_text()
        sites[name] = re.sub(r"start_urls = \[.*\]", f'start_urls = ["{base}/{path}"]', text)
    config = write_config(tmp_path / "cfg", sites)
    assert run_once(config) == 0
    nuxt = feedparser.parse(feed_files(config)["nuxt-releases"])
    assert len(nuxt.entries) == 10
    assert nuxt.entries[0].title == "v2.10.2"
    assert (
        nuxt.entries[0].link == f"{base}/nuxt/nuxt.js/releases/tag/v2.10.2"
    )  # relative href, served locally
    assert nuxt.entries[0].published.startswith("2019-10-21T21:18:53")
    apple = feedparser.parse(feed_files(config)["apple-security"])
    assert len(apple.entries) >= 50
    assert all(e.link.startswith(f"{base}/en-gb/") for e in apple.entries)
    assert apple.entries[0].published.startswith("2026-03-24")


def test_multi_site_run_on_one_host_keeps_the_configured_gap(
    tmp_path: Path, web: tuple[str, list[str]]
) -> None:
    """Three sites on one host, crawled concurrently: the server never sees two requests closer than the
    delay, and never a path robots.txt disallows."""
    base = web[0]
    (tmp_path / "www" / "robots.txt").write_text("User-agent: *\nDisallow: /site/farm/vatican.html\n")
    config = write_config(
        tmp_path / "polite",
        {
            name: site_toml(name.title(), base, f"site/{name}/index.html")
            for name in ("wire", "farm", "mirror")
        },
        delay=0.25,
    )
    assert run_once(config) == 0
    arrivals = sorted(t for t, _path in ARRIVALS[tmp_path / "www"])
    assert len(arrivals) >= 9  # robots.txt, 3 listings, 5 allowed article pages
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.25 - 0.01, gaps
    assert "/site/farm/vatican.html" not in web[1]
    assert web[1].count("/robots.txt") == 1


def test_combined_feed_filters_apply_when_the_feed_is_written(config: Path) -> None:
    settings = (config / "feedmaker.toml").read_text()
    (config / "feedmaker.toml").write_text(settings + 'filters = { exclude = ["vatican", "^dogs"] }\n')
    assert run_once(config) == 0
    titles = [e.title for e in feedparser.parse(feed_files(config)["all"]).entries]
    assert len(titles) == 2, titles
    assert not any("Vatican" in t or t.startswith("Dogs") for t in titles)
    assert len(feedparser.parse(feed_files(config)["farm"]).entries) == 2  # site feeds are not filtered


def test_retry_after_pause_outlives_the_process(tmp_path: Path) -> None:
    """A 429 with Retry-After pauses the host for later `run --once` invocations too: no request until then."""
    hits: list[str] = []

    class TooMany(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404 if self.path == "/robots.txt" else 429)
            self.send_header("Retry-After", "3600")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), TooMany)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        config = write_config(tmp_path / "config", {"busy": site_toml("Busy", base, "list.html")})
        assert run_once(config) == 1
        assert hits.count("/list.html") == 1
        assert run_once(config) == 1
        assert hits.count("/list.html") == 1  # the second process did not ask again
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_robots_txt_is_asked_once_across_runs(config: Path, web: tuple[str, list[str]]) -> None:
    """`run --once` from cron: the second process reuses the robots.txt the first one fetched."""
    assert run_once(config) == 0
    assert run_once(config) == 0
    assert web[1].count("/robots.txt") == 1


def test_running_one_site_leaves_combined_feeds_whole(config: Path) -> None:
    assert run_once(config) == 0
    before = feed_files(config)["all"]
    assert main(["--config", str(config), "run", "--once", "--site", "wire"]) == 0
    assert feed_files(config)["all"] == before


# -- publish only what changed (issue 12) ----------------------------------------------------------------


def _publisher_world(tmp_path: Path, sites: int = 300) -> tuple[Settings, list[SiteConfig], Store]:
    site_configs = [
        SiteConfig.model_validate(
            {
                "id": f"s{n}",
                "name": f"Site {n}",
                "start_urls": [f"https://s{n}.example/"],
                "list": {"item": "article"},
            }
        )
        for n in range(sites)
    ]
    settings = Settings(
        output_dir=tmp_path / "output",
        feed_size=5,
        feed=(
            CombinedFeed(id="pair", title="Pair", sites=("s0", "s1")),
            CombinedFeed(id="picky", title="Picky", sites=("s1", "s2"), filters=Filters(include=("keep",))),
        ),
    )
    return settings, site_configs, SqliteStore(tmp_path / "state.db")


def _add(store: Store, site: str, n: int, headline: str | None = None) -> None:
    text = headline or f"Story {n} from {site} told at length"
    store.add(
        Article(site=site, url=f"https://{site}.example/{n}", headline=text),
        key=text.lower(),
        url_key=f"{site}/{n}",
    )


def test_a_site_run_considers_only_its_feeds_and_renders_only_changed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feeds of other sites are not looked at; a feed whose sites' counters and config did not move is not
    rendered, and its bytes and mtime stay; a changed entry re-renders exactly the feeds that show it."""
    settings, sites, store = _publisher_world(tmp_path)
    rendered: list[str] = []
    real_render = render_atom

    def counting_render(meta: FeedMeta, entries: Sequence[Entry], *, born: datetime | None = None) -> bytes:
        rendered.append(meta.id)
        return real_render(meta, entries, born=born)

    monkeypatch.setattr(publish_module, "render_atom", counting_render)
    with store:
        for n in range(3):
            _add(store, "s0", n)
            _add(store, "s1", n, f"Story {n} to keep from s1 told")
        publisher = Publisher(settings, sites)
        first = publisher.publish(store)
        assert len(rendered) == len(sites) + 2  # start-up: every feed once
        mtimes = {p: p.stat().st_mtime_ns for p in settings.output_dir.glob("*.atom")}
        before = {p: p.read_bytes() for p in mtimes}
        assert dict(first.entries)["picky"] == 3

        rendered.clear()
        again = publisher.publish(store, only={"s1"})
        assert rendered == []  # nothing changed: nothing rendered, nothing written
        assert again.written == ()
        assert [feed for feed, _ in again.entries] == ["s1", "pair", "picky"]  # only the feeds holding s1
        assert dict(again.entries) == {"s1": 3, "pair": 5, "picky": 3}

        _add(store, "s1", 9, "Story 9 to keep from s1 told")
        changed = publisher.publish(store, only={"s1"})
        assert rendered == ["s1", "pair", "picky"]
        assert {p.name for p in changed.written} == {"s1.atom", "pair.atom", "picky.atom"}
        assert "Story 9 to keep" in (settings.output_dir / "pair.atom").read_text(encoding="utf-8")
        untouched = [p for p in mtimes if p.name not in {"s1.atom", "pair.atom", "picky.atom"}]
        assert {p: p.stat().st_mtime_ns for p in untouched} == {p: mtimes[p] for p in untouched}
        assert {p: p.read_bytes() for p in untouched} == {p: before[p] for p in untouched}

        rendered.clear()
        (settings.output_dir / "s0.atom").unlink()  # a lost file is written again even though nothing changed
        publisher.publish(store, only={"s0"})
        assert rendered == ["s0"]
        assert (settings.output_dir / "s0.atom").exists()

        # A reload that edits a feed's config re-renders that feed only; the versions carry over.
        rendered.clear()
        edited = settings.model_copy(
            update={"feed": (settings.feed[0].model_copy(update={"title": "Pair!"}), settings.feed[1])}
        )
        reloaded = Publisher(edited, sites, previous=publisher)
        reloaded.publish(store)
        assert rendered == ["pair"]


def test_a_sighting_by_another_site_re_renders_both_sites_feeds(tmp_path: Path) -> None:
    settings, sites, store = _publisher_world(tmp_path, sites=4)
    with store:
        _add(store, "s3", 1, "A wire story everyone copies today")
        publisher = Publisher(settings, sites)
        publisher.publish(store)
        # s2 lists the same story under another URL: a source of s3's entry, now part of s2's feed too.
        _add(store, "s2", 7, "A wire story everyone copies today")
        published = publisher.publish(store, only={"s2"})
        assert {p.name for p in published.written} == {
            "s2.atom"
        }  # picky filters it out: rendered, same bytes
        assert "A wire story everyone copies" in (settings.output_dir / "s2.atom").read_text(encoding="utf-8")
        # s3's own feed shows the new sighting as a link: its next publish renders it, though s3 did not run.
        assert {p.name for p in publisher.publish(store, only={"s3"}).written} == {"s3.atom"}
