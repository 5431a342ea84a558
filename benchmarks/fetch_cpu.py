"""Fetch CPU per GET: feedmaker's Fetcher alone (no extraction) against the loopback fixture in its own process.

  .venv/bin/python benchmarks/fetch_cpu.py                      # 2,000 article pages on 20 hosts, 5 rounds
  .venv/bin/python benchmarks/fetch_cpu.py --pages 500 --rounds 3

Prints, per round, the process CPU and wall time of fetching every page (16 in flight, robots.txt off,
no delay) and the TCP connections the fixture accepted; then min and median CPU per GET in microseconds.
The fixture binds 127.0.0.0/8 only and nothing else is dialled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from feedmaker.config import FetchSettings
from feedmaker.fetch import Fetcher
from feedmaker.models import Page

HERE = Path(__file__).resolve().parent
CONCURRENCY = 16


async def fetch_all(urls: Sequence[str]) -> tuple[float, float, int]:
    settings = FetchSettings(
        delay=0.0,
        obey_robots=False,
        retries=0,
        concurrency=CONCURRENCY,
        allow_private_networks=("127.0.0.0/8",),
    )
    gate = asyncio.Semaphore(CONCURRENCY)
    failures = 0
    async with Fetcher(settings) as fetcher:

        async def one(url: str) -> None:
            nonlocal failures
            async with gate:
                page = await fetcher.fetch(url)
            if not isinstance(page, Page) or not page.body:
                failures += 1

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(u) for u in urls))
        return time.perf_counter() - wall, time.process_time() - cpu, failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    sites = args.hosts
    per_site = max(1, args.pages // sites)
    server = subprocess.Popen(
        [sys.executable, str(HERE / "fixture_site.py"), "--sites", str(sites), "--articles", str(per_site),
         "--hosts", str(args.hosts), "--lifetime", "600"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        if not ready or ready[0] != "READY":
            print("fixture did not start", file=sys.stderr)
            return 1
        port, hosts = int(ready[1]), ready[2:]
        urls = [
            f"http://{hosts[n % len(hosts)]}:{port}/site-{n}/a/{k}.html"
            for k in range(per_site)
            for n in range(sites)
        ]
        stats_url = f"http://{hosts[0]}:{port}/__stats"
        per_get: list[float] = []
        for round_number in range(1, args.rounds + 1):
            with urllib.request.urlopen(stats_url, timeout=10) as reply:
                before = json.load(reply)
            wall, cpu, failures = asyncio.run(fetch_all(urls))
            with urllib.request.urlopen(stats_url, timeout=10) as reply:
                after = json.load(reply)
            connections = after.get("connections", 0) - before.get("connections", 0)
            per_get.append(cpu / len(urls) * 1e6)
            print(
                f"round {round_number}: {len(urls)} GETs cpu={cpu:.3f} s wall={wall:.3f} s "
                f"cpu/GET={per_get[-1]:.0f} us connections={connections} failures={failures}"
            )
        print(f"cpu per GET: min {min(per_get):.0f} us, median {statistics.median(per_get):.0f} us")
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
