"""Fetch stage: URL -> `Page` | `NotModified`, or a `FetchError` naming the URL and the reason.

What every fetch promises (RELIABILITY.md, promises 3-5):

* a total deadline (`timeout`) over connect, redirects, retries and body; time spent waiting for our
  turn at a host is not counted, so a long politeness queue cannot time out a fetch that never ran;
* a decoded-size cap enforced while streaming: gzip, deflate and br are decoded here, in 64 KiB
  steps, so a 405-byte brotli bomb costs about the cap in memory, not 256 MiB;
* no connection to a non-global address (loopback, private, link-local, CGNAT, multicast, ...)
  unless allowed: the check runs in the network backend at connect time, after our own DNS lookup,
  for every hop; literal addresses in any spelling are refused even before that;
* politeness: robots.txt (RFC 9309), one request in flight per host, at least `delay` seconds
  between one request's end and the next one's start, `Retry-After` honoured by pausing the host;
* retries with exponential backoff and jitter for 5xx (but not 503 with Retry-After), 408 and
  network errors only; never for other 4xx;
* conditional GET from `Validators`; a 304 is `NotModified`, with no body read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import random
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Protocol

import brotli
import httpcore
import httpx

from feedmaker.config import FetchSettings
from feedmaker.errors import Blocked, FetchError, TooLarge
from feedmaker.models import FetchResult, NotModified, Page, RobotsFile, Validators, utcnow
from feedmaker.robots import MAX_BYTES as ROBOTS_MAX_BYTES
from feedmaker.robots import RobotsCache

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[IPAddress]]]

STEP = 64 * 1024  # decode and check the size cap in steps of this many bytes
MAX_PAUSE = 24 * 3600.0  # Retry-After is capped at a day
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_ENCODINGS = 3
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NO_VALIDATORS = Validators()


# -- address guard --------------------------------------------------------------------------------


class AddressRefused(Exception):
    """Raised by `GuardedBackend` before any socket exists. Internal: `Fetcher` turns it into `Blocked`.

    Deliberately not an httpcore/httpx error, so neither library maps it or retries it.
    """

    def __init__(self, host: str, address: IPAddress) -> None:
        super().__init__(f"{host} resolves to non-public address {address}")
        self.host, self.address = host, address


def numeric_host(host: str) -> IPAddress | None:
    """The address a host spelling denotes without any DNS, read as `inet_aton`/`getaddrinfo` would:
    '2130706433', '0x7f.1', '017700000001', '127.1', '::ffff:127.0.0.1' are all loopback."""
    bare = host.strip("[]").removesuffix(".")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except (OSError, ValueError):  # ValueError: embedded NUL
        return None


def _embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """IPv4 addresses an IPv6 address carries and that a gateway might route to."""
    if isinstance(address, ipaddress.IPv4Address):
        return ()
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in NAT64 or int(address) >> 32 == 0:  # NAT64 and IPv4-compatible ::a.b.c.d
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return tuple(found)


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address, and so is every IPv4 address it embeds."""
    return all(
        a.is_global
        and not (a.is_private or a.is_loopback or a.is_link_local or a.is_multicast)
        and not (a.is_reserved or a.is_unspecified)
        for a in (address, *_embedded_ipv4(address))
    )


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which non-public addresses may be reached: none by default; CIDRs or host names on request."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hosts: frozenset[str] = frozenset()
    allow_all: bool = False

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> AddressPolicy:
        networks, hosts = [], set()
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(_host_key(entry))
        return cls(networks=tuple(networks), hosts=frozenset(hosts))

    def allows(self, host: str, address: IPAddress) -> bool:
        if self.allow_all or is_public(address) or _host_key(host) in self.hosts:
            return True
        return any(a in net for a in (address, *_embedded_ipv4(address)) for net in self.networks)


