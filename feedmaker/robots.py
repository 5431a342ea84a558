"""Politeness: robots.txt per RFC 9309, fetched once per origin and cached.

Input: a URL and our User-Agent; output: whether we may fetch it. The fetching itself is injected
(`Load`), so this module does no I/O of its own: the fetcher routes robots.txt through the same
guarded client, host gates, deadline and (smaller) size cap as any page.

RFC 9309 outcomes: 2xx -> the rules; 4xx (and redirects still unresolved after the loader's limit)
-> allow all; 5xx or an unreachable server -> disallow all, and the refusal says which and why
("robots.txt unreachable (HTTP 503): not crawling"), never that the rules disallow.

With `shared` (the store, when several workers share PostgreSQL), a robots.txt is fetched once for all of
them: a worker missing one reads the store first, else claims the fetch (the others poll the store
meanwhile) and saves the file the moment it has it. Failures stay per worker, as they stay out of the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from protego import Protego

from feedmaker.errors import Blocked, FetchError
from feedmaker.models import RobotsFile, utcnow
from feedmaker.urls import origin

__all__ = ["ERROR_TTL", "MAX_BYTES", "TTL", "Load", "RobotsCache", "SharedRobots", "robots_url"]

log = logging.getLogger(__name__)

TTL = 24 * 3600.0
# An unreachable robots.txt means "disallow all"; holding that for a whole day after one bad
# minute would silence a site until tomorrow, so failures are cached for an hour only.
ERROR_TTL = 3600.0
MAX_BYTES = 500 * 1024  # RFC 9309 2.5: parse at least 500 KiB; the loader truncates beyond it
POLL = 0.1  # seconds between looks at the store while another worker fetches a robots.txt


Load = Callable[[str], Awaitable[RobotsFile]]
Verdict = Protego | bool  # parsed rules, or allow/disallow everything


class SharedRobots(Protocol):
    """robots.txt files shared with other processes, and who fetches each (the store; see the module docstring)."""

    def robots_file(self, url: str) -> tuple[datetime, RobotsFile] | None: ...

    def claim_robots_fetch(self, url: str, *, hold: float) -> bool:
        """True when this process may fetch `url` for all, for at most `hold` seconds."""
        ...

    def release_robots_fetch(self, url: str) -> None: ...

    def save_robots_files(self, files: Iterable[tuple[str, datetime, RobotsFile]]) -> None: ...


def robots_url(url: str) -> str:
    """The robots.txt of `url`'s origin; any user:password@ is dropped."""
    return f"{origin(url)}/robots.txt"


def _entry(url: str, robots: RobotsFile, expires: float, fetched: datetime | None) -> _Entry:
    if 200 <= robots.status < 300:
        text = robots.body.decode("utf-8", errors="replace").removeprefix("\ufeff")
        return _Entry(expires, Protego.parse(text), robots, fetched)
    if robots.status >= 500:
        log.warning("robots.txt unreachable, disallowing all url=%s status=%d", url, robots.status)
        return _Entry(expires, False, robots, fetched, unreachable=f"HTTP {robots.status}")
    return _Entry(expires, True, robots, fetched)


def _describe(verdict: Verdict) -> str:
    if isinstance(verdict, bool):
        return "allow-all" if verdict else "disallow-all"
    return "rules"


@dataclass(slots=True)
class _Entry:
    expires: float
    verdict: Verdict
    file: RobotsFile | None = None  # what was loaded, kept so the entry can outlive the process
    fetched: datetime | None = None
    unreachable: str | None = None  # why robots.txt could not be had, for a disallow-all verdict


