"""The fetch stage: MockTransport for the logic, a hostile 127.0.0.1 server for real I/O.

No test leaves loopback: the spy network backend refuses to dial anything else, and every
private-address test proves the guard refused before any socket was created.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import itertools
import logging
import os
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime

import brotli
import httpcore
import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from feedmaker.config import FetchSettings
from feedmaker.errors import Blocked, FetchError, TooLarge
from feedmaker.fetch import (
    STEP,
    AddressPolicy,
    AddressRefused,
    BrotliDecoder,
    Decoder,
    Fetcher,
    GuardedBackend,
    IPAddress,
    ZlibDecoder,
    decode_steps,
    is_public,
    numeric_host,
    retry_after_seconds,
)
from feedmaker.models import NotModified, Page, Validators
from tests.hostile_server import ETAG, LAST_MODIFIED, LATIN1_PAGE, HostileServer, bomb, serve_routes

NOW = datetime(2025, 1, 1, tzinfo=UTC)
KIB, MIB = 1024, 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def site() -> Iterator[HostileServer]:
    with serve_routes() as server:
        yield server


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


# -- results, headers, conditional GET ------------------------------------------------------------


@pytest.mark.anyio
async def test_page_has_final_url_charset_validators_and_tz_aware_time():
    script = Script(
        raw(
            200,
            b"<p>hi</p>",
            {"Content-Type": "text/html; charset=ISO-8859-1", "ETag": '"a"', "Last-Modified": LAST_MODIFIED},
        )
    )
    async with mock(script) as fetcher:
        page = await fetcher.fetch("https://news.example/")
    assert page == Page(
        url="https://news.example/",
        body=b"<p>hi</p>",
        encoding="iso-8859-1",  # httpx lower-cases the label
        validators=Validators(etag='"a"', last_modified=LAST_MODIFIED),
        fetched_at=NOW,
        status=200,
    )
    sent = script.requests[0].headers
    assert sent["User-Agent"] == FetchSettings().user_agent
    assert sent["Accept-Encoding"] == "gzip, deflate, br"
    assert "If-None-Match" not in sent
    assert "If-Modified-Since" not in sent


@pytest.mark.anyio
async def test_no_charset_in_content_type_means_encoding_none():
    async with mock(Script(raw(200, b"x", {"Content-Type": "text/html"}))) as fetcher:
        page = await fetcher.fetch("https://news.example/")
    assert isinstance(page, Page)
    assert page.encoding is None


class Untouchable(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise AssertionError("the body of a 304 must not be read")
        yield b""  # pragma: no cover


@pytest.mark.anyio
async def test_sends_validators_and_maps_304_to_not_modified_without_reading_body():
    script = Script(httpx.Response(304, stream=Untouchable()))
    known = Validators(etag='"v1"', last_modified=LAST_MODIFIED)
    async with mock(script) as fetcher:
        result = await fetcher.fetch("https://news.example/", known=known)
    assert result == NotModified("https://news.example/")
    assert script.requests[0].headers["If-None-Match"] == '"v1"'
    assert script.requests[0].headers["If-Modified-Since"] == LAST_MODIFIED


# -- decoding and caps ----------------------------------------------------------------------------

TEXT = b"<p>" + b"The quick brown fox. " * 5000 + b"</p>"


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
        ("deflate", raw_deflate(TEXT)),
        ("br", brotli.compress(TEXT)),
        ("gzip, br", brotli.compress(gzip.compress(TEXT))),
        ("identity", TEXT),
        ("GZIP", gzip.compress(TEXT[:10]) + gzip.compress(TEXT[10:])),
    ],
    ids=[
        "gzip",
        "x-gzip",
        "deflate-zlib",
        "deflate-raw",
        "br",
        "gzip-then-br",
        "identity",
        "multi-member-gzip",
    ],
)
async def test_decodes_content_codings_itself(coding: str, encoded: bytes):
    async with mock(Script(raw(200, encoded, {"Content-Encoding": coding}))) as fetcher:
        page = await fetcher.fetch("https://news.example/")
    assert isinstance(page, Page)
    assert page.body == TEXT


@pytest.mark.anyio
async def test_unsupported_content_encoding_is_an_error():
    error = await fetch_error(
        mock(Script(raw(200, b"x", {"Content-Encoding": "zstd"}))), "https://news.example/"
    )
    assert error.reason == "unsupported Content-Encoding zstd"


@pytest.mark.anyio
async def test_corrupt_gzip_is_an_error_naming_the_coding():
    error = await fetch_error(
        mock(Script(raw(200, b"not gzip at all", {"Content-Encoding": "gzip"}))), "https://n.example/"
    )
    assert (
        error.reason == "cannot decode gzip body: Error -3 while decompressing data: incorrect header check"
    )


@pytest.mark.anyio
async def test_content_length_over_the_cap_is_refused_before_reading():
    response = httpx.Response(200, headers={"Content-Length": str(2 * MIB)}, stream=Untouchable())
    error = await fetch_error(mock(Script(response), max_bytes=MIB), "https://news.example/")
    assert isinstance(error, TooLarge)
    assert error.reason == f"Content-Length {2 * MIB} over {MIB} bytes"


@pytest.mark.anyio
async def test_compressed_body_over_the_cap_is_refused_before_decoding():
    """Incompressible junk labelled gzip: the undecoded body has its own cap."""
    junk = gzip.compress(os.urandom(4 * KIB))
    error = await fetch_error(
        mock(Script(raw(200, junk, {"Content-Encoding": "gzip"})), max_bytes=KIB), "https://n.example/"
    )
    assert isinstance(error, TooLarge)
    assert error.reason == "body over 1024 bytes before decoding (gzip)"


@pytest.mark.anyio
async def test_decoded_cap_is_exact():
    """max_bytes of decoded body is fine; one byte more is TooLarge."""
    body = b"a" * (64 * KIB)
    async with mock(
        Script(raw(200, gzip.compress(body), {"Content-Encoding": "gzip"})), max_bytes=64 * KIB
    ) as fetcher:
        page = await fetcher.fetch("https://n.example/")
    assert isinstance(page, Page)
    assert page.body == body
    error = await fetch_error(
        mock(Script(raw(200, gzip.compress(body + b"a"), {"Content-Encoding": "gzip"})), max_bytes=64 * KIB),
        "https://n.example/",
    )
    assert error.reason == f"body over {64 * KIB} bytes after decoding"


@given(data=st.binary(max_size=200_000), cuts=st.lists(st.integers(min_value=1, max_value=5000), max_size=20))
@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_bounded_decoders_round_trip_any_chunking(data: bytes, cuts: list[int]):
    """Whatever the chunk boundaries, each decoder returns the original bytes in steps of ~64 KiB."""
    cases: list[tuple[Callable[[], Decoder], bytes]] = [
        (lambda: ZlibDecoder(gzip=True), gzip.compress(data)),
        (lambda: ZlibDecoder(gzip=False), zlib.compress(data)),
        (lambda: ZlibDecoder(gzip=False), raw_deflate(data)),
        (BrotliDecoder, brotli.compress(data)),
    ]
    for make, encoded in cases:
        decoder, start = make(), 0
        pieces: list[bytes] = []
        for cut in [*cuts, len(encoded)]:
            pieces.extend(decode_steps([decoder], encoded[start : start + cut]))
            start += cut
        pieces.extend(decode_steps([decoder], encoded[start:]))
        assert b"".join(pieces) == data
        assert all(len(p) <= 2 * STEP for p in pieces)


def test_a_brotli_bomb_decodes_in_bounded_steps():
    """A few hundred bytes that decode to 16 MiB come out in pieces of ~64 KiB, so the cap can stop them."""
    decoder = BrotliDecoder()
    sizes = [len(p) for p in decoder.decode(brotli.compress(bytes(16 * MIB), quality=5))]
    assert sum(sizes) == 16 * MIB
    assert max(sizes) <= 2 * STEP


# -- retries --------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_5xx_and_408_are_retried(status: int):
    script = Script(raw(status), raw(status), raw(200, b"ok"))
    async with mock(script, retries=2) as fetcher:
        page = await fetcher.fetch("https://news.example/")
    assert isinstance(page, Page)
    assert page.body == b"ok"
    assert len(script.requests) == 3


@pytest.mark.anyio
async def test_gives_up_after_the_retries_naming_the_attempts(caplog: pytest.LogCaptureFixture):
    script = Script(raw(500))
    caplog.set_level(logging.WARNING, logger="feedmaker.fetch")
    error = await fetch_error(mock(script, retries=2), "https://news.example/", site="news")
    assert (type(error), error.url, error.reason) == (
        FetchError,
        "https://news.example/",
        "HTTP 500 (after 3 attempts)",
    )
    assert len(script.requests) == 3
    assert [r.getMessage().split(" wait=")[0] for r in caplog.records] == [
        "site=news fetch retry url=https://news.example/ attempt=1 reason=HTTP 500",
        "site=news fetch retry url=https://news.example/ attempt=2 reason=HTTP 500",
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, FetchError), (404, FetchError), (410, FetchError), (401, Blocked), (403, Blocked), (429, Blocked)],
)
async def test_4xx_is_never_retried(status: int, error_type: type[FetchError]):
    script = Script(raw(status))
    error = await fetch_error(mock(script, retries=2), "https://news.example/")
    assert type(error) is error_type
    assert error.reason == f"HTTP {status}"
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_network_errors_are_retried():
    script = Script(httpx.ConnectError("refused"), httpx.ReadError("reset"), raw(200, b"ok"))
    async with mock(script, retries=2) as fetcher:
        assert isinstance(await fetcher.fetch("https://news.example/"), Page)
    assert len(script.requests) == 3


@pytest.mark.anyio
async def test_network_error_after_retries_names_it():
    script = Script(httpx.ConnectError("refused"))
    error = await fetch_error(mock(script, retries=1), "https://news.example/")
    assert error.reason == "connection failed: refused (after 2 attempts)"


@pytest.mark.anyio
async def test_backoff_is_exponential_with_bounded_jitter():
    script = Script(raw(500), raw(500), raw(200))
    fetcher = Fetcher(make_settings(retries=2), transport=httpx.MockTransport(script), backoff=0.05)
    async with fetcher:
        await fetcher.fetch("https://news.example/")
    first, second = (b - a for a, b in zip(script.times, script.times[1:], strict=False))
    assert 0.05 <= first < 0.1 + 0.05
    assert 0.1 <= second < 0.2 + 0.05


# -- Retry-After ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_429_retry_after_pauses_the_host_and_later_fetches_fail_fast():
    clock = FakeClock()
    script = Script(raw(429, headers={"Retry-After": "120"}), raw(200, b"ok"))
    async with mock(script, clock=clock, retries=2) as fetcher:
        with pytest.raises(Blocked) as first:
            await fetcher.fetch("https://news.example/a")
        with pytest.raises(Blocked) as second:
            await fetcher.fetch("https://news.example/b")
        assert isinstance(await fetcher.fetch("https://other.example/"), Page)
        clock.now += 121
        assert isinstance(await fetcher.fetch("https://news.example/b"), Page)
    assert first.value.reason == "HTTP 429: host paused until 2025-01-01T00:02:00Z (Retry-After)"
    assert (second.value.url, second.value.reason) == (
        "https://news.example/b",
        "host paused until 2025-01-01T00:02:00Z (Retry-After)",
    )
    assert script.urls == ["https://news.example/a", "https://other.example/", "https://news.example/b"]


@pytest.mark.anyio
async def test_503_with_retry_after_date_is_not_retried_and_pauses_until_then():
    script = Script(raw(503, headers={"Retry-After": "Wed, 01 Jan 2025 01:30:00 GMT"}))
    error = await fetch_error(mock(script, retries=2), "https://news.example/")
    assert isinstance(error, Blocked)
    assert error.reason == "HTTP 503: host paused until 2025-01-01T01:30:00Z (Retry-After)"
    assert len(script.requests) == 1


def test_retry_after_parsing_is_capped_at_a_day():
    assert retry_after_seconds("120", NOW) == 120
    assert retry_after_seconds("999999999", NOW) == 24 * 3600
    assert retry_after_seconds("Wed, 01 Jan 2025 00:00:30 GMT", NOW) == 30
    assert retry_after_seconds("Tue, 31 Dec 2024 00:00:00 GMT", NOW) == 0
    assert retry_after_seconds("soon", NOW) is None


# -- redirects ------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_followed_to_the_final_url(status: int):
    script = Script(
        raw(status, headers={"Location": "https://www.news.example/start"}),
        raw(302, headers={"Location": "/final?x=1"}),
        raw(200, b"here"),
    )
    async with mock(script) as fetcher:
        page = await fetcher.fetch("https://news.example/")
    assert isinstance(page, Page)
    assert page.url == "https://www.news.example/final?x=1"
    assert script.urls == [
        "https://news.example/",
        "https://www.news.example/start",
        "https://www.news.example/final?x=1",
    ]


@pytest.mark.anyio
async def test_validators_are_sent_on_every_hop_and_304_names_the_final_url():
    script = Script(raw(301, headers={"Location": "https://news.example/new"}), raw(304))
    async with mock(script) as fetcher:
        result = await fetcher.fetch("https://news.example/old", known=Validators(etag='"e"'))
    assert result == NotModified("https://news.example/new")
    assert [r.headers["If-None-Match"] for r in script.requests] == ['"e"', '"e"']


@pytest.mark.anyio
async def test_too_many_redirects():
    script = Script(raw(302, headers={"Location": "/again"}))
    error = await fetch_error(mock(script), "https://news.example/")
    assert error.reason == "too many redirects (5)"
    assert len(script.requests) == 6


@pytest.mark.anyio
async def test_redirect_to_non_http_scheme_is_refused():
    script = Script(raw(302, headers={"Location": "ftp://files.example/x"}))
    error = await fetch_error(mock(script), "https://news.example/")
    assert error.reason == "redirect to non-http(s) URL ftp://files.example/x"
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_non_http_url_is_refused():
    error = await fetch_error(mock(Script(raw(200))), "file:///etc/passwd")
    assert error.reason == "not an http(s) URL"


@pytest.mark.anyio
async def test_redirect_to_a_literal_private_address_is_refused_before_any_request():
    script = Script(raw(302, headers={"Location": "http://10.0.0.1/admin"}))
    error = await fetch_error(mock(script, allow_private_networks=()), "https://news.example/")
    assert isinstance(error, Blocked)
    assert (error.url, error.reason) == (
        "https://news.example/",
        "redirect to private address 10.0.0.1 refused",
    )
    assert script.urls == ["https://news.example/"]


@pytest.mark.anyio
async def test_3xx_without_location_is_an_error():
    error = await fetch_error(mock(Script(raw(302))), "https://news.example/")
    assert error.reason == "HTTP 302"


@pytest.mark.anyio
async def test_error_after_a_redirect_names_where_it_happened():
    script = Script(raw(301, headers={"Location": "https://b.example/x"}), raw(404))
    error = await fetch_error(mock(script), "https://a.example/")
    assert (error.url, error.reason) == ("https://a.example/", "HTTP 404 (at https://b.example/x)")


# -- politeness (client side) ---------------------------------------------------------------------


class Tracker:
    """An async handler that measures requests in flight, overall and per host."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds
        self.in_flight: dict[str, int] = {}
        self.max_total = 0
        self.max_per_host = 0
        self.spans: dict[str, list[tuple[float, float]]] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        self.max_total = max(self.max_total, sum(self.in_flight.values()))
        self.max_per_host = max(self.max_per_host, self.in_flight[host])
        start = time.monotonic()
        await asyncio.sleep(self.seconds)
        self.in_flight[host] -= 1
        self.spans.setdefault(host, []).append((start, time.monotonic()))
        return raw(200, b"ok")

    def min_gap(self, host: str) -> float:
        spans = sorted(self.spans[host])
        return min(b[0] - a[1] for a, b in itertools.pairwise(spans))


