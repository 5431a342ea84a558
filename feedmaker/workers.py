"""Page work off the event loop: Page (+ SiteConfig) -> Listing / Article, in worker processes with a time budget.

Decoding, parsing, extraction and sanitising of one page (user regexes included) are pure CPU work of
unbounded cost on hostile input: `"<div>" * 200000` costs minutes. On the loop that serves HTTP they would
stall the daemon, and a thread cannot be stopped. So `PagePool` runs each page in one of a few worker
processes and kills the worker whose page passes `[limits] parse_seconds`; a fresh one takes its place and
the page's caller gets `ParseAborted` naming the URL and the budget.

Workers come from the "forkserver" start method, never "fork": the daemon has threads (the store's, the
scheduler's, asyncio's), and a forked copy of a lock held by one of them would hang the child. The
forkserver imports the extraction stage once, so a replacement worker starts in milliseconds.
Each worker is driven by one thread of the pool's own executor, which waits on its pipe: the loop only
awaits that thread's future.

A listing comes back with the canonical keys of its items (`keyed_listing`): the URL that identifies each
item in the store and the key of its headline. They are pure Python per item, so computed here, in the
worker beside the daemon, instead of under the daemon's one GIL every run of every site.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import queue
import resource
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from feedmaker.canon import headline_key
from feedmaker.config import SiteConfig
from feedmaker.errors import FeedmakerError, ParseAborted
from feedmaker.extract import extract_article, extract_listing
from feedmaker.models import Article, Listing, Page
from feedmaker.urls import item_url_key

__all__ = [
    "MAX_WORKERS",
    "KeyedListing",
    "PagePool",
    "default_workers",
    "keyed_listing",
    "with_keys",
]

log = logging.getLogger(__name__)

MAX_WORKERS = 8  # each worker holds a parsed page in memory; more than this buys nothing on a feed crawler
_STOP_GRACE = 1.0  # seconds a worker gets to exit after its pipe closes before it is killed

T = TypeVar("T")
# A job's log records: (logger name, level, message). A worker answers each job with ("ok", result, records)
# or ("error", the exception's parts, records).
_Records = list[tuple[str, int, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyedListing:
    """A listing with its items' keys, in item order (see the module docstring)."""

    listing: Listing
    url_keys: tuple[str, ...]  # item_url_key of each item's URL
    keys: tuple[str, ...]  # headline_key of each item's headline


def keyed_listing(page: Page, site: SiteConfig) -> KeyedListing:
    return with_keys(extract_listing(page, site), site)


def with_keys(listing: Listing, site: SiteConfig) -> KeyedListing:
    return KeyedListing(
        listing=listing,
        url_keys=tuple(item_url_key(item.url) for item in listing.items),
        keys=tuple(headline_key(site, item.headline) for item in listing.items),
    )


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


class _Collect(logging.Handler):
    """In a worker: keep each job's log records, to be logged again by the parent (one log, one format)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))
        self.records: _Records = []

    def emit(self, record: logging.LogRecord) -> None:
        # format() appends the traceback of a record logged with exc_info: a worker's bug reaches the log whole.
        self.records.append((record.name, record.levelno, self.format(record)))


def _limit_cpu(budget: float) -> None:
    """Let the kernel end this process (SIGXCPU) once the next job has used `budget` CPU seconds and a bit.

    The parent kills a worker over budget by wall clock; this catches the case where the parent cannot,
    because it died (SIGKILL, or SIGTERM to `run --once`) while the worker was busy: an orphan stops soon
    instead of parsing on for minutes. Only the soft limit moves: an unprivileged process may raise it again."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + budget) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _serve(conn: Connection, level: int, budget: float) -> None:
    """A worker's main loop: run jobs from the pipe until it closes."""
    # Ctrl-C reaches the whole process group; the parent decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGXCPU (see _limit_cpu) would dump core by default: a page worker's memory is a page, not a bug report.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    collect = _Collect()
    root = logging.getLogger()
    root.handlers[:] = [collect]
    root.setLevel(level)
    while True:
        try:
            func, args = conn.recv()
        except (EOFError, OSError):
            return
        collect.records = []
        _limit_cpu(budget)
        try:
            reply: tuple[Any, ...] = ("ok", func(*args), collect.records)
        except Exception as exc:
            reply = ("error", _parts(exc), collect.records)
        try:
            conn.send(reply)
        except Exception as exc:  # a result that does not pickle is a bug, reported as one
            conn.send(("error", _parts(RuntimeError(f"unpicklable result: {exc}")), collect.records))


def _parts(exc: Exception) -> tuple[type[Exception], tuple[Any, ...], dict[str, Any]]:
    """An exception as picklable parts. Our errors' __init__ takes other arguments than their `args`, so the
    default pickling could not rebuild them; bugs carry the worker's traceback as a note."""
    if not isinstance(exc, FeedmakerError):
        exc.add_note("in a page worker:\n" + "".join(traceback.format_exception(exc)).rstrip())
    return type(exc), exc.args, dict(getattr(exc, "__dict__", {}))


