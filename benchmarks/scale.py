"""Scale-out figures, one run: SQLite with 1 worker and PostgreSQL with 1, 2 and 4 workers over one fixture.

Each configuration gets a fresh store and crawls one schedule slot: every worker's runner fires for every site
at once, as each daemon's scheduler would, and the leases decide who runs what. Printed per configuration:
site runs per minute, pages per second, claim latency (ms from the slot firing to the run starting, p50/p99),
and the check that every site ran exactly once. Then `run --once` time over the fixture with `--entries`
entries already stored, for both engines.

Workers are separate stores, fetchers and runners in one process (one event loop): the figures show the cost
of coordinating through the database, not the speed-up of more machines on this 2-core box.

    python benchmarks/scale.py --sites 300 --entries 100000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fixture_site import CSS, Fixture, Server, family_of, host_of
from feedmaker.config import Settings, SiteConfig
from feedmaker.crawl import crawl_site
from feedmaker.fetch import Fetcher
from feedmaker.models import SiteReport, utcnow
from feedmaker.publish import Published
from feedmaker.schedule import SiteRunner
from feedmaker.store import Store, open_store
from tests.postgres_server import find_bindir, remove, start_server

SETTINGS = Settings.model_validate(
    {"fetch": {"delay": 0.0, "obey_robots": False, "concurrency": 16, "allow_private_networks": ["127.0.0.0/8"]},
     "log_level": "WARNING"}
)  # fmt: skip


def sites_of(fixture: Fixture) -> list[SiteConfig]:
    sites = []
    for n in range(fixture.sites):
        css = CSS[family_of(n)]
        sites.append(SiteConfig.model_validate({
            "id": f"site-{n}", "name": f"Fixture Site {n}", "start_urls": [fixture.listing_url(n)], "schedule": "every 1h", "max_articles": 0,
            "list": {"item": css["item"], "link": {"css": css["link"], "attr": "href"}, "headline": css["headline"],
                     "date": {"css": css["date"], "attr": "datetime"}},
        }))  # fmt: skip
    return sites


def no_publish(settings: Settings, sites: Any, store: Store, *, only: set[str] | None = None) -> Published:
    return Published()


async def one_slot(url: str, state: Path, sites: list[SiteConfig], workers: int) -> dict[str, Any]:
    """All workers fire for all sites at once; returns the figures of that slot."""
    stores = [open_store(url, state_dir=state, worker=f"w{n}") for n in range(workers)]
    starts: list[float] = []
    ends: list[float] = []  # the slot's work is done at the last end; losers still wait out their poll after
    pages = 0
    fired = 0.0
    fixed = utcnow()

    async def timed_crawl(site: SiteConfig, **kwargs: Any) -> SiteReport:
        starts.append(time.perf_counter() - fired)
        try:
            return await crawl_site(site, **kwargs)
        finally:
            ends.append(time.perf_counter() - fired)

    try:
        fetchers = [Fetcher(SETTINGS.fetch, shared=s if s.SHARED else None) for s in stores]
        runners = [
            SiteRunner(SETTINGS, sites, fetcher=f, store=s, crawl=timed_crawl, publish=no_publish, now=lambda: fixed,
                       lease=timedelta(seconds=30))
            for f, s in zip(fetchers, stores, strict=True)
        ]  # fmt: skip
        fired = time.perf_counter()
        reports = await asyncio.gather(*(r.run(site.id) for r in runners for site in sites))
        elapsed = max(ends)
        for fetcher in fetchers:
            await fetcher.aclose()
        ran = [r for r in reports if r is not None]
        pages = sum(r.pages for r in ran)
        by_site = {r.site for r in ran}
        entries = stores[0].entry_count()
    finally:
        for store in stores:
            store.close()
    starts.sort()
    return {
        "elapsed": elapsed, "runs": len(ran), "distinct": len(by_site), "failed": sum(not r.ok for r in ran),
        "pages": pages, "entries": entries,
        "p50": 1000 * statistics.median(starts), "p99": 1000 * starts[min(len(starts) - 1, int(len(starts) * 0.99))],
    }  # fmt: skip


def preload(url: str, state: Path, count: int) -> None:
    """`count` stored entries of other sites, in bulk (the store's own rules are not what is measured)."""
    with open_store(url, state_dir=state) as store, store._write("preload") as db:
        now = utcnow().isoformat(timespec="microseconds")
        db.executemany(
            "INSERT INTO entries (id, site, key, url_key, url, headline, published, author, summary, image, content, "
            "origins, first_seen, updated) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, '[]', ?, ?)",
            (
                (f"urn:uuid:{uuid.uuid4()}", f"old-{n % 100}", f"old story number {n} told here", f"https://old.example/{n}",
                 f"https://old.example/{n}", f"Old story number {n} told here", now, now)
                for n in range(count)
            ),
        )  # fmt: skip


def row(name: str, figures: dict[str, Any], sites: int) -> str:
    once = "ok" if figures["runs"] == figures["distinct"] == sites else "NOT ONCE"
    failed = f" failed={figures['failed']}" if figures["failed"] else ""
    return (
        f"{name:<22} {figures['runs'] / figures['elapsed'] * 60:>9.0f} {figures['pages'] / figures['elapsed']:>8.1f} "
        f"{figures['p50']:>9.1f} {figures['p99']:>9.1f} {figures['elapsed']:>7.2f} {figures['runs']:>5}/{sites} {once}"
        f"{failed}"
    )


async def main(args: argparse.Namespace) -> None:
    hosts = sorted({host_of(n, min(args.hosts, 250)) for n in range(args.sites)})
    server = Server({}, hosts)
    # The pages hold absolute URLs, so they are rendered once the port is known.
    fixture = Fixture(args.sites, 30, hosts=args.hosts, port=await server.start())
    server.pages = fixture.pages()
    sites = sites_of(fixture)
    bindir, reason = find_bindir()
    pg = start_server(bindir) if bindir else None
    if pg is None:
        print(f"PostgreSQL skipped: {reason}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            counter = iter(range(1, 1000))

            def fresh(engine: str) -> str:
                n = next(counter)
                if engine == "sqlite":
                    return f"sqlite:///{root / f's{n}.db'}"
                assert pg is not None
                pg.psql(f"CREATE DATABASE b{n}")
                return pg.url(f"b{n}")

            print(
                f"{args.sites} sites on {len({fixture.base(n) for n in range(args.sites)})} hosts, one slot per configuration"
            )
            print(
                f"{'configuration':<22} {'runs/min':>9} {'pages/s':>8} {'claim p50':>9} {'claim p99':>9} {'secs':>7} runs"
            )
            configs = [("sqlite", 1)] + ([("postgres", n) for n in (1, 2, 4)] if pg else [])
            for engine, workers in configs:
                figures = await one_slot(fresh(engine), root, sites, workers)
                print(row(f"{engine} x{workers} worker(s)", figures, args.sites), flush=True)
            print(f"\nrun --once over the fixture with {args.entries} entries stored (1 worker)")
            for engine in ["sqlite"] + (["postgres"] if pg else []):
                url = fresh(engine)
                started = time.perf_counter()
                preload(url, root, args.entries)
                loaded = time.perf_counter() - started
                figures = await one_slot(url, root, sites, 1)
                print(
                    f"{engine:<10} run {figures['elapsed']:>7.2f} s  (preload {loaded:.1f} s, entries after {figures['entries']})",
                    flush=True,
                )
    finally:
        if pg is not None:
            remove(pg)
        await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--entries", type=int, default=100_000)
    asyncio.run(main(parser.parse_args()))
