"""feedmaker beside its peers, in one run, against one fixture served on loopback addresses only.

  .venv/bin/python benchmarks/peers.py                        # 200 sites, 10,000 article pages
  .venv/bin/python benchmarks/peers.py --sites 20 --pages 500 # a quick run

1. Serves a deterministic 200-site fixture (benchmarks/fixture_site.py) from a child process: site n on
   127.0.0.<2 + n>, four markup families, 15-25 items per listing, 50 article pages per site.
2. Feeds: builds one feed per site from its listing page (link, headline, date) with `feedmaker run --once`
   (a subprocess over a generated config directory) and with RSS-Bridge's XPathBridge (one `php index.php`
   per site, as cron or a feed reader would call it, a pool of one process per CPU). Every Atom entry is checked
   against what the fixture holds: title, link (query ignored) and date must all be right for "exact".
3. Crawl: fetches the same article pages and extracts h1 + time[datetime] with feedmaker's Fetcher +
   extract_fields (asyncio, 16 in flight) and with a minimal Scrapy spider (CONCURRENT_REQUESTS 16), each in
   its own process; also the whole feedmaker pipeline (`run --once` with an [article] section, which stores
   every article) over listings that link to every article.

A peer that is not installed or fails to run is skipped with a message; the run goes on. No traffic leaves
127.0.0.0/8: every client gets an environment without proxy variables, and the server binds loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import importlib.util
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

# Run as a script (`python benchmarks/peers.py`): make the repository root importable for `benchmarks.*`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# With --against, the feedmaker rows run again on a checkout of another commit: its package comes first.
SOURCE_VAR = "PEERS_FEEDMAKER_SOURCE"
if os.environ.get(SOURCE_VAR):
    sys.path.insert(0, os.environ[SOURCE_VAR])

from benchmarks.fixture_site import CSS, XPATH, Fixture, family_of, host_of, listing_size  # noqa: E402

HERE = Path(__file__).resolve().parent
FIXTURE_PY = HERE / "fixture_site.py"
RSS_BRIDGE = Path("/usr/share/rss-bridge")
ATOM = "{http://www.w3.org/2005/Atom}"
CONCURRENCY = 16
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")

FEEDMAKER_FETCH = """[fetch]
delay = 0.0                                # no per-host politeness gap: the fixture is ours
obey_robots = false                        # as Scrapy with ROBOTSTXT_OBEY = False and RSS-Bridge
concurrency = {concurrency}
allow_private_networks = ["127.0.0.0/8"]   # the fixture is on loopback addresses
"""


# The feedmaker source the feedmaker rows run (None: this checkout); set by main() for the --against rows.
_source: Path | None = None


def clean_env() -> dict[str, str]:
    """This environment minus proxy settings, so every client talks to 127.0.0.x directly; with a source
    checkout set, feedmaker is imported from there (`-m feedmaker` through PYTHONPATH, workers through
    SOURCE_VAR, since this file puts its own checkout first)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS and k != SOURCE_VAR}
    if _source is not None:
        env["PYTHONPATH"] = str(_source)
        env[SOURCE_VAR] = str(_source)
    return env


def checkout(rev: str, into: Path) -> tuple[Path, str]:
    """`git archive` of `rev` (of this file's repository) unpacked into `into`; (path, 'short hash subject')."""
    repo = Path(__file__).resolve().parent.parent
    described = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %s", rev],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into, described


# -- the fixture server ------------------------------------------------------------------------------------


@dataclass
class Served:
    fixture: Fixture
    stats_url: str

    def stats(self) -> dict[str, int]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.stats_url, timeout=10) as reply:
            data: dict[str, int] = json.loads(reply.read())
        return data


@contextmanager
def fixture_server(sites: int, articles: int, lifetime: float) -> Iterator[Served]:
    """The fixture in a child process (so it never competes for this process' GIL); it stops when we close
    its stdin, or after `lifetime` seconds whatever happens here."""
    cmd = [sys.executable, str(FIXTURE_PY), "--sites", str(sites), "--articles", str(articles),
           "--lifetime", str(lifetime)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError(f"fixture server did not start (exit code {proc.poll()})")
        port, hosts = int(ready[1]), ready[2:]
        fixture = Fixture(sites, articles, hosts=len(hosts), port=port)
        yield Served(fixture, f"http://{hosts[0]}:{port}/__stats")
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def served_since(before: dict[str, int], after: dict[str, int]) -> str:
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))}
    return ", ".join(f"{v} {k}" for k, v in diff.items() if v) or "nothing"