class RobotsCache:
    """robots.txt verdicts per origin (scheme, host, port), each loaded at most once per `ttl`."""

    def __init__(
        self,
        load: Load | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        ttl: float = TTL,
        error_ttl: float = ERROR_TTL,
        shared: SharedRobots | None = None,
        hold: float = 60.0,
    ) -> None:
        """`hold`: how long a claim on a shared fetch lasts, so at least one fetch's total deadline."""
        self._load = load
        self._clock, self._now = clock, now
        self._ttl, self._error_ttl = ttl, error_ttl
        self._shared, self._hold = shared, hold
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def snapshot(self) -> list[tuple[str, datetime, RobotsFile]]:
        """Loaded robots.txt files still fresh, with when they were fetched: for the store to keep, so that
        a `run --once` every few minutes still asks each host at most once per `ttl`. Failures are not kept:
        their short lifetime is not worth persisting."""
        moment = self._clock()
        return [
            (target, entry.fetched, entry.file)
            for target, entry in self._entries.items()
            if entry.file is not None and entry.fetched is not None and entry.expires > moment
        ]

    def preload(self, files: Iterable[tuple[str, datetime, RobotsFile]]) -> None:
        """Entries from `snapshot()` of an earlier process; each expires `ttl` after it was fetched."""
        for target, fetched, robots in files:
            entry = self._kept(target, fetched, robots)
            if entry is not None and target not in self._entries:
                self._entries[target] = entry

    def _kept(self, target: str, fetched: datetime, robots: RobotsFile) -> _Entry | None:
        """The entry of a file fetched elsewhere (an earlier process, another worker), if still fresh."""
        left = self._ttl - (self._now() - fetched).total_seconds()
        return _entry(target, robots, self._clock() + left, fetched) if 0 < left <= self._ttl else None

    async def _from_store(self, shared: SharedRobots, target: str) -> _Entry | None:
        """A fresh file another worker fetched, waiting while one fetches it; None once this process holds
        the fetch. Polled: the file is saved by another process, which no event here can see."""
        while True:
            found = await asyncio.to_thread(shared.robots_file, target)
            if found is not None and (entry := self._kept(target, *found)) is not None:
                return entry
            if await asyncio.to_thread(shared.claim_robots_fetch, target, hold=self._hold):
                return None
            await asyncio.sleep(POLL)

    async def allowed(self, url: str, user_agent: str, *, load: Load | None = None) -> bool:
        """May `user_agent` fetch `url`? `load` overrides the constructor's loader for this call.

        Raises `Blocked` from the loader (host paused, address refused) without caching it:
        that is about reaching the host, not about what its robots.txt says.
        """
        return await self.refusal(url, user_agent, load=load) is None

    async def refusal(self, url: str, user_agent: str, *, load: Load | None = None) -> str | None:
        """Why `user_agent` may not fetch `url` ("robots.txt disallows", or "robots.txt unreachable
        (<why>): not crawling"), or None when it may. Raises as `allowed` does."""
        entry = await self._entry_for(robots_url(url), load or self._load)
        if entry.verdict is True:
            return None
        if entry.verdict is False:
            return f"robots.txt unreachable ({entry.unreachable}): not crawling"
        return None if entry.verdict.can_fetch(url, user_agent) else "robots.txt disallows"

    async def _entry_for(self, target: str, load: Load | None) -> _Entry:
        # One lock per origin: a burst of fetches to a new host loads robots.txt once, not N times.
        async with self._locks.setdefault(target, asyncio.Lock()):
            entry = self._entries.get(target)
            if entry is not None and self._clock() < entry.expires:
                return entry
            if load is None:
                raise TypeError("RobotsCache needs a loader")
            shared = self._shared
            if shared is not None and (entry := await self._from_store(shared, target)) is not None:
                self._entries[target] = entry
                log.debug("robots.txt from store url=%s verdict=%s", target, _describe(entry.verdict))
                return entry
            saved = False
            try:
                robots = await load(target)
            except Blocked:
                raise
            except FetchError as exc:
                log.warning("robots.txt unreachable, disallowing all url=%s reason=%s", target, exc.reason)
                entry = _Entry(self._clock() + self._error_ttl, False, unreachable=exc.reason)
            else:
                entry = _entry(target, robots, self._clock() + self._ttl, self._now())
                if entry.verdict is False:  # a 5xx: asked again after the error lifetime, not kept
                    entry = _Entry(self._clock() + self._error_ttl, False, unreachable=entry.unreachable)
                elif shared is not None and entry.fetched is not None:
                    await asyncio.to_thread(shared.save_robots_files, [(target, entry.fetched, robots)])
                    saved = True
            finally:
                if shared is not None and not saved:
                    # A failure is not kept: the next worker asking fetches it itself, without waiting.
                    await asyncio.to_thread(shared.release_robots_fetch, target)
            self._entries[target] = entry
            log.debug("robots.txt loaded url=%s verdict=%s", target, _describe(entry.verdict))
            return entry
