"""Serving stage: feed files in output_dir -> HTTP, for feed readers and the operator.

`respond(feed, method, headers) -> Reply` holds the HTTP rules (ETag, Last-Modified, 304 with If-None-Match
compared weakly over its whole list, gzip) and is pure;
`make_app(...)` is the ASGI glue: `/feeds/<id>.atom` by a raw ASGI callable serving prepared replies from
memory (the hot path: feed readers poll it), and starlette for `/opml`, `/healthz` and `/` (status page),
reading the feed list and a `Status` snapshot through callables so that a config reload shows (within
RECHECK_SECONDS for the feed path); its links come from configuration or the listening address, never
from a request's Host header;
`make_server(app)` a uvicorn server (httptools' C parser when installed) to run inside the daemon's own
loop, leaving signals to the daemon.
The server only reads files: a failing site keeps its last good feed (publish never writes a failed crawl),
and its failure is shown on the status page, never as an entry. `/healthz` says `ok`, `degraded` (sites
failing, named) or `failing` (the last store or feed write failed, e.g. a full disk: HTTP 503).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import html
import importlib.util
import logging
import os
import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedmaker.config import Settings
from feedmaker.feed import xml_text

__all__ = [
    "RECHECK_SECONDS",
    "FeedFile",
    "FeedFiles",
    "FeedSource",
    "Reply",
    "SiteStatus",
    "Status",
    "StatusSource",
    "accepts_gzip",
    "health",
    "http_protocol",
    "if_none_match_tags",
    "listen_url",
    "make_app",
    "make_server",
    "render_opml",
    "render_status",
    "respond",
]

ATOM_TYPE = "application/atom+xml; charset=utf-8"
OPML_TYPE = "text/x-opml; charset=utf-8"
# How stale the feed path may be: it checks the feed list and each file's stat at most this often, so a
# poll costs header checks only. Feeds change once per site run (minutes) and readers poll at minutes, so
# a reader that polls within a second of a publish gets the previous version and its own validators, and
# the new one on its next poll; a stat() and a feed-list build per request (O(sites) in the daemon) would
# cost more than the HTTP parsing does.
RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteStatus:
    """daemon -> serve: what the status page and /healthz show for one site."""

    site: str
    name: str
    last_run: datetime | None = None  # when the last run finished; None = never ran
    items: int = 0  # items found by the last run
    not_modified: int = 0  # listing pages that answered 304 in the last run
    new: int = 0  # new entries from the last run
    errors: tuple[str, ...] = ()  # reasons the last run failed
    warnings: tuple[str, ...] = ()
    failures: int = 0  # consecutive failed runs
    last_good: datetime | None = None  # when the last successful run finished
    entries: int = 0  # entries the site's feed file holds
    next_run: datetime | None = None  # from the scheduler (after any back-off); None = not scheduled
    worker: str | None = None  # which feedmaker process ran the last run (several share a PostgreSQL store)

    @property
    def state(self) -> str:
        # Errors before a first run: the site file is broken, so the site will not run until it is fixed.
        if self.failures or self.errors:
            return "failing"
        return "pending" if self.last_run is None else "ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """daemon -> serve: one snapshot for the status page and /healthz."""

    sites: tuple[SiteStatus, ...] = ()
    feed_entries: tuple[tuple[str, int], ...] = ()  # combined feed id -> entries its file holds
    write_error: str | None = None  # why the last store or feed write failed; None while writes succeed


# Called per request: the feed list is in memory; the status reads the store, so it runs in a worker thread.
FeedSource = Callable[[], Sequence[tuple[str, str]]]
StatusSource = Callable[[], Status]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedFile:
    """One version of one feed file, with everything a poll needs precomputed."""

    body: bytes
    gzipped: bytes
    etag: str  # strong: a hash of the bytes, so it changes iff they change
    gzip_etag: str  # the gzip representation is a different entity, so it gets its own strong tag
    modified: int  # whole seconds since the epoch: the resolution of Last-Modified


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


class FeedFiles:
    """output_dir/<id>.atom, read and hashed once per version: a poll of an unchanged file costs one stat()."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self._cache: dict[str, tuple[tuple[int, int, int], FeedFile]] = {}

    def get(self, feed_id: str) -> FeedFile | None:
        path = self.output_dir / f"{feed_id}.atom"
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            self._cache.pop(feed_id, None)
            return None
        cached = self._cache.get(feed_id)
        if cached and cached[0] == _version(stat):
            return cached[1]
        # write_feed replaces the file by rename: the bytes read through one descriptor are one whole version,
        # and the key comes from that descriptor, so it always names the bytes cached with it.
        try:
            with path.open("rb") as fh:
                version = _version(os.fstat(fh.fileno()))
                body = fh.read()
        except FileNotFoundError:
            return None
        digest = hashlib.sha256(body).hexdigest()[:32]
        feed = FeedFile(
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            etag=f'"{digest}"',
            gzip_etag=f'"{digest}-gzip"',
            modified=version[1] // 1_000_000_000,
        )
        self._cache[feed_id] = (version, feed)
        return feed