# -- checking results against the fixture -----------------------------------------------------------------


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo else None


def _url_key(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc, parts.path


def _squash(text: str) -> str:
    return " ".join(text.split())


@dataclass
class FeedCheck:
    """Items in a set of Atom feeds, per site, and how many match the fixture on title, link and date."""

    per_site: list[int] = field(default_factory=list)
    exact: int = 0
    title_ok: int = 0
    link_ok: int = 0
    date_ok: int = 0
    unreadable: int = 0  # feeds that are missing or not Atom
    problems: list[str] = field(default_factory=list)

    @property
    def items(self) -> int:
        return sum(self.per_site)

    def spread(self) -> str:
        return f"{min(self.per_site)}-{max(self.per_site)}" if self.per_site else "-"

    def add_feed(self, site: int, fixture: Fixture, data: bytes | None, label: str) -> None:
        if data is None:
            self.unreadable += 1
            self.per_site.append(0)
            self._note(f"{label}: no feed")
            return
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            self.unreadable += 1
            self.per_site.append(0)
            self._note(f"{label}: not XML ({exc}): {data[:120]!r}")
            return
        expected = {_url_key(i.url): i for i in fixture.expected(site)}
        entries = root.findall(f"{ATOM}entry")
        self.per_site.append(len(entries))
        for entry in entries:
            title_el = entry.find(f"{ATOM}title")
            title = title_el.text or "" if title_el is not None else ""
            if title_el is not None and title_el.get("type") == "html":
                title = html.unescape(re.sub(r"<[^>]+>", "", title))
            links = [ln for ln in entry.findall(f"{ATOM}link") if ln.get("rel", "alternate") == "alternate"]
            href = links[0].get("href", "") if links else ""
            when = _instant(entry.findtext(f"{ATOM}published")) or _instant(entry.findtext(f"{ATOM}updated"))
            item = expected.get(_url_key(href))
            link_ok = item is not None
            title_ok = item is not None and _squash(title) == item.headline
            date_ok = item is not None and when == item.published
            self.link_ok += link_ok
            self.title_ok += title_ok
            self.date_ok += date_ok
            self.exact += link_ok and title_ok and date_ok
            if not (link_ok and title_ok and date_ok):
                want = f"{item.headline!r} {item.published.isoformat()}" if item else "a fixture link"
                self._note(f"{label}: got {title!r} <{href}> {when}; want {want}")

    def _note(self, text: str) -> None:
        if len(self.problems) < 3:
            self.problems.append(text)

    def summary(self, sites: int) -> str:
        return (
            f"{self.items} items in {sites - self.unreadable}/{sites} feeds, per site {self.spread()}; "
            f"exact {self.exact} (title {self.title_ok}, link {self.link_ok}, date {self.date_ok})"
        )


@dataclass
class CrawlCheck:
    pages: int = 0  # pages that produced a record
    headline_ok: int = 0
    date_ok: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, fixture: Fixture, by_url: dict[str, tuple[str, datetime]], record: dict[str, Any]) -> None:
        want = by_url.get(record.get("url", ""))
        if record.get("error") or want is None:
            self.errors += 1
            if len(self.problems) < 3:
                self.problems.append(f"{record.get('url')}: {record.get('error') or 'not a requested URL'}")
            return
        self.pages += 1
        self.headline_ok += _squash(record.get("headline") or "") == want[0]
        self.date_ok += _instant(record.get("date")) == want[1]


def crawl_truth(fixture: Fixture, urls: Sequence[str]) -> dict[str, tuple[str, datetime]]:
    wanted = set(urls)
    return {
        item.url: (item.headline, item.published)
        for n in range(fixture.sites)
        for item in fixture.all_items(n)
        if item.url in wanted
    }


# -- results -----------------------------------------------------------------------------------------------


@dataclass
class Row:
    task: str
    tool: str
    result: str
    seconds: float | None = None  # the measured span (see `timing`)
    cpu: float | None = None  # CPU seconds (user + system) the peer's processes spent in that span
    rate: str = ""
    timing: str = ""
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None


