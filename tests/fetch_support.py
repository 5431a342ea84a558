"""What the fetch tests share: fast local settings, scripted MockTransport answers, spy network backends."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

import httpcore
import httpx
import pytest

from feedmaker.config import FetchSettings
from feedmaker.errors import FetchError
from feedmaker.fetch import (
    Fetcher,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
KIB, MIB = 1024, 1024 * 1024


def make_settings(**overrides: object) -> FetchSettings:
    """Fast, local defaults: no delay, no retries, robots off, the loopback range allowed."""
    return FetchSettings.model_validate(
        {
            "delay": 0.0,
            "retries": 0,
            "timeout": 5.0,
            "obey_robots": False,
            "allow_private_networks": ("127.0.0.0/8",),
            **overrides,
        }
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SpyNetwork(httpcore.AsyncNetworkBackend):
    """The raw connector under the address guard: records every dial and only ever dials loopback."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"test tried to dial {host}")
        return await self._real.connect_tcp(host, port, timeout=timeout, local_address=local_address)


class Refusing(httpcore.AsyncNetworkBackend):
    """A connector that records the dial and fails it, so nothing at all leaves the process."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append((host, port))
        raise httpcore.ConnectError("spy: not dialling")


def raw(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    """A response whose body is streamed undecoded, as from a real socket."""
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


class Script:
    """A MockTransport handler answering from a list (the last answer repeats) and recording requests."""

    def __init__(
        self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]
    ) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):  # a fresh copy: a response is read only once
            return httpx.Response(answer.status_code, headers=answer.headers, stream=answer.stream)
        return answer(request)

    @property
    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]


def mock(handler: Script, *, clock: Callable[[], float] = time.monotonic, **overrides: object) -> Fetcher:
    return Fetcher(
        make_settings(**overrides),
        transport=httpx.MockTransport(handler),
        clock=clock,
        now=lambda: NOW,
        backoff=0.001,
    )


async def fetch_error(fetcher: Fetcher, url: str, **kwargs: object) -> FetchError:
    async with fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(url, **kwargs)  # type: ignore[arg-type]
    return info.value


class Untouchable(httpx.AsyncByteStream):
    """A body that fails the test if anyone reads it."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise AssertionError("the body of a 304 must not be read")
        yield b""  # pragma: no cover
