"""Each feed its own view (issue 11 item 4): a site's feed shows its own copy of a story, a combined feed shows
each story once by its original, whatever order the sites were crawled in."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from feedmaker.config import Settings, SiteConfig, check_config, load_all
from feedmaker.crawl import crawl_site
from feedmaker.feed import render_atom
from feedmaker.fetch import Fetcher
from feedmaker.models import Article, Entry, FeedMeta, Sighting
from feedmaker.publish import publish
from feedmaker.store import SqliteStore
from feedmaker.views import View, ranked, view_entry, view_id
from tests.atom import ATOM, assert_valid_atom
from tests.sites import PAGES, serve_dir, write_config

T0 = datetime(2025, 4, 10, 9, 0, tzinfo=UTC)
STORY = "mobile launch vehicles"
WIRE_HEADLINE = (
    "North Korea\u2019s Kim orders increased production of mobile launch vehicles as tensions grow with US"
)


def site_toml(name: str, base: str, path: str, timezone: str, extra: str = "") -> str:
    return f"""name = "{name}"
start_urls = ["{base}/site/{path}"]
timezone = "{timezone}"
[list]
item = "article.post"
link = "h2 a"
headline = "h2"
summary = "p.excerpt"
[article]
headline = "h1.headline"
date = [{{ css = "time", attr = "datetime" }}, {{ css = ".date", format = "Date:%Y-%m-%d %H:%M:%S" }}]
content = "div.body"
{extra}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("views") / "www"
    root.mkdir()
    (root / "site").symlink_to(PAGES / "pipeline")
    with serve_dir(root) as (base, _requests):
        yield base


def config_dir(tmp_path: Path, base: str, feed_extra: str = "") -> Path:
    # The seed story: the wire's at 12:29 New York time (16:29 UTC); the farm's copy prints the same wall
    # time 01:29 as the mirror, read in London (00:29 UTC, the next day) and in UTC (01:29 UTC).
    return write_config(
        tmp_path / "config",
        {
            "wire": site_toml("Wire Service", base, "wire/index.html", "America/New_York"),
            "farm": site_toml(
                "GrowthSphere Strategies",
                base,
                "farm/index.html",
                "Europe/London",
                extra='[canonical]\nstrip = ["^Indexbit Exchange:\\\\s*"]\n',
            ),
            "mirror": site_toml("Poinbank", base, "mirror/index.html", "UTC"),
        },
        # The wire is listed last: it must win by its date, not by its place.
        extra=f'\n[[feed]]\nid = "all"\ntitle = "Everything"\nsites = ["farm", "mirror", "wire"]\n{feed_extra}',
    )


def crawl_in_order(settings: Settings, sites: list[SiteConfig], order: tuple[str, ...], out: Path) -> None:
    by_id = {s.id: s for s in sites}
    settings = settings.model_copy(update={"output_dir": out})
    with SqliteStore(out.parent / f"{out.name}.db", now=lambda: T0) as store:

        async def go() -> None:
            async with Fetcher(settings.fetch) as fetcher:
                for site in order:
                    report = await crawl_site(by_id[site], settings=settings, fetcher=fetcher, store=store)
                    assert report.ok, report.errors

        asyncio.run(go())
        publish(settings, sites, store)