def _version(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def accepts_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        name, _, params = part.partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        return q > 0
    return False


# One member of an If-None-Match list: `*`, or an entity-tag, weak (W/) or not. An opaque tag may hold
# commas, so the list is scanned tag by tag rather than split on ",". A bare token (some clients forget the
# quotes) counts as that tag quoted.
_ENTITY_TAG = re.compile(r'\s*(?:(\*)|(?:[Ww]/)?("[^"]*"|[^\s,"]+))\s*(?:,|$)')


def if_none_match_tags(value: str) -> tuple[bool, frozenset[str]]:
    """(`*` given, the opaque tags listed, quoted) of an If-None-Match value; W/ dropped, as RFC 9110
    §13.1.2 compares these weakly: `W/"x"` matches `"x"`."""
    star, tags = False, set()
    for match in _ENTITY_TAG.finditer(value):
        if match.group(1):
            star = True
        elif match.group(2):
            tag = match.group(2)
            tags.add(tag if tag.startswith('"') else f'"{tag}"')
    return star, frozenset(tags)


def _is_fresh(feed: FeedFile, headers: Mapping[str, str]) -> bool:
    """RFC 9110 §13.2.2: If-None-Match wins; If-Modified-Since counts only without it."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        star, tags = if_none_match_tags(if_none_match)
        # Either representation's tag names the same bytes: a client switching encodings (or a proxy that
        # gzipped and weakened our tag) still gets its 304.
        return star or feed.etag in tags or feed.gzip_etag in tags
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since:
        since = _http_date(if_modified_since)
        return since is not None and feed.modified <= since
    return False


@lru_cache(maxsize=256)  # a reader sends back the one Last-Modified we gave it: few distinct values
def _http_date(value: str) -> float | None:
    """An HTTP date as seconds since the epoch (no zone = UTC), None when it is not one."""
    try:
        since = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since.timestamp()


def respond(feed: FeedFile | None, method: str, headers: Mapping[str, str]) -> Reply:
    """The reply to GET/HEAD of one feed. `headers` keys are lower case (starlette's are)."""
    if feed is None:
        # A known feed not published yet (first crawl pending or failing): temporary, so not a 404.
        return Reply(
            status=503,
            headers=(("Retry-After", "60"), ("Content-Type", "text/plain; charset=utf-8")),
            body=b"feed not published yet\n",
        )
    use_gzip = accepts_gzip(headers.get("accept-encoding"))
    common = (
        ("ETag", feed.gzip_etag if use_gzip else feed.etag),
        ("Last-Modified", formatdate(feed.modified, usegmt=True)),
        ("Vary", "Accept-Encoding"),
        ("Cache-Control", "no-cache"),
    )
    if _is_fresh(feed, headers):
        return Reply(status=304, headers=common)
    body = feed.gzipped if use_gzip else feed.body
    extra = (("Content-Encoding", "gzip"),) if use_gzip else ()
    length = (("Content-Length", str(len(body))),)
    return Reply(
        status=200,
        headers=(*common, ("Content-Type", ATOM_TYPE), *extra, *length),
        body=b"" if method == "HEAD" else body,
    )


def render_opml(feeds: Sequence[tuple[str, str]], base_url: str) -> bytes:
    """OPML 2.0 listing every feed with an absolute xmlUrl."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = "feedmaker feeds"
    body = ET.SubElement(root, "body")
    base = base_url.rstrip("/")
    for feed_id, name in feeds:
        title = xml_text(name)  # a config name may hold characters XML forbids; the OPML must still parse
        ET.SubElement(
            body, "outline", type="rss", text=title, title=title, xmlUrl=f"{base}/feeds/{feed_id}.atom"
        )
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def health(status: Status) -> tuple[int, dict[str, object]]:
    """(HTTP status, body): `failing` (503) when the last write failed, as nothing new can be kept;
    `degraded` while any site's last run failed; `ok` otherwise (pending sites included)."""
    counts = {"ok": 0, "failing": 0, "pending": 0}
    for s in status.sites:
        counts[s.state] += 1
    failing_sites = [s.site for s in status.sites if s.state == "failing"]
    state = "failing" if status.write_error else "degraded" if failing_sites else "ok"
    body: dict[str, object] = {
        "status": state,
        "write_error": status.write_error,
        "failing_sites": failing_sites,
        "counts": counts,
        "sites": {s.site: {"state": s.state, "failures": s.failures} for s in status.sites},
    }
    return (503 if status.write_error else 200), body


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def render_status(status: Status, feeds: Sequence[tuple[str, str]]) -> str:
    e = html.escape
    rows = []
    for s in status.sites:
        items = "unchanged (304)" if s.not_modified and not s.items else str(s.items)
        if s.state == "failing":
            reason = "; ".join(s.errors) or "last run failed"
            times = f" x{s.failures}" if s.failures else ""
            state = f'<td class="failing">failing{times}: {e(reason)}</td>'
        else:
            state = f'<td class="{s.state}">{s.state}</td>'
        rows.append(
            f'<tr><td><a href="/feeds/{e(s.site)}.atom">{e(s.name)}</a> <small>{e(s.site)}</small></td>'
            f"<td>{_when(s.last_run)}{f' <small>by {e(s.worker)}</small>' if s.worker else ''}</td><td>{items}</td><td>{s.new}</td><td>{s.entries}</td>{state}"
            f"<td>{_when(s.last_good)}</td><td>{_when(s.next_run)}</td></tr>"
        )
    site_ids = {s.site for s in status.sites}
    entries = dict(status.feed_entries)
    combined = [
        f'<li><a href="/feeds/{e(feed_id)}.atom">{e(title)}</a> <span class="entries">{entries.get(feed_id, 0)} entries</span></li>'
        for feed_id, title in feeds
        if feed_id not in site_ids
    ]
    alarm = f'<p class="failing">writes failing: {e(status.write_error)}</p>' if status.write_error else ""
    combined_html = f"<h2>Combined feeds</h2><ul>{''.join(combined)}</ul>" if combined else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="60">'
        "<title>feedmaker status</title><style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}"
        ".failing{color:#b00}.ok{color:#070}</style></head><body><h1>feedmaker</h1>"
        f'<p><a href="/opml">OPML</a> · <a href="/healthz">healthz</a></p>{alarm}'
        "<table><tr><th>site</th><th>last run</th><th>items found</th><th>new</th><th>entries</th>"
        f"<th>state</th><th>last good run</th><th>next run</th></tr>{''.join(rows)}</table>{combined_html}"
        "</body></html>"
    )


def listen_url(host: str, port: int) -> str:
    """`http://host:port` of a listening address (IPv6 in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_app(
    settings: Settings,
    feeds: FeedSource,
    status_source: StatusSource,
    *,
    listening: str | None = None,
    recheck: float = RECHECK_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> ASGIApp:
    """The ASGI app: the feeds `feeds()` lists (id, title), served from settings.output_dir; `status_source`
    called in a worker thread per status request (it reads the store, which may be busy writing).
    The feed path reads `feeds()` and stats a feed's file at most once per `recheck` seconds of `clock`.

    OPML links start with `[server] base_url`, else `listening` (the bound address), else the configured
    host:port. Never with the request's Host header: any client can send one, and an OPML file built from
    it would send its subscribers wherever that client chose."""
    public = settings.server.base_url or listening or listen_url(settings.server.host, settings.server.port)

    async def feed(request: Request) -> Response:
        # Only methods other than GET/HEAD get here (the feed path answers those): starlette says 405.
        return Response("no such feed\n", status_code=404, media_type="text/plain")

    async def opml(request: Request) -> Response:
        return Response(render_opml(feeds(), public), media_type=OPML_TYPE)

    async def healthz(request: Request) -> Response:
        code, body = health(await asyncio.to_thread(status_source))
        return JSONResponse(body, status_code=code, headers={"Cache-Control": "no-cache"})

    async def status(request: Request) -> Response:
        page = render_status(await asyncio.to_thread(status_source), feeds())
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    rest = Starlette(
        routes=[
            Route("/feeds/{name}", feed, methods=["GET", "HEAD"]),
            Route("/opml", opml, methods=["GET", "HEAD"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/", status, methods=["GET", "HEAD"]),
        ]
    )
    return _FeedPath(FeedFiles(settings.output_dir), feeds, rest, recheck=recheck, clock=clock)


# An ASGI reply as its two messages, built once per feed version: (start, body for GET, body for HEAD).
# Servers read a message and never change it (uvicorn copies the header list), so one dict serves every
# request and a poll allocates none.
_Ready = tuple[Message, Message, Message]


def _ready(reply: Reply) -> _Ready:
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers]
    if reply.status != 304 and not any(name == b"content-length" for name, _ in headers):
        headers.append((b"content-length", str(len(reply.body)).encode()))
    return (
        {"type": "http.response.start", "status": reply.status, "headers": headers},
        {"type": "http.response.body", "body": reply.body},
        {"type": "http.response.body", "body": b""},
    )


_NO_SUCH_FEED = _ready(
    Reply(status=404, headers=(("Content-Type", "text/plain; charset=utf-8"),), body=b"no such feed\n")
)
_UNPUBLISHED = _ready(respond(None, "GET", {}))


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The four replies one feed version can get, built by `respond` itself, so the fast path only picks."""

    feed: FeedFile
    tags: frozenset[bytes]  # the If-None-Match values that are exactly one of our tags: no parsing needed
    plain: _Ready
    gzipped: _Ready
    plain_304: _Ready
    gzipped_304: _Ready

    @classmethod
    def of(cls, feed: FeedFile) -> _Prepared:
        def ready(**headers: str) -> _Ready:
            return _ready(respond(feed, "GET", headers))

        return cls(
            feed=feed,
            tags=frozenset({feed.etag.encode(), feed.gzip_etag.encode()}),
            plain=ready(),
            gzipped=ready(**{"accept-encoding": "gzip"}),
            plain_304=ready(**{"if-none-match": "*"}),
            gzipped_304=ready(**{"accept-encoding": "gzip", "if-none-match": "*"}),
        )


_accepts_gzip = lru_cache(maxsize=256)(accepts_gzip)
_FEED_METHODS = frozenset({"GET", "HEAD"})  # clients send a handful of distinct values


class _FeedPath:
    """GET/HEAD /feeds/<id>.atom from prepared replies; everything else goes to starlette (`rest`).

    Per request: a clock read, a dict lookup and the conditional headers' checks; the feed list and the
    file are looked at again once `recheck` seconds have passed since the last look."""

    def __init__(
        self,
        files: FeedFiles,
        feeds: FeedSource,
        rest: ASGIApp,
        *,
        recheck: float,
        clock: Callable[[], float],
    ) -> None:
        self.files, self.feeds, self.rest, self.recheck, self.clock = files, feeds, rest, recheck, clock
        self._known: frozenset[str] = frozenset()
        self._known_until = float("-inf")
        self._ready: dict[str, tuple[float, _Prepared | None]] = {}  # file name -> (good until, replies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if scope["type"] != "http" or not scope["path"].startswith("/feeds/") or method not in _FEED_METHODS:
            await self.rest(scope, receive, send)
            return
        start, body, head = self._reply(scope["path"][7:], scope["headers"])
        await send(start)
        await send(head if method == "HEAD" else body)

    def _reply(self, name: str, request_headers: Sequence[tuple[bytes, bytes]]) -> _Ready:
        now = self.clock()
        cached = self._ready.get(name)
        prepared = cached[1] if cached is not None and now < cached[0] else self._look(name, now)
        if prepared is None:
            return _NO_SUCH_FEED if name not in self._known else _UNPUBLISHED
        if_none_match: bytes | None = None
        if_modified_since = accept_encoding = b""
        for key, value in request_headers:
            if key == b"if-none-match":
                # Several lines are one list (RFC 9110 §5.3).
                if_none_match = value if if_none_match is None else if_none_match + b", " + value
            elif key == b"if-modified-since":
                if_modified_since = value
            elif key == b"accept-encoding":
                accept_encoding = value
        use_gzip = _accepts_gzip(accept_encoding.decode("latin-1")) if accept_encoding else False
        if if_none_match is not None:
            fresh = if_none_match in prepared.tags or _is_fresh(
                prepared.feed, {"if-none-match": if_none_match.decode("latin-1")}
            )
        elif if_modified_since:
            fresh = _is_fresh(prepared.feed, {"if-modified-since": if_modified_since.decode("latin-1")})
        else:
            fresh = False
        if fresh:
            return prepared.gzipped_304 if use_gzip else prepared.plain_304
        return prepared.gzipped if use_gzip else prepared.plain

    def _look(self, name: str, now: float) -> _Prepared | None:
        """Read the feed list (when due) and the file's stat; prepare the replies of a new version."""
        if now >= self._known_until:
            self._known = frozenset(f"{feed_id}.atom" for feed_id, _ in self.feeds())
            self._known_until = now + self.recheck
            # Forget feeds no longer listed, so that the cache never outgrows the configuration.
            for gone in self._ready.keys() - self._known:
                del self._ready[gone]
        if name not in self._known:
            return None
        feed = self.files.get(name.removesuffix(".atom"))
        cached = self._ready.get(name)
        if feed is None:
            prepared = None
        elif cached is not None and cached[1] is not None and cached[1].feed is feed:
            prepared = cached[1]
        else:
            prepared = _Prepared.of(feed)
        self._ready[name] = (now + self.recheck, prepared)
        return prepared


class Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: the daemon owns SIGTERM/SIGINT, because scheduling must
    stop and crawls must drain before the server goes."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        # asyncio turns Nagle off only on sockets whose proto is IPPROTO_TCP; one made by socket.socket()
        # says 0, and then a keep-alive reply's last segment waits ~40 ms for the client's delayed ACK.
        # Accepted connections inherit the listener's TCP_NODELAY.
        for sock in sockets or ():
            if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await super().serve(sockets)


def http_protocol() -> str:
    """httptools (C, llhttp) when installed: about twice the requests per CPU second of h11 (pure Python)."""
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def make_server(app: ASGIApp, *, verbose: int = 0, grace: int = 2) -> Server:
    """A server for `app`, to run with `await server.serve(sockets=[...])` inside the caller's loop.

    It leaves logging alone (no dictConfig); access lines only with -v, uvicorn's own INFO lines only with -vv.
    """
    config = uvicorn.Config(
        app,
        http=http_protocol(),
        log_config=None,
        log_level=logging.INFO if verbose >= 2 else logging.WARNING,
        access_log=verbose >= 1,
        lifespan="off",
        timeout_graceful_shutdown=grace,
        server_header=False,
    )
    return Server(config)
