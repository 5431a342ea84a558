"""daemon.py end to end: `feedmaker run` as a subprocess against fixture sites on 127.0.0.1.

Sites are crawled `every 2s`; the served feed follows the fixture, polls get 304, a second daemon on the same
state dir refuses, SIGTERM stops it cleanly, and newsboat (where available) sees every entry exactly once.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sites import QuietFiles, serve_dir, write_config

pytestmark = pytest.mark.slow

ATOM = "{http://www.w3.org/2005/Atom}"
REPO = Path(__file__).parent.parent
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class FixtureSite:
    """A listing page on disk whose articles the test adds to; each write moves the mtime a whole step on,
    so the static server's If-Modified-Since (second resolution) never hides a change."""

    root: Path
    name: str
    articles: list[tuple[str, str, datetime]] = field(default_factory=list)
    version: int = 0

    def add(self, count: int = 1) -> None:
        for _ in range(count):
            n = len(self.articles) + 1
            title = f"{self.name.title()} story {n}: a & b <ok>"
            self.articles.append((title, f"/{self.name}/story-{n}.html", T0 + timedelta(hours=n)))
        self.write()

    def write(self) -> None:
        items = "".join(
            f'<article class="post"><h2><a href="{link}">{title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")}'
            f'</a></h2><time datetime="{when.isoformat()}">{when:%d %B}</time></article>'
            for title, link, when in reversed(self.articles)
        )
        page = self.root / self.name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html><html><body><main>{items}</main></body></html>", encoding="utf-8")
        self.version += 1
        stamp = 1_700_000_000 + self.version * 10
        os.utime(page, (stamp, stamp))


def site_toml(name: str, url: str) -> str:
    return f"""name = "{name.title()} News"
start_urls = ["{url}"]
schedule = "every 2s"
allow_private_network = true
[list]
item = "article.post"
link = {{ css = "h2 a", attr = "href" }}
headline = "h2"
date = {{ css = "time", attr = "datetime" }}
"""


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    url: str
    config: Path
    state: Path
    stderr: Path
    sites: dict[str, FixtureSite]
    www: str  # base URL of the fixture sites

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=headers, timeout=5, trust_env=False)

    def entries(self, feed: str) -> list[ET.Element]:
        r = self.get(f"/feeds/{feed}.atom")
        if r.status_code != 200:
            return []
        return ET.fromstring(r.content).findall(f"{ATOM}entry")

    def titles(self, feed: str) -> list[str]:
        return [e.findtext(f"{ATOM}title") or "" for e in self.entries(feed)]


def feedmaker(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "feedmaker", "--config", str(config), *args]


def start_daemon(tmp: Path, www: Path, base: str, *, names: tuple[str, ...] = ("alpha", "beta")) -> Daemon:
    sites = {name: FixtureSite(www, name) for name in names}
    for site in sites.values():
        site.add(2)
    port = free_port()
    config = write_config(
        tmp / "config",
        {
            **{name: site_toml(name, f"{base}/{name}/index.html") for name in names},
            "broken": site_toml("broken", f"{base}/missing/index.html"),
        },
        extra=f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n[[feed]]\nid = "all"\ntitle = "Everything"\nsites = ["alpha", "beta"]\n',
    )
    stderr = tmp / "daemon.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(feedmaker(config, "run"), cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    daemon = Daemon(proc, f"http://127.0.0.1:{port}", config, tmp / "state", stderr, sites, base)

    def up() -> bool:
        assert proc.poll() is None, f"daemon exited early ({proc.returncode}):\n{daemon.log()}"
        try:
            return daemon.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, 15, "the daemon's server")
        wait_for(lambda: len(daemon.titles("alpha")) == 2, 15, "the first crawl of alpha")
    except BaseException:
        kill(daemon)  # a failed start must not leave a daemon running after the test run
        raise
    return daemon


def kill(daemon: Daemon) -> None:
    if daemon.proc.poll() is None:
        daemon.proc.kill()
        daemon.proc.wait()


def stop(daemon: Daemon) -> tuple[int, float]:
    began = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        code = daemon.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        daemon.proc.kill()
        daemon.proc.wait()
        raise
    return code, time.monotonic() - began


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("daemon")
    www = tmp / "www"
    www.mkdir()
    with serve_dir(www) as (base, _):
        running = start_daemon(tmp, www, base)
        try:
            yield running
        finally:
            if running.proc.poll() is None:
                stop(running)


