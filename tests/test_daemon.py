"""daemon.py end to end: `feedmaker run` as a subprocess against fixture sites on 127.0.0.1.

Sites are crawled `every 2s`; the served feed follows the fixture, polls get 304, a second daemon on the same
state dir refuses, SIGTERM stops it cleanly, SIGHUP reloads the config, /healthz turns `failing` while the store
refuses writes, and newsboat (where available) sees every entry exactly once. A store that cannot write is
simulated without root: triggers added from another connection make every write fail, as a full disk would.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib.util
import os
import re
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

from feedmaker.config import load_all
from feedmaker.daemon import Daemon as DaemonState
from feedmaker.daemon import loop_factory, loop_name, open_session
from feedmaker.publish import feed_path
from feedmaker.schedule import SiteRunner, make_scheduler
from feedmaker.serve import make_app
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


def refuse_writes(db_path: Path) -> None:
    """From another connection: every insert, update and delete fails, as on a full disk."""
    with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as db, db:
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table in tables:
            for action in ("INSERT", "UPDATE", "DELETE"):
                db.execute(
                    f"CREATE TRIGGER refuse_{action.lower()}_{table} BEFORE {action} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                )


def allow_writes(db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as db, db:
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'refuse_%'"
        ).fetchall():
            db.execute(f"DROP TRIGGER {name}")


def status_page_entries(page: str) -> dict[str, int]:
    """Feed id -> the entry count the status page shows: the site table's entries column, and combined feeds."""
    rows = re.findall(
        r'<tr><td><a href="/feeds/([^"]+)\.atom">.*?</td>(?:<td>[^<]*</td>){3}<td>(\d+)</td>', page
    )
    combined = re.findall(
        r'<a href="/feeds/([^"]+)\.atom">[^<]*</a> <span class="entries">(\d+) entries</span>', page
    )
    return {feed: int(count) for feed, count in rows + combined}


def feed_entry_count(body: bytes) -> int:
    return len(ET.fromstring(body).findall(f"{ATOM}entry"))


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


