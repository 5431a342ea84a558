"""The address guard: which addresses a fetch may reach, checked where the connection is made.

Input: a host name (or literal) and a port from httpcore; output: a connected stream to an address the
`AddressPolicy` allows, or `AddressRefused` before any socket exists. `GuardedBackend` is an httpcore
network backend (httpcore's public extension point), so every new connection, on every redirect hop,
passes through it; `transport.GuardedTransport` puts it under httpx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore

__all__ = [
    "AddressPolicy",
    "AddressRefused",
    "CannotResolve",
    "GuardedBackend",
    "IPAddress",
    "Resolve",
    "host_key",
    "is_public",
    "numeric_host",
    "resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[IPAddress]]]

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefused(Exception):
    """Raised by `GuardedBackend` before any socket exists. Internal: `Fetcher` turns it into `Blocked`.

    Deliberately not an httpcore/httpx error, so neither library maps it or retries it.
    """

    def __init__(self, host: str, address: IPAddress) -> None:
        super().__init__(f"{host} resolves to non-public address {address}")
        self.host, self.address = host, address


class CannotResolve(httpcore.ConnectError):
    """The name did not resolve. A connect error to httpcore (so the pool treats it as one); the fetcher
    finds it under httpx's `ConnectError` and says `cannot resolve <host>`."""

    def __init__(self, host: str, cause: OSError | UnicodeError) -> None:
        super().__init__(f"cannot resolve {host}: {cause!r}")
        self.host = host
        self.timed_out = isinstance(cause, TimeoutError)
        # getaddrinfo's answer "no such name" (as opposed to "try again") will not change on a retry.
        self.permanent = isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_NAME


_NO_SUCH_NAME = frozenset(
    code for name in ("EAI_NONAME", "EAI_NODATA") if (code := getattr(socket, name, None)) is not None
)


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


def host_key(host: str) -> str:
    """One spelling per host name: what allow-lists, gates and pauses are keyed by."""
    return host.strip().strip("[]").lower().removesuffix(".")


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
                hosts.add(host_key(entry))
        return cls(networks=tuple(networks), hosts=frozenset(hosts))

    def allows(self, host: str, address: IPAddress) -> bool:
        if self.allow_all or is_public(address) or host_key(host) in self.hosts:
            return True
        return any(a in net for a in (address, *_embedded_ipv4(address)) for net in self.networks)


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
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()
        self.resolver = resolve

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
                # getaddrinfo has its own, longer timeouts; a lookup counts against the connect timeout.
                async with asyncio.timeout(timeout):
                    addresses = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:  # TimeoutError is an OSError
                raise CannotResolve(host, exc) from exc
        # Refuse the host if any address is refused: a name mixing public and private addresses is
        # exactly what a rebinding attack looks like.
        for address in addresses:
            if not self.policy.allows(host, address):
                raise AddressRefused(host, address)
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
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
        await self.inner.sleep(seconds)
