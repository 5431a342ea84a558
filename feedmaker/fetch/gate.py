"""When a request may go: per-host turns and delay, the global slot count, Retry-After pauses, and
the total deadline one fetch's requests share. No I/O; clocks are injected.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol

from feedmaker.errors import Blocked, FetchError

__all__ = [
    "MAX_PAUSE", "PAUSES_READ", "Budget", "Gates", "HostGate", "HostTurns", "Pause", "Pauses", "SharedPauses",
    "retry_after_seconds",
]  # fmt: skip

MAX_PAUSE = 24 * 3600.0  # Retry-After is capped at a day
# How stale another worker's pause may be here: one small read a second per process, and a request that
# slips through meanwhile still waits at the shared host turn, which the pause holds (`Gates`).
PAUSES_READ = 1.0


class HostGate:
    """One request in flight per host, and at least `delay` seconds from the end of one request to
    the start of the next (scrapy's Slot without its 0.5-1.5x randomisation: the gap never drops
    below the configured delay, and measuring from the end makes it hold at the server too)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last_end = -math.inf

    @asynccontextmanager
    async def turn(self, delay: float) -> AsyncIterator[None]:
        async with self._lock:
            wait = self._last_end + delay - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last_end = self._clock()


class HostTurns(Protocol):
    """Per-host turns shared with other processes (the store, when several workers share PostgreSQL):
    the `HostGate` rules, one request in flight and `delay` between requests, across all of them."""

    def take_host_turn(self, host: str, *, hold: float) -> float:
        """0.0 when this process got the turn (for at most `hold` s), else seconds to wait and ask again."""
        ...

    def end_host_turn(self, host: str, *, delay: float) -> None: ...


class SharedPauses(Protocol):
    """Retry-After pauses shared with other processes (the store, when several workers share PostgreSQL)."""

    def host_pauses(self) -> dict[str, datetime]:
        """Hosts paused now, with the UTC time each resumes."""
        ...

    def save_host_pauses(self, pauses: Mapping[str, datetime]) -> None:
        """Keep these pauses (the later where a host has two) and hold each host's turn until then."""
        ...


class Gates:
    """A `HostGate` per host plus a cap on requests in flight over all hosts; with `turns`, each
    request also takes the host's turn there, so the gap holds across processes too."""

    def __init__(
        self,
        clock: Callable[[], float],
        concurrency: int,
        *,
        turns: HostTurns | None = None,
        hold: float = 60.0,
    ) -> None:
        self._clock = clock
        self._hosts: dict[str, HostGate] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._turns, self._hold = turns, hold

    @asynccontextmanager
    async def turn(
        self, host: str, delay: float, *, check: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[None]:
        """Wait for `host`'s turn and a slot. `check` runs after each wait and may refuse the request by
        raising: a host paused while this request queued (here or by another worker) gets no request."""
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = HostGate(self._clock)
        async with gate.turn(delay):
            if check is not None:
                await check()
            async with self._shared(host, delay, check), self._slots:
                yield

    @asynccontextmanager
    async def _shared(
        self, host: str, delay: float, check: Callable[[], Awaitable[None]] | None
    ) -> AsyncIterator[None]:
        turns = self._turns
        if turns is None:
            yield
            return
        # Blocking database calls: off the loop, as every store call is.
        # Polled, not signalled: the turn is ended by another process, which no event here can see.
        for _ in itertools.count():
            wait = await asyncio.to_thread(turns.take_host_turn, host, hold=self._hold)
            if wait <= 0:
                break
            if check is not None:  # a long wait may be another worker's pause: learn of it and give up
                await check()
            # A turn in flight elsewhere may end long before its hold: ask again a few times per delay.
            await asyncio.sleep(min(wait, max(delay / 4, 0.05)))
        try:
            yield
        finally:
            await asyncio.to_thread(turns.end_host_turn, host, delay=delay)


@dataclass(frozen=True, slots=True)
class Pause:
    resume: float  # on the monotonic clock
    until: datetime  # for messages and for the store

    def reason(self) -> str:
        return f"host paused until {self.until:%Y-%m-%dT%H:%M:%SZ} (Retry-After)"


class Pauses:
    """Hosts paused by Retry-After. Pauses from an earlier process (Retry-After outlives a `run --once`)
    are given as UTC times and resume on our monotonic clock. With `shared`, a pause is saved there the
    moment it is set and the other workers' pauses are read at most every `read_every` seconds, so a
    running daemon honours a pause another worker met."""

    def __init__(
        self,
        clock: Callable[[], float],
        now: Callable[[], datetime],
        earlier: Mapping[str, datetime] | None = None,
        *,
        shared: SharedPauses | None = None,
        read_every: float = PAUSES_READ,
    ) -> None:
        self._clock, self._now = clock, now
        self._paused: dict[str, Pause] = {}
        self._shared, self._read_every = shared, read_every
        self._read_at = -math.inf
        self._learn(earlier or {})

    def _learn(self, pauses: Mapping[str, datetime]) -> None:
        for host, until in pauses.items():
            left = min((until - self._now()).total_seconds(), MAX_PAUSE)
            known = self._paused.get(host)
            if left > 0 and (known is None or known.until < until):
                self._paused[host] = Pause(self._clock() + left, until)

    async def check(self, url: str, host: str) -> None:
        """Raise `Blocked` naming `url` while `host` is paused, here or (with `shared`) by another worker."""
        if self._shared is not None and self._clock() - self._read_at >= self._read_every:
            self._read_at = self._clock()  # before the read: concurrent checks meanwhile use what is known
            self._learn(await asyncio.to_thread(self._shared.host_pauses))
        pause = self._paused.get(host)
        if pause is not None:
            if self._clock() < pause.resume:
                raise Blocked(url, pause.reason())
            del self._paused[host]

    async def pause(self, host: str, seconds: float) -> Pause:
        pause = Pause(self._clock() + seconds, self._now() + timedelta(seconds=seconds))
        self._paused[host] = pause
        if self._shared is not None:
            await asyncio.to_thread(self._shared.save_host_pauses, {host: pause.until})
        return pause

    def snapshot(self) -> dict[str, datetime]:
        moment = self._clock()
        return {host: pause.until for host, pause in self._paused.items() if pause.resume > moment}


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now` (delta-seconds or HTTP-date), within [0, 24 h]."""
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True too, and float() refuses it
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_PAUSE)


@dataclass(slots=True)
class Budget:
    """What is left of one fetch's total deadline; only time spent on the wire is charged, so a long
    politeness queue cannot time out a fetch that never ran."""

    url: str
    total: float
    left: float = field(init=False)

    def __post_init__(self) -> None:
        self.left = self.total

    def expired(self) -> FetchError:
        return FetchError(self.url, f"timed out after {self.total:g} s (total deadline)")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.left <= 0:
            raise self.expired()
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with asyncio.timeout(self.left) as deadline:
                yield
        except TimeoutError as exc:
            if deadline.expired():
                raise self.expired() from exc
            raise
        finally:
            self.left -= loop.time() - start
