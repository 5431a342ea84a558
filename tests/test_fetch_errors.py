"""Errors tell the truth: a failing fetch names its cause, and is not retried when retrying cannot help.

Against local servers only: DNS failures come from an injected resolver (no query leaves the machine),
refused ports and TLS failures from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpcore
import httpx
import pytest

from feedmaker.config import load_all
from feedmaker.crawl import crawl_site
from feedmaker.errors import Blocked, FetchError
from feedmaker.fetch import AddressRefused, Fetcher, Hop, HopContext, IPAddress
from feedmaker.fetch.reasons import describe
from feedmaker.fetch.steps import HOP_STEPS
from feedmaker.fetch.transport import map_httpcore_errors
from feedmaker.models import Page
from feedmaker.store import SqliteStore
from tests.fetch_support import Script, fetch_error, make_settings, mock, raw
from tests.hostile_server import HostileHandler, HostileServer, Route, make_certificate, serve_routes
from tests.sites import write_config

BAD_LOCATION = "http:\\\\127.0.0.1/"  # what the wire carries: http:\\127.0.0.1/
needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="no openssl command to make a certificate"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def site() -> Iterator[HostileServer]:
    with serve_routes({"/bad-location": bad_location}) as server:
        yield server


def bad_location(h: HostileHandler) -> None:
    h.reply(302, headers={"Location": BAD_LOCATION})


class Resolver:
    """A DNS stand-in that says 'no such name' (or 'try again') and records every question, so no lookup
    ever reaches a real resolver."""

    def __init__(self, error: int = socket.EAI_NONAME) -> None:
        self.error = error
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        raise socket.gaierror(self.error, "Name or service not known")


# -- DNS ------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_unresolvable_name_says_cannot_resolve_and_is_not_retried():
    resolver = Resolver()
    fetcher = Fetcher(make_settings(retries=2, allow_private_networks=()), resolve=resolver, backoff=0.001)
    error = await fetch_error(fetcher, "http://nonexistent.invalid/news")
    assert (type(error), error.url, error.reason) == (
        FetchError,
        "http://nonexistent.invalid/news",
        "cannot resolve nonexistent.invalid",
    )
    assert resolver.asked == ["nonexistent.invalid"]


@pytest.mark.anyio
async def test_a_resolver_that_says_try_again_is_retried_and_still_names_the_cause():
    resolver = Resolver(error=socket.EAI_AGAIN)
    fetcher = Fetcher(make_settings(retries=1, allow_private_networks=()), resolve=resolver, backoff=0.001)
    error = await fetch_error(fetcher, "http://nonexistent.invalid/")
    assert error.reason == "cannot resolve nonexistent.invalid (after 2 attempts)"
    assert resolver.asked == ["nonexistent.invalid"] * 2


@pytest.mark.anyio
async def test_a_resolver_that_never_answers_is_bounded_by_the_connect_timeout():
    asked: list[str] = []

    async def silent(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    settings = make_settings(connect_timeout=0.2, allow_private_networks=())
    started = asyncio.get_running_loop().time()
    error = await fetch_error(Fetcher(settings, resolve=silent), "http://nonexistent.invalid/")
    assert error.reason == "cannot resolve nonexistent.invalid (no answer within 0.2 s)"
    assert asyncio.get_running_loop().time() - started < 2
    assert asked == ["nonexistent.invalid"]


@pytest.mark.anyio
async def test_unreachable_robots_txt_stops_the_crawl_and_says_why_not_disallows():
    """RFC 9309: no robots.txt to be had means no crawling; the reason is the network's, not the rules'."""
    resolver = Resolver()
    fetcher = Fetcher(make_settings(obey_robots=True, allow_private_networks=()), resolve=resolver)
    error = await fetch_error(fetcher, "http://nonexistent.invalid/news")
    assert isinstance(error, Blocked)
    assert error.reason == "robots.txt unreachable (cannot resolve nonexistent.invalid): not crawling"
    assert resolver.asked == ["nonexistent.invalid"]  # the page itself was never tried


# -- refused, timed out, TLS ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_closed_port_says_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = await fetch_error(Fetcher(make_settings()), f"http://127.0.0.1:{port}/")
    assert error.reason == "connection refused"


@pytest.mark.anyio
async def test_the_total_deadline_names_the_configured_seconds(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(timeout=0.5)), site.url("/trickle"))
    assert error.reason == "timed out after 0.5 s (total deadline)"


@needs_openssl
@pytest.mark.anyio
async def test_an_expired_certificate_says_so_and_is_not_retried(tmp_path: Path):
    cert, key = make_certificate(tmp_path, expired=True)
    trust = ssl.create_default_context(cafile=str(cert))
    with serve_routes(tls=(cert, key)) as tls_site:
        fetcher = Fetcher(make_settings(retries=2), ssl_context=trust, backoff=0.001)
        error = await fetch_error(fetcher, tls_site.url("/etag"))
        assert error.reason == "TLS: certificate has expired"
        assert tls_site.connections == 1
        assert tls_site.hits == []


@needs_openssl
@pytest.mark.anyio
async def test_a_valid_certificate_is_fetched_over_the_guarded_transport(tmp_path: Path):
    """The guard dials the checked IP; TLS still verifies the URL's host against the certificate."""
    cert, key = make_certificate(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    with serve_routes(tls=(cert, key)) as tls_site:
        async with Fetcher(make_settings(), ssl_context=trust) as fetcher:
            page = await fetcher.fetch(tls_site.url("/etag"))
    assert isinstance(page, Page)
    assert page.body == b"<p>tagged</p>"


def chained(cause: ssl.SSLError) -> httpx.ConnectError:
    """The error a TLS failure reaches us as: httpx.ConnectError <- httpcore.ConnectError <- ssl error."""
    try:
        with map_httpcore_errors():
            try:
                raise cause
            except ssl.SSLError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        return exc
    raise AssertionError("not mapped")


def test_tls_failures_are_named_by_their_reason_not_the_library_wrapper():
    expired = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    expired.verify_message = "certificate has expired"
    version = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    for cause, reason in ((expired, "TLS: certificate has expired"), (version, "TLS: wrong version number")):
        failure = describe(chained(cause), make_settings())
        assert (failure.reason, failure.retryable) == (reason, False)


# -- what the server sent -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_bad_redirect_location_is_named_and_not_retried(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(retries=2)), site.url("/bad-location"))
    assert type(error) is FetchError
    assert error.reason == r"invalid redirect Location 'http:\\\\127.0.0.1/'"
    assert site.paths() == ["/bad-location"]


@pytest.mark.anyio
@pytest.mark.parametrize("location", ["http://[::1", "/a\x01b", "\\\\evil.example/"])
async def test_locations_that_do_not_parse_or_parse_two_ways_are_refused(location: str):
    script = Script(raw(302, headers={"Location": location}))
    error = await fetch_error(mock(script, retries=2), "https://news.example/")
    assert error.reason == f"invalid redirect Location {location!r}"
    assert script.urls == ["https://news.example/"]


@pytest.mark.anyio
async def test_oversized_response_headers_are_named_and_not_retried(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(retries=2), backoff=0.001), site.url("/huge-headers"))
    assert error.reason == "response headers too large (over 100 KiB)"
    assert site.paths() == ["/huge-headers"]


