"""The address guard: no test leaves loopback. The spy network backend refuses to dial anything else,
and every private-address test proves the guard refused before any socket was created."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

import httpcore
import httpx
import pytest

import feedmaker
from feedmaker.errors import Blocked
from feedmaker.fetch import (
    AddressPolicy,
    AddressRefused,
    Fetcher,
    GuardedBackend,
    IPAddress,
    is_public,
    numeric_host,
)
from feedmaker.models import Page
from tests.fetch_support import (
    Refusing,
    SpyNetwork,
    fetch_error,
    make_settings,
)
from tests.hostile_server import HostileServer, serve_routes


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def site() -> Iterator[HostileServer]:
    with serve_routes() as server:
        yield server


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


def test_the_guard_plugs_in_without_private_attributes_of_httpx_or_httpcore():
    """issue 9: `grep -rn '\\._pool\\|\\._transport' feedmaker/` finds nothing."""
    root = Path(feedmaker.__file__).parent
    private = re.compile(r"\._pool|\._transport")
    hits = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if private.search(line)
    ]
    assert hits == []
