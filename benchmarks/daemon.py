"""Daemon soak and serving benchmark: many crawl cycles through the real scheduler job, then feed polls.

Runs the daemon's pieces in one process and loop, as `feedmaker run` does (APScheduler job -> crawl_site ->
publish, uvicorn serving output_dir), against a fixture site on 127.0.0.1. Instead of waiting for an
`every 1s` schedule, each cycle fires the site's job at once and waits for it to finish, so 500 cycles take
seconds, not minutes. Prints RSS after warm-up and at the end (target: < 10 % growth), then feed requests/s
from a separate client process, with and without If-None-Match (304). Everything stays on 127.0.0.1.

    .venv/bin/python benchmarks/daemon.py [--cycles 500] [--requests 3000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent

from feedmaker.config import FetchSettings, ServerSettings, Settings, SiteConfig
from feedmaker.daemon import listen
from feedmaker.fetch import Fetcher
from feedmaker.publish import feed_ids, publish
from feedmaker.schedule import SiteRunner, add_site_jobs, make_scheduler
from feedmaker.serve import Status, make_app, make_server
from feedmaker.store import SqliteStore

SHOWN = 20  # articles on the fixture listing, so a page stays the same size as the soak goes on
T0 = datetime(2025, 1, 1, tzinfo=UTC)

CLIENT = r"""
# A minimal keep-alive HTTP/1.1 client on raw asyncio streams: httpx's own overhead would be the bottleneck.
import asyncio, json, sys, time
from urllib.parse import urlsplit

async def main(url, total, concurrency, conditional):
    parts = urlsplit(url)

    async def fetch(reader, writer, extra):
        writer.write(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept-Encoding: gzip\r\n{extra}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        headers = {k.lower(): v for k, v in headers.items()}
        length = int(headers.get("content-length", "0"))
        if length:
            await reader.readexactly(length)
        return int(lines[0].split()[1]), headers

    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    _, headers = await fetch(reader, writer, "")
    writer.close()
    extra = f"If-None-Match: {headers['etag']}\r\n" if conditional else ""
    statuses = {}
    per_worker = total // concurrency

    async def worker():
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        for _ in range(per_worker):
            status, _ = await fetch(reader, writer, extra)
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    print(json.dumps({"rps": per_worker * concurrency / elapsed, "statuses": statuses}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"))
"""


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def write_listing(root: Path, count: int) -> None:
    items = "".join(
        f'<article class="post"><h2><a href="/news/story-{n}.html">Story number {n}</a></h2>'
        f'<time datetime="{(T0 + timedelta(minutes=n)).isoformat()}">x</time><p>Summary of story {n}.</p></article>'
        for n in range(count, max(0, count - SHOWN), -1)
    )
    page = root / "news" / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"<html><body>{items}</body></html>", encoding="utf-8")
    # The static server's Last-Modified has whole seconds: move it on so If-Modified-Since never hides a change.
    stamp = 1_700_000_000 + count * 10
    os.utime(page, (stamp, stamp))


async def soak(args: argparse.Namespace, tmp: Path, base: str, www: Path) -> None:
    settings = Settings(
        output_dir=tmp / "output",
        state_dir=tmp / "state",
        fetch=FetchSettings(delay=0.0, retries=0, allow_private_networks=("127.0.0.0/8",)),
        server=ServerSettings(host="127.0.0.1", port=0),
    )
    site = SiteConfig.model_validate(
        {
            "id": "news",
            "name": "News",
            "start_urls": [f"{base}/news/index.html"],
            "schedule": "every 1s",
            "allow_private_network": True,
            "list": {
                "item": "article.post",
                "link": {"css": "h2 a", "attr": "href"},
                "headline": "h2",
                "summary": "p",
                "date": {"css": "time", "attr": "datetime"},
            },
        }
    )
    settings.output_dir.mkdir(parents=True)
    settings.state_dir.mkdir(parents=True)
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    with SqliteStore(settings.state_dir / "feedmaker.db") as store:
        async with Fetcher(settings.fetch) as fetcher:
            scheduler = make_scheduler()
            runner = SiteRunner(settings, [site], fetcher=fetcher, store=store)
            add_site_jobs(scheduler, runner, [site])
            publish(settings, [site], store)
            server = make_server(make_app(settings, lambda: feed_ids(settings, [site]), lambda: Status()))
            finished: asyncio.Queue[JobExecutionEvent] = asyncio.Queue()
            scheduler.add_listener(finished.put_nowait, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
            scheduler.start()
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            job = scheduler.get_job("site:news")

            async def cycle(n: int) -> None:
                if n % 5 == 0:  # a new article every 5 cycles; the rest are unchanged pages (304 upstream)
                    write_listing(www, n // 5 + 1)
                job.modify(next_run_time=datetime.now(UTC))
                event = await finished.get()
                if event.exception is not None:
                    raise RuntimeError(f"job failed: {event.exception!r}")

            warmup = 50
            began = time.perf_counter()
            for n in range(warmup):
                await cycle(n)
            rss_start = rss_mib()
            for n in range(warmup, warmup + args.cycles):
                await cycle(n)
            elapsed = time.perf_counter() - began
            rss_end = rss_mib()
            last = store.last_run("news")
            print(
                f"crawl cycles: {args.cycles} after {warmup} warm-up in {elapsed:.1f} s "
                f"({(warmup + args.cycles) / elapsed:.1f} cycles/s); entries={store.entry_count('news')} "
                f"last run ok={last is not None and last.ok}"
            )
            growth = (rss_end - rss_start) / rss_start * 100
            print(
                f"RSS: start {rss_start:.1f} MiB, end {rss_end:.1f} MiB, growth {growth:+.1f} % (target < 10 %)"
            )

            url = f"http://127.0.0.1:{port}/feeds/news.atom"
            size = len((settings.output_dir / "news.atom").read_bytes())
            for conditional in (False, True):
                out = await asyncio.to_thread(
                    subprocess.run,
                    [
                        sys.executable,
                        "-c",
                        CLIENT,
                        url,
                        str(args.requests),
                        str(args.concurrency),
                        str(int(conditional)),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(out.stdout)
                label = "If-None-Match -> 304" if conditional else f"full 200 ({size} B, gzip)"
                print(
                    f"feed requests/s, {label}: {result['rps']:.0f} (statuses {result['statuses']}, "
                    f"{args.concurrency} connections)"
                )

            scheduler.shutdown(wait=False)
            server.should_exit = True
            await serving


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        www = tmp / "www"
        write_listing(www, 1)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(www)))
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            asyncio.run(soak(args, tmp, f"http://127.0.0.1:{httpd.server_port}", www))
        finally:
            httpd.shutdown()
            httpd.server_close()


if __name__ == "__main__":
    main()