def test_new_articles_appear_in_the_served_feed_and_the_next_poll_gets_304(daemon: Daemon):
    alpha = daemon.sites["alpha"]
    alpha.add()
    wait_for(lambda: len(daemon.titles("alpha")) == 3, 15, "the new article in the alpha feed")
    assert daemon.titles("alpha")[0] == "Alpha story 3: a & b <ok>"
    wait_for(lambda: "Alpha story 3: a & b <ok>" in daemon.titles("all"), 10, "the new article in the combined feed")

    first = daemon.get("/feeds/alpha.atom")
    assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
    again = daemon.get("/feeds/alpha.atom", **{"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    since = daemon.get("/feeds/alpha.atom", **{"If-Modified-Since": first.headers["last-modified"]})
    assert since.status_code == 304
    assert "site=alpha run ok pages=1" in daemon.log()


def test_opml_lists_every_feed(daemon: Daemon):
    root = ET.fromstring(daemon.get("/opml").content)
    urls = {o.get("xmlUrl") for o in root.iter("outline")}
    assert urls == {f"{daemon.url}/feeds/{feed}.atom" for feed in ("alpha", "beta", "broken", "all")}
    for url in urls:
        assert url is not None
        assert httpx.get(url, timeout=5, trust_env=False).status_code == 200


def test_failing_site_shows_on_the_status_page_and_healthz_not_in_its_feed(daemon: Daemon):
    wait_for(lambda: daemon.get("/healthz").json()["counts"]["failing"] == 1, 10, "the broken site's first run")
    health = daemon.get("/healthz").json()
    assert health["sites"]["broken"]["state"] == "failing"
    assert health["sites"]["alpha"]["state"] == "ok"
    page = daemon.get("/").text
    assert "Broken News" in page
    assert "failing x" in page
    assert "404" in page
    assert daemon.entries("broken") == []  # the failure is never an entry
    assert "site=broken run failed" in daemon.log()


def test_second_daemon_on_the_same_state_dir_refuses_at_once(daemon: Daemon):
    began = time.monotonic()
    second = subprocess.run(feedmaker(daemon.config, "run"), cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert second.returncode == 1
    assert f"another feedmaker is running on {daemon.state} (pid {daemon.proc.pid})" in second.stderr
    assert time.monotonic() - began < 3  # the promise is 1 s; slack for a loaded CI machine
    assert daemon.proc.poll() is None
    assert daemon.get("/healthz").status_code == 200


def newsboat_binary() -> str:
    found = shutil.which("newsboat")
    if not found:
        # The suite installs nothing: .ci/run installs newsboat where it can.
        pytest.skip("newsboat is not on PATH (install it, e.g. apt-get install newsboat; .ci/run does)")
    return found


def test_newsboat_sees_every_entry_exactly_once(daemon: Daemon, tmp_path: Path):
    binary = newsboat_binary()
    home = tmp_path / "home"
    (home / ".newsboat").mkdir(parents=True)
    config = home / ".newsboat" / "config"
    config.write_text("reload-threads 1\n", encoding="utf-8")
    urls = tmp_path / "urls"
    feed_url = f"{daemon.url}/feeds/beta.atom"
    urls.write_text(feed_url + "\n", encoding="utf-8")
    cache = tmp_path / "cache.db"
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local/share"), "TERM": "dumb", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.pop("http_proxy", None)
    env.pop("HTTP_PROXY", None)

    def reload() -> None:
        done = subprocess.run([binary, "-u", str(urls), "-c", str(cache), "-C", str(config), "-x", "reload"],
                              env=env, capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr + done.stdout

    beta = daemon.sites["beta"]
    reload()
    beta.add()
    wait_for(lambda: len(daemon.titles("beta")) == len(beta.articles), 15, "the new article in the beta feed")
    reload()

    with sqlite3.connect(cache) as db:
        rows = db.execute("SELECT title, url, pubDate FROM rss_item WHERE feedurl = ? ORDER BY pubDate", (feed_url,)).fetchall()
    assert rows == [(title, daemon.www + link, int(when.timestamp())) for title, link, when in beta.articles]


class StallingFiles(QuietFiles):
    """Static files, except that /slow/ hangs for 30 s once the test sets `stall`: a crawl in flight at SIGTERM."""

    def do_GET(self) -> None:
        server: Any = self.server
        if self.path.startswith("/slow/") and server.stall.is_set():
            server.stalled.set()
            time.sleep(30)
            return
        super().do_GET()


@contextmanager
def serve_stalling(root: Path) -> Iterator[tuple[str, threading.Event, threading.Event]]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), partial(StallingFiles, directory=str(root)))
    server.requests, server.stall, server.stalled = [], threading.Event(), threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.stall, server.stalled
    finally:
        server.shutdown()
        server.server_close()


def test_sigterm_with_a_crawl_in_flight_stops_within_10s_and_leaves_an_intact_store(tmp_path: Path):
    """The hung crawl gets its 5 s, is cancelled, and the daemon still exits 0 with the store whole."""
    www = tmp_path / "www"
    www.mkdir()
    with serve_stalling(www) as (base, stall, stalled):
        daemon = start_daemon(tmp_path, www, base, names=("alpha", "beta", "slow"))
        try:
            wait_for(lambda: all(len(daemon.titles(n)) == 2 for n in ("alpha", "beta", "slow")), 15, "the first crawls")
            stall.set()
            wait_for(stalled.is_set, 10, "a crawl of the stalling site")
            code, seconds = stop(daemon)
        finally:
            kill(daemon)
    log = daemon.log()
    assert code == 0, log
    assert seconds < 10
    assert "site=slow run cancelled at shutdown" in log
    assert "daemon stopped code=0" in log
    with sqlite3.connect(daemon.state / "feedmaker.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counts = dict(db.execute("SELECT site, count(*) FROM entries GROUP BY site").fetchall())
    assert counts == {"alpha": 2, "beta": 2, "slow": 2}
    assert not list((tmp_path / "output").glob(".*"))  # no temp file left behind
