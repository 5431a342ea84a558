"""Cost per site run as the site count grows (issue 12): store queries, publish, and the real daemon.

Three parts, in one run, everything on loopback addresses:

1. Store: the entries-of-a-feed query on stores of 10 k and 1 M entries (20 sites, 10 % of entries also
   sighted by another site), today's per-site index walks (`Store.entries`) beside the former single
   `... OR id IN (sources)` query, which sorts a site's whole history before its LIMIT.
2. Publish after one site's run, nothing changed, at 1 / 1,000 / 5,000 configured sites: the one-shot
   `publish(settings, sites, store, only=...)` (plans over every site, renders the feed: what a site run
   cost before) beside the daemon's `Publisher` (site -> feeds map built once, version check, no render).
3. The daemon (`feedmaker run`, real APScheduler schedules, `every 1m`, listing-only sites, no robots,
   delay 0) in its own process against benchmarks/fixture_site.py in another, for 1,000, 2,000 and 5,000
   sites. After a warm-up (the first runs store every item), a measuring window of fixed length; the daemon
   process tree's CPU (daemon + page workers, from /proc) over that window divided by the runs finished in
   it, peak RSS (VmHWM), start lateness (run start - its scheduled, jittered fire time) p50/p99, missed
   slots (misfired, skipped as still running, or coalesced) and runs in flight at the window's end; beside
   them the fixture server's CPU, the whole machine's (other sessions share these 2 cores), the daemon's CPU
   per thread, requests and TCP connections served, and where a run's wall time went. A size is "kept on
   time" when no slot is missed, runs start within 5 s (p99) and end within 10 s (p99) and finish as fast as
   they come due; one that is not is reported with the budget it exhausted (machine CPU, the daemon's one GIL,
   the store's lock) and the measured figures. `--profile DIR` runs yappi over each window (pip install yappi).

    .venv/bin/python benchmarks/daemon_scale.py [--sizes 1000,2000,5000] [--warmup 75] [--window 120]
                                                [--skip-store] [--skip-publish] [--skip-daemon]
                                                [--keep DIR] [--profile DIR]

Wall time with the defaults: about 12 minutes (3 x (warm-up + window + start-up), plus ~1 min of store).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.fixture_site import CSS, Fixture, family_of  # noqa: E402

FIXTURE_PY = HERE / "fixture_site.py"
TICK = os.sysconf("SC_CLK_TCK")
INTERVAL = 60.0  # every 1m
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")


def say(text: str = "") -> None:
    print(text, flush=True)


def pct(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- 1. store ----------------------------------------------------------------------------------------------

STORE_SITES = 20  # few sites, so that the 10 k store already holds more than a feed per site


def build_store(path: Path, total: int) -> None:
    from feedmaker.store import SqliteStore

    SqliteStore(path).close()  # the schema, by the migrations
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA synchronous = OFF")
        stamp = "strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', 1700000000 + i * 7, 'unixepoch')"
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO entries (id, site, key, url_key, url, headline, published, first_seen, updated) "
            f"SELECT printf('urn:uuid:%08d', i), 's' || (i % ?), 'story number ' || i, 'u' || i, "
            f"'https://x.example/' || i, 'Story number ' || i, CASE WHEN i % 10 = 0 THEN NULL ELSE {stamp} END, "
            f"{stamp}, {stamp} FROM n",
            (total - 1, STORE_SITES),
        )
        db.execute(
            "INSERT INTO sources (url_key, site, entry_id, url, first_seen, sort) "
            "SELECT 'c' || rowid, 's' || ((rowid + 1) % ?), id, 'https://y.example/' || rowid, first_seen, "
            "coalesce(published, first_seen) FROM entries WHERE rowid % 10 = 0",
            (STORE_SITES,),
        )


def store_part(work: Path, queries: int) -> None:
    from feedmaker.models import Entry
    from feedmaker.store import SqliteStore, Store
    from feedmaker.store.rows import ENTRY_COLUMNS, entry_from_row

    old_sql = (
        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE site IN ({{marks}}) "
        "OR id IN (SELECT entry_id FROM sources WHERE site IN ({marks})) "
        "ORDER BY coalesce(published, first_seen) DESC, id LIMIT ?"
    )

    def old_entries(store: Store, sites: list[str], limit: int) -> list[Entry]:
        """Store.entries as it was before issue 12 (one query, sorted before LIMIT), with the same output."""
        marks = ", ".join("?" * len(sites))
        with store._read("old entries") as db:
            rows = db.execute(old_sql.format(marks=marks), (*sites, *sites, limit)).fetchall()
            sources = store._sources(db, [r[0] for r in rows])
        return [entry_from_row(r, sources.get(r[0], ())) for r in rows]

    say(
        f"1. store: ms per feed query (50 entries), {STORE_SITES} sites, {queries} queries each, min of 3 rounds"
    )
    say(
        f"   {'stored entries':>15} | {'site feed, walks':>16} | {'site feed, old OR':>17} | "
        f"{'10-site feed, walks':>19} | {'10-site feed, old OR':>20}"
    )
    rng = random.Random(12)
    for total in (10_000, 1_000_000):
        path = work / f"store-{total}.db"
        began = time.perf_counter()
        build_store(path, total)
        built = time.perf_counter() - began
        picks = [[f"s{rng.randrange(STORE_SITES)}"] for _ in range(queries)]
        groups = [[f"s{rng.randrange(STORE_SITES)}" for _ in range(10)] for _ in range(queries // 10)]
        row: list[float] = []
        with SqliteStore(path) as store:
            for batch in (picks, groups):
                for walk in (True, False):
                    best = float("inf")
                    # The former query takes up to seconds at 1 M entries: one round of a tenth of the queries.
                    tries, chosen = (
                        (3, batch) if walk or total < 100_000 else (1, batch[: max(3, len(batch) // 10)])
                    )
                    for _ in range(tries):
                        t = time.perf_counter()
                        for sites in chosen:
                            got = store.entries(sites, 50) if walk else old_entries(store, sites, 50)
                            assert len(got) == 50
                        best = min(best, (time.perf_counter() - t) / len(chosen) * 1000)
                    row.append(best)
        say(
            f"   {total:>15,} | {row[0]:>16.3f} | {row[1]:>17.3f} | {row[2]:>19.3f} | {row[3]:>20.3f}"
            f"   (built in {built:.0f} s)"
        )
        path.unlink()
    say("   walks = Store.entries now; old OR = the former single query; both build the same Entry list")
    say()


# -- 2. publish --------------------------------------------------------------------------------------------


def publish_part(work: Path, rounds: int) -> None:
    from feedmaker.config import Settings, SiteConfig
    from feedmaker.models import Article
    from feedmaker.publish import Publisher, publish
    from feedmaker.store import SqliteStore

    say(f"2. publish after one site's run, nothing changed: ms per call (median of {rounds})")
    say(f"   {'sites configured':>16} | {'one-shot publish()':>18} | {'daemon Publisher':>16}")
    for count in (1, 1000, 5000):
        root = work / f"publish-{count}"
        root.mkdir()
        sites = [
            SiteConfig.model_validate({"id": f"s{n}", "name": f"Site {n}", "start_urls": [f"https://s{n}.example/"],
                                       "list": {"item": "article"}})
            for n in range(count)
        ]  # fmt: skip
        settings = Settings(output_dir=root / "output", state_dir=root / "state")
        with SqliteStore(root / "state.db") as store:
            store.add_many([
                (Article(site="s0", url=f"https://s0.example/{k}", headline=f"Story {k} of site zero told"),
                 f"story {k} of site zero told", f"s0/{k}")
                for k in range(20)
            ])  # fmt: skip
            publisher = Publisher(settings, sites)
            publisher.publish(store, only={"s0"})
            timings: dict[str, list[float]] = {"one-shot": [], "publisher": []}
            for _ in range(rounds):
                t = time.perf_counter()
                publish(settings, sites, store, only={"s0"})
                timings["one-shot"].append(time.perf_counter() - t)
                t = time.perf_counter()
                publisher.publish(store, only={"s0"})
                timings["publisher"].append(time.perf_counter() - t)
        one, pub = (statistics.median(timings[k]) * 1000 for k in ("one-shot", "publisher"))
        say(f"   {count:>16,} | {one:>18.3f} | {pub:>16.3f}")
    say()


# -- 3. the daemon -----------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}


def proc_tree(root: int) -> list[int]:
    """root and every process below it (the page workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores, every process), from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICK


