"""A daemon's /healthz latency and its well-behaved sites' throughput, with and without pathological sites.

Starts `python -m feedmaker run` (from --repo, default this checkout) twice against fixture sites on
127.0.0.1: once with --sites well-behaved sites, once with those plus two pathological ones: "nested",
whose listing is `"<div>" * 200000` (1 MB of nesting, parsed past the budget every run), and "regex",
whose config uses `(a+)+$` in a field regex, a canonical strip rule and a filter, and whose listing
(never cacheable: new every request) holds a 100 kB headline of a's ending in '!'. In each run /healthz
is polled from one keep-alive client every 50 ms for --window seconds, starting when the nested listing
has been fetched (in the calm run: after the first crawls), and the well-behaved sites' finished runs
and listing pages served are counted. Then SIGTERM, timed. Prints p50 / p99 / max latency, requests
timed out (30 s), runs and pages per second of the well-behaved sites, and the stop time (a daemon still
running 60 s after SIGTERM is killed: code -9) for both runs, side by side.

    .venv/bin/python -m benchmarks.isolation [--window 8] [--sites 3] [--repo PATH]

To compare with an older commit: `git archive <commit> | tar -x -C /tmp/base` and pass `--repo /tmp/base`
(its own feedmaker package is imported: `-m` puts the working directory first on sys.path).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.sites import QuietFiles, write_config

HERE = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT = 30.0  # a /healthz request still unanswered after this counts as this long (a "timeout")
STOP_TIMEOUT = 60.0  # after SIGTERM; a daemon still running then is killed
PATHOLOGICAL = "<html><body>" + "<div>" * 200_000 + "</body></html>"


CATASTROPHIC = "(a+)+$"  # Python's re: about 2**n steps to fail on n a's and a '!'
HOSTILE = ("nested", "regex")


def site_toml(name: str, url: str) -> str:
    text = f"""name = "{name.title()} News"
start_urls = ["{url}"]
schedule = "every 2s"
allow_private_network = true
[list]
item = "article.post"
link = {{ css = "h2 a", attr = "href" }}
headline = "h2"
"""
    if name == "regex":
        text += f"""author = {{ css = "h2 a", regex = "{CATASTROPHIC}" }}
[canonical]
strip = ["{CATASTROPHIC}"]
[filters]
exclude = ["{CATASTROPHIC}"]
"""
    return text


def listing(name: str) -> str:
    items = "".join(
        f'<article class="post"><h2><a href="/{name}/{n}.html">{name} story {n}</a></h2></article>'
        for n in range(20)
    )
    return f"<html><body>{items}</body></html>"


class Fresh(QuietFiles):
    """Static files, except /regex/index.html: a new listing on every request, with no validators, so each
    run of the regex site matches its patterns against a new 100 kB headline."""

    served = 0

    def do_GET(self) -> None:
        if self.path != "/regex/index.html":
            super().do_GET()
            return
        Fresh.served += 1
        n = Fresh.served
        body = (
            f'<html><body><article class="post"><h2><a href="/regex/{n}.html">{"a" * 100_000}{n}!</a></h2>'
            f'</article><article class="post"><h2><a href="/regex/s{n}.html">Regex story {n} of the day</a>'
            "</h2></article></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve_www(root: Path) -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Fresh, directory=str(root)))
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(repo: Path, tmp: Path, sites: int, hostile: bool, window: float) -> dict[str, float]:
    www = tmp / "www"
    names = [f"site{n}" for n in range(sites)] + (list(HOSTILE) if hostile else [])
    for name in names:
        (www / name).mkdir(parents=True)
        (www / name / "index.html").write_text(
            PATHOLOGICAL if name == "nested" else listing(name), encoding="utf-8"
        )
    port = free_port()
    with serve_www(www) as (base, requests):
        config = write_config(
            tmp / "config",
            {n: site_toml(n, f"{base}/{n}/index.html") for n in names},
            extra=f'[server]\nhost = "127.0.0.1"\nport = {port}\n',
        )
        log_path = tmp / "daemon.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "feedmaker", "--config", str(config), "run"],
                cwd=repo,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT, trust_env=False
            ) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        client.get("/healthz")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise SystemExit(f"daemon did not start:\n{log_path.read_text()}") from None
                        time.sleep(0.1)
                first = "/nested/index.html" if hostile else f"/{names[0]}/index.html"
                while first not in requests:
                    time.sleep(0.01)
                time.sleep(0.2)
                runs_before = len(re.findall(r"site=site\d+ run ok ", log_path.read_text()))
                pages_before = sum(1 for path in requests if re.fullmatch(r"/site\d+/index\.html", path))
                latencies: list[float] = []
                timeouts = 0
                began = time.monotonic()
                while time.monotonic() - began < window:
                    sent = time.perf_counter()
                    try:
                        client.get("/healthz")
                    except httpx.TimeoutException:
                        timeouts += 1
                    latencies.append(time.perf_counter() - sent)
                    time.sleep(0.05)
                spent = time.monotonic() - began
                text = log_path.read_text()
                runs = len(re.findall(r"site=site\d+ run ok ", text)) - runs_before
                pages = (
                    sum(1 for path in requests if re.fullmatch(r"/site\d+/index\.html", path)) - pages_before
                )
                hostile_runs = len(re.findall(r"site=(nested|regex) run ", text))
                stopping = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    code = -9  # SIGTERM ignored: killed
                stop = time.monotonic() - stopping
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "max": max(latencies) * 1000,
        "requests": len(latencies),
        "timeouts": timeouts,
        "runs_per_s": runs / spent,
        "pages_per_s": pages / spent,
        "hostile_runs": hostile_runs,
        "stop_s": stop,
        "code": code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--window", type=float, default=8.0, help="seconds of /healthz polling per run")
    parser.add_argument("--sites", type=int, default=3, help="well-behaved sites")
    parser.add_argument("--repo", type=Path, default=HERE, help="checkout whose feedmaker package runs")
    args = parser.parse_args()
    rows = []
    for hostile in (False, True):
        with tempfile.TemporaryDirectory(prefix="feedmaker-isolation-") as tmp:
            rows.append(
                (
                    "+ nested, (a+)+$ sites" if hostile else "well-behaved only",
                    measure(args.repo.resolve(), Path(tmp), args.sites, hostile, args.window),
                )
            )
    print(
        f"repo: {args.repo.resolve()}  (cpus: {os.cpu_count()}, window {args.window:g} s, {args.sites} well-behaved sites every 2 s)"
    )
    print(
        "runs/s and pages/s: the well-behaved sites' finished runs and listing pages served; hostile: their runs logged"
    )
    print(
        f"{'site set':<24} {'healthz p50':>12} {'p99':>9} {'max':>9} {'reqs':>5} {'t/o':>4} {'runs/s':>7} {'pages/s':>8} "
        f"{'hostile':>8} {'SIGTERM->exit':>14} {'code':>5}"
    )
    for label, r in rows:
        print(
            f"{label:<24} {r['p50']:>9.1f} ms {r['p99']:>6.1f} ms {r['max']:>6.1f} ms {r['requests']:>5.0f} {r['timeouts']:>4.0f} "
            f"{r['runs_per_s']:>7.2f} {r['pages_per_s']:>8.2f} {r['hostile_runs']:>8.0f} {r['stop_s']:>12.1f} s {r['code']:>5.0f}"
        )


if __name__ == "__main__":
    main()