def _rebuild(cls: type[Exception], args: tuple[Any, ...], attrs: dict[str, Any]) -> Exception:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(attrs)
    return exc


class _Worker:
    """One worker process and the parent's end of its pipe; used by one executor thread at a time."""

    def __init__(self, context: ForkServerContext, level: int, budget: float) -> None:
        self.context, self.level, self.budget = context, level, budget
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None

    def start(self) -> None:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(
            target=_serve, args=(theirs, self.level, self.budget), name="feedmaker-page-worker", daemon=True
        )
        process.start()
        theirs.close()
        self.process, self.conn = process, ours

    def stop(self) -> None:
        """Close the pipe (a worker between jobs exits on that) and kill it if it is still busy."""
        process, conn = self.process, self.conn
        self.process = self.conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(_STOP_GRACE)
            if process.is_alive():
                process.kill()
                process.join()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def call(self, func: Callable[..., T], args: tuple[Any, ...], budget: float, url: str) -> tuple[Any, ...]:
        """Run one job; on a timeout or a dead worker, kill the worker and raise ParseAborted."""
        conn, process = self.conn, self.process
        if conn is None or process is None:
            raise ParseAborted(url, "page worker not running")
        try:
            conn.send((func, args))
            if conn.poll(budget):
                reply: tuple[Any, ...] = conn.recv()
                return reply
            reason = f"page took more than {budget:g} s to parse"
        except (EOFError, OSError):
            process.join(_STOP_GRACE)
            reason = f"page worker died (exit code {process.exitcode}) while parsing"
        process.kill()
        raise ParseAborted(url, reason)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


class PagePool:
    """A few worker processes that extract pages, each page within `budget` seconds (wall clock).

    Use as a context manager (`with PagePool(...) as pool`) or call start()/close(); start() pays for the
    forkserver and the workers once, so call it outside the loop's hot path (open_session does, in a thread).
    """

    def __init__(self, *, workers: int | None = None, budget: float = 10.0) -> None:
        self.size = max(1, min(workers or default_workers(), MAX_WORKERS))
        self.budget = budget
        self._context = multiprocessing.get_context("forkserver")
        # The forkserver imports these once; every worker forked from it has them already.
        self._context.set_forkserver_preload(["feedmaker.extract"])
        level = logging.getLogger("feedmaker").getEffectiveLevel()
        self._workers = [_Worker(self._context, level, budget) for _ in range(self.size)]
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="feedmaker-page")
        self._lock = threading.Lock()  # guards _busy and _closed
        self._busy: set[_Worker] = set()
        self._closed = False

    def __enter__(self) -> PagePool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for worker in self._workers:
            worker.start()
            self._idle.put(worker)

    def close(self) -> None:
        """Stop every worker, busy or not, and the threads that drive them; no process outlives this."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # A busy worker is killed first, so the thread waiting on its pipe returns at once.
            for worker in self._busy:
                worker.kill()
        self._threads.shutdown(wait=True, cancel_futures=True)
        for worker in self._workers:
            worker.stop()

    def pids(self) -> list[int]:
        """The worker processes' ids, for the status of a running daemon and for tests."""
        return [w.process.pid for w in self._workers if w.process is not None and w.process.pid is not None]

    async def listing(self, page: Page, site: SiteConfig) -> Listing:
        listing: Listing = await self.run(extract_listing, page, site, url=page.url)
        return listing

    async def keyed_listing(self, page: Page, site: SiteConfig) -> KeyedListing:
        keyed: KeyedListing = await self.run(keyed_listing, page, site, url=page.url)
        return keyed

    async def article(
        self, page: Page, site: SiteConfig, item: Article, *, generic_headline: bool = False
    ) -> Article:
        article: Article = await self.run(extract_article, page, site, item, generic_headline, url=page.url)
        return article

    async def run(self, func: Callable[..., T], *args: Any, url: str) -> T:
        """`func(*args)` in a worker process: its result, or its exception raised here. `func` and the
        arguments must pickle (a module-level function; frozen dataclasses and config models do).
        Cancelling the caller leaves the job to finish (or time out) in its worker, which then serves again."""
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(self._threads, self._call, func, args, url)
        kind, value, records = reply
        for name, level, message in records:
            logging.getLogger(name).log(level, "%s", message)
        if kind == "error":
            raise _rebuild(*value)
        result: T = value
        return result

    def _call(self, func: Callable[..., T], args: tuple[Any, ...], url: str) -> tuple[Any, ...]:
        worker = self._idle.get()  # never waits long: the executor has as many threads as there are workers
        try:
            with self._lock:
                if self._closed:
                    raise FeedmakerError("page workers are shut down")
                self._busy.add(worker)
                if not worker.alive:  # died between jobs (OOM killer, a signal): start its successor
                    worker.stop()
                    worker.start()
            try:
                return worker.call(func, args, self.budget, url)
            except ParseAborted as exc:
                log.info("page worker replaced reason=%s", exc)
                with self._lock:
                    worker.stop()
                    if not self._closed:
                        worker.start()
                raise
        finally:
            with self._lock:
                self._busy.discard(worker)
            self._idle.put(worker)