def fixture_stats(host: str, port: int) -> dict[str, int]:
    """The fixture server's counters (requests by kind, TCP connections accepted)."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{host}:{port}/__stats", timeout=10) as reply:
        found: dict[str, int] = json.loads(reply.read())
    return found


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process, by thread id."""
    found: dict[int, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return found


def thread_group(name: str) -> str:
    """A thread's name without its number: the loop's default executor (asyncio_0, ...) is one group."""
    return re.sub(r"[-_]?\d+$", "", name.split(" ")[0]) or name


def hwm_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def write_config(root: Path, fixture: Fixture) -> Path:
    config = root / "config"
    (config / "sites").mkdir(parents=True)
    (config / "feedmaker.toml").write_text(
        f'output_dir = "{root / "output"}"\nstate_dir = "{root / "state"}"\nlog_level = "WARNING"\n\n'
        '[server]\nhost = "127.0.0.1"\nport = 0\n\n'
        "[fetch]\ndelay = 0.0\nretries = 0\nobey_robots = false\nconcurrency = 64\n"
        'allow_private_networks = ["127.0.0.0/8"]\n',
        encoding="utf-8",
    )
    for n in range(fixture.sites):
        css = CSS[family_of(n)]
        (config / "sites" / f"site-{n}.toml").write_text(
            f'name = "Fixture Site {n}"\nstart_urls = ["{fixture.listing_url(n)}"]\nschedule = "every 1m"\n'
            f"max_articles = 0\n\n[list]\nitem = {json.dumps(css['item'])}\n"
            f'link = {{ css = {json.dumps(css["link"])}, attr = "href" }}\nheadline = {json.dumps(css["headline"])}\n'
            f'date = {{ css = {json.dumps(css["date"])}, attr = "datetime" }}\n',
            encoding="utf-8",
        )
    return config


def child(config: Path, stats_path: Path) -> int:
    """The daemon as `feedmaker run` runs it, plus scheduler listeners and a wrapper around each site run
    that record fire times, starts and ends; written to stats_path as JSON when the daemon stops."""
    from apscheduler.events import (
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_MISSED,
        EVENT_JOB_SUBMITTED,
        JobExecutionEvent,
        JobSubmissionEvent,
    )

    import feedmaker.schedule as schedule
    import feedmaker.store as store_module
    from feedmaker.cli import main

    scheduled: dict[str, float] = {}  # site -> its latest fire time handed to the executor
    fires: list[tuple[str, float]] = []  # (site, fire time) of every slot the scheduler saw
    missed: list[tuple[float, str]] = []  # (when, why)
    runs: list[tuple[float, float, float]] = []  # (start, lateness, duration)
    done: set[str] = set()  # sites with a finished run: the parent's warm-up waits for all of them
    progress = stats_path.with_suffix(".progress")
    active = [0]
    samples: list[tuple[float, int, float]] = []  # (when, runs in flight, store lock held so far)
    real_make, real_run = schedule.make_scheduler, schedule.SiteRunner.run
    held = [0.0]  # seconds the store's lock was held: every store call runs under it, one at a time

    class TimedLock:
        """The store's RLock, counting how long it is held (outermost acquire to release)."""

        def __init__(self, inner: Any) -> None:
            self.inner, self.depth, self.since = inner, 0, 0.0

        def __enter__(self) -> None:
            self.inner.acquire()
            self.depth += 1
            if self.depth == 1:
                self.since = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            self.depth -= 1
            if self.depth == 0:
                held[0] += time.perf_counter() - self.since
            self.inner.release()

    real_init = store_module.SqliteStore.__init__

    def store_init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self._lock = TimedLock(self._lock)

    def on_event(event: Any) -> None:
        site = str(event.job_id).removeprefix("site:")
        if isinstance(event, JobSubmissionEvent):
            when = event.scheduled_run_times[-1].timestamp()
            fires.append((site, when))
            if event.code == EVENT_JOB_SUBMITTED:
                scheduled[site] = when
            else:
                missed.append((time.time(), "still running"))
        elif isinstance(event, JobExecutionEvent):
            missed.append((time.time(), "misfired"))

    def make_scheduler() -> Any:
        scheduler = real_make()
        scheduler.add_listener(on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        return scheduler

    async def run(self: Any, site_id: str) -> Any:
        start = time.time()
        lateness = start - scheduled.get(site_id, start)
        active[0] += 1
        try:
            return await real_run(self, site_id)
        finally:
            active[0] -= 1
            runs.append((start, lateness, time.time() - start))
            done.add(site_id)

    threads: dict[int, str] = {}  # native thread id -> name, for the parent's CPU per thread group

    def sample() -> None:
        while True:
            threads.update((t.native_id, t.name) for t in threading.enumerate() if t.native_id is not None)
            samples.append((time.time(), active[0], held[0]))
            progress.write_text(f"{len(done)} {active[0]}")
            time.sleep(1.0)

    # Where a run's wall time goes: (end, part, seconds) per awaited step. A thread hop's wait for a free
    # thread of the loop's default executor is told apart from the call itself.
    parts: list[tuple[float, str, float]] = []
    real_to_thread = asyncio.to_thread

    async def to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        submitted = time.perf_counter()
        began = [0.0]

        def call() -> Any:
            began[0] = time.perf_counter()
            return func(*args, **kwargs)

        try:
            return await real_to_thread(call)
        finally:
            ended = time.perf_counter()
            name = getattr(func, "__name__", "call")
            parts.append((time.time(), "thread wait", (began[0] or ended) - submitted))
            parts.append((time.time(), f"store {name}", ended - (began[0] or ended)))

    def timed(owner: Any, attr: str, part: str) -> None:
        real = getattr(owner, attr)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await real(*args, **kwargs)
            finally:
                parts.append((time.time(), part, time.perf_counter() - began))

        setattr(owner, attr, wrapper)

    from feedmaker.fetch import Fetcher
    from feedmaker.workers import PagePool

    asyncio.to_thread = to_thread
    timed(Fetcher, "fetch", "fetch")
    timed(PagePool, "run", "page worker")
    schedule.make_scheduler = make_scheduler
    store_module.SqliteStore.__init__ = store_init  # type: ignore[method-assign]
    schedule.SiteRunner.run = run  # type: ignore[method-assign]
    threading.Thread(target=sample, daemon=True).start()
    if profile := os.environ.get("DAEMON_SCALE_PROFILE"):
        profile_between_signals(Path(profile))
    code = main(["--config", str(config), "run"])
    stats_path.write_text(
        json.dumps(
            {
                "fires": fires,
                "missed": missed,
                "runs": runs,
                "samples": samples,
                "parts": parts,
                "threads": threads,
            }
        )
    )
    return code


def profile_between_signals(out: Path) -> None:
    """yappi (CPU clock, every thread) from SIGUSR1 to SIGUSR2; the functions by own time written to `out`.
    Only for finding where the time goes: the profiler slows the daemon down several times."""
    import yappi  # type: ignore[import-untyped,import-not-found,unused-ignore]  # optional, untyped

    def start(*_: object) -> None:
        yappi.set_clock_type("cpu")
        yappi.start(builtins=False, profile_threads=True)

    def stop(*_: object) -> None:
        yappi.stop()
        stats = yappi.get_func_stats()
        with out.open("w") as file:
            for order in ("tsub", "ttot"):
                stats.sort(order, "desc")
                file.write(f"-- by {order}\n")
                for f in list(stats)[:70]:
                    file.write(f"{f.tsub:9.3f} {f.ttot:9.3f} {f.ncall:9d}  {f.module}:{f.lineno} {f.name}\n")
            file.write("-- threads\n")
            for t in yappi.get_thread_stats():
                file.write(f"{t.ttot:9.3f} {t.name} {t.tid}\n")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def coalesced(fires: Sequence[tuple[str, float]], t0: float, t1: float) -> int:
    """Slots dropped by coalescing: a site's consecutive fire times more than one interval apart."""
    by_site: dict[str, list[float]] = {}
    for site, when in fires:
        by_site.setdefault(site, []).append(when)
    dropped = 0
    for times in by_site.values():
        times.sort()
        for a, b in itertools.pairwise(times):
            if t0 <= b < t1:
                dropped += max(0, int((b - a + 10) // INTERVAL) - 1)
    return dropped


def read_progress(progress: Path) -> tuple[int, int]:
    """(sites that finished a run, runs in flight) as the child last wrote them."""
    try:
        done, in_flight = progress.read_text().split()
        return int(done), int(in_flight)
    except (OSError, ValueError):
        return 0, 0


def warm_up(daemon: subprocess.Popen[bytes], progress: Path, sites: int, warmup: float, cap: float) -> float:
    """Wait until every site has finished its first run (which stores all its items), at least `warmup`
    seconds have passed and the start-up backlog has drained (no more runs in flight than two seconds of
    runs due), at most `cap` seconds; returns how long it waited. The window then measures the steady state."""
    began = time.time()
    while True:
        time.sleep(2.0)
        waited = time.time() - began
        if daemon.poll() is not None:
            raise RuntimeError(
                f"daemon exited early (code {daemon.returncode}); see {progress.parent / 'daemon.log'}"
            )
        finished, in_flight = read_progress(progress)
        settled = in_flight <= max(20, 2 * sites / INTERVAL)
        if (finished >= sites and waited >= warmup and settled) or waited >= cap:
            return waited


def daemon_size(
    work: Path,
    sites: int,
    warmup: float,
    window: float,
    keep: Path | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    root = work / f"daemon-{sites}"
    root.mkdir()
    cap = warmup * 4
    lifetime = cap + window + 300
    fixture_cmd = [sys.executable, str(FIXTURE_PY), "--sites", str(sites), "--articles", "25", "--hosts", "250",
                   "--listings-only", "--lifetime", str(lifetime)]  # fmt: skip
    server = subprocess.Popen(fixture_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=clean_env(),
                              stderr=(root / "fixture.log").open("wb"))  # fmt: skip
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError(f"fixture server did not start (exit code {server.poll()})")
        port, hosts = int(ready[1]), ready[2:]
        config = write_config(root, Fixture(sites, 25, hosts=len(hosts), port=port))
        stats_path = root / "stats.json"
        log = (root / "daemon.log").open("wb")
        env = clean_env()
        if profile is not None:
            env["DAEMON_SCALE_PROFILE"] = str(profile / f"profile-{sites}.txt")
        daemon = subprocess.Popen([sys.executable, __file__, "--child", str(config), str(stats_path)],
                                  stdout=log, stderr=log, env=env, cwd=root)  # fmt: skip
        try:
            waited = warm_up(daemon, stats_path.with_suffix(".progress"), sites, warmup, cap)
            warm, backlog = read_progress(stats_path.with_suffix(".progress"))
            tree = proc_tree(daemon.pid)
            cpu0 = {pid: cpu_seconds(pid) for pid in tree}
            server0, threads0, busy0 = cpu_seconds(server.pid), thread_cpu(daemon.pid), machine_busy()
            served0 = fixture_stats(hosts[0], port)
            if profile is not None:
                daemon.send_signal(signal.SIGUSR1)
            t0 = time.time()
            time.sleep(window)
            t1 = time.time()
            if profile is not None:
                daemon.send_signal(signal.SIGUSR2)
            tree1 = proc_tree(daemon.pid)
            cpu1 = {pid: cpu_seconds(pid) for pid in tree1}
            server1, threads1, busy1 = cpu_seconds(server.pid), thread_cpu(daemon.pid), machine_busy()
            served1 = fixture_stats(hosts[0], port)
            rss_daemon = hwm_mib(daemon.pid)
            rss_workers = sum(hwm_mib(pid) for pid in tree1 if pid != daemon.pid)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=120)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            log.close()
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    stats = json.loads(stats_path.read_text())
    tree_cpu = sum(cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0) for pid in set(cpu0) | set(cpu1) if pid in cpu1)
    main_cpu = cpu1.get(daemon.pid, 0.0) - cpu0.get(daemon.pid, 0.0)
    finished = [r for r in stats["runs"] if t0 <= r[0] + r[2] < t1]
    started = [r for r in stats["runs"] if t0 <= r[0] < t1]
    late = [r[1] for r in started]
    missed = sum(1 for when, _ in stats["missed"] if t0 <= when < t1) + coalesced(stats["fires"], t0, t1)
    slots = sum(1 for _, when in stats["fires"] if t0 <= when < t1) + coalesced(stats["fires"], t0, t1)
    near = {edge: min(stats["samples"], key=lambda s: abs(s[0] - edge)) for edge in (t0, t1)}
    in_flight = near[t1][1]
    store_share = (near[t1][2] - near[t0][2]) / max(1.0, near[t1][0] - near[t0][0])
    shares: dict[str, float] = {}
    for when, part, seconds in stats["parts"]:
        if t0 <= when < t1:
            shares[part] = shares.get(part, 0.0) + seconds
    per_run = {part: total / max(1, len(finished)) for part, total in shares.items()}
    names = {int(tid): name for tid, name in stats["threads"].items()}
    by_thread: dict[str, float] = {}
    for tid, seconds in threads1.items():
        group = thread_group(names.get(tid, "other"))
        by_thread[group] = by_thread.get(group, 0.0) + (seconds - threads0.get(tid, 0.0)) / window
    if keep is not None:
        keep.write_text(json.dumps(stats))
    return {
        "parts": per_run, "threads": by_thread, "server_share": (server1 - server0) / window,
        "machine_share": (busy1 - busy0) / window,
        "requests": sum(served1.get(k, 0) - served0.get(k, 0) for k in ("listing", "robots", "404")),
        # less the one connection of the second /__stats request itself
        "connections": served1.get("connections", 0) - served0.get("connections", 0) - 1,
        "wall_p99": pct([r[2] for r in finished], 0.99), "late_max": max(late, default=float("nan")),
        "sites": sites, "runs": len(finished), "cpu_ms": tree_cpu / max(1, len(finished)) * 1000,
        "main_share": main_cpu / window, "tree_share": tree_cpu / window, "rss_daemon": rss_daemon,
        "rss_workers": rss_workers, "late_p50": pct(late, 0.5), "late_p99": pct(late, 0.99), "missed": missed,
        "slots": slots, "in_flight": in_flight, "store_share": store_share, "wall_p50": pct([r[2] for r in finished], 0.5),
        "needed": sites / INTERVAL, "rate": len(finished) / window, "waited": waited, "warm": warm, "backlog": backlog,
    }  # fmt: skip


KEPT_LATE = 5.0  # s: a run starting later than this after its slot is late
KEPT_WALL = 10.0  # s: a listing-only run on loopback takes well under a second unless it queues
CORES = os.cpu_count() or 1


def kept_slots(r: dict[str, Any]) -> bool:
    """Every slot kept on time: none missed, started on time, finished promptly (no queue building up)."""
    return bool(
        r["missed"] == 0
        and r["late_p99"] < KEPT_LATE
        and r["wall_p99"] < KEPT_WALL
        and r["rate"] >= 0.95 * r["needed"]
    )


def limit(r: dict[str, Any]) -> str:
    """Which budget a size that does not keep its slots exhausted, with the measured figures."""
    main_thread = r["threads"].get("MainThread", 0.0)
    other = max(0.0, r["machine_share"] - r["tree_share"] - r["server_share"])
    rate = max(r["rate"], 1e-9)
    spent = (
        f"machine {r['machine_share']:.2f} of {CORES} cores busy: daemon {r['main_share']:.2f} (event loop "
        f"{main_thread:.2f}), page workers {r['tree_share'] - r['main_share']:.2f}, fixture server "
        f"{r['server_share']:.2f}, other processes {other:.2f}; per finished run {r['tree_share'] / rate * 1000:.1f} ms "
        f"daemon + workers, of which {r['main_share'] / rate * 1000:.1f} ms in the daemon process (one GIL: at "
        f"most {1000 / r['needed']:.1f} ms per run due), {r['machine_share'] / rate * 1000:.1f} ms for everything "
        f"(budget {CORES / r['needed'] * 1000:.1f}); store lock held {r['store_share']:.0%} of the window"
    )
    waits = ", ".join(
        f"{part} {seconds * 1000:.0f}"
        for part, seconds in sorted(r["parts"].items(), key=lambda kv: -kv[1])[:3]
    )
    if r["machine_share"] >= 0.9 * CORES:
        why = "CPU is exhausted"
        if other >= 0.25:
            why += (
                f" ({other:.2f} cores went to other processes: on an idle machine the daemon would have more)"
            )
    elif main_thread >= 0.85:
        why = "the event loop thread is saturated (one core at most)"
    elif r["store_share"] >= 0.8:
        why = "the store is the bottleneck (one connection, one call at a time, under one lock)"
    else:
        why = "runs queue without a saturated core or store"
    return f"{why}; {spent}; a finished run waited (ms): {waits}"


def daemon_part(
    work: Path,
    sizes: Sequence[int],
    warmup: float,
    window: float,
    keep: Path | None = None,
    profile: Path | None = None,
) -> None:
    say(
        f"3. daemon, every site `every 1m`, listing-only; warm-up until every site ran once (at least {warmup:.0f} s,"
    )
    say(
        f"   at most {warmup * 4:.0f} s) and the start-up backlog drained (runs in flight <= 2 s of runs due), then a "
        f"{window:.0f} s window"
    )
    say(
        f"   {'sites':>5} | {'runs':>5} | {'runs/s (need)':>13} | {'CPU ms/run':>10} | {'CPU/s main, all, fixture':>24} | "
        f"{'peak RSS MiB daemon+workers':>27} | {'lateness p50/p99 s':>18} | {'missed/slots':>12} | "
        f"{'in flight':>9} | {'run wall p50/p99 s':>18} | {'store busy':>10}"
    )
    rows = []
    for sites in sizes:
        r = daemon_size(work, sites, warmup, window, keep / f"stats-{sites}.json" if keep else None, profile)
        rows.append(r)
        say(
            f"   {sites:>5} | {r['runs']:>5} | {r['rate']:>6.1f} ({r['needed']:>4.1f}) | {r['cpu_ms']:>10.2f} | "
            f"{r['main_share']:>6.2f}, {r['tree_share']:>6.2f}, {r['server_share']:>6.2f} | "
            f"{r['rss_daemon']:>14.0f} + {r['rss_workers']:>10.0f} | "
            f"{r['late_p50']:>8.3f} / {r['late_p99']:>7.3f} | {r['missed']:>5} / {r['slots']:>4} | "
            f"{r['in_flight']:>9} | {r['wall_p50']:>8.3f} / {r['wall_p99']:>7.3f} | {r['store_share']:>10.2f}"
            f"   (warm-up {r['waited']:.0f} s: {r['warm']} sites had run, {r['backlog']} runs in flight; machine "
            f"{r['machine_share']:.2f} cores busy)"
        )
    say(
        "   CPU/s: CPU seconds per second of the window: the daemon process alone (its event loop and threads share"
    )
    say(
        "   one GIL), with its page workers, and the fixture server (same machine, same cores); lateness: run start -"
    )
    say(
        "   its scheduled (jittered) fire time; store busy: share of the window the store's lock was held (every store"
    )
    say(
        "   call, fsyncs included, runs under it). CPU ms/run = the window's CPU (daemon + page workers) over the runs"
    )
    say(
        "   finished in it: with a backlog it also charges unfinished runs, so it is a per-run cost only where slots are kept"
    )
    say(
        "   fetches over the window: requests served and TCP connections the fixture accepted (reuse across runs):"
    )
    for r in rows:
        say(f"   {r['sites']:>5}: {r['requests']} requests, {r['connections']} connections")
    say(
        "   daemon CPU-s per s by thread (MainThread = the event loop; asyncio or uvloop = the loop's default "
        "executor: store calls and publish):"
    )
    for r in rows:
        top = sorted(r["threads"].items(), key=lambda kv: -kv[1])[:6]
        say(f"   {r['sites']:>5}: " + ", ".join(f"{name} {share:.2f}" for name, share in top))
    say("   where a run's wall time goes, mean ms per finished run (overlapping steps of one run add up):")
    for r in rows:
        top = sorted(r["parts"].items(), key=lambda kv: -kv[1])[:8]
        say(f"   {r['sites']:>5}: " + ", ".join(f"{part} {seconds * 1000:.1f}" for part, seconds in top))
    base = next((r for r in rows if r["sites"] == 1000), rows[0])
    for r in rows:
        if r is not base:
            ratio = r["cpu_ms"] / base["cpu_ms"]
            verdict = "meets" if ratio <= 1.2 else "misses"
            say(
                f"   CPU per run at {r['sites']:,} sites = {ratio:.2f}x that at {base['sites']:,} ({verdict} the <= 1.2x target)"
            )
    say(
        f"   kept = no slot missed, p99 start lateness < {KEPT_LATE:g} s, p99 run wall < {KEPT_WALL:g} s, runs finished"
        " >= 95 % of those due"
    )
    for r in rows:
        if kept_slots(r):
            say(
                f"   {r['sites']:,} sites: every slot in the window kept on time (p99 lateness {r['late_p99']:.2f} s, "
                f"p99 run wall {r['wall_p99']:.2f} s, {r['rate']:.1f} runs/s of {r['needed']:.1f} due)"
            )
            continue
        say(
            f"   {r['sites']:,} sites: NOT every slot kept on time ({r['missed']} missed of {r['slots']}, p99 lateness "
            f"{r['late_p99']:.1f} s, p99 run wall {r['wall_p99']:.1f} s, {r['rate']:.1f} runs/s finished of "
            f"{r['needed']:.1f} due, {r['in_flight']} in flight at the window's end): {limit(r)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,2000,5000")
    parser.add_argument(
        "--warmup", type=float, default=75.0, help="seconds before the window (first runs add every item)"
    )
    parser.add_argument("--window", type=float, default=120.0, help="seconds measured per size")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--skip-publish", action="store_true")
    parser.add_argument("--skip-daemon", action="store_true")
    parser.add_argument("--keep", type=Path, help="write each size's raw daemon stats to DIR/stats-N.json")
    parser.add_argument(
        "--profile",
        type=Path,
        help="profile the daemon over each window with yappi (pip install yappi; slows it down), to DIR/profile-N.txt",
    )
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "STATS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child[0]), Path(args.child[1]))
    say(
        f"daemon_scale: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="daemon-scale-") as name:
        work = Path(name)
        if not args.skip_store:
            store_part(work, args.queries)
        if not args.skip_publish:
            publish_part(work, 200)
        if not args.skip_daemon:
            daemon_part(
                work,
                [int(s) for s in args.sizes.split(",")],
                args.warmup,
                args.window,
                args.keep,
                args.profile,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