def child_cpu() -> float:
    """CPU seconds of every child process that has ended and been waited for (the server is not one yet)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def say(text: str = "") -> None:
    print(text, flush=True)


def print_table(rows: Sequence[Row]) -> None:
    head = ("task", "tool", "result", "time", "cpu", "rate")
    body = [
        (r.task, r.tool, (r.skipped and f"SKIPPED: {r.skipped}") or r.result,
         "" if r.seconds is None else f"{r.seconds:.2f} s", "" if r.cpu is None else f"{r.cpu:.1f} s", r.rate)
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    say(line)
    for row in (head, *body):
        say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if row is head:
            say(line)
    say(line)


def compare_rows(rows: Sequence[Row]) -> None:
    """Each feedmaker row beside its --against twin (tool name + ' @<hash>'): time and cpu, this / that."""
    by_tool = {(r.task, r.tool): r for r in rows}
    say("this checkout / the --against checkout (below 1.00x: this one is faster):")
    for r in rows:
        twin = next(
            (t for (task, tool), t in by_tool.items() if task == r.task and tool.startswith(r.tool + " @")),
            None,
        )
        if twin is None:
            continue
        if r.skipped or twin.skipped or not (r.seconds and twin.seconds and r.cpu and twin.cpu):
            say(f"  {r.task} {r.tool}: not compared (a row was skipped)")
            continue
        say(f"  {r.task} {r.tool}: time {r.seconds:.2f} s vs {twin.seconds:.2f} s ({r.seconds / twin.seconds:.2f}x), "
            f"cpu {r.cpu:.1f} s vs {twin.cpu:.1f} s ({r.cpu / twin.cpu:.2f}x); {r.result} vs {twin.result}")  # fmt: skip


def run_bounded(
    cmd: Sequence[str], *, cwd: Path | None = None, timeout: float
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        list(cmd), cwd=cwd, capture_output=True, timeout=timeout, env=clean_env(), check=False
    )


def tail(data: bytes, lines: int = 4) -> str:
    text = data.decode("utf-8", "replace").strip().splitlines()
    return " | ".join(text[-lines:])


# -- feedmaker ---------------------------------------------------------------------------------------------


def feedmaker_missing() -> str | None:
    for module in (
        "feedmaker.cli",
        "feedmaker.crawl",
        "feedmaker.fetch",
        "feedmaker.extract",
        "feedmaker.store",
    ):
        try:
            found = importlib.util.find_spec(module)
        except ImportError as exc:
            return f"{module} not importable: {exc}"
        if found is None:
            return f"{module} not found (is the venv's python running this?)"
    probe = run_bounded([sys.executable, "-c", "import feedmaker.crawl, feedmaker.cli"], timeout=60)
    if probe.returncode:
        return f"import feedmaker.crawl failed: {tail(probe.stderr, 1)}"
    return None


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def write_feedmaker_config(root: Path, fixture: Fixture, *, crawl_articles: int = 0) -> Path:
    """config/feedmaker.toml + config/sites/site-N.toml. With crawl_articles, sites start at all.html and
    follow up to that many article pages each, reading h1 and time[datetime] there."""
    config = root / "config"
    (config / "sites").mkdir(parents=True)
    (config / "feedmaker.toml").write_text(
        f"output_dir = {_toml_str(str(root / 'output'))}\nstate_dir = {_toml_str(str(root / 'state'))}\n"
        f'feed_size = 1000\nlog_level = "WARNING"\n\n' + FEEDMAKER_FETCH.format(concurrency=CONCURRENCY),
        encoding="utf-8",
    )
    for n in range(fixture.sites):
        css = CSS[family_of(n)]
        start = fixture.all_url(n) if crawl_articles else fixture.listing_url(n)
        text = (
            f'name = "Fixture Site {n}"\nstart_urls = [{_toml_str(start)}]\n'
            f"max_items = {max(crawl_articles, 100)}\nmax_articles = {crawl_articles}\n\n"
            f"[list]\nitem = {_toml_str(css['item'])}\n"
            f'link = {{ css = {_toml_str(css["link"])}, attr = "href" }}\n'
            f"headline = {_toml_str(css['headline'])}\n"
            f'date = {{ css = {_toml_str(css["date"])}, attr = "datetime" }}\n'
        )
        if crawl_articles:
            text += '\n[article]\nheadline = "h1"\ndate = { css = "time", attr = "datetime" }\n'
        (config / "sites" / f"site-{n}.toml").write_text(text, encoding="utf-8")
    return config


def feedmaker_run_once(
    config: Path, timeout: float, row: Row
) -> tuple[float, float, subprocess.CompletedProcess[bytes]] | None:
    """`feedmaker run --once` on `config`: wall time, CPU time and result; None (and the row skipped) on timeout."""
    cmd = [sys.executable, "-m", "feedmaker", "--config", str(config), "run", "--once"]
    cpu, started = child_cpu(), time.perf_counter()
    try:
        done = run_bounded(cmd, cwd=config.parent, timeout=timeout)
    except subprocess.TimeoutExpired:
        row.skipped = f"did not finish within {timeout:.0f} s"
        return None
    return time.perf_counter() - started, child_cpu() - cpu, done


def _failed_sites(done: subprocess.CompletedProcess[bytes]) -> str:
    m = re.search(r"failed sites: (.*)", done.stderr.decode("utf-8", "replace"))
    if not m:
        return tail(done.stderr, 2)
    names = m.group(1).split(", ")
    return f"{len(names)} site(s) failed: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"


def feedmaker_feeds(work: Path, served: Served, timeout: float) -> Row:
    fixture = served.fixture
    row = Row(f"feeds x{fixture.sites}", "feedmaker run --once", "", timing="process wall time")
    if why := feedmaker_missing():
        row.skipped = why
        return row
    config = write_feedmaker_config(work / "fm-feeds", fixture)
    before = served.stats()
    ran = feedmaker_run_once(config, timeout, row)
    if ran is None:
        return row
    seconds, cpu, done = ran
    row.seconds, row.cpu = seconds, cpu
    check = FeedCheck()
    out = work / "fm-feeds" / "output"
    for n in range(fixture.sites):
        path = out / f"site-{n}.atom"
        check.add_feed(n, fixture, path.read_bytes() if path.exists() else None, f"site-{n}")
    row.result = check.summary(fixture.sites)
    row.rate = f"{fixture.sites / row.seconds:.1f} feeds/s"
    row.notes.append(f"fixture served {served_since(before, served.stats())}")
    if done.returncode:
        row.notes.append(f"exit code {done.returncode}: {_failed_sites(done)}")
    row.notes.extend(check.problems)
    return row


# -- RSS-Bridge --------------------------------------------------------------------------------------------


def rss_bridge_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rss-bridge"], capture_output=True, text=True,
                             timeout=10, check=False).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or "unknown version"


def rss_bridge_root(work: Path) -> Path | str:
    """A private RSS-Bridge tree: its own whitelist, config and cache; code from the Debian package.

    lib/ is copied because rssbridge.php derives every path from its own directory (PHP resolves symlinks
    in __DIR__); the other directories are symlinked."""
    if shutil.which("php") is None:
        return "php not found (apt-get install -y php-cli)"
    if not (RSS_BRIDGE / "index.php").exists() or not (RSS_BRIDGE / "bridges" / "XPathBridge.php").exists():
        return f"{RSS_BRIDGE}/index.php or bridges/XPathBridge.php missing (apt-get install -y rss-bridge)"
    root = work / "rss-bridge"
    root.mkdir()
    shutil.copytree(RSS_BRIDGE / "lib", root / "lib")
    for name in ("index.php", "config.default.ini.php"):
        shutil.copy(RSS_BRIDGE / name, root / name)
    for name in ("actions", "bridges", "caches", "formats", "vendor", "static"):
        if (RSS_BRIDGE / name).exists():
            (root / name).symlink_to(RSS_BRIDGE / name)
    (root / "cache").mkdir()
    (root / "whitelist.txt").write_text("XPath\n", encoding="utf-8")
    (root / "config.ini.php").write_text(
        '; <?php exit; ?> DO NOT REMOVE THIS LINE\n[system]\ntimezone = "UTC"\n[cache]\ntype = "file"\n'
        'custom_timeout = false\n[error]\noutput = "http"\nreport_limit = 1\n',
        encoding="utf-8",
    )
    return root


def rss_bridge_command(fixture: Fixture, site: int) -> list[str]:
    """`php index.php key=value ...`: index.php joins argv with '&' and parse_str()s it, and XPathBridge
    urldecode()s its expressions once more; so values are percent-encoded once (XPaths hold no '%' or '+')."""
    xp = XPATH[family_of(site)]
    params = {
        "action": "display", "bridge": "XPath", "format": "Atom", "url": fixture.listing_url(site),
        "item": xp["item"], "title": xp["title"], "uri": xp["uri"], "timestamp": xp["timestamp"],
    }  # fmt: skip
    return ["php", "index.php", *(f"{k}={quote(v, safe='')}" for k, v in params.items())]


def rss_bridge_feeds(work: Path, served: Served, workers: int, timeout: float) -> Row:
    fixture = served.fixture
    row = Row(f"feeds x{fixture.sites}", f"RSS-Bridge {rss_bridge_version()} XPathBridge, {workers} php at a time", "",
              timing="wall time of all php processes")  # fmt: skip
    root = rss_bridge_root(work)
    if isinstance(root, str):
        row.skipped = root
        return row
    # One feed first, to skip cleanly (with the reason) when this RSS-Bridge cannot run here at all.
    try:
        probe = run_bounded(rss_bridge_command(fixture, 0), cwd=root, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        row.skipped = f"php index.php failed: {exc}"
        return row
    if b"<feed" not in probe.stdout:
        row.skipped = f"php index.php gave no Atom feed (exit {probe.returncode}): {tail(probe.stdout + probe.stderr, 2)}"
        return row
    shutil.rmtree(root / "cache")
    (root / "cache").mkdir()  # the timed run starts with an empty cache, as the probe's feed is cached

    deadline = time.monotonic() + timeout

    def one(site: int) -> bytes | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            done = run_bounded(rss_bridge_command(fixture, site), cwd=root, timeout=left)
        except subprocess.TimeoutExpired:
            return None
        return done.stdout

    before, cpu = served.stats(), child_cpu()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outputs = list(pool.map(one, range(fixture.sites)))
    row.seconds, row.cpu = time.perf_counter() - started, child_cpu() - cpu
    check = FeedCheck()
    for n, data in enumerate(outputs):
        check.add_feed(n, fixture, data, f"site-{n}")
    row.result = check.summary(fixture.sites)
    row.rate = f"{fixture.sites / row.seconds:.1f} feeds/s"
    row.notes.append(f"fixture served {served_since(before, served.stats())}")
    row.notes.extend(check.problems)
    return row


# -- the crawls --------------------------------------------------------------------------------------------


@dataclass
class WorkerResult:
    records: list[dict[str, Any]]
    crawl_seconds: float
    crawl_cpu: float
    wall_seconds: float
    extra: dict[str, Any]


def run_worker(kind: str, work: Path, urls: Sequence[str], timeout: float) -> WorkerResult | str:
    """This file in a child process (`--worker KIND`): a clean interpreter and, for Scrapy, its own reactor."""
    urls_file, out_file = work / f"{kind}-urls.json", work / f"{kind}-out.json"
    urls_file.write_text(json.dumps(list(urls)), encoding="utf-8")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(urls_file), str(out_file)]
    started = time.perf_counter()
    try:
        done = run_bounded(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:.0f} s"
    wall = time.perf_counter() - started
    if done.returncode or not out_file.exists():
        return f"worker failed (exit {done.returncode}): {tail(done.stderr, 3)}"
    data = json.loads(out_file.read_text(encoding="utf-8"))
    return WorkerResult(data.pop("records"), data.pop("crawl_seconds"), data.pop("crawl_cpu"), wall, data)


def crawl_row(task: str, tool: str, served: Served, urls: Sequence[str], kind: str, work: Path,
              timeout: float, why_not: str | None) -> Row:  # fmt: skip
    row = Row(task, tool, "", timing="first request to last page parsed, in the worker process")
    if why_not:
        row.skipped = why_not
        return row
    before = served.stats()
    outcome = run_worker(kind, work, urls, timeout)
    if isinstance(outcome, str):
        row.skipped = outcome
        return row
    truth = crawl_truth(served.fixture, urls)
    check = CrawlCheck()
    for record in outcome.records:
        check.add(served.fixture, truth, record)
    missing = len(urls) - check.pages - check.errors
    row.seconds, row.cpu = outcome.crawl_seconds, outcome.crawl_cpu
    row.result = (
        f"{check.pages}/{len(urls)} pages; h1 right {check.headline_ok}, date right {check.date_ok}"
        + (f"; {check.errors} errors" if check.errors else "")
        + (f"; {missing} never reported" if missing > 0 else "")
    )
    row.rate = f"{check.pages / outcome.crawl_seconds:.0f} pages/s, {1000 * outcome.crawl_cpu / max(check.pages, 1):.1f} ms cpu/page"
    row.notes.append(
        f"process wall time {outcome.wall_seconds:.2f} s (interpreter start and imports included)"
    )
    row.notes.append(f"fixture served {served_since(before, served.stats())}")
    row.notes.extend(f"{k}: {v}" for k, v in outcome.extra.items())
    row.notes.extend(check.problems)
    return row


def feedmaker_pipeline_crawl(work: Path, served: Served, pages: int, timeout: float) -> Row:
    """`run --once` over listings (all.html) linking to every article, with [article] h1 + time."""
    fixture = served.fixture
    per_site = math.ceil(pages / fixture.sites)
    task = f"crawl {fixture.sites * per_site}"
    row = Row(task, "feedmaker run --once, [article] (whole pipeline)", "", timing="process wall time")
    if why := feedmaker_missing():
        row.skipped = why
        return row
    if per_site > 500:
        row.skipped = f"{per_site} articles per site exceeds max_articles <= 500; use more --sites"
        return row
    if fixture.articles != per_site:
        row.notes.append(f"each listing links to all {fixture.articles} articles of its site")
    config = write_feedmaker_config(work / "fm-crawl", fixture, crawl_articles=fixture.articles)
    before = served.stats()
    ran = feedmaker_run_once(config, timeout, row)
    if ran is None:
        return row
    seconds, cpu, done = ran
    row.seconds, row.cpu = seconds, cpu
    stats = {k: v - before.get(k, 0) for k, v in served.stats().items()}
    articles = stats.get("article", 0)
    entries = 0
    for n in range(fixture.sites):
        path = work / "fm-crawl" / "output" / f"site-{n}.atom"
        if path.exists():
            entries += len(ET.fromstring(path.read_bytes()).findall(f"{ATOM}entry"))
    row.task = f"crawl {articles}"
    row.result = (
        f"{articles} article pages fetched, {entries} entries stored and written to {fixture.sites} feeds"
    )
    row.rate = f"{articles / row.seconds:.0f} pages/s, {1000 * row.cpu / max(articles, 1):.1f} ms cpu/page"
    row.notes.append(f"fixture served {served_since(before, served.stats())}")
    if done.returncode:
        row.notes.append(f"exit code {done.returncode}: {_failed_sites(done)}")
    return row


# -- the workers (run in child processes) ------------------------------------------------------------------


def worker_feedmaker(urls: list[str]) -> dict[str, Any]:
    from feedmaker.config import Settings, SiteConfig
    from feedmaker.errors import FeedmakerError
    from feedmaker.extract import extract_fields
    from feedmaker.fetch import Fetcher
    from feedmaker.models import NotModified

    settings = Settings.model_validate(
        {"fetch": {"delay": 0.0, "obey_robots": False, "concurrency": CONCURRENCY,
                   "allow_private_networks": ["127.0.0.0/8"]}}
    )  # fmt: skip
    site = SiteConfig.model_validate(
        {"id": "bench", "name": "Fixture", "start_urls": [urls[0]], "list": {"item": "article"},
         "article": {"headline": "h1", "date": {"css": "time", "attr": "datetime"}}}
    )  # fmt: skip
    records: list[dict[str, Any]] = []

    async def crawl() -> tuple[float, float]:
        gate = asyncio.Semaphore(CONCURRENCY)
        async with Fetcher(settings.fetch) as fetcher:

            async def one(url: str) -> None:
                try:
                    async with gate:
                        page = await fetcher.fetch(url)
                    if isinstance(page, NotModified):
                        raise RuntimeError("304 without validators")
                    article = extract_fields(page, site)
                except (FeedmakerError, RuntimeError) as exc:
                    records.append({"url": url, "error": str(exc)})
                    return
                date = article.published.isoformat() if article.published else None
                records.append({"url": url, "headline": article.headline, "date": date})

            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(one(u) for u in urls))
            return time.perf_counter() - started, time.process_time() - cpu

    seconds, cpu = asyncio.run(crawl())
    return {"records": records, "crawl_seconds": seconds, "crawl_cpu": cpu}


def worker_scrapy(urls: list[str]) -> dict[str, Any]:
    import scrapy
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    records: list[dict[str, Any]] = []
    clock: dict[str, float] = {}

    class Articles(scrapy.Spider):  # type: ignore[misc, unused-ignore]  # untyped without scrapy installed
        name = "articles"

        async def start(self) -> Any:
            for url in urls:
                yield scrapy.Request(url, callback=self.parse, errback=self.failed)

        def parse(self, response: Any) -> Any:
            clock["last"], clock["last_cpu"] = time.perf_counter(), time.process_time()
            yield {"url": response.url, "headline": response.css("h1::text").get(),
                   "date": response.css("time::attr(datetime)").get()}  # fmt: skip

        def failed(self, failure: Any) -> None:
            records.append({"url": failure.request.url, "error": repr(failure.value)})

    settings = {
        "CONCURRENT_REQUESTS": CONCURRENCY, "DOWNLOAD_DELAY": 0, "ROBOTSTXT_OBEY": False, "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
    }  # fmt: skip
    process = CrawlerProcess(settings=settings)
    crawler = process.create_crawler(Articles)

    def scraped(item: Any, **_: Any) -> None:
        records.append(dict(item))

    def opened(**_: Any) -> None:
        clock["start"], clock["start_cpu"] = time.perf_counter(), time.process_time()

    # The dispatcher holds weak references: the handlers are named locals so that they live through start().
    crawler.signals.connect(scraped, signal=signals.item_scraped)
    crawler.signals.connect(opened, signal=signals.spider_opened)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    return {
        "records": records,
        "crawl_seconds": clock.get("last", time.perf_counter()) - clock.get("start", 0.0),
        "crawl_cpu": clock.get("last_cpu", time.process_time()) - clock.get("start_cpu", 0.0),
        "scrapy": scrapy.__version__,
        "requests": stats.get("downloader/request_count"),
        "responses 200": stats.get("downloader/response_status_count/200"),
    }


WORKERS: dict[str, Callable[[list[str]], dict[str, Any]]] = {
    "feedmaker": worker_feedmaker,
    "scrapy": worker_scrapy,
}


def worker_main(kind: str, urls_file: str, out_file: str) -> int:
    urls = json.loads(Path(urls_file).read_text(encoding="utf-8"))
    result = WORKERS[kind](urls)
    Path(out_file).write_text(json.dumps(result), encoding="utf-8")
    return 0


# -- main --------------------------------------------------------------------------------------------------


def environment_notes() -> str:
    """What in this environment moves feedmaker's figures, measured while writing this benchmark."""
    if importlib.util.find_spec("httpcore") and importlib.util.find_spec("sniffio") is None:
        return ("note: sniffio is not installed, so httpcore retries a failing `import sniffio` (a sys.path search) on\n"
                "      every connection-pool lock, ~6 times per fetch; that was ~25% of feedmaker's crawl CPU here.")  # fmt: skip
    return ""


