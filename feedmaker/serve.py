"""Serving stage: feed files in output_dir (or, on a shared store, the feeds kept in it) -> HTTP, for feed
readers and the operator.

`respond(feed, method, headers) -> Reply` holds the HTTP rules (ETag, Last-Modified, 304 with If-None-Match
compared weakly over its whole list, gzip) and is pure;
`make_app(...)` is the ASGI glue: `/feeds/<id>.atom` by a raw ASGI callable serving prepared replies from
memory (the hot path: feed readers poll it), and starlette for `/opml`, `/healthz` and `/` (status page),
reading the feed list and a `Status` snapshot through callables so that a config reload shows (within
RECHECK_SECONDS for the feed path); its links come from configuration or the listening address, never
from a request's Host header;
`make_server(app)` a uvicorn server (httptools' C parser when installed) to run inside the daemon's own
loop, leaving signals to the daemon.
`StoredFeeds(store)` is the feed source of an instance on a shared store (PostgreSQL): every instance serves
the bytes, ETag and Last-Modified the publishing worker saved, whichever worker that was. The feed path
polls it at most once per RECHECK_SECONDS, in a worker thread, one small query (`Store.feeds_since`), while
requests go on being answered from the versions already loaded.
The status page, /healthz and /opml are rendered by pages.py.
The server only reads feeds: a failing site keeps its last good feed (publish never writes a failed crawl),
and its failure is shown on the status page, never as an entry. `/healthz` says `ok`, `degraded` (sites
failing, named) or `failing` (the last store or feed write failed, e.g. a full disk: HTTP 503).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedmaker.config import Settings, listen_url
from feedmaker.errors import FeedmakerError
from feedmaker.pages import SiteStatus, Status, health, render_opml, render_status
from feedmaker.serve_feeds import FeedFile, FeedFiles, StoredFeeds

__all__ = [
    "RECHECK_SECONDS",
    "FeedFile",
    "FeedFiles",
    "FeedSource",
    "Reply",
    "SiteStatus",
    "Status",
    "StatusSource",
    "StoredFeeds",
    "accepts_gzip",
    "health",
    "http_protocol",
    "if_none_match_tags",
    "make_app",
    "make_server",
    "render_opml",
    "render_status",
    "respond",
]

ATOM_TYPE = "application/atom+xml; charset=utf-8"
OPML_TYPE = "text/x-opml; charset=utf-8"
log = logging.getLogger(__name__)
# How stale the feed path may be: it checks the feed list and each file's stat at most this often, so a
# poll costs header checks only. Feeds change once per site run (minutes) and readers poll at minutes, so
# a reader that polls within a second of a publish gets the previous version and its own validators, and
# the new one on its next poll; a stat() and a feed-list build per request (O(sites) in the daemon) would
# cost more than the HTTP parsing does.
RECHECK_SECONDS = 1.0


# Called per request: the feed list is in memory; the status reads the store, so it runs in a worker thread.
FeedSource = Callable[[], Sequence[tuple[str, str]]]
StatusSource = Callable[[], Status]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


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


def make_app(
    settings: Settings,
    feeds: FeedSource,
    status_source: StatusSource,
    *,
    listening: str | None = None,
    recheck: float = RECHECK_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    stored: StoredFeeds | None = None,
) -> ASGIApp:
    """The ASGI app: the feeds `feeds()` lists (id, title), served from settings.output_dir, or from `stored`
    when given (an instance on a shared store), refreshed once per `recheck`; `status_source`
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
    if stored is None:
        return _FeedPath(FeedFiles(settings.output_dir), feeds, rest, recheck=recheck, clock=clock)
    return _FeedPath(stored, feeds, rest, recheck=recheck, clock=clock, poll=stored.refresh)


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
    file are looked at again once `recheck` seconds have passed since the last look. With `poll` (a shared
    store's StoredFeeds.refresh), a request finding the last poll `recheck` seconds old starts the next one
    in a worker thread and, like the requests meanwhile, is answered from the versions loaded; only the
    first poll is waited for. The feeds a poll changed are looked at again by their next request."""

    def __init__(
        self,
        files: FeedFiles | StoredFeeds,
        feeds: FeedSource,
        rest: ASGIApp,
        *,
        recheck: float,
        clock: Callable[[], float],
        poll: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.files, self.feeds, self.rest, self.recheck, self.clock = files, feeds, rest, recheck, clock
        self._known: frozenset[str] = frozenset()
        self._known_until = float("-inf")
        self._ready: dict[str, tuple[float, _Prepared | None]] = {}  # file name -> (good until, replies)
        self.poll = poll
        self._poll_due = float("-inf")
        self._polling: asyncio.Task[None] | None = None
        self._polled = False  # the first poll finished (well or not)

    async def _refresh(self, poll: Callable[[], Iterable[str]]) -> None:
        if self._polling is None and self.clock() >= self._poll_due:
            self._poll_due = self.clock() + self.recheck
            self._polling = asyncio.ensure_future(self._poll_once(poll))
        if not self._polled and self._polling is not None:
            await asyncio.shield(self._polling)

    async def _poll_once(self, poll: Callable[[], Iterable[str]]) -> None:
        try:
            changed = await asyncio.to_thread(poll)
            for feed_id in changed:
                self._ready.pop(f"{feed_id}.atom", None)
        except FeedmakerError as exc:
            # The store is away (restart, partition): keep serving the versions loaded; /healthz tells. The
            # store logged the outage once; a poll per `recheck` repeating it would flood the log.
            away = isinstance(self.files, StoredFeeds) and self.files.store_away
            log.log(logging.DEBUG if away else logging.WARNING, "feed poll failed reason=%s", exc)
        finally:
            self._polling, self._polled = None, True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if scope["type"] != "http" or not scope["path"].startswith("/feeds/") or method not in _FEED_METHODS:
            await self.rest(scope, receive, send)
            return
        if self.poll is not None:
            await self._refresh(self.poll)
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
