"""Per-hop checks: before each request of a fetch (the URL asked for and every redirect target),
each step in `HOP_STEPS` runs in order and may refuse the hop by raising; none sends anything.

As in Scrapy's downloader-middleware table, a new per-hop rule is a new step in the tuple, not an
edit of the redirect loop. A step sees the hop and a narrow `HopContext` (what the fetch was asked
for, its address policy, pauses and robots.txt), never the fetcher itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from feedmaker.config import FetchSettings
from feedmaker.errors import Blocked, FetchError
from feedmaker.fetch.gate import Pauses
from feedmaker.fetch.guard import AddressPolicy, AddressRefused, host_key, numeric_host

__all__ = [
    "HOP_STEPS",
    "Hop",
    "HopContext",
    "Step",
    "check_address",
    "check_pause",
    "check_robots",
    "check_scheme",
]


@dataclass(frozen=True, slots=True)
class Hop:
    url: str
    target: httpx.URL
    number: int  # 0 for the URL asked for, then 1, 2, ... per redirect
    for_robots: bool  # this request fetches robots.txt for another one

    @property
    def prefix(self) -> str:
        """How a reason names the hop: 'redirect to ' for redirect targets."""
        return "redirect to " if self.number else ""


class HopContext(Protocol):
    @property
    def url(self) -> str:
        """The URL the fetch was asked for: every error names it."""
        ...

    @property
    def settings(self) -> FetchSettings: ...

    @property
    def policy(self) -> AddressPolicy: ...

    @property
    def pauses(self) -> Pauses: ...

    async def robots_refusal(self, url: str) -> str | None:
        """Why robots.txt stops us fetching `url` ('robots.txt disallows', 'robots.txt unreachable
        (...): not crawling'), or None when it allows it."""
        ...


Step = Callable[[HopContext, Hop], Awaitable[None]]


async def check_scheme(context: HopContext, hop: Hop) -> None:
    if hop.target.scheme not in ("http", "https"):
        reason = f"redirect to non-http(s) URL {hop.url}" if hop.number else "not an http(s) URL"
        raise FetchError(context.url, reason)


async def check_address(context: HopContext, hop: Hop) -> None:
    """Literal addresses in any spelling, before the request exists; names are checked when dialled."""
    host = hop.target.host
    address = numeric_host(host)
    if address is not None and not context.policy.allows(host, address):
        raise AddressRefused(host, address)


async def check_pause(context: HopContext, hop: Hop) -> None:
    await context.pauses.check(context.url, host_key(hop.target.host))


async def check_robots(context: HopContext, hop: Hop) -> None:
    if not context.settings.obey_robots or hop.for_robots:
        return
    refusal = await context.robots_refusal(hop.url)
    if refusal is not None:
        raise Blocked(context.url, f"{refusal} {hop.prefix}{hop.url}" if hop.number else refusal)


HOP_STEPS: tuple[Step, ...] = (check_scheme, check_address, check_pause, check_robots)
