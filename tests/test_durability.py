"""Kill test: SIGKILL `feedmaker run --once` at random moments; nothing committed is ever lost,
no feed file is ever partial and the store stays sound."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import feedparser
import pytest

from tests.sites import write_config

ARTICLES = 60


class SlowSite(BaseHTTPRequestHandler):
    """A listing of ARTICLES links; each article page takes 20 ms, so a run lasts long enough to be cut."""

    def do_GET(self) -> None:
        if self.path == "/list.html":
            items = "".join(
                f'<li><a href="/a/{n}.html">Story number {n} of the day</a></li>' for n in range(ARTICLES)
            )
            body = f"<html><body><ul>{items}</ul></body></html>"
        elif self.path.startswith("/a/"):
            time.sleep(0.02)
            n = self.path.removeprefix("/a/").removesuffix(".html")
            body = f"<html><head><title>t</title></head><body><h1>Story number {n} of the day</h1><p class='x'>Text {n}</p></body></html>"
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slow_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def stored_ids(db_path: Path) -> set[str]:
    if not db_path.exists():
        return set()
    with sqlite3.connect(db_path) as db:
        [status] = db.execute("PRAGMA integrity_check").fetchone()
        assert status == "ok"
        try:
            return {row[0] for row in db.execute("SELECT id FROM entries")}
        except sqlite3.OperationalError:  # killed before the first migration committed
            return set()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_committed(tmp_path: Path, slow_site: str) -> None:
    config = write_config(
        tmp_path / "config",
        {
            "slow": f"""name = "Slow"
start_urls = ["{slow_site}/list.html"]
max_items = {ARTICLES}
max_articles = {ARTICLES}
[list]
item = "li"
link = "a"
[article]
headline = "h1"
summary = "p.x"
"""
        },
    )
    db_path = tmp_path / "state" / "feedmaker.db"
    output = tmp_path / "output"
    rng = random.Random(4287)
    seen: set[str] = set()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-m", "feedmaker", "--config", str(config), "run", "--once"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        time.sleep(rng.uniform(0.3, 1.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
        ids = stored_ids(db_path)
        assert seen <= ids, f"committed entries lost: {seen - ids}"
        seen = ids
        for feed in output.glob("*.atom"):
            assert feedparser.parse(feed.read_bytes()).bozo == 0, feed
    # A last, uninterrupted run completes the work and cleans what the kills left behind.
    done = subprocess.run(
        [sys.executable, "-m", "feedmaker", "--config", str(config), "run", "--once"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert seen <= stored_ids(db_path)
    assert len(stored_ids(db_path)) == ARTICLES
    assert [p.name for p in output.iterdir()] == ["slow.atom"]
    assert len(feedparser.parse((output / "slow.atom").read_bytes()).entries) == 50  # feed_size