def read_feed(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert_valid_atom(data)
    entries = []
    for entry in etree.fromstring(data).iter(f"{ATOM}entry"):
        links = entry.findall(f"{ATOM}link")
        source = entry.find(f"{ATOM}source")
        entries.append(
            {
                "id": entry.findtext(f"{ATOM}id"),
                "title": entry.findtext(f"{ATOM}title"),
                "link": next(x.get("href") for x in links if x.get("rel") in (None, "alternate")),
                "related": [x.get("href") for x in links if x.get("rel") == "related"],
                "published": entry.findtext(f"{ATOM}published"),
                "updated": entry.findtext(f"{ATOM}updated"),
                "source": None if source is None else source.findtext(f"{ATOM}id"),
            }
        )
    return entries


def test_every_crawl_order_gives_each_site_its_own_copy_and_the_combined_feed_the_original(
    tmp_path: Path, served: str
) -> None:
    """Farm, wire and mirror in all six orders: each site feed shows its own headline and link; the combined
    feed shows the wire's (earliest) copy once with the other two as related links; titles, links, related
    links and dates are the same whatever the order, and no id is in two feeds."""
    settings, sites = load_all(config_dir(tmp_path, served))
    views: dict[tuple[str, ...], dict[str, list[dict[str, Any]]]] = {}
    for order in itertools.permutations(["farm", "wire", "mirror"]):
        out = tmp_path / "-".join(order)
        crawl_in_order(settings, sites, order, out)
        views[order] = {feed: read_feed(out / f"{feed}.atom") for feed in ("wire", "farm", "mirror", "all")}

    wire, farm, mirror = (
        f"{served}/site/{p}" for p in ("wire/kim.html", "farm/kim-orders.html", "mirror/story-1.html")
    )
    for order, feeds in views.items():
        kim = {
            feed: [e for e in entries if STORY in str(e["title"]).lower()] for feed, entries in feeds.items()
        }
        assert all(len(found) == 1 for found in kim.values()), (order, kim)
        assert (kim["wire"][0]["title"], kim["wire"][0]["link"]) == (WIRE_HEADLINE, wire)
        assert str(kim["farm"][0]["title"]).startswith("Indexbit Exchange:North Korea\u2019s Kim orders")
        assert kim["farm"][0]["link"] == farm
        assert str(kim["mirror"][0]["title"]).startswith("NORTH KOREA'S KIM ORDERS")
        assert kim["mirror"][0]["link"] == mirror
        combined = kim["all"][0]
        assert (combined["title"], combined["link"]) == (WIRE_HEADLINE, wire)
        assert sorted(map(str, combined["related"])) == sorted([farm, mirror])
        assert str(combined["published"]).startswith(("2025-04-08T16:29:11", "2025-04-08T12:29:11"))
        assert str(kim["farm"][0]["published"]).startswith(
            ("2025-04-09T00:29:11", "2025-04-09T01:29:11+01:00")
        )
        assert combined["source"] == read_feed_id(out_of(tmp_path, order) / "wire.atom")
        assert len(feeds["all"]) == 4  # kim, court, dogs, vatican: each story once
        ids = [e["id"] for entries in feeds.values() for e in entries]
        assert len(ids) == len(set(ids)), order  # an id unique to (story, feed): newsboat keeps every feed

    def shown(feeds: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[object, ...]]]:
        keys = ("title", "link", "related", "published", "updated")
        return {feed: [tuple(e[k] for k in keys) for e in entries] for feed, entries in feeds.items()}

    first, *others = views.values()
    for feeds in others:
        assert shown(feeds) == shown(first)


def out_of(tmp_path: Path, order: tuple[str, ...]) -> Path:
    return tmp_path / "-".join(order)


def read_feed_id(path: Path) -> str | None:
    found: str | None = etree.fromstring(path.read_bytes()).findtext(f"{ATOM}id")
    return found


def test_prefer_overrides_makes_a_listed_sites_copy_the_original(tmp_path: Path, served: str) -> None:
    """`prefer = ["mirror"]` with `prefer_overrides`: the mirror's later copy represents the story."""
    settings, sites = load_all(config_dir(tmp_path, served, 'prefer = ["mirror"]\nprefer_overrides = true\n'))
    out = tmp_path / "out"
    crawl_in_order(settings, sites, ("wire", "farm", "mirror"), out)
    [kim] = [e for e in read_feed(out / "all.atom") if STORY in str(e["title"]).lower()]
    assert kim["link"] == f"{served}/site/mirror/story-1.html"
    assert sorted(map(str, kim["related"])) == [
        f"{served}/site/farm/kim-orders.html",
        f"{served}/site/wire/kim.html",
    ]


def test_prefer_naming_a_site_outside_the_feed_is_a_located_error(tmp_path: Path, served: str) -> None:
    config = config_dir(tmp_path, served, 'prefer = ["wire", "nobody"]\n')
    [problem] = check_config(config).errors
    assert problem.key == "feed.0.prefer"
    assert "nobody" in str(problem)
    assert problem.line is not None
    assert (config / "feedmaker.toml").read_text().splitlines()[problem.line - 1].startswith("prefer")


