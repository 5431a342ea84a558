"""A real HTTP server on 127.0.0.1 that misbehaves in one way per path (scrapy's mockserver idea).

For fetcher tests and benchmarks that need real sockets: timeouts, caps, redirects, robots.txt.
Every request is logged with its arrival time, so politeness can be checked server-side.

    with serve_routes() as site:                      # port 0: the OS picks
        await fetcher.fetch(site.url("/trickle"))
        assert site.paths() == ["/robots.txt", "/trickle"]

Paths: /robots.txt (disallows /private/), /trickle, /endless, /gzip-bomb, /brotli-bomb, /huge,
/redirect-loop, /redirect-private[?to=URL], /redirect?to=URL[&status=301], /retry-after, /flaky[?key=K],
/etag, /wrong-charset, /malformed, /huge-headers, /slow[?secs=S], /status/<code>, /articles/<n>,
/private/<any>. Pass `routes` to add or replace paths (a key ending in "/" matches every path below it).
Pass `tls` (a certificate and key, e.g. from `make_certificate`) to serve https, and `keep_alive` to
answer HTTP/1.1 with persistent connections (only routes that send Content-Length then end properly);
`connections` counts the TCP connections accepted, whether or not a request followed.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import brotli

Route = Callable[["HostileHandler"], None]

ROBOTS_TXT = b"User-agent: *\nDisallow: /private/\n"
ETAG = '"v1"'
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"
HUGE_BYTES = 12 * 1024 * 1024
CHUNK = 64 * 1024
LATIN1_PAGE = "<html><body><p>Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e</p></body></html>".encode("latin-1")


@functools.cache
def bomb(kind: str, size: int) -> bytes:
    """`size` zero bytes compressed with `kind` ("gzip" or "br"): a few hundred bytes that decode huge."""
    zeros = bytes(size)
    if kind == "gzip":
        return gzip.compress(zeros, compresslevel=9, mtime=0)
    return cast(bytes, brotli.compress(zeros, quality=5))


@dataclass(frozen=True, slots=True)
class Hit:
    path: str  # with the query string
    host: str  # the Host header
    at: float  # time.monotonic() when the request line and headers had arrived
    headers: Mapping[str, str]


class HostileHandler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0 by default: a response ends when the connection closes, so /endless and /huge need no length.

    @property
    def site(self) -> HostileServer:
        return self.server.site

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path).query))

    def do_GET(self) -> None:
        self.site.record(
            Hit(self.path, self.headers.get("Host", ""), time.monotonic(), dict(self.headers.items()))
        )
        route = self.site.route(urlsplit(self.path).path)
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client hung up: that is what most routes wait for

    def reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "text/html; charset=utf-8", **(headers or {})}
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream(self, chunks: Iterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        """Send a body without Content-Length (HTTP/1.0: it ends when the connection closes)."""
        self.send_response(200)
        for name, value in {"Content-Type": "text/html; charset=utf-8", **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        for chunk in chunks:
            if self.site.stopping.is_set():
                return
            self.wfile.write(chunk)
            self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the hit log is the record; stderr noise is not


def robots_txt(h: HostileHandler) -> None:
    h.reply(200, ROBOTS_TXT, {"Content-Type": "text/plain"})


def trickle(h: HostileHandler) -> None:
    """Slowloris in reverse: promises 100 bytes and sends one every 0.5 s, so no read ever times out."""
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    for _ in range(100):
        h.wfile.write(b"x")
        h.wfile.flush()
        if h.site.stopping.wait(0.5):
            return


def endless(h: HostileHandler) -> None:
    h.stream(iter(lambda: b"<p>more</p>" * (CHUNK // 11), b""))


def huge(h: HostileHandler) -> None:
    h.stream(b"x" * CHUNK for _ in range(HUGE_BYTES // CHUNK))


def gzip_bomb(h: HostileHandler) -> None:
    h.reply(200, bomb("gzip", h.site.bomb_size), {"Content-Encoding": "gzip"})


def brotli_bomb(h: HostileHandler) -> None:
    h.reply(200, bomb("br", h.site.bomb_size), {"Content-Encoding": "br"})


def redirect_loop(h: HostileHandler) -> None:
    h.reply(302, headers={"Location": "/redirect-loop"})


def redirect_private(h: HostileHandler) -> None:
    h.reply(302, headers={"Location": h.query.get("to", "http://169.254.169.254/latest/meta-data/")})


def redirect(h: HostileHandler) -> None:
    h.reply(int(h.query.get("status", "302")), headers={"Location": h.query["to"]})


def retry_after(h: HostileHandler) -> None:
    h.reply(429, b"slow down", {"Retry-After": "120"})


def flaky(h: HostileHandler) -> None:
    """500 on the first request (per `key`), 200 afterwards."""
    if h.site.count("flaky:" + h.query.get("key", "")) == 1:
        h.reply(500, b"oops")
    else:
        h.reply(200, b"<p>recovered</p>")


def etag(h: HostileHandler) -> None:
    if h.headers.get("If-None-Match") == ETAG:
        h.reply(304, headers={"ETag": ETAG, "Content-Length": "0"})
    else:
        h.reply(200, b"<p>tagged</p>", {"ETag": ETAG, "Last-Modified": LAST_MODIFIED})


def wrong_charset(h: HostileHandler) -> None:
    """Latin-1 bytes under a header that says UTF-8; the fetcher passes both on untouched."""
    h.reply(200, LATIN1_PAGE, {"Content-Type": "text/html; charset=utf-8"})


def malformed(h: HostileHandler) -> None:
    h.wfile.write(b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok")
    h.close_connection = True


def huge_headers(h: HostileHandler) -> None:
    """A response head of 160 KiB, over httpcore's 100 KiB limit: no retry can make it fit."""
    h.send_response(200)
    for i in range(40):
        h.send_header(f"X-Padding-{i}", "x" * 4096)
    h.send_header("Content-Length", "2")
    h.end_headers()
    h.wfile.write(b"ok")


