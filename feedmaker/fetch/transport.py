"""httpx transport over httpcore pools that dial through the address guard, public APIs only.

Input: an `httpx.Request`; output: an `httpx.Response` whose body streams from the connection. httpx's
own `AsyncHTTPTransport` has no public way to pass a network backend, so this is the few lines of it
that feedmaker needs: HTTP/1.1 only, no proxies, no environment, httpcore errors mapped to the httpx
ones (the most specific match wins, as in httpx) so that callers only ever see httpx's tree; and a pool
per origin, so that connections are reused across many hosts.
"""

from __future__ import annotations

import contextlib
import resource
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpcore
import httpx

__all__ = ["GuardedTransport", "map_httpcore_errors", "origin_bound", "raise_descriptor_limit"]

PER_ORIGIN = 2  # connections per origin: one request in flight per host, plus its robots.txt
MAX_ORIGINS = 1024
DESCRIPTORS_WANTED = 16384

# httpcore's exception tree, each to its httpx namesake (as httpx's own transport maps them).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
)


@contextlib.contextmanager
def map_httpcore_errors() -> Iterator[None]:
    """Re-raise an httpcore error as the most specific httpx error, chained to it; anything else
    (such as the guard's `AddressRefused`) passes unchanged."""
    try:
        yield
    except Exception as exc:
        mapped: type[httpx.TransportError] | None = None
        for source, target in _ERRORS:
            if isinstance(exc, source) and (mapped is None or issubclass(target, mapped)):
                mapped = target
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes], done: Callable[[], None]) -> None:
        self.stream, self.done = stream, done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with map_httpcore_errors():
            async for part in self.stream:
                yield part

    async def aclose(self) -> None:
        done, self.done = self.done, _nothing  # the request leaves the pool's count once
        try:
            close = getattr(self.stream, "aclose", None)
            if close is not None:
                with map_httpcore_errors():
                    await close()
        finally:
            done()


def _nothing() -> None:
    pass


def _bodiless(reply: httpcore.Response) -> bool:
    """No body by the protocol (RFC 9110 6.4.1) or by its Content-Length."""
    return reply.status in (204, 304) or any(
        name.lower() == b"content-length" and value.strip() == b"0" for name, value in reply.headers
    )


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit on open files towards its hard limit (up to DESCRIPTORS_WANTED), as
    servers do: the common default of 1024 is a shell's, not a crawler's. Returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = DESCRIPTORS_WANTED if hard == resource.RLIM_INFINITY else min(hard, DESCRIPTORS_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):  # a container may refuse: keep what we have
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def origin_bound() -> int:
    """How many origins' pools to keep open. A crawl interleaves every site in flight, so a bound below the
    hosts in play makes least-recently-used eviction close the very connection needed next (measured: 10,001
    connects for 10,000 GETs over 200 hosts with a bound of 128). Up to MAX_ORIGINS, within a quarter of the
    open-file limit (each pool holds up to PER_ORIGIN sockets; the rest is for the store, page workers and
    feed readers)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_ORIGINS
    return max(16, min(MAX_ORIGINS, soft // (4 * PER_ORIGIN)))


Origin = tuple[bytes, bytes, int | None]  # scheme, host, port as the request spells them


@dataclass(slots=True)
class _HostPool:
    connections: httpcore.AsyncConnectionPool
    used: float  # monotonic time of the last request
    in_flight: int = 0


class GuardedTransport(httpx.AsyncBaseTransport):
    """A small httpcore pool per origin, every new connection dialled through `network`.

    One shared pool of N slots over H > N hosts closes a connection for nearly every request (measured:
    2,000 connects for 2,000 GETs over 20 hosts with 16 slots); politeness already allows one request in
    flight per host, so a pool per origin keeps each host's connection alive, and one scan stays short.
    At most `max_origins` pools are kept (default: `origin_bound()`): past that, and after
    `keepalive_expiry` without use, the least recently used pools with nothing in flight are closed.
    """

    def __init__(
        self,
        network: httpcore.AsyncNetworkBackend,
        *,
        ssl_context: ssl.SSLContext,
        max_origins: int | None = None,
        per_origin: int = PER_ORIGIN,
        keepalive_expiry: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.network, self.ssl_context = network, ssl_context
        self.max_origins = origin_bound() if max_origins is None else max_origins
        self.per_origin = per_origin
        self.keepalive_expiry, self.clock = keepalive_expiry, clock
        self.pools: OrderedDict[Origin, _HostPool] = OrderedDict()  # least recently used first

    def _origin_pool(self, origin: Origin) -> _HostPool:
        now = self.clock()
        pool = self.pools.pop(origin, None)
        if pool is None:
            pool = _HostPool(
                httpcore.AsyncConnectionPool(
                    ssl_context=self.ssl_context,
                    max_connections=self.per_origin,
                    max_keepalive_connections=self.per_origin,
                    keepalive_expiry=self.keepalive_expiry,
                    http1=True,
                    http2=False,
                    network_backend=self.network,
                ),
                now,
            )
        pool.used = now
        self.pools[origin] = pool
        return pool

    async def _close_unused(self) -> None:
        now = self.clock()
        oldest = next(iter(self.pools.values()), None)
        if oldest is None or (
            len(self.pools) <= self.max_origins and now - oldest.used < self.keepalive_expiry
        ):
            return  # the usual case, without copying a thousand entries per request
        for origin, pool in list(self.pools.items()):
            over = len(self.pools) > self.max_origins
            if not over and now - pool.used < self.keepalive_expiry:
                break  # ordered by last use: every later pool is fresher
            # Another request's sweep may have closed it while this one awaited an aclose below.
            if pool.in_flight == 0 and self.pools.get(origin) is pool:
                del self.pools[origin]
                await pool.connections.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):  # a sync body given to an async client
            raise TypeError("GuardedTransport needs an async request body")
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,  # carries httpx's per-request timeouts to httpcore
        )
        pool = self._origin_pool((url.raw_scheme, url.raw_host, url.port))
        pool.in_flight += 1  # before closing unused pools, so that this one is never among them

        def done() -> None:
            pool.in_flight -= 1

        try:
            await self._close_unused()
            with map_httpcore_errors():
                reply = await pool.connections.handle_async_request(core_request)
                if not isinstance(reply.stream, AsyncIterable):
                    raise TypeError("httpcore's async pool returned a sync body")
                if _bodiless(reply):
                    # Read to its end now, which needs no I/O: httpcore returns a connection to the
                    # pool only after that, and a 304 or an empty redirect is never read otherwise.
                    async for _ in reply.stream:
                        pass
                    await reply.aclose()
        except BaseException:
            done()
            raise
        if _bodiless(reply):
            done()
            return httpx.Response(
                status_code=reply.status,
                headers=reply.headers,
                stream=httpx.ByteStream(b""),
                extensions=reply.extensions,
            )
        return httpx.Response(
            status_code=reply.status,
            headers=reply.headers,
            stream=_Body(reply.stream, done),
            extensions=reply.extensions,
        )

    async def aclose(self) -> None:
        pools, self.pools = list(self.pools.values()), OrderedDict()
        for pool in pools:
            await pool.connections.aclose()
