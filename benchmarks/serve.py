"""Serving speed: feedmaker's feed path beside a plain static server on the same ~20 KB feed file.

    .venv/bin/python benchmarks/serve.py [--rounds 3] [--seconds 3] [--connections 64]

Each server runs in its own process on 127.0.0.1, one process each (nginx with one worker); the load
generator is wrk (C, keep-alive) in its own process, or, where wrk is not installed, a raw-socket asyncio
client in two processes of its own. Per round and server: full responses (200, no Accept-Encoding: the
plain bytes, as a static server sends them) and revalidations (304: the validator the server gave, ETag
where it sends one, else Last-Modified). Rows:
  nginx            if `nginx` is on PATH (skipped with a message otherwise; this script never installs it)
  stdlib           Python's http.server (ThreadingHTTPServer, HTTP/1.1 keep-alive): 304 by Last-Modified
  feedmaker        serve.make_app + make_server as the daemon runs them (daemon.loop_factory: uvloop where
                   installed; httptools where installed)
  feedmaker h11    the same with uvicorn's pure-Python h11 parser, to show what the C parser buys
  feedmaker asyncio the same on asyncio's own loop: the daemon's fallback where uvloop is absent
Every request goes to 127.0.0.1; each run is bounded by --seconds, and each server is stopped after its row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.feed_build import META, make_entries
from feedmaker.feed import render_atom

HOST = "127.0.0.1"
FEED = "bench.atom"
PATH = f"/feeds/{FEED}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _write_feed(root: Path) -> int:
    """A real rendered feed of about 20 KB in root/feeds/bench.atom; returns its size."""
    (root / "feeds").mkdir(parents=True)
    count = 1
    while len(data := render_atom(META, make_entries(count))) < 20_000:
        count += 1
    (root / "feeds" / FEED).write_bytes(data)
    return len(data)


# --- the servers, each a child process -------------------------------------------------------------------


def _child_feedmaker(root: str, port: int, http: str, loop: str) -> None:
    from feedmaker.config import ServerSettings, Settings
    from feedmaker.serve import Status, make_app, make_server

    settings = Settings(output_dir=Path(root) / "feeds", state_dir=Path(root) / "state",
                        server=ServerSettings(host=HOST, port=port))  # fmt: skip
    server = make_server(make_app(settings, lambda: [("bench", "Bench")], lambda: Status()))
    server.config.http = http  # as make_server picks it, or h11 for the comparison row
    from feedmaker.daemon import listen

    sock = listen(HOST, port)  # as the daemon binds it
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    from feedmaker.daemon import loop_factory

    with asyncio.Runner(loop_factory=loop_factory() if loop == "daemon" else None) as runner:
        runner.run(server.serve(sockets=[sock]))


def _child_stdlib(root: str, port: int) -> None:
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the others

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        # The default backlog of 5 drops connects when 64 clients open at once; a dropped SYN is retried
        # only after a second, which would be timed as the server's latency.
        request_queue_size = 1024

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # wrk closes its connections mid-reply when its time is up

    server = Server((HOST, port), partial(Handler, directory=root))
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
    server.serve_forever()


NGINX_CONF = """worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
    types {{ application/atom+xml atom; }}
    keepalive_requests 1000000;
    server {{ listen {host}:{port}; root {root}; }}
}}
"""


@contextmanager
def _running(name: str, root: Path) -> Iterator[int]:
    port = _free_port()
    if name == "nginx":
        (root / "tmp").mkdir(exist_ok=True)
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, host=HOST, port=port))
        argv = ["nginx", "-q", "-p", str(root), "-c", str(conf)]
    else:
        argv = [sys.executable, __file__, "--child", name, str(root), str(port)]
    proc = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _validator(port: int) -> tuple[str, str]:
    """(header, value) that makes this server answer 304: If-None-Match with its ETag, else If-Modified-Since."""
    with socket.create_connection((HOST, port)) as s:
        s.sendall(f"GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
    lowered = {k.lower(): v for k, v in fields.items()}
    if "etag" in lowered:
        return "If-None-Match", lowered["etag"]
    return "If-Modified-Since", lowered["last-modified"]


# --- load generators -------------------------------------------------------------------------------------

Result = tuple[float, float, float, int]  # req/s, p50 ms, p99 ms, non-2xx/3xx responses (wrk) or errors


def _wrk(port: int, header: tuple[str, str] | None, seconds: float, connections: int) -> Result:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    if header:
        argv += ["-H", f"{header[0]}: {header[1]}"]
    out = subprocess.run([*argv, f"http://{HOST}:{port}{PATH}"], capture_output=True, text=True, check=True,
                         timeout=seconds + 30).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\b", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, percentile("50"), percentile("99"), int(bad.group(1)) if bad else 0


async def _client(port: int, request: bytes, connections: int, until: float) -> tuple[int, list[float], int]:
    """Keep-alive connections, one request in flight each, until `until`: (requests, latencies s, errors)."""
    latencies: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port), until - time.monotonic()
            )
        except (OSError, TimeoutError):
            errors += 1
            return
        try:
            while time.monotonic() < until:
                started = time.perf_counter()
                writer.write(request)
                # Bounded by the run's end: a server that stops answering is an error, not a hang.
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), until - time.monotonic() + 5)
                match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                if match:
                    await asyncio.wait_for(
                        reader.readexactly(int(match.group(1))), until - time.monotonic() + 5
                    )
                latencies.append(time.perf_counter() - started)
                if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 304", b"HTTP/1.0 200", b"HTTP/1.0 304")):
                    errors += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            errors += 1  # reset, closed or stalled mid-reply: counted, and this connection stops
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return len(latencies), latencies, errors


def _child_client(port: int, header: str, connections: int, until: float) -> None:
    extra = f"{header}\r\n" if header else ""
    request = f"GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n".encode()
    count, latencies, errors = asyncio.run(_client(port, request, connections, until))
    sys.stdout.write(f"{count} {errors} " + " ".join(f"{x:.6f}" for x in latencies))


def _python_load(port: int, header: tuple[str, str] | None, seconds: float, connections: int) -> Result:
    until = time.monotonic() + seconds  # CLOCK_MONOTONIC is one clock for every process on the machine
    line = f"{header[0]}: {header[1]}" if header else ""
    halves = (connections // 2, connections - connections // 2)
    procs = [subprocess.Popen([sys.executable, __file__, "--child", "client", str(port), line, str(n), repr(until)],
                              stdout=subprocess.PIPE, text=True) for n in halves]  # fmt: skip
    latencies: list[float] = []
    count = errors = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 30)
        n, e, *values = out.split()
        count, errors = count + int(n), errors + int(e)
        latencies += map(float, values)
    latencies.sort()
    if not latencies:
        return 0.0, float("nan"), float("nan"), errors
    return (
        count / seconds,
        latencies[len(latencies) // 2] * 1e3,
        latencies[int(len(latencies) * 0.99)] * 1e3,
        errors,
    )


# --- the run ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--skip", action="append", default=[], help="leave out a server row (repeatable)")
    args = parser.parse_args()
    load = _wrk if shutil.which("wrk") else _python_load
    print(
        f"load generator: {'wrk (2 threads)' if load is _wrk else 'raw-socket asyncio client (2 processes); install wrk for a lighter one'}"
    )
    servers = [
        s
        for s in ("nginx", "stdlib", "feedmaker", "feedmaker-h11", "feedmaker-asyncio")
        if s not in args.skip
    ]
    if "nginx" in servers and not shutil.which("nginx"):
        print("nginx: not installed, its row is skipped (apt-get install nginx to compare)")
        servers.remove("nginx")
    from feedmaker.daemon import loop_factory

    if loop_factory() is None:
        print("uvloop: not installed, so the feedmaker row runs on asyncio's loop as the daemon would")
    results: dict[tuple[str, str], list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="feedmaker-serve-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)  # nginx's worker drops root and must still read the file
        size = _write_feed(root)
        print(
            f"feed: {size:,} bytes; {args.connections} connections; {args.seconds:g} s per measure; {args.rounds} rounds"
        )
        for round_number in range(args.rounds):
            for name in servers:
                with _running(name, root) as port:
                    validator = _validator(port)
                    load(port, None, 1, args.connections)  # warm-up: caches, the prepared replies
                    for kind, header in (("200", None), ("304", validator)):
                        result = load(port, header, args.seconds, args.connections)
                        results.setdefault((name, kind), []).append(result)
                        rate, p50, p99, bad = result
                        print(f"  round {round_number + 1} {name:<17} {kind}: {rate:9,.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
                              + (f"  ({bad} bad)" if bad else ""), flush=True)  # fmt: skip
    print(
        f"\n{'server':<17} {'kind':<4} {'req/s median':>13} {'(min..max)':>20} {'p50 ms':>7} {'p99 ms':>7}  vs nginx"
    )
    for name in servers:
        for kind in ("200", "304"):
            rows = results[(name, kind)]
            rates = [r[0] for r in rows]
            median = statistics.median(rates)
            reference = results.get(("nginx", kind))
            ratio = f"{median / statistics.median(r[0] for r in reference):.2f}x" if reference else "-"
            spread = f"({min(rates):,.0f}..{max(rates):,.0f})"
            p50 = statistics.median(r[1] for r in rows)
            p99 = statistics.median(r[2] for r in rows)
            print(f"{name:<17} {kind:<4} {median:>13,.0f} {spread:>20} {p50:>7.2f} {p99:>7.2f}  {ratio}")
    print("targets: feedmaker >= 0.5x nginx for 304, >= 0.3x for 200")


def _child(argv: list[str]) -> None:
    role, *rest = argv
    if role == "client":
        port, header, connections, until = rest
        _child_client(int(port), header, int(connections), float(until))
    elif role == "stdlib":
        _child_stdlib(rest[0], int(rest[1]))
    else:
        from feedmaker.serve import http_protocol

        http = "h11" if role == "feedmaker-h11" else http_protocol()
        _child_feedmaker(rest[0], int(rest[1]), http, "asyncio" if role == "feedmaker-asyncio" else "daemon")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
    else:
        main()