def _host_key(host: str) -> str:
    return host.strip().strip("[]").lower().removesuffix(".")


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address of `host`, in the resolver's order; no connection is made."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves the host itself, refuses the connection if any
    address is not allowed by `policy`, and only then dials a checked IP (never the name, which a
    second lookup could rebind). TLS still verifies the URL's host name: httpcore takes SNI from
    the request, not from the address we dial."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        inner: httpcore.AsyncNetworkBackend | None = None,
        resolve: Resolve = resolve,
    ) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()
        self._resolve = resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        literal = numeric_host(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = await self._resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        # Refuse the host if any address is refused: a name mixing public and private addresses is
        # exactly what a rebinding attack looks like.
        for address in addresses:
            if not self.policy.allows(host, address):
                raise AddressRefused(host, address)
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used by feedmaker")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(backend: GuardedBackend, settings: FetchSettings) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (so its exception mapping and streaming stay), with a pool that dials
    through `backend`. httpx has no public hook for a network backend; `_pool` is the documented
    seam in its source (AsyncHTTPTransport builds exactly this pool when no proxy is set)."""
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    ssl_context = httpx.create_ssl_context(trust_env=False)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False, limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )
    return transport


# -- bounded decoding -----------------------------------------------------------------------------


class Decoder(Protocol):
    def decode(self, data: bytes) -> Iterator[bytes]:
        """Yield the output for `data` in pieces of about `STEP` bytes, never all at once."""
        ...


class _Identity:
    def decode(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), STEP):
            yield data[start : start + STEP]


class ZlibDecoder:
    """gzip (several members allowed) or deflate (zlib-wrapped, or raw as some servers send it)."""

    GZIP = zlib.MAX_WBITS | 16

    def __init__(self, *, gzip: bool) -> None:
        self._gzip = gzip
        self._head = b""
        self._decompressor: zlib._Decompress | None = None
        self._done = False

    def _start(self, data: bytes) -> zlib._Decompress:
        if self._gzip:
            wbits = self.GZIP
        else:  # RFC 1950 header: CM=8 and the two bytes a multiple of 31
            wbits = (
                zlib.MAX_WBITS
                if data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
                else -zlib.MAX_WBITS
            )
        self._decompressor = zlib.decompressobj(wbits)
        return self._decompressor

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self._done:
            return
        if self._decompressor is None or self._decompressor.eof:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = b""
            if self._decompressor is not None and data[:2] != b"\x1f\x8b":
                self._done = True  # trailing garbage after the last member, as browsers ignore it
                return
        decompressor = self._decompressor or self._start(data)
        while True:
            out = decompressor.decompress(data, STEP)
            if out:
                yield out
            if decompressor.eof:
                rest = decompressor.unused_data
                if not rest:
                    return  # the next chunk may start another member
                if not self._gzip or rest[:2] != b"\x1f\x8b":
                    self._done = True
                    return
                decompressor, data = self._start(rest), rest
                continue
            data = decompressor.unconsumed_tail
            if not data and len(out) < STEP:
                return


class BrotliDecoder:
    """Needs brotli >= 1.2: `output_buffer_limit` is what makes a bounded brotli decoder possible."""

    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        decompressor = self._decompressor
        if decompressor.is_finished():
            return
        out: bytes = decompressor.process(data, output_buffer_limit=STEP)
        # A full buffer means more output is pending even when can_accept_more_data() says True
        # (measured with brotli 1.2.1), so drain until a short read, not only until it can accept.
        while out:
            yield out
            if decompressor.can_accept_more_data() and (len(out) < STEP or decompressor.is_finished()):
                return
            out = decompressor.process(b"", output_buffer_limit=STEP)


def decoder_for(encoding: str) -> Decoder | None:
    match encoding:
        case "gzip" | "x-gzip":
            return ZlibDecoder(gzip=True)
        case "deflate":
            return ZlibDecoder(gzip=False)
        case "br":
            return BrotliDecoder()
        case "identity" | "":
            return _Identity()
    return None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _pipe(decoder: Decoder, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from decoder.decode(piece)


def decode_steps(decoders: list[Decoder], chunk: bytes) -> Iterator[bytes]:
    """Run `chunk` through content codings applied in `decoders` order, undoing the last first."""
    pieces: Iterable[bytes] = (chunk,)
    for decoder in reversed(decoders):
        pieces = _pipe(decoder, pieces)
    return iter(pieces)


# -- politeness -----------------------------------------------------------------------------------


class HostGate:
    """One request in flight per host, and at least `delay` seconds from the end of one request to
    the start of the next (scrapy's Slot without its 0.5-1.5x randomisation: the gap never drops
    below the configured delay, and measuring from the end makes it hold at the server too)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last_end = -math.inf

    @asynccontextmanager
    async def turn(self, delay: float) -> AsyncIterator[None]:
        async with self._lock:
            wait = self._last_end + delay - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last_end = self._clock()


@dataclass(slots=True)
class _Pause:
    resume: float  # on the monotonic clock
    until: datetime  # for messages

    def reason(self) -> str:
        return f"host paused until {self.until:%Y-%m-%dT%H:%M:%SZ} (Retry-After)"


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now` (delta-seconds or HTTP-date), within [0, 24 h]."""
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True too, and float() refuses it
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_PAUSE)


# -- the fetcher ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Budget:
    """What is left of one fetch's total deadline; only time spent on the wire is charged."""

    url: str
    total: float
    left: float = field(init=False)

    def __post_init__(self) -> None:
        self.left = self.total

    def expired(self) -> FetchError:
        return FetchError(self.url, f"timed out after {self.total:g} s (total deadline)")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.left <= 0:
            raise self.expired()
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with asyncio.timeout(self.left) as deadline:
                yield
        except TimeoutError as exc:
            if deadline.expired():
                raise self.expired() from exc
            raise
        finally:
            self.left -= loop.time() - start


@dataclass(frozen=True, slots=True)
class _Reply:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes = b""
    encoding: str | None = None
    attempts: int = 1


def _retryable(status: int) -> bool:
    return status == 408 or status >= 500


def _root_cause(exc: BaseException) -> str:
    """anyio reports 'All connection attempts failed'; the OSError under it says why."""
    reason, seen = str(exc), set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno:
            reason = os.strerror(cause.errno)  # asyncio's strerror is "Connect call failed (...)"
        cause = cause.__cause__ or cause.__context__
    return reason


def _describe(exc: httpx.TransportError, settings: FetchSettings) -> str:
    match exc:
        case httpx.ConnectTimeout():
            return f"connect timed out after {settings.connect_timeout:g} s"
        case httpx.ReadTimeout():
            return f"read timed out after {settings.read_timeout:g} s"
        case httpx.ConnectError():
            return f"connection failed: {_root_cause(exc)}"
        case httpx.RemoteProtocolError():
            return f"malformed HTTP response: {exc}"
    return f"network error: {type(exc).__name__}: {exc}"


class Fetcher:
    """One per crawl run/daemon: owns the httpx clients, per-host gates, robots cache, paused hosts.

    `transport` replaces the guarded network transport (tests use `httpx.MockTransport`); `network`
    is the raw connector under the address guard (tests spy on it); `backoff` is the first retry's
    base wait in seconds.
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        backoff: float = 0.5,
        network: httpcore.AsyncNetworkBackend | None = None,
        paused: Mapping[str, datetime] | None = None,
    ) -> None:
        self.settings = settings
        self._clock, self._now, self._backoff = clock, now, backoff
        self._transport, self._network = transport, network
        self._policy = AddressPolicy.from_entries(settings.allow_private_networks)
        self._open_policy = AddressPolicy(allow_all=True)
        # Two clients, not one with a per-request flag: the connection pool reuses connections by
        # origin, so a connection opened for an allow_private site must never serve a guarded
        # request. Each client's backend has one fixed policy and its own pool.
        self._clients: dict[bool, httpx.AsyncClient] = {}
        self._gates: dict[str, HostGate] = {}
        self._paused: dict[str, _Pause] = {}
        for host, until in (paused or {}).items():
            # Pauses from an earlier process (Retry-After outlives a `run --once`): resume on our clock.
            left = min((until - now()).total_seconds(), MAX_PAUSE)
            if left > 0:
                self._paused[host] = _Pause(clock() + left, until)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self.robots = RobotsCache(clock=clock, now=now)

    def paused_hosts(self) -> dict[str, datetime]:
        """Hosts still paused by Retry-After, with the UTC time they resume: for the store to keep."""
        moment = self._clock()
        return {host: pause.until for host, pause in self._paused.items() if pause.resume > moment}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _client(self, allow_private: bool) -> httpx.AsyncClient:
        if self._transport is not None:
            allow_private = False  # one injected transport: one client
        client = self._clients.get(allow_private)
        if client is None:
            s = self.settings
            policy = self._open_policy if allow_private else self._policy
            transport = self._transport or guarded_transport(GuardedBackend(policy, inner=self._network), s)
            client = httpx.AsyncClient(
                transport=transport,
                follow_redirects=False,  # every hop is re-checked here (robots, address, scheme)
                trust_env=False,
                timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout, pool=s.timeout),
                headers={
                    "User-Agent": s.user_agent,
                    "Accept": ACCEPT,
                    "Accept-Encoding": "gzip, deflate, br",
                },
            )
            self._clients[allow_private] = client
        return client

    async def fetch(
        self,
        url: str,
        *,
        known: Validators = NO_VALIDATORS,
        allow_private: bool = False,
        delay: float | None = None,
    ) -> FetchResult:
        """Fetch `url` politely within the deadline and size cap; see the module docstring.

        Raises `Blocked` (robots.txt, address guard, paused host, 401/403/429), `TooLarge`, or
        `FetchError` (timeouts, network errors and other statuses, after retries where allowed).
        """
        call = _Call(
            self, url, allow_private=allow_private, delay=self.settings.delay if delay is None else delay
        )
        reply = await call.follow(url, known=known, max_bytes=self.settings.max_bytes, truncate=False)
        status = reply.status
        where = "" if reply.url == url else f" (at {reply.url})"
        if status == 304:
            return NotModified(reply.url)
        if 200 <= status < 300:
            return Page(
                url=reply.url,
                body=reply.body,
                encoding=reply.encoding,
                validators=Validators(
                    etag=reply.headers.get("ETag"), last_modified=reply.headers.get("Last-Modified")
                ),
                fetched_at=self._now(),
                status=status,
            )
        reason = f"HTTP {status}{where}"
        if reply.attempts > 1:
            reason += f" (after {reply.attempts} attempts)"
        if status in (401, 403, 429):
            raise Blocked(url, reason)
        raise FetchError(url, reason)

    def _pause_check(self, url: str, host: str) -> None:
        pause = self._paused.get(host)
        if pause is not None:
            if self._clock() < pause.resume:
                raise Blocked(url, pause.reason())
            del self._paused[host]

    def _pause(self, host: str, seconds: float) -> _Pause:
        pause = _Pause(self._clock() + seconds, self._now() + timedelta(seconds=seconds))
        self._paused[host] = pause
        log.warning("host paused host=%s until=%s", host, f"{pause.until:%Y-%m-%dT%H:%M:%SZ}")
        return pause

    def _backoff_wait(self, attempt: int) -> float:
        base = self._backoff * 2.0 ** (attempt - 1)
        return base + random.uniform(0, base)


class _Call:
    """One `Fetcher.fetch` call: its client, address policy, delay and the deadline all hops share."""

    def __init__(
        self, fetcher: Fetcher, url: str, *, allow_private: bool, delay: float, budget: _Budget | None = None
    ) -> None:
        self.fetcher, self.settings, self.url = fetcher, fetcher.settings, url
        self.allow_private, self.delay = allow_private, delay
        self.client = fetcher._client(allow_private)
        self.policy = fetcher._open_policy if allow_private else fetcher._policy
        self.budget = budget or _Budget(url, self.settings.timeout)

    async def follow(
        self, url: str, *, known: Validators, max_bytes: int, truncate: bool, for_robots: bool = False
    ) -> _Reply:
        """Follow redirects from `url`, checking scheme, address, pause and robots.txt at each hop.

        For robots.txt itself (`for_robots`), `AddressRefused` escapes unchanged so that the page
        fetch that asked reports it with its own context.
        """
        current = url
        for hop in range(self.settings.max_redirects + 1):
            redirect = "redirect to " if hop else ""
            try:
                target = httpx.URL(current)
            except httpx.InvalidURL as exc:
                raise FetchError(self.url, f"invalid {redirect}URL {current}: {exc}") from exc
            if target.scheme not in ("http", "https"):
                reason = f"redirect to non-http(s) URL {current}" if hop else "not an http(s) URL"
                raise FetchError(self.url, reason)
            host = target.host
            try:
                address = numeric_host(host)
                if address is not None and not self.policy.allows(host, address):
                    raise AddressRefused(host, address)
                self.fetcher._pause_check(self.url, _host_key(host))
                if self.settings.obey_robots and not for_robots and not await self.robots_allow(current):
                    raise Blocked(
                        self.url,
                        f"robots.txt disallows {redirect}{current}" if hop else "robots.txt disallows",
                    )
                reply = await self.attempts(current, known=known, max_bytes=max_bytes, truncate=truncate)
            except AddressRefused as exc:
                if for_robots:
                    raise
                log.warning("address refused url=%s host=%s address=%s", current, exc.host, exc.address)
                raise Blocked(self.url, f"{redirect}private address {exc.address} refused") from exc
            location = reply.headers.get("Location")
            if reply.status not in REDIRECTS or not location:
                return reply
            try:
                current = str(target.join(location))
            except httpx.InvalidURL as exc:
                raise FetchError(self.url, f"invalid redirect Location {location!r}") from exc
            log.debug("redirect url=%s status=%d location=%s", reply.url, reply.status, current)
        raise FetchError(self.url, f"too many redirects ({self.settings.max_redirects})")

    async def robots_allow(self, url: str) -> bool:
        async def load(robots_url: str) -> RobotsFile:
            # Same client, gate and deadline as the page: robots.txt is part of this fetch, and
            # an error that escapes the cache (host paused) names the page, as every other does.
            call = _Call(
                self.fetcher,
                self.url,
                allow_private=self.allow_private,
                delay=self.delay,
                budget=self.budget,
            )
            reply = await call.follow(
                robots_url, known=Validators(), max_bytes=ROBOTS_MAX_BYTES, truncate=True, for_robots=True
            )
            return RobotsFile(reply.status, reply.body)

        return await self.fetcher.robots.allowed(url, self.settings.user_agent, load=load)

    async def attempts(self, url: str, *, known: Validators, max_bytes: int, truncate: bool) -> _Reply:
        """One hop with retries: 5xx (not 503 with Retry-After), 408 and network errors only."""
        tries = self.settings.retries + 1
        for attempt in range(1, tries + 1):
            try:
                reply = await self.exchange(url, known=known, max_bytes=max_bytes, truncate=truncate)
            except httpx.TransportError as exc:
                reason = _describe(exc, self.settings)
                if attempt == tries:
                    raise FetchError(
                        self.url, reason + (f" (after {tries} attempts)" if tries > 1 else "")
                    ) from exc
            else:
                reply = replace(reply, attempts=attempt)
                if reply.status in (429, 503) and (value := reply.headers.get("Retry-After")) is not None:
                    seconds = retry_after_seconds(value, self.fetcher._now())
                    if seconds is not None:
                        pause = self.fetcher._pause(_host_key(httpx.URL(url).host), seconds)
                        raise Blocked(self.url, f"HTTP {reply.status}: {pause.reason()}")
                if not _retryable(reply.status) or attempt == tries:
                    return reply
                reason = f"HTTP {reply.status}"
            wait = self.fetcher._backoff_wait(attempt)
            log.warning("fetch retry url=%s attempt=%d reason=%s wait=%.2f", url, attempt, reason, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def exchange(self, url: str, *, known: Validators, max_bytes: int, truncate: bool) -> _Reply:
        """One request: wait for the host's turn and a global slot, then send and read within the deadline."""
        headers = {}
        if known.etag:
            headers["If-None-Match"] = known.etag
        if known.last_modified:
            headers["If-Modified-Since"] = known.last_modified
        host = _host_key(httpx.URL(url).host)
        gate = self.fetcher._gates.setdefault(host, HostGate(self.fetcher._clock))
        async with gate.turn(self.delay), self.fetcher._slots, self.budget.running():
            started = time.monotonic()
            request = self.client.build_request("GET", url, headers=headers)
            response = await self.client.send(request, stream=True)
            try:
                body = b""
                if 200 <= response.status_code < 300:
                    body = await self.read_body(response, max_bytes=max_bytes, truncate=truncate)
            finally:
                await response.aclose()
        log.debug(
            "fetch url=%s status=%d bytes=%d secs=%.2f",
            url,
            response.status_code,
            len(body),
            time.monotonic() - started,
        )
        return _Reply(url, response.status_code, response.headers, body, response.charset_encoding)

    async def read_body(self, response: httpx.Response, *, max_bytes: int, truncate: bool) -> bytes:
        """Stream, decode and cap the body. With `truncate`, keep the first `max_bytes` instead of failing."""
        header = response.headers.get("Content-Encoding", "")
        codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
        if len(codings) > MAX_ENCODINGS:
            raise FetchError(self.url, f"too many Content-Encodings ({header})")
        decoders: list[Decoder] = []
        for coding in codings:
            decoder = decoder_for(coding)
            if decoder is None:
                raise FetchError(self.url, f"unsupported Content-Encoding {coding}")
            decoders.append(decoder)
        length = response.headers.get("Content-Length", "")
        # Checked again while streaming: Content-Length can lie or be absent.
        if not truncate and length.isdigit() and int(length) > max_bytes:
            raise TooLarge(self.url, f"Content-Length {length} over {max_bytes} bytes")
        chunks: AsyncIterator[bytes]
        if response.is_stream_consumed:
            # A transport handed over a response it had already read (httpx.MockTransport given
            # content=); httpx has decoded it, so only the cap is left to apply.
            decoders, chunks = [], _once(response.content)
        else:
            chunks = response.aiter_raw()
        steps = decoders or [_Identity()]
        body = bytearray()
        raw = 0
        try:
            async for chunk in chunks:
                raw += len(chunk)
                # A compressed body is never larger than what it decodes to, except when it is junk.
                if decoders and raw > max_bytes:
                    if truncate:
                        break
                    raise TooLarge(self.url, f"body over {max_bytes} bytes before decoding ({header})")
                for piece in decode_steps(steps, chunk):
                    room = max_bytes - len(body)
                    if len(piece) > room:
                        if truncate:
                            body += piece[:room]
                            return bytes(body)
                        raise TooLarge(self.url, f"body over {max_bytes} bytes after decoding")
                    body += piece
        except (zlib.error, brotli.error) as exc:
            raise FetchError(self.url, f"cannot decode {header} body: {exc}") from exc
        return bytes(body)
