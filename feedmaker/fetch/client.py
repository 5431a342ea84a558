"""The fetcher: URL -> `Page` | `NotModified`, or a `FetchError` naming the URL and the reason.

`Fetcher` owns what outlives one fetch (clients, gates, pauses, robots.txt cache); `_Call` is one fetch:
the hop steps, redirects, retries and the request itself, given what it needs explicitly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import TracebackType
from typing import Protocol

import httpcore
import httpx

from feedmaker.config import FetchSettings
from feedmaker.errors import Blocked, FetchError
from feedmaker.fetch.decode import read_body
from feedmaker.fetch.gate import Budget, Gates, HostTurns, Pauses, SharedPauses, retry_after_seconds
from feedmaker.fetch.guard import AddressPolicy, AddressRefused, GuardedBackend, Resolve, host_key, resolve
from feedmaker.fetch.reasons import describe
from feedmaker.fetch.steps import HOP_STEPS, Hop, Step
from feedmaker.fetch.transport import GuardedTransport
from feedmaker.models import FetchResult, NotModified, Page, RobotsFile, Validators, utcnow
from feedmaker.robots import MAX_BYTES as ROBOTS_MAX_BYTES
from feedmaker.robots import RobotsCache, SharedRobots

__all__ = ["ACCEPT", "REDIRECTS", "Fetcher", "SharedPoliteness"]

log = logging.getLogger("feedmaker.fetch")  # one logger for the stage, whichever module logs

REDIRECTS = frozenset({301, 302, 303, 307, 308})
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
NO_VALIDATORS = Validators()
DRAIN_BYTES = 64 * 1024  # a non-2xx body up to this size is read (and dropped) to keep the connection


@dataclass(frozen=True, slots=True)
class _Reply:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes = b""
    encoding: str | None = None
    attempts: int = 1


def _retryable(status: int) -> bool:
    return status == 408 or status >= 500


def _short(response: httpx.Response) -> bool:
    """A small body worth reading to its end: httpcore keeps a connection only once its response has
    been read (bodiless responses are finished by the transport)."""
    length = response.headers.get("Content-Length", "")
    return length.isdigit() and 0 < int(length) <= DRAIN_BYTES and not response.is_stream_consumed


class SharedPoliteness(HostTurns, SharedPauses, SharedRobots, Protocol):
    """The per-host rules kept in a store that several workers share: turns and delay, Retry-After pauses,
    robots.txt files."""


class Fetcher:
    """One per crawl run/daemon: owns the httpx clients, per-host gates, robots cache, paused hosts.

    `transport` replaces the guarded network transport (tests use `httpx.MockTransport`); `network`
    is the raw connector under the address guard (tests spy on it); `resolve` is the guard's DNS
    lookup; `ssl_context` replaces the system trust store; `backoff` is the first retry's base wait
    in seconds; `steps` are the per-hop checks (see `steps.HOP_STEPS`); `shared` holds the per-host
    politeness rules all processes follow (the store, when several workers share one database).
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        backoff: float = 0.5,
        network: httpcore.AsyncNetworkBackend | None = None,
        resolve: Resolve = resolve,
        ssl_context: ssl.SSLContext | None = None,
        paused: Mapping[str, datetime] | None = None,
        steps: Sequence[Step] = HOP_STEPS,
        shared: SharedPoliteness | None = None,
    ) -> None:
        self.settings = settings
        self._now, self._backoff = now, backoff
        self._given, self._network, self._resolve = transport, network, resolve
        self._ssl_context = ssl_context
        self._policies = {
            False: AddressPolicy.from_entries(settings.allow_private_networks),
            True: AddressPolicy(allow_all=True),
        }
        # Two clients, not one with a per-request flag: the connection pool reuses connections by
        # origin, so a connection opened for an allow_private site must never serve a guarded
        # request. Each client's backend has one fixed policy and its own pool.
        self._clients: dict[bool, tuple[httpx.AsyncClient, httpx.AsyncBaseTransport]] = {}
        # `shared`: per-host turns and pauses shared with other workers (a shared store); a turn outlives
        # a dead worker by one total deadline at most.
        self._gates = Gates(clock, settings.concurrency, turns=shared, hold=settings.timeout + 5.0)
        self._pauses = Pauses(clock, now, paused, shared=shared)
        self._steps = tuple(steps)
        self.robots = RobotsCache(clock=clock, now=now, shared=shared, hold=settings.timeout + 5.0)

    def paused_hosts(self) -> dict[str, datetime]:
        """Hosts still paused by Retry-After, with the UTC time they resume: for the store to keep."""
        return self._pauses.snapshot()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client, _ in clients:
            await client.aclose()  # and so its transport

    def _client(self, allow_private: bool) -> tuple[httpx.AsyncClient, httpx.AsyncBaseTransport]:
        """The client that builds requests (headers, timeouts) and the transport that sends them.

        Requests go to the transport directly, not through `client.send`: feedmaker follows redirects
        itself, and httpx's redirect bookkeeping (which runs even with follow_redirects=False) raises
        a bare `InvalidURL` on a bad Location before we could name it; it also logs, keeps cookies
        and times the response, none of which a fetch uses."""
        if self._given is not None:
            allow_private = False  # one injected transport: one client
        pair = self._clients.get(allow_private)
        if pair is None:
            s = self.settings
            transport = self._given or GuardedTransport(
                GuardedBackend(self._policies[allow_private], inner=self._network, resolve=self._resolve),
                ssl_context=self._ssl_context or httpx.create_ssl_context(trust_env=False),
            )
            client = httpx.AsyncClient(
                transport=transport,
                follow_redirects=False,  # every hop is re-checked by the steps (robots, address, scheme)
                trust_env=False,
                timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout, pool=s.timeout),
                headers={
                    "User-Agent": s.user_agent,
                    "Accept": ACCEPT,
                    "Accept-Encoding": "gzip, deflate, br",
                },
            )
            pair = self._clients[allow_private] = (client, transport)
        return pair

    async def fetch(
        self,
        url: str,
        *,
        known: Validators = NO_VALIDATORS,
        allow_private: bool = False,
        delay: float | None = None,
        site: str | None = None,
    ) -> FetchResult:
        """Fetch `url` politely within the deadline and size cap; see the package docstring.

        Raises `Blocked` (robots.txt, address guard, paused host, 401/403/429), `TooLarge`, or
        `FetchError` (timeouts, network errors and other statuses, after retries where allowed).
        `site` only labels the log lines.
        """
        call = _Call(
            url=url,
            site=site or "-",
            settings=self.settings,
            route=self._client(allow_private),
            policy=self._policies[allow_private],
            gates=self._gates,
            pauses=self._pauses,
            robots=self.robots,
            steps=self._steps,
            delay=self.settings.delay if delay is None else delay,
            budget=Budget(url, self.settings.timeout),
            backoff=self._backoff_wait,
            now=self._now,
        )
        reply = await call.follow(url, known=known, max_bytes=self.settings.max_bytes, truncate=False)
        status = reply.status
        where = "" if reply.url == url else f" (at {reply.url})"
        if status == 304:
            return NotModified(reply.url)
        if 200 <= status < 300:
            return Page(
                url=reply.url,
                body=reply.body,
                encoding=reply.encoding,
                validators=Validators(
                    etag=reply.headers.get("ETag"), last_modified=reply.headers.get("Last-Modified")
                ),
                fetched_at=self._now(),
                status=status,
            )
        reason = f"HTTP {status}{where}"
        if reply.attempts > 1:
            reason += f" (after {reply.attempts} attempts)"
        if status in (401, 403, 429):
            raise Blocked(url, reason)
        raise FetchError(url, reason)

    def _backoff_wait(self, attempt: int) -> float:
        base = self._backoff * 2.0 ** (attempt - 1)
        return base + random.uniform(0, base)


