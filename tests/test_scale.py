"""Issue 13's done-when, at test size: three workers on one PostgreSQL crawl a fixture of many sites on
127.0.0.x for several schedule slots. Every (site, slot) runs exactly once, the per-host gap measured at the
server never falls below `delay`, no story is stored twice, and every instance writes identical feed bytes."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fixture_site import CSS, Fixture, Server, family_of, host_of
from feedmaker.config import Settings, SiteConfig
from feedmaker.fetch import Fetcher
from feedmaker.models import utcnow
from feedmaker.publish import Published, feed_path, publish
from feedmaker.schedule import SiteRunner
from feedmaker.store import Store, open_store

SITES, HOSTS, SLOTS, WORKERS = 60, 12, 3, 3
DELAY = 0.25


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recording(dict[tuple[str, str], bytes]):
    """The fixture server's pages, noting when each host was asked for one (the server's side of a gap)."""

    def __init__(self, pages: dict[tuple[str, str], bytes]) -> None:
        super().__init__(pages)
        self.arrivals: dict[str, list[float]] = defaultdict(list)

    def get(self, key: tuple[str, str], default: Any = None) -> Any:
        self.arrivals[key[0]].append(time.monotonic())
        return super().get(key, default)


def site_configs(fixture: Fixture) -> list[SiteConfig]:
    configs = []
    for n in range(fixture.sites):
        css = CSS[family_of(n)]
        configs.append(SiteConfig.model_validate({
            "id": f"site-{n}", "name": f"Site {n}", "start_urls": [fixture.listing_url(n)], "schedule": "every 1h", "max_articles": 0,
            "list": {"item": css["item"], "link": {"css": css["link"], "attr": "href"}, "headline": css["headline"],
                     "date": {"css": css["date"], "attr": "datetime"}},
        }))  # fmt: skip
    return configs


def no_publish(settings: Settings, sites: Any, store: Store, *, only: set[str] | None = None) -> Published:
    return Published()


@pytest.mark.slow
@pytest.mark.anyio
async def test_three_workers_run_each_site_once_per_slot_politely_without_duplicates(
    postgres_url: str, tmp_path: Path
):
    server = Server({}, sorted({host_of(n, HOSTS) for n in range(SITES)}))
    fixture = Fixture(SITES, 30, hosts=HOSTS, port=await server.start())
    pages = Recording(fixture.pages())
    server.pages = pages
    settings = Settings.model_validate(
        {
            "fetch": {"delay": DELAY, "obey_robots": False, "allow_private_networks": ["127.0.0.0/8"]},
            "feed_size": 100,
        }
    )
    sites = site_configs(fixture)
    stores = [open_store(postgres_url, state_dir=tmp_path, worker=f"w{n}") for n in range(WORKERS)]
    fetchers = [Fetcher(settings.fetch, shared=store) for store in stores]
    try:
        first = utcnow()
        for slot in range(SLOTS):
            moment = first + timedelta(hours=slot)  # each slot as its own hour-long window

            def now(moment: datetime = moment) -> datetime:
                return moment

            runners = [
                SiteRunner(settings, sites, fetcher=f, store=s, publish=no_publish, now=now,
                           lease=timedelta(seconds=4))
                for f, s in zip(fetchers, stores, strict=True)
            ]  # fmt: skip
            # All fire at once, as every daemon's scheduler does; a different worker asks first for each site.
            order = [
                (runners[(i + k) % WORKERS], site) for i, site in enumerate(sites) for k in range(WORKERS)
            ]
            reports = await asyncio.gather(*(r.run(site.id) for r, site in order))
            ran = [r for r in reports if r is not None]
            assert sorted(r.site for r in ran) == sorted(s.id for s in sites), f"slot {slot}"
            assert all(r.ok for r in ran), [r.errors for r in ran if not r.ok][:3]
        workers = {stores[0].last_run(s.id).worker for s in sites}  # type: ignore[union-attr]
        assert len(workers) > 1  # the work was shared, not taken by one worker
        for host, times in pages.arrivals.items():
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert min(gaps) >= DELAY - 0.02, f"{host}: {min(gaps):.3f} s"
        listed = {item.url for n in range(SITES) for item in fixture.expected(n)}
        assert stores[0].entry_count() == len(listed)
        # The first form of a URL is kept; tracking parameters (utm_*) are not part of its identity.
        assert {
            e.article.url.split("?")[0] for e in stores[0].entries([s.id for s in sites], 10_000)
        } == listed
        feeds: list[dict[str, bytes]] = []
        for n, store in enumerate(stores):
            own = settings.model_copy(update={"output_dir": tmp_path / f"out{n}"})
            await asyncio.to_thread(publish, own, sites, store)
            feeds.append({s.id: feed_path(own, s.id).read_bytes() for s in sites})
        assert feeds[0] == feeds[1] == feeds[2]
    finally:
        for fetcher in fetchers:
            await fetcher.aclose()
        for store in stores:
            store.close()
        await server.close()