@pytest.mark.anyio
async def test_one_request_in_flight_per_host_with_the_delay_between_them():
    tracker = Tracker()
    fetcher = Fetcher(make_settings(delay=0.1), transport=httpx.MockTransport(tracker))
    async with fetcher:
        await asyncio.gather(*(fetcher.fetch(f"https://a.example/{i}") for i in range(4)))
    assert tracker.max_per_host == 1
    assert tracker.min_gap("a.example") >= 0.1


@pytest.mark.anyio
async def test_per_call_delay_overrides_the_setting():
    tracker = Tracker()
    fetcher = Fetcher(make_settings(delay=5.0), transport=httpx.MockTransport(tracker))
    async with fetcher:
        await asyncio.gather(*(fetcher.fetch(f"https://a.example/{i}", delay=0.05) for i in range(3)))
    assert 0.05 <= tracker.min_gap("a.example") < 1


@pytest.mark.anyio
async def test_global_concurrency_cap_across_hosts():
    tracker = Tracker(seconds=0.05)
    fetcher = Fetcher(make_settings(concurrency=2), transport=httpx.MockTransport(tracker))
    async with fetcher:
        await asyncio.gather(*(fetcher.fetch(f"https://h{i}.example/") for i in range(6)))
    assert tracker.max_total == 2


