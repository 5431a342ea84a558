"""httpx transport over an httpcore pool that dials through the address guard, public APIs only.

Input: an `httpx.Request`; output: an `httpx.Response` whose body streams from the connection. httpx's
own `AsyncHTTPTransport` has no public way to pass a network backend, so this is the few lines of it
that feedmaker needs: HTTP/1.1 only, no proxies, no environment, httpcore errors mapped to the httpx
ones (the most specific match wins, as in httpx) so that callers only ever see httpx's tree.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterator

import httpcore
import httpx

__all__ = ["GuardedTransport", "map_httpcore_errors"]

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
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self.stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with map_httpcore_errors():
            async for part in self.stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self.stream, "aclose", None)
        if close is not None:
            with map_httpcore_errors():
                await close()


class GuardedTransport(httpx.AsyncBaseTransport):
    """One httpcore connection pool whose every new connection goes through `network`."""

    def __init__(
        self,
        network: httpcore.AsyncNetworkBackend,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self.connections = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=network,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):  # a sync body given to an async client
            raise TypeError("GuardedTransport needs an async request body")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,  # carries httpx's per-request timeouts to httpcore
        )
        with map_httpcore_errors():
            reply = await self.connections.handle_async_request(core_request)
        if not isinstance(reply.stream, AsyncIterable):
            raise TypeError("httpcore's async pool returned a sync body")
        return httpx.Response(
            status_code=reply.status,
            headers=reply.headers,
            stream=_Body(reply.stream),
            extensions=reply.extensions,
        )

    async def aclose(self) -> None:
        await self.connections.aclose()
