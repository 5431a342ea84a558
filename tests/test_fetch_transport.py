"""The guarded transport: a pool per origin, so a crawl over many hosts reuses one connection per host,
while every new connection still goes through the address guard. Against a keep-alive 127.0.0.1 server;
host names come from an injected resolver, so no DNS question leaves the process."""

from __future__ import annotations

import asyncio
import ipaddress
import resource
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from feedmaker.errors import FetchError
from feedmaker.fetch import AddressPolicy, Fetcher, GuardedBackend, GuardedTransport, IPAddress
from feedmaker.fetch.transport import DESCRIPTORS_WANTED, origin_bound, raise_descriptor_limit
from feedmaker.models import NotModified, Page
from tests.fetch_support import FakeClock, SpyNetwork, make_settings
from tests.hostile_server import HostileServer, serve_routes

HOSTS = ("a.test", "b.test", "c.test")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def site() -> Iterator[HostileServer]:
    with serve_routes(keep_alive=True) as server:
        yield server


async def loopback(host: str, port: int) -> list[IPAddress]:
    """Every name is 127.0.0.1: several origins on one local server."""
    return [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.anyio
async def test_a_crawl_over_several_hosts_opens_one_connection_per_host(site: HostileServer):
    """Twelve pages on three hosts, fetched at once: three connections, each dialled through the guard."""
    spy = SpyNetwork()
    settings = make_settings(allow_private_networks=HOSTS, concurrency=2)
    urls = [site.url(f"/articles/{n}", host=HOSTS[n % 3]) for n in range(12)]
    async with Fetcher(settings, network=spy, resolve=loopback) as fetcher:
        pages = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
    assert all(isinstance(p, Page) for p in pages)
    assert len(site.hits) == 12
    assert site.connections == 3
    assert spy.calls == [("127.0.0.1", site.port)] * 3


@pytest.mark.anyio
async def test_past_the_bound_the_least_recently_used_idle_pool_is_closed(site: HostileServer):
    spy = SpyNetwork()
    backend = GuardedBackend(AddressPolicy(allow_all=True), inner=spy, resolve=loopback)
    transport = GuardedTransport(backend, ssl_context=httpx.create_ssl_context(), max_origins=2)
    async with httpx.AsyncClient(transport=transport) as client:
        for host in ("a.test", "b.test", "a.test", "c.test", "a.test", "b.test"):
            assert (await client.get(site.url("/etag", host=host))).status_code == 200
            assert len(transport.pools) <= 2
    # a and b pooled; c pushes out b (least recently used); b comes back and pushes out c.
    assert len(spy.calls) == 4
    assert site.connections == 4


@pytest.mark.anyio
async def test_a_pool_unused_past_the_keepalive_expiry_is_closed(site: HostileServer):
    clock = FakeClock()
    spy = SpyNetwork()
    backend = GuardedBackend(AddressPolicy(allow_all=True), inner=spy, resolve=loopback)
    transport = GuardedTransport(
        backend, ssl_context=httpx.create_ssl_context(), keepalive_expiry=30, clock=clock
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(site.url("/etag", host="a.test"))
        clock.now += 31
        await client.get(site.url("/etag", host="b.test"))
        assert [origin[1] for origin in transport.pools] == [b"b.test"]
        await client.get(site.url("/etag", host="a.test"))
    assert len(spy.calls) == 3


@pytest.mark.anyio
async def test_a_pool_with_a_request_in_flight_is_never_closed(site: HostileServer):
    """A body still streaming from a pushed-out host is read to its end."""
    backend = GuardedBackend(AddressPolicy(allow_all=True), resolve=loopback)
    transport = GuardedTransport(backend, ssl_context=httpx.create_ssl_context(), max_origins=1)
    async with httpx.AsyncClient(transport=transport) as client:
        request = client.build_request("GET", site.url("/articles/1", host="a.test"))
        streaming = await client.send(request, stream=True)
        other = await client.get(site.url("/articles/2", host="b.test"))
        assert other.status_code == 200
        body = await streaming.aread()
        await streaming.aclose()
    assert body == b"<html><body><h1>/articles/1</h1></body></html>"


@pytest.mark.anyio
async def test_redirects_and_errors_with_small_bodies_keep_the_connection(site: HostileServer):
    """A 404 page, a redirect's empty body and a 304 are read to their end, so the next request reuses
    the connection."""
    async with Fetcher(make_settings()) as fetcher:
        with pytest.raises(FetchError):
            await fetcher.fetch(site.url("/status/404"))
        page = await fetcher.fetch(site.url(f"/redirect?to={site.url('/etag')}"))
        assert isinstance(page, Page)
        again = await fetcher.fetch(site.url("/etag"), known=page.validators)
        last = await fetcher.fetch(site.url("/articles/1"))
    assert again == NotModified(site.url("/etag"))
    assert isinstance(last, Page)
    assert site.paths() == [
        "/status/404",
        f"/redirect?to={site.url('/etag')}",
        "/etag",
        "/etag",
        "/articles/1",
    ]
    assert site.connections == 1


@pytest.mark.anyio
async def test_a_crawl_interleaving_more_hosts_than_the_old_bound_still_reuses_one_connection_each(
    site: HostileServer,
):
    """150 hosts, each asked three times in turn (as a run of many sites interleaves them): with the default
    bound every host keeps its connection. A bound of 128 closed one for nearly every request (LRU thrash)."""
    raise_descriptor_limit()  # as `feedmaker run` does
    if origin_bound() < 150:
        pytest.skip(f"the open-file hard limit allows only {origin_bound()} pools here")
    hosts = [f"h{n}.test" for n in range(150)]
    settings = make_settings(allow_private_networks=tuple(hosts), concurrency=8)
    async with Fetcher(settings, resolve=loopback) as fetcher:
        for _ in range(3):
            pages = await asyncio.gather(*(fetcher.fetch(site.url("/etag", host=h)) for h in hosts))
            assert all(isinstance(p, Page) for p in pages)
    assert len(site.hits) == 450
    assert site.connections == 150


def test_the_bound_follows_the_open_file_limit(monkeypatch: pytest.MonkeyPatch):
    for soft, bound in [(256, 32), (1024, 128), (4096, 512), (20000, 1024), (64, 16)]:
        monkeypatch.setattr(resource, "getrlimit", lambda _which, soft=soft: (soft, 1 << 20))
        assert origin_bound() == bound


def test_run_raises_a_low_open_file_limit_towards_the_hard_one():
    """In a child started with a soft limit of 256: the limit it ends up with (`feedmaker run` calls this)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = DESCRIPTORS_WANTED if hard == resource.RLIM_INFINITY else min(hard, DESCRIPTORS_WANTED)
    if wanted <= 256:
        pytest.skip(f"the hard open-file limit is {hard}")
    code = "from feedmaker.fetch.transport import raise_descriptor_limit as r; print(r())"
    done = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(done.stdout) == wanted