def _redirect_target(base: httpx.URL, location: str) -> str:
    """The absolute URL a Location names. Refused when it holds a backslash or a control character:
    browsers read 'http:\\\\host/' as http://host/ (WHATWG) where RFC 3986 reads a path, and a
    redirect whose target two readers disagree on is not one to follow."""
    if "\\" in location or any(ord(c) < 0x20 or c == "\x7f" for c in location):
        raise ValueError("not a URL both RFC 3986 and browsers read the same way")
    joined = str(base.join(location))
    httpx.URL(joined)  # httpx can join into a URL it then refuses to parse
    return joined


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    """One `Fetcher.fetch` call: the URL asked for and everything its hops share (the `HopContext`)."""

    url: str
    site: str  # for log lines; "-" when the caller did not say
    settings: FetchSettings
    route: tuple[httpx.AsyncClient, httpx.AsyncBaseTransport]  # builds requests, sends them
    policy: AddressPolicy
    gates: Gates
    pauses: Pauses
    robots: RobotsCache
    steps: tuple[Step, ...]
    delay: float
    budget: Budget  # shared by every hop, retry and the robots.txt fetches of this call
    backoff: Callable[[int], float]
    now: Callable[[], datetime]

    async def follow(
        self, url: str, *, known: Validators, max_bytes: int, truncate: bool, for_robots: bool = False
    ) -> _Reply:
        """Follow redirects from `url`, running the hop steps before each request.

        For robots.txt itself (`for_robots`), `AddressRefused` escapes unchanged so that the page
        fetch that asked reports it with its own context.
        """
        current = url
        for number in range(self.settings.max_redirects + 1):
            try:
                target = httpx.URL(current)
            except httpx.InvalidURL as exc:
                redirect = "redirect to " if number else ""
                raise FetchError(self.url, f"invalid {redirect}URL {current}: {exc}") from exc
            hop = Hop(current, target, number, for_robots)
            try:
                for step in self.steps:
                    await step(self, hop)
                reply = await self.attempts(hop, known=known, max_bytes=max_bytes, truncate=truncate)
            except AddressRefused as exc:
                if for_robots:
                    raise
                log.warning(
                    "site=%s address refused url=%s host=%s address=%s",
                    self.site,
                    current,
                    exc.host,
                    exc.address,
                )
                raise Blocked(self.url, f"{hop.prefix}private address {exc.address} refused") from exc
            location = reply.headers.get("Location")
            if reply.status not in REDIRECTS or not location:
                return reply
            try:
                current = _redirect_target(target, location)
            except (httpx.InvalidURL, ValueError) as exc:
                raise FetchError(self.url, f"invalid redirect Location {location!r}") from exc
            log.debug(
                "site=%s redirect url=%s status=%d location=%s", self.site, reply.url, reply.status, current
            )
        raise FetchError(self.url, f"too many redirects ({self.settings.max_redirects})")

    async def robots_refusal(self, url: str) -> str | None:
        async def load(robots_url: str) -> RobotsFile:
            # Same client, gates and deadline as the page: robots.txt is part of this fetch, and
            # an error that escapes the cache (host paused) names the page, as every other does.
            reply = await self.follow(
                robots_url, known=NO_VALIDATORS, max_bytes=ROBOTS_MAX_BYTES, truncate=True, for_robots=True
            )
            return RobotsFile(reply.status, reply.body)

        return await self.robots.refusal(url, self.settings.user_agent, load=load)

    async def attempts(self, hop: Hop, *, known: Validators, max_bytes: int, truncate: bool) -> _Reply:
        """One hop with retries: 5xx (not 503 with Retry-After), 408 and the network errors that
        another try may cure (not a missing name, a TLS failure or oversized headers)."""
        tries = self.settings.retries + 1
        for attempt in range(1, tries + 1):
            try:
                reply = await self.exchange(hop, known=known, max_bytes=max_bytes, truncate=truncate)
            except httpx.TransportError as exc:
                failure = describe(exc, self.settings)
                reason = failure.reason
                if attempt == tries or not failure.retryable:
                    if attempt > 1:
                        reason += f" (after {attempt} attempts)"
                    raise FetchError(self.url, reason) from exc
            else:
                reply = replace(reply, attempts=attempt)
                if reply.status in (429, 503) and (value := reply.headers.get("Retry-After")) is not None:
                    seconds = retry_after_seconds(value, self.now())
                    if seconds is not None:
                        host = host_key(hop.target.host)
                        pause = await self.pauses.pause(host, seconds)
                        log.warning(
                            "site=%s host paused host=%s until=%s",
                            self.site,
                            host,
                            f"{pause.until:%Y-%m-%dT%H:%M:%SZ}",
                        )
                        raise Blocked(self.url, f"HTTP {reply.status}: {pause.reason()}")
                if not _retryable(reply.status) or attempt == tries:
                    return reply
                reason = f"HTTP {reply.status}"
            wait = self.backoff(attempt)
            log.warning(
                "site=%s fetch retry url=%s attempt=%d reason=%s wait=%.2f",
                self.site,
                hop.url,
                attempt,
                reason,
                wait,
            )
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def exchange(self, hop: Hop, *, known: Validators, max_bytes: int, truncate: bool) -> _Reply:
        """One request: wait for the host's turn and a global slot, then send and read within the
        deadline; logs one DEBUG line for it, whatever the outcome."""
        headers = {}
        if known.etag:
            headers["If-None-Match"] = known.etag
        if known.last_modified:
            headers["If-Modified-Since"] = known.last_modified
        status: int | str = "-"
        body = b""
        outcome = ""
        url = hop.url
        host = host_key(hop.target.host)
        async with self.gates.turn(host, self.delay, check=lambda: self.pauses.check(self.url, host)):
            started = time.perf_counter()
            try:
                async with self.budget.running():
                    client, transport = self.route
                    request = client.build_request("GET", hop.target, headers=headers)
                    response = await transport.handle_async_request(request)
                    status = response.status_code
                    try:
                        if 200 <= response.status_code < 300:
                            body = await read_body(
                                response, url=self.url, max_bytes=max_bytes, truncate=truncate
                            )
                        elif _short(response):
                            # A redirect's or error's small body, read and dropped: a connection closed
                            # mid-body cannot serve the next request to this host.
                            async for _ in response.aiter_raw():
                                pass
                    finally:
                        await response.aclose()
            except httpx.TransportError as exc:
                outcome = f" reason={describe(exc, self.settings).reason}"
                raise
            except (FetchError, AddressRefused) as exc:
                outcome = f" reason={exc.reason if isinstance(exc, FetchError) else 'address refused'}"
                raise
            finally:
                log.debug(
                    "site=%s fetch method=GET url=%s status=%s bytes=%d ms=%d%s",
                    self.site,
                    url,
                    status,
                    len(body),
                    (time.perf_counter() - started) * 1000,
                    outcome,
                )
        return _Reply(url, response.status_code, response.headers, body, response.charset_encoding)
