"""Compression bombs: peak RSS growth of feedmaker's bounded decoder vs plain httpx `aread()`.

The parent serves /gzip-bomb and /brotli-bomb (zeros decoding to `--mib` MiB) from the hostile test
server on 127.0.0.1; each measurement runs in a fresh child process, so its ru_maxrss peak belongs to
that one fetch. Our fetcher stops at `max_bytes` (10 MiB, the default); httpx decodes each network
read in one call and keeps everything. Nothing leaves 127.0.0.1; the script ends by itself.

    .venv/bin/python benchmarks/fetch_bomb.py [--mib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time

import httpx

from feedmaker.config import FetchSettings
from feedmaker.errors import FetchError
from feedmaker.fetch import Fetcher
from tests.hostile_server import bomb, serve_routes

MIB = 1024 * 1024


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


async def fetch_ours(url: str) -> str:
    settings = FetchSettings(delay=0.0, retries=0, obey_robots=False, allow_private_networks=("127.0.0.0/8",))
    async with Fetcher(settings) as fetcher:
        try:
            page = await fetcher.fetch(url)
        except FetchError as exc:
            return exc.reason
    return f"{len(getattr(page, 'body', b''))} bytes"


async def fetch_httpx(url: str) -> str:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(url)
        return f"{len(response.content)} bytes decoded"


def child(how: str, url: str) -> None:
    """Run one fetch; print 'growth_bytes seconds outcome'."""
    asyncio.run(asyncio.sleep(0))  # warm the loop machinery before the baseline
    # Growth = peak after - RSS now: never smaller than the true growth, even if imports peaked higher.
    before = current_rss()
    start = time.perf_counter()
    outcome = asyncio.run(fetch_ours(url) if how == "feedmaker" else fetch_httpx(url))
    print(peak_rss() - before, f"{time.perf_counter() - start:.2f}", outcome)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="decoded size of each bomb")
    parser.add_argument("--child", nargs=2, metavar=("HOW", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    size = args.mib * MIB
    sizes = {kind: len(bomb(kind, size)) for kind in ("gzip", "br")}
    with serve_routes(bomb_size=size) as site:
        print(
            f"bombs decode to {args.mib} MiB; cap {FetchSettings().max_bytes // MIB} MiB; peak RSS growth per fetch"
        )
        print(f"{'bomb':<8}{'wire':>10}  {'client':<11}{'RSS growth':>12}{'secs':>7}  outcome")
        for kind, path in (("gzip", "/gzip-bomb"), ("br", "/brotli-bomb")):
            for how in ("feedmaker", "httpx"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", how, site.url(path)],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=300,
                ).stdout.split(maxsplit=2)
                growth, secs, outcome = int(out[0]), out[1], out[2].strip()
                print(f"{kind:<8}{sizes[kind]:>8} B  {how:<11}{growth / MIB:>8.1f} MiB{secs:>7}  {outcome}")


if __name__ == "__main__":
    main()
