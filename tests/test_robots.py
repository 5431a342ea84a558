"""robots.txt per RFC 9309: status handling, per-origin caching, and the fetcher's use of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from feedmaker.config import FetchSettings
from feedmaker.errors import Blocked, FetchError
from feedmaker.fetch import Fetcher
from feedmaker.models import Page, RobotsFile
from feedmaker.robots import ERROR_TTL, TTL, RobotsCache, robots_url

UA = "feedmaker/0.1 (+https://github.com/feedmaker/feedmaker)"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Serves canned robots.txt answers and records every load."""

    def __init__(self, *answers: RobotsFile | Exception) -> None:
        self.answers = list(answers)
        self.loaded: list[str] = []

    async def __call__(self, url: str) -> RobotsFile:
        self.loaded.append(url)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        await asyncio.sleep(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_robots_url_is_per_origin():
    assert robots_url("https://News.Example:8443/a/b?c=d") == "https://news.example:8443/robots.txt"
    assert robots_url("http://news.example/x") == "http://news.example/robots.txt"
    assert robots_url("http://user:pw@[::1]:8080/x") == "http://[::1]:8080/robots.txt"


@pytest.mark.anyio
async def test_rules_are_applied_with_group_matching_on_our_product_token():
    """A group for 'feedmaker' beats '*'; paths follow RFC 9309 longest-match precedence."""
    body = b"User-agent: *\nDisallow: /\n\nUser-agent: feedmaker\nDisallow: /private/\nAllow: /private/ok\n"
    cache = RobotsCache(Loader(RobotsFile(200, body)))
    assert await cache.allowed("https://news.example/news/1", UA)
    assert not await cache.allowed("https://news.example/private/x", UA)
    assert await cache.allowed("https://news.example/private/ok", UA)
    assert not await cache.allowed("https://news.example/news/1", "otherbot/1.0")


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 429])
async def test_4xx_robots_means_allow_all(status: int):
    assert await RobotsCache(Loader(RobotsFile(status, b"Disallow: /"))).allowed("https://a.example/x", UA)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_robots_means_disallow_all(status: int):
    assert not await RobotsCache(Loader(RobotsFile(status, b""))).allowed("https://a.example/x", UA)


@pytest.mark.anyio
async def test_unreachable_robots_means_disallow_all_and_is_retried_after_an_hour():
    clock = FakeClock()
    loader = Loader(FetchError("https://a.example/robots.txt", "connection failed"), RobotsFile(404, b""))
    cache = RobotsCache(loader, clock=clock)
    assert not await cache.allowed("https://a.example/x", UA)
    clock.now += ERROR_TTL - 1
    assert not await cache.allowed("https://a.example/x", UA)
    clock.now += 2
    assert await cache.allowed("https://a.example/x", UA)
    assert len(loader.loaded) == 2


@pytest.mark.anyio
async def test_loaded_once_per_origin_per_24_hours():
    clock = FakeClock()
    loader = Loader(RobotsFile(200, b"User-agent: *\nDisallow: /private/\n"))
    cache = RobotsCache(loader, clock=clock)
    for path in ("/a", "/b", "/private/c"):
        await cache.allowed("https://a.example" + path, UA)
    await cache.allowed("https://b.example/", UA)
    await cache.allowed("http://a.example/", UA)  # another scheme is another origin
    assert loader.loaded == [
        "https://a.example/robots.txt",
        "https://b.example/robots.txt",
        "http://a.example/robots.txt",
    ]
    clock.now += TTL - 1
    await cache.allowed("https://a.example/a", UA)
    assert len(loader.loaded) == 3
    clock.now += 2
    await cache.allowed("https://a.example/a", UA)
    assert loader.loaded[-1] == "https://a.example/robots.txt"
    assert len(loader.loaded) == 4


@pytest.mark.anyio
async def test_a_burst_of_checks_for_a_new_host_loads_robots_once():
    loader = Loader(RobotsFile(200, b""))
    cache = RobotsCache(loader)
    results = await asyncio.gather(*(cache.allowed(f"https://a.example/{i}", UA) for i in range(10)))
    assert all(results)
    assert loader.loaded == ["https://a.example/robots.txt"]


@pytest.mark.anyio
async def test_blocked_from_the_loader_propagates_and_is_not_cached():
    """A paused host or refused address says nothing about the rules: no verdict is stored."""
    loader = Loader(Blocked("https://a.example/robots.txt", "host paused"), RobotsFile(200, b""))
    cache = RobotsCache(loader)
    with pytest.raises(Blocked, match="host paused"):
        await cache.allowed("https://a.example/x", UA)
    assert await cache.allowed("https://a.example/x", UA)
    assert len(loader.loaded) == 2


@pytest.mark.anyio
async def test_bom_and_invalid_utf8_are_tolerated():
    body = b"\xef\xbb\xbfUser-agent: *\nDisallow: /caf\xe9/\nDisallow: /private/\n"
    cache = RobotsCache(Loader(RobotsFile(200, body)))
    assert not await cache.allowed("https://a.example/private/x", UA)
    assert await cache.allowed("https://a.example/news", UA)