def slow(h: HostileHandler) -> None:
    if not h.site.stopping.wait(float(h.query.get("secs", "2"))):
        h.reply(200, b"<p>finally</p>")


def status(h: HostileHandler) -> None:
    h.reply(int(urlsplit(h.path).path.rsplit("/", 1)[1]), b"status")


def article(h: HostileHandler) -> None:
    h.reply(200, f"<html><body><h1>{urlsplit(h.path).path}</h1></body></html>".encode())


def private(h: HostileHandler) -> None:
    h.reply(200, b"robots.txt said no")


ROUTES: Mapping[str, Route] = {
    "/robots.txt": robots_txt,
    "/trickle": trickle,
    "/endless": endless,
    "/huge": huge,
    "/gzip-bomb": gzip_bomb,
    "/brotli-bomb": brotli_bomb,
    "/redirect-loop": redirect_loop,
    "/redirect-private": redirect_private,
    "/redirect": redirect,
    "/retry-after": retry_after,
    "/flaky": flaky,
    "/etag": etag,
    "/wrong-charset": wrong_charset,
    "/malformed": malformed,
    "/huge-headers": huge_headers,
    "/slow": slow,
    "/status/": status,
    "/articles/": article,
    "/private/": private,
}


def not_found(h: HostileHandler) -> None:
    h.reply(404, b"not found")


class _KeepAlive(HostileHandler):
    protocol_version = "HTTP/1.1"


class _Server(ThreadingHTTPServer):
    site: HostileServer
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        self.site.count("connections")
        if self.tls is None:
            return connection, address
        try:  # the handshake runs here; a client that refuses our certificate ends it with an alert
            return self.tls.wrap_socket(connection, server_side=True), address
        except OSError:
            connection.close()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # routes already swallow hang-ups; anything else shows up as a failing assertion


class HostileServer:
    """The running server: its URLs, its request log and a per-server counter."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        bomb_size: int,
        tls: tuple[Path, Path] | None = None,
        keep_alive: bool = False,
    ) -> None:
        self.routes = routes
        self.bomb_size = bomb_size
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._hits: list[Hit] = []
        self._counts: dict[str, int] = {}
        self._server = _Server(("127.0.0.1", 0), _KeepAlive if keep_alive else HostileHandler)
        self._server.site = self
        if tls is not None:
            self._server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._server.tls.load_cert_chain(*tls)
        self.scheme = "https" if tls else "http"
        self.port = self._server.server_port
        self.base = f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str = "/", *, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def connections(self) -> int:
        with self._lock:
            return self._counts.get("connections", 0)

    def route(self, path: str) -> Route:
        if path in self.routes:
            return self.routes[path]
        prefixes = [p for p in self.routes if p.endswith("/") and path.startswith(p)]
        return self.routes[max(prefixes, key=len)] if prefixes else not_found

    def record(self, hit: Hit) -> None:
        with self._lock:
            self._hits.append(hit)

    def count(self, key: str) -> int:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def paths(self) -> list[str]:
        return [hit.path for hit in self.hits]

    def min_gap(self) -> float:
        """Smallest time between two request arrivals (inf with fewer than two requests)."""
        times = sorted(hit.at for hit in self.hits)
        return min((b - a for a, b in itertools.pairwise(times)), default=float("inf"))

    def serve(self) -> None:
        self._server.serve_forever(poll_interval=0.02)

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serve_routes(
    routes: Mapping[str, Route] | None = None,
    *,
    bomb_size: int = 16 * 1024 * 1024,
    tls: tuple[Path, Path] | None = None,
    keep_alive: bool = False,
) -> Iterator[HostileServer]:
    """Run a `HostileServer` on 127.0.0.1 (port chosen by the OS) for the duration of the block."""
    site = HostileServer({**ROUTES, **(routes or {})}, bomb_size, tls, keep_alive)
    thread = threading.Thread(target=site.serve, name=f"hostile-{site.port}", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.close()
        thread.join(timeout=5)


_CA_CONFIG = """[ca]
default_ca = here
[here]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = names
copy_extensions = copy
[names]
commonName = supplied
"""


def make_certificate(directory: Path, *, expired: bool = False) -> tuple[Path, Path]:
    """A self-signed certificate for IP 127.0.0.1 and its key, made with the `openssl` command (which
    `req -x509` cannot back-date, hence `ca -selfsign`); `expired` makes it valid only in January 2020.
    Returns (certificate, key); trust the certificate as its own CA."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.cnf").write_text(_CA_CONFIG, encoding="ascii")
    (directory / "index.txt").write_text("", encoding="ascii")
    (directory / "serial").write_text("01\n", encoding="ascii")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=30)

    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "key.pem", "-out", "request.csr", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE",
    )  # fmt: skip
    dates = ["-startdate", "20200101000000Z", "-enddate", "20200131000000Z"] if expired else ["-days", "30"]
    openssl(
        "ca", "-config", "ca.cnf", "-selfsign", "-keyfile", "key.pem", "-in", "request.csr",
        "-out", "cert.pem", "-batch", "-notext", *dates,
    )  # fmt: skip
    return directory / "cert.pem", directory / "key.pem"