# -- the rule itself -----------------------------------------------------------------------------------------


def sighting(site: str, n: int, published: datetime | None, seen: datetime = T0) -> Sighting:
    url = f"https://{site}.example/{n}"
    return Sighting(
        article=Article(site=site, url=url, headline=f"{site} {n}", published=published),
        url_key=url,
        first_seen=seen,
        updated=seen,
    )


def test_the_original_is_the_earliest_then_prefer_then_the_feeds_site_order() -> None:
    early, late = T0 - timedelta(hours=2), T0 - timedelta(hours=1)
    copies = [sighting("farm", 1, late), sighting("wire", 1, early), sighting("mirror", 1, early)]
    sites = ["farm", "mirror", "wire"]
    assert ranked(copies, sites, View())[0].article.site == "mirror"  # tie: the feed's order
    assert ranked(copies, sites, View(prefer=("wire",)))[0].article.site == "wire"  # tie: prefer
    assert (
        ranked(copies, sites, View(prefer=("farm",)))[0].article.site == "mirror"
    )  # prefer only breaks ties
    assert ranked(copies, sites, View(prefer=("farm",), override=True))[0].article.site == "farm"
    # Undated counts from first seen: seen before the dated copies were published, it is the original.
    undated = sighting("farm", 2, None, seen=early - timedelta(minutes=1))
    assert ranked([*copies, undated], sites, View())[0] is undated
    # Only the feed's sites can be shown; the rest are related links.
    entry = view_entry("urn:uuid:s", "key", "wire", copies, ["farm"], View(feed="farm"))
    assert entry is not None
    assert entry.article.site == "farm"
    assert entry.sources == ("https://mirror.example/1", "https://wire.example/1")  # a tie outside: by site
    assert view_entry("urn:uuid:s", "key", "wire", copies, ["other"], View(feed="other")) is None


def test_ids_are_the_stored_id_in_the_first_sites_feed_and_derived_elsewhere() -> None:
    assert view_id("urn:uuid:s", "wire", "wire") == "urn:uuid:s"
    assert view_id("urn:uuid:s", "wire", None) == "urn:uuid:s"
    derived = {view_id("urn:uuid:s", "wire", feed) for feed in ("farm", "mirror", "all")}
    assert len(derived) == 3
    assert "urn:uuid:s" not in derived
    assert view_id("urn:uuid:s", "wire", "farm") == view_id("urn:uuid:s", "wire", "farm")  # stable
    assert view_id("urn:uuid:t", "wire", "farm") not in derived


def test_an_entrys_source_names_its_site_feed_and_validates() -> None:
    wire = FeedMeta(
        id="wire",
        title="Wire Service",
        link="https://wire.example/",
        self_url="https://f.example/feeds/wire.atom",
    )
    entry = Entry(
        id="urn:uuid:0b0c3f1e-8f0e-4c55-9a4c-9a0e0d1c2b3a",
        key="k",
        article=Article(site="wire", url="https://wire.example/1", headline="Story"),
        first_seen=T0,
        updated=T0,
        sources=("https://farm.example/1",),
        source=wire,
    )
    data = render_atom(FeedMeta(id="all", title="Everything", link="https://wire.example/"), [entry])
    assert_valid_atom(data)
    root = etree.fromstring(data)
    source = root.find(f"{ATOM}entry/{ATOM}source")
    assert source is not None
    assert source.findtext(f"{ATOM}id") == render_feed_id("wire")
    assert source.findtext(f"{ATOM}title") == "Wire Service"
    assert {(x.get("rel"), x.get("href")) for x in source.findall(f"{ATOM}link")} == {
        ("alternate", "https://wire.example/"),
        ("self", "https://f.example/feeds/wire.atom"),
    }


def render_feed_id(feed: str) -> str | None:
    born = datetime(2026, 1, 1, tzinfo=UTC)
    empty = render_atom(FeedMeta(id=feed, title="x", link="https://x.example/"), [], born=born)
    found: str | None = etree.fromstring(empty).findtext(f"{ATOM}id")
    return found
