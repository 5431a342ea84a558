"""The fetch stage: results, retries, Retry-After, redirects and politeness, through MockTransport and a
hostile 127.0.0.1 server. Decoding is in test_fetch_decode, the address guard in test_fetch_guard, failure
reasons in test_fetch_errors."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from feedmaker.config import FetchSettings
from feedmaker.errors import Blocked, FetchError
from feedmaker.fetch import (
    Fetcher,
    retry_after_seconds,
)
from feedmaker.models import NotModified, Page, Validators
from tests.fetch_support import (
    NOW,
    FakeClock,
    Script,
    Untouchable,
    fetch_error,
    make_settings,
    mock,
    raw,
)
from tests.hostile_server import ETAG, LAST_MODIFIED, LATIN1_PAGE, HostileServer, serve_routes


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def site() -> Iterator[HostileServer]:
    with serve_routes() as server:
        yield server


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


@pytest.mark.anyio
async def test_sends_validators_and_maps_304_to_not_modified_without_reading_body():
    script = Script(httpx.Response(304, stream=Untouchable()))
    known = Validators(etag='"v1"', last_modified=LAST_MODIFIED)
    async with mock(script) as fetcher:
        result = await fetcher.fetch("https://news.example/", known=known)
    assert result == NotModified("https://news.example/")
    assert script.requests[0].headers["If-None-Match"] == '"v1"'
    assert script.requests[0].headers["If-Modified-Since"] == LAST_MODIFIED


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


@pytest.mark.anyio
async def test_a_pause_is_logged_once_with_the_site_and_host(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="feedmaker.fetch")
    await fetch_error(
        mock(Script(raw(429, headers={"Retry-After": "120"}))), "https://news.example/a", site="news"
    )
    assert [r.getMessage() for r in caplog.records] == [
        "site=news host paused host=news.example until=2025-01-01T00:02:00Z"
    ]


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


# -- the hostile server: one test per failure -----------------------------------------------------


@pytest.mark.anyio
async def test_trickle_is_stopped_by_the_total_deadline(site: HostileServer):
    start = time.monotonic()
    error = await fetch_error(Fetcher(make_settings(timeout=1.0)), site.url("/trickle"))
    assert error.reason == "timed out after 1 s (total deadline)"
    assert time.monotonic() - start < 2.0


@pytest.mark.anyio
async def test_redirect_loop(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings()), site.url("/redirect-loop"))
    assert error.reason == "too many redirects (5)"
    assert site.paths() == ["/redirect-loop"] * 6


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