def start_daemon(
    tmp: Path,
    www: Path,
    base: str,
    *,
    names: tuple[str, ...] = ("alpha", "beta"),
    extra: str = "",
    new_session: bool = False,
    site_extra: dict[str, str] | None = None,
) -> Daemon:
    """`site_extra` maps a site name to TOML appended to its file (the file ends inside its [list] table)."""
    sites = {name: FixtureSite(www, name) for name in names}
    for site in sites.values():
        site.add(2)
    port = free_port()
    config = write_config(
        tmp / "config",
        {
            **{
                name: site_toml(name, f"{base}/{name}/index.html") + (site_extra or {}).get(name, "")
                for name in names
            },
            "broken": site_toml("broken", f"{base}/missing/index.html"),
        },
        extra=f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n[[feed]]\nid = "all"\ntitle = "Everything"\nsites = ["alpha", "beta"]\n{extra}',
    )
    stderr = tmp / "daemon.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            feedmaker(config, "run"),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=new_session,
        )
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
    wait_for(
        lambda: "Alpha story 3: a & b <ok>" in daemon.titles("all"),
        10,
        "the new article in the combined feed",
    )

    first = daemon.get("/feeds/alpha.atom")
    assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
    again = daemon.get("/feeds/alpha.atom", **{"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    since = daemon.get("/feeds/alpha.atom", **{"If-Modified-Since": first.headers["last-modified"]})
    assert since.status_code == 304
    assert "site=alpha run ok pages=1" in daemon.log()


def test_the_daemon_runs_on_uvloop_where_it_is_installed(daemon: Daemon):
    # Every other test of this module then exercises uvloop with the page workers, the scheduler, httpx
    # fetches, the server and SIGTERM (SIGHUP in its own test).
    expected = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    assert f"loop={expected}" in daemon.log()


def test_without_uvloop_the_daemon_falls_back_to_asyncios_loop(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert loop_factory() is None
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        assert runner.run(_running_loop_name()) == "asyncio"


async def _running_loop_name() -> str:
    return loop_name(asyncio.get_running_loop())


def test_opml_lists_every_feed(daemon: Daemon):
    root = ET.fromstring(daemon.get("/opml").content)
    urls = {o.get("xmlUrl") for o in root.iter("outline")}
    assert urls == {f"{daemon.url}/feeds/{feed}.atom" for feed in ("alpha", "beta", "broken", "all")}
    for url in urls:
        assert url is not None
        assert httpx.get(url, timeout=5, trust_env=False).status_code == 200


def test_failing_site_shows_on_the_status_page_and_healthz_not_in_its_feed(daemon: Daemon):
    wait_for(
        lambda: daemon.get("/healthz").json()["counts"]["failing"] == 1, 10, "the broken site's first run"
    )
    reply = daemon.get("/healthz")
    health = reply.json()
    assert reply.status_code == 200  # the store still writes: degraded, not down
    assert health["status"] == "degraded"
    assert health["failing_sites"] == ["broken"]
    assert health["sites"]["broken"]["state"] == "failing"
    assert health["sites"]["alpha"]["state"] == "ok"
    page = daemon.get("/").text
    assert "Broken News" in page
    assert "failing x" in page
    assert "404" in page
    assert daemon.entries("broken") == []  # the failure is never an entry
    assert "site=broken run failed" in daemon.log()


def test_status_page_entry_counts_equal_what_the_feeds_hold(daemon: Daemon):
    def counts_agree() -> bool:
        shown = status_page_entries(daemon.get("/").text)
        held = {
            feed: feed_entry_count(daemon.get(f"/feeds/{feed}.atom").content)
            for feed in ("alpha", "beta", "all")
        }
        return shown == {**held, "broken": 0}

    # A crawl may publish between the two reads; the counts must agree once it is done.
    wait_for(counts_agree, 10, "the status page's entry counts to match the feeds")
    shown = status_page_entries(daemon.get("/").text)
    assert shown["all"] == shown["alpha"] + shown["beta"] > 0


def test_healthz_is_failing_with_503_while_the_store_refuses_writes_and_recovers(daemon: Daemon):
    db = daemon.state / "feedmaker.db"
    refuse_writes(db)
    try:
        wait_for(lambda: daemon.get("/healthz").status_code == 503, 15, "healthz to report the failing store")
        health = daemon.get("/healthz").json()
        assert health["status"] == "failing"
        assert "database or disk is full" in health["write_error"]
        assert "writes failing:" in daemon.get("/").text
        assert daemon.get("/feeds/alpha.atom").status_code == 200  # the last good feed is still served
    finally:
        allow_writes(db)
    wait_for(lambda: daemon.get("/healthz").status_code == 200, 15, "healthz to recover once writes succeed")
    assert daemon.get("/healthz").json()["status"] == "degraded"  # the broken site still fails
    assert "run not recorded" in daemon.log()


def test_second_daemon_on_the_same_state_dir_refuses_at_once(daemon: Daemon):
    began = time.monotonic()
    second = subprocess.run(
        feedmaker(daemon.config, "run"), cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
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


def newsboat_profile(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private newsboat config (one reload thread) and an environment that keeps it away from the user's
    own profile and from any proxy: newsboat must reach 127.0.0.1 directly."""
    home = tmp_path / "home"
    (home / ".newsboat").mkdir(parents=True)
    config = home / ".newsboat" / "config"
    config.write_text("reload-threads 1\n", encoding="utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if k.lower() != "http_proxy"},
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    return config, env


def test_newsboat_sees_every_entry_exactly_once(daemon: Daemon, tmp_path: Path):
    binary = newsboat_binary()
    config, env = newsboat_profile(tmp_path)
    urls = tmp_path / "urls"
    feed_url = f"{daemon.url}/feeds/beta.atom"
    urls.write_text(feed_url + "\n", encoding="utf-8")
    cache = tmp_path / "cache.db"

    def reload() -> None:
        done = subprocess.run(
            [binary, "-u", str(urls), "-c", str(cache), "-C", str(config), "-x", "reload"],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr + done.stdout

    beta = daemon.sites["beta"]
    reload()
    beta.add()
    wait_for(lambda: len(daemon.titles("beta")) == len(beta.articles), 15, "the new article in the beta feed")
    reload()

    with sqlite3.connect(cache) as db:
        rows = db.execute(
            "SELECT title, url, pubDate FROM rss_item WHERE feedurl = ? ORDER BY pubDate", (feed_url,)
        ).fetchall()
    assert rows == [(title, daemon.www + link, int(when.timestamp())) for title, link, when in beta.articles]


def test_newsboat_importing_opml_sees_each_feed_as_its_own_view(tmp_path: Path):
    """After importing /opml, every site feed lists its own items (its own copy of a shared story) and the
    combined feed each story once: no entry id is in two feeds, so newsboat files every item under its feed."""
    binary = newsboat_binary()
    www = tmp_path / "www"
    www.mkdir()
    with serve_dir(www) as (base, _):
        daemon = start_daemon(tmp_path, www, base)
        try:
            alpha, beta = daemon.sites["alpha"], daemon.sites["beta"]
            shared = "Both sites carry this remarkable shared story today"
            alpha.articles.append((shared, "/alpha/shared.html", T0 + timedelta(hours=10)))
            beta.articles.append((shared.upper(), "/beta/shared.html", T0 + timedelta(hours=11)))
            alpha.write()
            beta.write()
            wait_for(
                lambda: (
                    len(daemon.titles("alpha")) == len(daemon.titles("beta")) == 3
                    and len(daemon.titles("all")) == 5
                ),
                20,
                "the shared story in both site feeds and once in the combined feed",
            )
            config, env = newsboat_profile(tmp_path)
            opml, urls, cache = tmp_path / "feeds.opml", tmp_path / "urls", tmp_path / "cache.db"
            opml.write_bytes(daemon.get("/opml").content)
            urls.write_text("", encoding="utf-8")
            for args in (["-i", str(opml)], ["-x", "reload"]):
                done = subprocess.run(
                    [binary, "-u", str(urls), "-c", str(cache), "-C", str(config), *args],
                    env=env, capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                )  # fmt: skip
                assert done.returncode == 0, done.stderr + done.stdout
        finally:
            stop(daemon)
    with sqlite3.connect(cache) as db:
        rows = db.execute("SELECT feedurl, title, url FROM rss_item").fetchall()
    items: dict[str, list[tuple[str, str]]] = {}
    for feed, title, url in rows:
        items.setdefault(feed.rsplit("/", 1)[-1].removesuffix(".atom"), []).append((title, url))
    for site in (alpha, beta):
        expected = {(title, daemon.www + link) for title, link, _when in site.articles}
        assert sorted(items[site.name]) == sorted(expected), items
    combined = [title.lower() for title, _url in items["all"]]
    assert len(combined) == len(set(combined)) == 5, items["all"]


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
            wait_for(
                lambda: all(len(daemon.titles(n)) == 2 for n in ("alpha", "beta", "slow")),
                15,
                "the first crawls",
            )
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


def next_run_shown(page: str, site: str) -> datetime:
    """The status page's "next run" of one site: the last time in its row."""
    row = re.search(rf'<tr><td><a href="/feeds/{site}\.atom">.*?</tr>', page)
    assert row is not None, page
    times = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row.group(0))
    return datetime.strptime(times[-1], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)


def test_sighup_reloads_sites_schedules_and_combined_feeds_and_keeps_the_old_config_on_error(tmp_path: Path):
    """A broken feedmaker.toml is refused with its error logged and the old config kept; a broken site file
    keeps that site's running config and shows it failing; a good config adds gamma, removes beta, reschedules
    alpha and changes the combined feed without a restart; a new port asks for a restart."""
    www = tmp_path / "www"
    www.mkdir()
    with serve_dir(www) as (base, requests):
        daemon = start_daemon(tmp_path, www, base)
        try:
            sites_dir = daemon.config / "sites"
            toml = daemon.config / "feedmaker.toml"
            good_toml = toml.read_text(encoding="utf-8")
            toml.write_text("feed_sise = 3\n" + good_toml, encoding="utf-8")
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: "config reload failed; keeping the running config" in daemon.log(),
                10,
                "the refused reload",
            )
            assert "feed_sise" in daemon.log()
            assert daemon.proc.poll() is None
            # The old config still serves (beta's first run falls on its phase, within its 2 s interval).
            wait_for(lambda: len(daemon.titles("beta")) == 2, 10, "beta's feed from the old config")
            toml.write_text(good_toml, encoding="utf-8")

            good_alpha = (sites_dir / "alpha.toml").read_text(encoding="utf-8")
            (sites_dir / "alpha.toml").write_text(good_alpha + "\nmax_pagez = 3\n", encoding="utf-8")
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: "keeping the running config of broken site(s) alpha" in daemon.log(),
                10,
                "the half-refused reload",
            )
            assert f"{sites_dir / 'alpha.toml'}:" in daemon.log()
            assert "max_pagez" in daemon.log()
            health = daemon.get("/healthz").json()
            assert health["sites"]["alpha"]["state"] == "failing"
            assert "alpha" in health["failing_sites"]
            assert "config error: " in daemon.get("/").text
            daemon.sites["alpha"].add()  # the running alpha config still crawls
            wait_for(lambda: len(daemon.titles("alpha")) == 3, 15, "alpha crawled on its running config")

            gamma = FixtureSite(www, "gamma")
            gamma.add(2)
            (sites_dir / "alpha.toml").write_text(
                good_alpha.replace('"every 2s"', '"every 1h"'), encoding="utf-8"
            )
            (sites_dir / "beta.toml").unlink()
            (sites_dir / "gamma.toml").write_text(
                site_toml("gamma", f"{base}/gamma/index.html"), encoding="utf-8"
            )
            port = int(daemon.url.rsplit(":", 1)[1])
            toml.write_text(
                toml.read_text(encoding="utf-8")
                .replace('sites = ["alpha", "beta"]', 'sites = ["alpha", "gamma"]')
                .replace(f"port = {port}", f"port = {free_port()}"),
                encoding="utf-8",
            )
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "added=gamma" in daemon.log(), 10, "the reload")
            log = daemon.log()
            assert "added=gamma removed=beta rescheduled=alpha" in log
            assert "server changed; restart feedmaker to apply it" in log

            wait_for(lambda: len(daemon.titles("gamma")) == 2, 15, "the added site's first crawl")
            wait_for(
                lambda: "Gamma story 2: a & b <ok>" in daemon.titles("all"), 10, "gamma in the combined feed"
            )
            assert not any(title.startswith("Beta") for title in daemon.titles("all"))
            assert daemon.get("/feeds/beta.atom").status_code == 404
            urls = {o.get("xmlUrl") for o in ET.fromstring(daemon.get("/opml").content).iter("outline")}
            assert urls == {f"{daemon.url}/feeds/{feed}.atom" for feed in ("alpha", "gamma", "broken", "all")}
            assert set(daemon.get("/healthz").json()["sites"]) == {"alpha", "gamma", "broken"}

            # Rescheduled from every 2 s to every hour: no more alpha requests, next run about an hour away.
            assert next_run_shown(daemon.get("/").text, "alpha") > datetime.now(UTC) + timedelta(minutes=50)
            alpha_requests = requests.count("/alpha/index.html")
            beta_requests = requests.count("/beta/index.html")
            time.sleep(4)
            assert requests.count("/alpha/index.html") == alpha_requests
            assert requests.count("/beta/index.html") == beta_requests
            assert requests.count("/gamma/index.html") >= 2  # still every 2 s
        finally:
            if daemon.proc.poll() is None:
                code, _ = stop(daemon)
                assert code == 0, daemon.log()


@pytest.mark.anyio
async def test_status_counts_what_the_feed_holds_and_a_failing_store_turns_healthz_to_503(tmp_path: Path):
    """In one process: the store holds 3 entries, the feed (feed_size 2) 2, and the status says 2. While every
    write fails, the run is reported failed (not raised), /healthz answers 503 and recovers after."""
    www = tmp_path / "www"
    site = FixtureSite(www, "alpha")
    site.add(3)
    with serve_dir(www) as (base, _):
        config = write_config(
            tmp_path / "config",
            {"alpha": site_toml("alpha", f"{base}/alpha/index.html")},
            extra='\n[[feed]]\nid = "all"\ntitle = "Everything"\nsites = ["alpha"]\n',
        )
        toml = config / "feedmaker.toml"
        toml.write_text("feed_size = 2\n" + toml.read_text(encoding="utf-8"), encoding="utf-8")
        settings, sites = load_all(config)
        async with open_session(settings) as session:
            runner = SiteRunner(settings, sites, fetcher=session.fetcher, store=session.store)
            state = DaemonState(config, session.store, make_scheduler(), runner)
            transport = httpx.ASGITransport(app=make_app(settings, state.feeds, state.status))
            async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
                await runner.publish_feeds()
                first = await runner.run("alpha")
                assert first is not None
                assert first.ok, first.errors
                assert session.store.entry_count("alpha") == 3
                held = {
                    feed: feed_entry_count(feed_path(settings, feed).read_bytes())
                    for feed in ("alpha", "all")
                }
                assert held == {"alpha": 2, "all": 2}
                assert status_page_entries((await client.get("/")).text) == held
                assert (await client.get("/healthz")).json()["status"] == "ok"

                refuse_writes(settings.state_dir / "feedmaker.db")
                site.add()
                failed = await runner.run("alpha")
                assert failed is not None
                assert not failed.ok
                assert "run not recorded" in failed.errors[-1]
                assert "database or disk is full" in failed.errors[-1]
                reply = await client.get("/healthz")
                assert reply.status_code == 503
                assert reply.json()["status"] == "failing"

                allow_writes(settings.state_dir / "feedmaker.db")
                again = await runner.run("alpha")
                assert again is not None
                assert again.ok, again.errors
                reply = await client.get("/healthz")
                assert reply.status_code == 200
                assert reply.json()["status"] == "ok"
                assert [
                    e.findtext(f"{ATOM}title")
                    for e in ET.fromstring(feed_path(settings, "alpha").read_bytes()).findall(f"{ATOM}entry")
                ] == ["Alpha story 4: a & b <ok>", "Alpha story 3: a & b <ok>"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_site_file_with_a_schedule_that_never_fires_costs_only_that_site(tmp_path: Path):
    """The daemon starts with one good site and one whose cron line names no real day: the good feed is served
    (weak If-None-Match gets its 304, OPML names the listening address whatever the Host header), /healthz
    is degraded naming the broken site, the log names file:line: key, and SIGTERM still exits 0."""
    www = tmp_path / "www"
    good = FixtureSite(www, "good")
    good.add(2)
    port = free_port()
    with serve_dir(www) as (base, _):
        config = write_config(
            tmp_path / "config",
            {
                "good": site_toml("good", f"{base}/good/index.html"),
                "bad": site_toml("bad", f"{base}/good/index.html").replace('"every 2s"', '"0 0 30 2 *"'),
            },
            extra=f'[server]\nhost = "127.0.0.1"\nport = {port}\n',
        )
        stderr = tmp_path / "daemon.log"
        with stderr.open("wb") as err:
            proc = subprocess.Popen(feedmaker(config, "run"), cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        daemon = Daemon(
            proc, f"http://127.0.0.1:{port}", config, tmp_path / "state", stderr, {"good": good}, base
        )
        try:

            def up() -> bool:
                assert proc.poll() is None, f"daemon exited ({proc.returncode}):\n{daemon.log()}"
                return len(daemon.titles("good")) == 2

            wait_for(lambda: _answers(daemon) and up(), 15, "the good site's feed")
            health = daemon.get("/healthz").json()
            assert health["status"] == "degraded"
            assert health["failing_sites"] == ["bad"]
            assert health["sites"]["bad"]["state"] == "failing"
            assert health["sites"]["good"]["state"] == "ok"
            bad = config / "sites" / "bad.toml"
            problem = f"{bad}:3: schedule: cron line '0 0 30 2 *' never fires (no such day)"
            assert problem in daemon.log()
            assert html.escape(problem) in daemon.get("/").text

            etag = daemon.get("/feeds/good.atom", **{"Accept-Encoding": "identity"}).headers["etag"]
            assert (
                daemon.get(
                    "/feeds/good.atom", **{"Accept-Encoding": "identity", "If-None-Match": f'"x", W/{etag}'}
                ).status_code
                == 304
            )
            opml = daemon.get("/opml", Host="attacker.example")
            assert {o.get("xmlUrl") for o in ET.fromstring(opml.content).iter("outline")} == {
                f"{daemon.url}/feeds/good.atom"
            }
            code, seconds = stop(daemon)
        finally:
            kill(daemon)
    assert code == 0, daemon.log()
    assert seconds < 10


def _answers(daemon: Daemon) -> bool:
    try:
        return daemon.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (the forkserver, its page workers, the resource tracker), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def process_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def healthz_latencies(daemon: Daemon, count: int, gap: float) -> list[float]:
    """Seconds per /healthz request, from one client: httpx.get() alone spends 60-120 ms setting up a client."""
    seconds = []
    with httpx.Client(base_url=daemon.url, timeout=5, trust_env=False) as client:
        for _ in range(count):
            began = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            seconds.append(time.perf_counter() - began)
            time.sleep(gap)
    return seconds


PATHOLOGICAL = "<html><body>" + "<div>" * 200_000 + "</body></html>"  # about 13 s to parse on this machine


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_healthz_answers_at_once_while_a_site_parses_a_pathological_listing_and_stop_leaves_no_process(
    tmp_path: Path, how: str
):
    """The hostile listing is parsed in a page worker: /healthz stays fast, the run fails after the 3 s budget
    naming the URL, and a stop in the middle of the next such parse exits 0 within the drain grace, with
    every worker process gone (Ctrl-C: SIGINT to the whole process group, as a terminal sends it)."""
    www = tmp_path / "www"
    www.mkdir()
    with serve_dir(www) as (base, requests):
        daemon = start_daemon(
            tmp_path,
            www,
            base,
            names=("alpha", "beta", "hostile"),
            extra="\n[limits]\nparse_seconds = 3\n",
            new_session=True,
        )
        try:
            wait_for(
                lambda: len(daemon.titles("hostile")) == 2, 15, "the hostile site's first, harmless crawl"
            )
            listing = www / "hostile" / "index.html"
            listing.write_text(PATHOLOGICAL, encoding="utf-8")
            os.utime(listing, (1_800_000_000, 1_800_000_000))
            asked = requests.count("/hostile/index.html")
            wait_for(
                lambda: requests.count("/hostile/index.html") > asked,
                10,
                "a crawl of the pathological listing",
            )
            time.sleep(0.3)  # the 1 MB body is fetched; its parse is under way
            during = healthz_latencies(daemon, 15, 0.1)
            print(
                f"healthz during a pathological parse: max {max(during) * 1000:.1f} ms, "
                f"median {sorted(during)[len(during) // 2] * 1000:.1f} ms"
            )
            assert max(during) < 1.0, during
            failed = f"page took more than 3 s to parse: {base}/hostile/index.html"
            wait_for(lambda: failed in daemon.log(), 10, "the hostile run to fail on its parse budget")
            assert "hostile" in daemon.get("/healthz").json()["failing_sites"]

            # The next run parses the same listing again (it was not stored): stop in the middle of it.
            asked = requests.count("/hostile/index.html")
            wait_for(
                lambda: requests.count("/hostile/index.html") > asked,
                15,
                "the next crawl of the pathological listing",
            )
            time.sleep(0.3)
            workers = descendants(daemon.proc.pid)
            assert len(workers) >= 3  # the forkserver and two page workers at least
            began = time.monotonic()
            if how == "SIGTERM":
                daemon.proc.send_signal(signal.SIGTERM)
            else:
                os.killpg(daemon.proc.pid, signal.SIGINT)
            code = daemon.proc.wait(timeout=15)
            seconds = time.monotonic() - began
        finally:
            kill(daemon)
    log = daemon.log()
    assert code == 0, log
    assert seconds < 5 + 1, log  # within the 5 s drain grace
    assert "daemon stopped code=0" in log
    assert "Traceback" not in log
    wait_for(lambda: not any(process_alive(pid) for pid in workers), 5, "the page workers to be gone")


CATASTROPHIC = "(a+)+$"  # Python's re: about 2**n steps to fail on n a's and a '!'
REGEX_SITE = f"""author = {{ css = "h2 a", regex = "{CATASTROPHIC}" }}
[canonical]
strip = ["{CATASTROPHIC}"]
[filters]
exclude = ["{CATASTROPHIC}", "sponsored"]
"""


def test_healthz_answers_at_once_while_a_site_matches_a_catastrophic_regex_against_a_long_headline(
    tmp_path: Path,
):
    """`(a+)+$` in a field regex, a canonical strip rule and a filter, against a 100 kB headline: RE2 answers in
    linear time, the item is stored (its headline capped), /healthz stays fast and SIGTERM exits 0 within the grace."""
    www = tmp_path / "www"
    www.mkdir()
    with serve_dir(www) as (base, requests):
        daemon = start_daemon(
            tmp_path,
            www,
            base,
            names=("alpha", "beta", "regex"),
            new_session=True,
            site_extra={"regex": REGEX_SITE},
        )
        try:
            wait_for(lambda: len(daemon.titles("regex")) == 2, 15, "the regex site's first, harmless crawl")
            hostile = daemon.sites["regex"]
            hostile.articles.append(("a" * 100_000 + "!", "/regex/long.html", T0 + timedelta(hours=9)))
            hostile.write()
            asked = requests.count("/regex/index.html")
            wait_for(lambda: requests.count("/regex/index.html") > asked, 10, "a crawl of the long headline")
            during = healthz_latencies(daemon, 30, 0.1)
            print(
                f"healthz while matching (a+)+$: max {max(during) * 1000:.1f} ms, "
                f"median {sorted(during)[len(during) // 2] * 1000:.1f} ms"
            )
            assert sorted(during)[len(during) * 9 // 10] < 0.1, during
            assert max(during) < 0.5, during
            wait_for(lambda: len(daemon.titles("regex")) == 3, 15, "the long headline's entry")
            [long_title] = [t for t in daemon.titles("regex") if t.startswith("aaa")]
            assert len(long_title) <= 300
            assert len(daemon.titles("alpha")) == 2  # the other sites carry on
            asked = requests.count("/alpha/index.html")
            wait_for(lambda: requests.count("/alpha/index.html") > asked, 10, "alpha's next run")
            code, seconds = stop(daemon)
        finally:
            kill(daemon)
    log = daemon.log()
    assert code == 0, log
    assert seconds < 5 + 1, log  # within the 5 s drain grace
    assert "daemon stopped code=0" in log
    assert "Traceback" not in log