# -- through the fetcher (MockTransport) ---------------------------------------------------------


def mock_fetcher(
    handler: Callable[[httpx.Request], httpx.Response], **settings: object
) -> tuple[Fetcher, list[str]]:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return handler(request)

    fetch_settings = FetchSettings.model_validate({"delay": 0.0, "retries": 0, **settings})
    return Fetcher(fetch_settings, transport=httpx.MockTransport(record), backoff=0.001), seen


@pytest.mark.anyio
async def test_fetcher_checks_robots_once_and_never_requests_disallowed_paths():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/robots.txt":
            return httpx.Response(200, text="User-agent: *\nDisallow: /private/\n")
        return httpx.Response(200, text="ok")

    fetcher, seen = mock_fetcher(handler)
    async with fetcher:
        assert isinstance(await fetcher.fetch("https://a.example/news"), Page)
        with pytest.raises(Blocked) as info:
            await fetcher.fetch("https://a.example/private/1")
        assert isinstance(await fetcher.fetch("https://a.example/other"), Page)
    assert (info.value.url, info.value.reason) == ("https://a.example/private/1", "robots.txt disallows")
    assert seen == ["https://a.example/robots.txt", "https://a.example/news", "https://a.example/other"]


@pytest.mark.anyio
async def test_fetcher_ignores_robots_when_told_to():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="User-agent: *\nDisallow: /\n")

    fetcher, seen = mock_fetcher(handler, obey_robots=False)
    async with fetcher:
        await fetcher.fetch("https://a.example/private/1")
    assert seen == ["https://a.example/private/1"]


@pytest.mark.anyio
async def test_robots_of_a_redirect_target_is_checked_too():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "b.example" and request.url.path == "/robots.txt":
            return httpx.Response(200, text="User-agent: *\nDisallow: /\n")
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        return httpx.Response(301, headers={"Location": "https://b.example/moved"})

    fetcher, seen = mock_fetcher(handler)
    async with fetcher:
        with pytest.raises(Blocked) as info:
            await fetcher.fetch("https://a.example/old")
    assert info.value.reason == "robots.txt disallows redirect to https://b.example/moved"
    assert "https://b.example/moved" not in seen


@pytest.mark.anyio
async def test_robots_txt_is_read_up_to_500_kib_and_followed_through_redirects():
    """RFC 9309: follow at least five redirects; parse at least 500 KiB, ignore the rest."""
    padding = b"# " + b"x" * 600_000 + b"\n"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/robots.txt":
            return httpx.Response(301, headers={"Location": "/real-robots.txt"})
        if request.url.path == "/real-robots.txt":
            return httpx.Response(
                200, content=b"User-agent: *\nDisallow: /private/\n" + padding + b"Disallow: /\n"
            )
        return httpx.Response(200, text="ok")

    fetcher, seen = mock_fetcher(handler)
    async with fetcher:
        assert isinstance(await fetcher.fetch("https://a.example/news"), Page)
        with pytest.raises(Blocked):
            await fetcher.fetch("https://a.example/private/x")
    assert seen == [
        "https://a.example/robots.txt",
        "https://a.example/real-robots.txt",
        "https://a.example/news",
    ]


@pytest.mark.anyio
async def test_robots_5xx_blocks_the_site():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.url.path == "/robots.txt" else 200)

    fetcher, seen = mock_fetcher(handler)
    async with fetcher:
        with pytest.raises(Blocked) as info:
            await fetcher.fetch("https://a.example/news")
    assert info.value.reason == "robots.txt unreachable (HTTP 503): not crawling"
    assert seen == ["https://a.example/robots.txt"]


@pytest.mark.anyio
async def test_a_snapshot_preloads_another_cache_until_its_day_is_over():
    """robots.txt kept between processes answers without a load until 24 h after it was fetched."""
    from datetime import UTC, datetime, timedelta

    fetched = datetime(2025, 1, 1, tzinfo=UTC)
    loads: list[str] = []

    async def load(url: str) -> RobotsFile:
        loads.append(url)
        return RobotsFile(200, b"User-agent: *\nDisallow: /private/\n")

    first = RobotsCache(load, now=lambda: fetched)
    assert not await first.allowed("https://a.example/private/x", "feedmaker")
    kept = first.snapshot()
    assert [(url, when) for url, when, _ in kept] == [("https://a.example/robots.txt", fetched)]

    fresh = RobotsCache(load, now=lambda: fetched + timedelta(hours=23))
    fresh.preload(kept)
    assert not await fresh.allowed("https://a.example/private/x", "feedmaker")
    assert await fresh.allowed("https://a.example/public", "feedmaker")
    assert len(loads) == 1

    stale = RobotsCache(load, now=lambda: fetched + timedelta(hours=25))
    stale.preload(kept)
    assert await stale.allowed("https://a.example/public", "feedmaker")
    assert len(loads) == 2