def scrapy_missing() -> str | None:
    if importlib.util.find_spec("scrapy") is None:
        return "scrapy not installed in this interpreter (.venv/bin/pip install scrapy==2.19.0)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=200, help="fixture sites = feeds built (default 200)")
    parser.add_argument("--pages", type=int, default=10_000, help="article pages crawled (default 10000)")
    parser.add_argument("--bridge-workers", type=int, default=os.cpu_count() or 2,
                        help="php processes at a time for RSS-Bridge (default: one per CPU)")  # fmt: skip
    parser.add_argument("--skip", action="append", default=[], choices=["feedmaker", "rss-bridge", "scrapy", "pipeline"],
                        help="leave out a peer (repeatable)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on each peer's run, seconds")
    parser.add_argument("--against", metavar="REV",
                        help="also run the feedmaker rows on a checkout of this commit (e.g. HEAD~1) and print both")  # fmt: skip
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "URLS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(*args.worker)
    if args.sites < 1 or args.pages < 1:
        parser.error("--sites and --pages must be positive")

    articles = max(math.ceil(args.pages / args.sites), max(listing_size(n) for n in range(args.sites)))
    lifetime = args.timeout * 6 + 120  # the server stops by itself even if this process hangs
    say(f"feedmaker peers benchmark: {args.sites} sites, {args.pages} article pages; python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}; {load()} at start")  # fmt: skip
    if fm_env := environment_notes():
        say(fm_env)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="feedmaker-peers-") as tmp,
        fixture_server(args.sites, articles, lifetime) as served,
    ):
        work = Path(tmp)
        fx = served.fixture
        hosts = sorted(
            {host_of(n, fx.hosts) for n in range(fx.sites)}, key=lambda h: int(h.rsplit(".", 1)[1])
        )
        say(f"fixture: {fx.sites} sites on {len(hosts)} loopback address(es) {hosts[0]}..{hosts[-1]} port {fx.port}, "
            f"{sum(listing_size(n) for n in range(fx.sites))} listing items, {fx.articles} article pages per site, "
            "4 markup families (article / card / story list / table)")  # fmt: skip
        say("feedmaker config generated for this run (config/feedmaker.toml):")
        for line in FEEDMAKER_FETCH.format(concurrency=CONCURRENCY).splitlines():
            say(f"    {line}")
        say(
            "    feed_size = 1000; sites: one config/sites/site-N.toml each, list.item/link/headline/date selectors"
        )
        say(
            "  note: feedmaker's fetcher keeps one request in flight per host (HostGate); one address per site keeps"
        )
        say("  that from serialising the run, as 200 real sites would be 200 hosts.")
        say()

        rows: list[Row] = []

        def report(row: Row) -> None:
            rows.append(row)
            state = (
                f"SKIPPED: {row.skipped}" if row.skipped else f"{row.result}; {row.seconds:.2f} s, {row.rate}"
            )
            say(f"[{row.task}] {row.tool}: {state}")
            if row.timing and not row.skipped:
                say(f"    time is {row.timing}")
            for note in row.notes:
                say(f"    {note}")

        skip = set(args.skip)
        fm_skip = "left out (--skip feedmaker)" if "feedmaker" in skip else None
        if fm_skip is None and (why := feedmaker_missing()):
            fm_skip = why

        sources: list[tuple[Path | None, str]] = [(None, "")]
        if args.against:
            path, described = checkout(args.against, work / "against")
            sources.append((path, f" @{described.split()[0]}"))
            say(f"feedmaker rows also run on a checkout of {args.against}: {described}")
            say()

        def each_source(make: Callable[[Path], Row]) -> None:
            """The feedmaker row for this checkout, then for the --against one (in its own work dir)."""
            global _source
            for source, label in sources:
                _source = source
                where = work / ("this-checkout" if source is None else "against-checkout")
                where.mkdir(exist_ok=True)
                try:
                    row = make(where)
                finally:
                    _source = None
                row.tool += label
                report(row)

        say("== 1. feeds: listing pages only (item, link, headline, date) ==")
        if fm_skip:
            report(Row(f"feeds x{fx.sites}", "feedmaker run --once", "", skipped=fm_skip))
        else:
            each_source(lambda where: feedmaker_feeds(where, served, args.timeout))
        if "rss-bridge" in skip:
            report(
                Row(
                    f"feeds x{fx.sites}", "RSS-Bridge XPathBridge", "", skipped="left out (--skip rss-bridge)"
                )
            )
        else:
            report(rss_bridge_feeds(work, served, args.bridge_workers, args.timeout))

        say()
        say(
            f"== 2. crawl: {args.pages} article pages, h1 + time[datetime], {CONCURRENCY} requests in flight =="
        )
        urls = fx.crawl_urls(args.pages)
        each_source(lambda where: crawl_row(f"crawl {len(urls)}", f"feedmaker Fetcher + extract_fields ({CONCURRENCY} in flight)",
                                            served, urls, "feedmaker", where, args.timeout, fm_skip))  # fmt: skip
        scrapy_skip = "left out (--skip scrapy)" if "scrapy" in skip else scrapy_missing()
        report(crawl_row(f"crawl {len(urls)}", f"Scrapy spider (CONCURRENT_REQUESTS {CONCURRENCY})", served, urls,
                         "scrapy", work, args.timeout, scrapy_skip))  # fmt: skip
        if "pipeline" in skip or fm_skip:
            report(Row(f"crawl {args.pages}", "feedmaker run --once, [article] (whole pipeline)", "",
                       skipped=fm_skip or "left out (--skip pipeline)"))  # fmt: skip
        else:
            each_source(lambda where: feedmaker_pipeline_crawl(where, served, args.pages, args.timeout))

    say()
    say(f"== summary (whole benchmark {time.perf_counter() - started:.0f} s; {load()} at the end) ==")
    print_table(rows)
    if args.against:
        compare_rows(rows)
    say(
        "feeds: 'exact' = title, link (query ignored) and date all equal to the fixture's; time = process wall time"
    )
    say("       (feedmaker: one process for all sites; RSS-Bridge: one php process per site, pool as shown);")
    say("       cpu = user + system seconds of those processes, start-up included.")
    say(
        "crawl: time and cpu from first request to last page parsed inside the worker process (Scrapy: spider_opened"
    )
    say(
        "       to last parse), so interpreter start-up is left out; pipeline row: wall and cpu of the run --once process."
    )
    say("cpu is the steadier figure when other work shares the machine (see the load averages above).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