@pytest.mark.anyio
async def test_waiting_for_a_host_is_not_charged_to_the_deadline():
    """Queued behind a 0.3 s politeness gap, a fetch with a 0.2 s deadline still succeeds."""
    tracker = Tracker(seconds=0.01)
    fetcher = Fetcher(make_settings(delay=0.3, timeout=0.2), transport=httpx.MockTransport(tracker))
    async with fetcher:
        results = await asyncio.gather(*(fetcher.fetch(f"https://a.example/{i}") for i in range(2)))
    assert all(isinstance(r, Page) for r in results)


@pytest.mark.anyio
async def test_each_request_is_logged_at_debug(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="feedmaker.fetch")
    async with mock(Script(raw(200, b"12345"))) as fetcher:
        await fetcher.fetch("https://news.example/", site="news")
    [record] = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert record.name == "feedmaker.fetch"
    message = record.getMessage()
    assert message.startswith("site=news fetch method=GET url=https://news.example/ status=200 bytes=5 ms=")
    assert message.split(" ms=")[1].isdigit()


# -- the address guard ----------------------------------------------------------------------------

SPELLINGS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),  # decimal
    ("0x7f000001", "127.0.0.1"),  # hex
    ("0x7f.1", "127.0.0.1"),  # hex, short form
    ("017700000001", "127.0.0.1"),  # octal
    ("0x7f.0x0.0x0.0x1", "127.0.0.1"),  # hex per part
    ("127.1", "127.0.0.1"),  # short form
    ("127.0.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),  # trailing dot
    ("[::1]", "::1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),  # IPv4-mapped
    ("[::ffff:7f00:1]", "::ffff:7f00:1"),
    ("[::ffff:a9fe:a9fe]", "::ffff:a9fe:a9fe"),  # mapped metadata address
    ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1"),  # NAT64 of loopback
    ("[2002:7f00:1::]", "2002:7f00:1::"),  # 6to4 of loopback
    ("169.254.169.254", "169.254.169.254"),  # cloud metadata, link-local
    ("[fe80::1]", "fe80::1"),
    ("100.64.0.1", "100.64.0.1"),  # CGNAT
    ("0.0.0.0", "0.0.0.0"),
    ("0", "0.0.0.0"),
    ("[::]", "::"),
    ("10.0.0.1", "10.0.0.1"),
    ("10.1", "10.0.0.1"),
    ("172.16.0.1", "172.16.0.1"),
    ("192.168.1.1", "192.168.1.1"),
    ("[fc00::1]", "fc00::1"),  # unique local
    ("224.0.0.1", "224.0.0.1"),  # multicast
    ("[ff02::1]", "ff02::1"),
    ("240.0.0.1", "240.0.0.1"),  # reserved
    ("255.255.255.255", "255.255.255.255"),
    ("198.18.0.1", "198.18.0.1"),  # benchmarking
]


@pytest.mark.anyio
@pytest.mark.parametrize(("host", "address"), SPELLINGS)
async def test_private_spellings_are_refused_with_zero_connect_attempts(host: str, address: str):
    """Through the real guarded transport: refused before the network backend is ever asked."""
    spy = Refusing()
    fetcher = Fetcher(make_settings(allow_private_networks=(), obey_robots=True), network=spy)
    error = await fetch_error(fetcher, f"http://{host}:8080/latest/meta-data/")
    assert isinstance(error, Blocked)
    assert error.reason == f"private address {address} refused"
    assert spy.calls == []


@pytest.mark.anyio
@pytest.mark.parametrize(("host", "address"), SPELLINGS)
async def test_the_backend_itself_refuses_every_spelling_without_resolving_or_dialling(
    host: str, address: str
):
    """Defence in depth: even a caller skipping the fetcher's checks cannot get a socket."""
    spy = Refusing()

    async def resolver(name: str, port: int) -> list[IPAddress]:
        raise AssertionError(f"numeric host {name} must not be resolved")

    backend = GuardedBackend(AddressPolicy(), inner=spy, resolve=resolver)
    with pytest.raises(AddressRefused) as info:
        await backend.connect_tcp(httpx.URL(f"http://{host}/").host, 80)
    assert str(info.value.address) == address
    assert spy.calls == []


@pytest.mark.anyio
async def test_a_name_resolving_to_any_private_address_is_refused_at_connect_time():
    """DNS rebinding: one public and one private address is still a refusal; nothing is dialled."""
    spy = Refusing()

    async def resolver(name: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.7")]

    backend = GuardedBackend(AddressPolicy(), inner=spy, resolve=resolver)
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.7"):
        await backend.connect_tcp("rebind.example", 443)
    assert spy.calls == []


@pytest.mark.anyio
async def test_allow_listed_names_and_networks_dial_the_checked_address():
    spy = Refusing()

    async def resolver(name: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("10.1.2.3")]

    policy = AddressPolicy.from_entries(["intranet.example", "192.168.0.0/16"])
    backend = GuardedBackend(policy, inner=spy, resolve=resolver)
    for host in ("Intranet.Example.", "192.168.7.7"):
        with pytest.raises(httpcore.ConnectError):
            await backend.connect_tcp(host, 80)
    with pytest.raises(AddressRefused):
        await backend.connect_tcp("other.example", 80)
    assert spy.calls == [("10.1.2.3", 80), ("192.168.7.7", 80)]


def test_public_addresses_pass_and_embedded_private_ones_do_not():
    assert is_public(ipaddress.ip_address("93.184.215.14"))
    assert is_public(ipaddress.ip_address("2606:4700::1111"))
    assert not is_public(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert AddressPolicy.from_entries(["127.0.0.0/8"]).allows("x", ipaddress.ip_address("::ffff:127.0.0.1"))
    assert numeric_host("news.example") is None
    assert numeric_host("1e100.net") is None


@pytest.mark.anyio
async def test_local_server_is_refused_by_default(site: HostileServer):
    spy = SpyNetwork()
    fetcher = Fetcher(make_settings(allow_private_networks=()), network=spy)
    error = await fetch_error(fetcher, site.url("/etag"))
    assert error.reason == "private address 127.0.0.1 refused"
    assert spy.calls == []
    assert site.hits == []


@pytest.mark.anyio
async def test_localhost_by_name_is_refused_after_our_own_resolution(site: HostileServer):
    """The name is resolved by the guard and every address checked: 'localhost' never connects."""
    spy = SpyNetwork()
    fetcher = Fetcher(make_settings(allow_private_networks=(), obey_robots=True), network=spy)
    error = await fetch_error(fetcher, site.url("/etag", host="localhost"))
    assert isinstance(error, Blocked)
    assert error.reason in ("private address 127.0.0.1 refused", "private address ::1 refused")
    assert spy.calls == []
    assert site.hits == []


@pytest.mark.anyio
async def test_allow_private_per_call_reaches_the_local_server(site: HostileServer):
    fetcher = Fetcher(make_settings(allow_private_networks=()))
    async with fetcher:
        page = await fetcher.fetch(site.url("/etag"), allow_private=True)
        with pytest.raises(Blocked):
            await fetcher.fetch(site.url("/etag"))  # the guarded client does not reuse that connection
    assert isinstance(page, Page)
    assert site.paths() == ["/etag"]


# -- the hostile server: one test per failure -----------------------------------------------------


@pytest.mark.anyio
async def test_trickle_is_stopped_by_the_total_deadline(site: HostileServer):
    start = time.monotonic()
    error = await fetch_error(Fetcher(make_settings(timeout=1.0)), site.url("/trickle"))
    assert error.reason == "timed out after 1 s (total deadline)"
    assert time.monotonic() - start < 2.0


@pytest.mark.anyio
async def test_endless_body_is_stopped_by_the_cap(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(max_bytes=256 * KIB)), site.url("/endless"))
    assert isinstance(error, TooLarge)
    assert error.reason == "body over 262144 bytes after decoding"


@pytest.mark.anyio
async def test_huge_body_is_stopped_at_the_default_10_mib(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(max_bytes=10 * MIB)), site.url("/huge"))
    assert isinstance(error, TooLarge)
    assert error.reason == "body over 10485760 bytes after decoding"


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/gzip-bomb", "/brotli-bomb"])
async def test_compression_bombs_are_stopped_at_the_cap_with_bounded_memory(site: HostileServer, path: str):
    """16 MiB of zeros in a few KiB: stopped at 1 MiB decoded, peak Python memory a few MiB."""
    bomb("gzip" if "gzip" in path else "br", site.bomb_size)  # built before measuring: the server's memory
    tracemalloc.start()
    try:
        error = await fetch_error(Fetcher(make_settings(max_bytes=MIB)), site.url(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, TooLarge)
    assert error.reason == "body over 1048576 bytes after decoding"
    assert peak < 4 * MIB


@pytest.mark.anyio
async def test_redirect_loop(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings()), site.url("/redirect-loop"))
    assert error.reason == "too many redirects (5)"
    assert site.paths() == ["/redirect-loop"] * 6


@pytest.mark.anyio
async def test_redirect_to_metadata_address_is_refused_without_connecting(site: HostileServer):
    spy = SpyNetwork()
    fetcher = Fetcher(make_settings(obey_robots=True), network=spy)
    error = await fetch_error(fetcher, site.url("/redirect-private"))
    assert isinstance(error, Blocked)
    assert error.reason == "redirect to private address 169.254.169.254 refused"
    assert {host for host, _ in spy.calls} == {"127.0.0.1"}
    assert site.paths() == ["/robots.txt", "/redirect-private"]


@pytest.mark.anyio
async def test_redirect_to_decimal_loopback_is_refused_even_when_the_first_host_is_allowed(
    site: HostileServer,
):
    """'localhost' is allow-listed by name; its redirect to http://2130706433/ is not."""
    spy = SpyNetwork()
    fetcher = Fetcher(make_settings(allow_private_networks=("localhost",)), network=spy)
    target = f"http://2130706433:{site.port}/etag"
    error = await fetch_error(fetcher, site.url(f"/redirect-private?to={target}", host="localhost"))
    assert error.reason == "redirect to private address 127.0.0.1 refused"
    assert len(site.hits) == 1
    assert spy.calls  # the first hop was dialled, by address


@pytest.mark.anyio
async def test_retry_after_pauses_the_host(site: HostileServer):
    fetcher = Fetcher(make_settings(obey_robots=True, retries=2), now=lambda: NOW)
    async with fetcher:
        with pytest.raises(Blocked) as first:
            await fetcher.fetch(site.url("/retry-after"))
        with pytest.raises(Blocked) as second:
            await fetcher.fetch(site.url("/etag"))
    assert first.value.reason == "HTTP 429: host paused until 2025-01-01T00:02:00Z (Retry-After)"
    assert second.value.reason == "host paused until 2025-01-01T00:02:00Z (Retry-After)"
    assert site.paths() == ["/robots.txt", "/retry-after"]


@pytest.mark.anyio
async def test_flaky_server_is_retried(site: HostileServer, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="feedmaker.fetch")
    fetcher = Fetcher(make_settings(retries=2), backoff=0.01)
    async with fetcher:
        page = await fetcher.fetch(site.url("/flaky"))
    assert isinstance(page, Page)
    assert page.body == b"<p>recovered</p>"
    assert site.paths() == ["/flaky", "/flaky"]
    assert "reason=HTTP 500" in caplog.text


@pytest.mark.anyio
async def test_etag_round_trip(site: HostileServer):
    async with Fetcher(make_settings()) as fetcher:
        page = await fetcher.fetch(site.url("/etag"))
        assert isinstance(page, Page)
        assert page.validators == Validators(etag=ETAG, last_modified=LAST_MODIFIED)
        again = await fetcher.fetch(site.url("/etag"), known=page.validators)
    assert again == NotModified(site.url("/etag"))
    assert site.hits[1].headers["If-None-Match"] == ETAG


@pytest.mark.anyio
async def test_robots_disallowed_path_is_never_requested(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(obey_robots=True)), site.url("/private/secret"))
    assert isinstance(error, Blocked)
    assert error.reason == "robots.txt disallows"
    assert site.paths() == ["/robots.txt"]