# -- the log line per request ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_failed_request_is_logged_at_debug_with_its_reason(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="feedmaker.fetch")
    script = Script(httpx.ConnectError("refused"))
    await fetch_error(mock(script), "https://news.example/", site="news")
    [record] = [r for r in caplog.records if r.levelno == logging.DEBUG]
    message = record.getMessage()
    assert message.startswith("site=news fetch method=GET url=https://news.example/ status=- bytes=0 ms=")
    assert message.endswith(" reason=connection failed: refused")


# -- the hop steps --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_new_per_hop_rule_is_one_more_step_and_runs_on_every_hop():
    """A step refusing one host stops the redirect to it before any request, with the fetch's URL."""

    async def no_tracker(context: HopContext, hop: Hop) -> None:
        if hop.target.host == "tracker.example":
            raise Blocked(context.url, f"{hop.prefix}tracker refused")

    script = Script(raw(302, headers={"Location": "https://tracker.example/r"}))
    fetcher = Fetcher(make_settings(), transport=httpx.MockTransport(script), steps=(*HOP_STEPS, no_tracker))
    error = await fetch_error(fetcher, "https://news.example/")
    assert (error.url, error.reason) == ("https://news.example/", "redirect to tracker refused")
    assert script.urls == ["https://news.example/"]


def test_transport_maps_httpcore_errors_to_the_most_specific_httpx_error_and_passes_others():
    for raised, expected in (
        (httpcore.ReadTimeout("slow"), httpx.ReadTimeout),
        (httpcore.ConnectError("no"), httpx.ConnectError),
        (httpcore.RemoteProtocolError("bad"), httpx.RemoteProtocolError),
    ):
        with pytest.raises(expected) as info, map_httpcore_errors():
            raise raised
        assert info.value.__cause__ is raised
    refused = AddressRefused("x", ipaddress.ip_address("10.0.0.1"))
    with pytest.raises(AddressRefused) as passed, map_httpcore_errors():
        raise refused
    assert passed.value is refused


# -- end to end: the reason reaches the run summary and the log -----------------------------------

SITE = """name = "Broken"
start_urls = ["{start}"]
[list]
item = "li"
link = "a"
headline = "a"
"""


def robots_down(h: HostileHandler) -> None:
    h.reply(503, b"down")


@pytest.mark.parametrize(
    ("routes", "path", "reason"),
    [
        (
            {"/bad-location": bad_location},
            "/bad-location",
            r"invalid redirect Location 'http:\\\\127.0.0.1/'",
        ),
        ({"/robots.txt": robots_down}, "/news", "robots.txt unreachable (HTTP 503): not crawling"),
    ],
    ids=["bad-location", "robots-5xx"],
)
def test_crawl_site_reports_the_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, routes: dict[str, Route], path: str, reason: str
):
    """Through crawl_site against a local site: the run's error and its log line carry the fetch's reason,
    and every request's DEBUG line names the site."""
    caplog.set_level(logging.WARNING, logger="feedmaker.crawl")
    caplog.set_level(logging.DEBUG, logger="feedmaker.fetch")
    with serve_routes(routes) as server:
        start = server.url(path)
        config = write_config(tmp_path / "config", {"broken": SITE.format(start=start)})
        settings, [site_config] = load_all(config)
        store = SqliteStore(tmp_path / "state.db")

        async def go() -> tuple[str, ...]:
            async with Fetcher(settings.fetch) as fetcher:
                report = await crawl_site(site_config, settings=settings, fetcher=fetcher, store=store)
            return report.errors

        errors = asyncio.run(go())
    assert errors == (f"fetch failed: {start}: {reason}",)
    assert f"reason=fetch failed: {start}: {reason}" in caplog.text
    assert "internal error" not in caplog.text
    assert f"site=broken fetch method=GET url={server.url('/robots.txt')} status=" in caplog.text