@pytest.mark.anyio
async def test_wrong_charset_is_passed_on_undecoded(site: HostileServer):
    async with Fetcher(make_settings()) as fetcher:
        page = await fetcher.fetch(site.url("/wrong-charset"))
    assert isinstance(page, Page)
    assert (page.encoding, page.body) == ("utf-8", LATIN1_PAGE)


@pytest.mark.anyio
async def test_malformed_response(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(retries=1), backoff=0.01), site.url("/malformed"))
    assert (
        error.reason
        == "malformed HTTP response: illegal status line: bytearray(b'HTTP/1.1 2OO OK') (after 2 attempts)"
    )
    assert site.paths() == ["/malformed", "/malformed"]


@pytest.mark.anyio
async def test_slow_server_hits_the_read_timeout(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(read_timeout=0.3)), site.url("/slow?secs=2"))
    assert error.reason == "read timed out after 0.3 s"


@pytest.mark.anyio
async def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = await fetch_error(Fetcher(make_settings()), f"http://127.0.0.1:{port}/")
    assert error.reason == "connection refused"


@pytest.mark.anyio
async def test_politeness_on_one_host(site: HostileServer):
    """Many URLs at once on one host: >= delay between requests at the server, robots.txt once,
    disallowed paths never requested."""
    urls = [site.url(f"/articles/{i}") for i in range(5)] + [site.url(f"/private/{i}") for i in range(3)]
    async with Fetcher(make_settings(delay=0.2, obey_robots=True)) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(u) for u in urls), return_exceptions=True)
    assert [type(r) for r in results] == [Page] * 5 + [Blocked] * 3
    paths = site.paths()
    assert paths.count("/robots.txt") == 1
    assert not [p for p in paths if p.startswith("/private/")]
    assert len(paths) == 6
    assert site.min_gap() >= 0.2


@pytest.mark.parametrize("value", ["\u00b2", "\u2460", "12\u00b3"])
def test_retry_after_with_non_ascii_digits_is_ignored_not_a_crash(value):
    assert retry_after_seconds(value, datetime(2025, 1, 1, tzinfo=UTC)) is None
