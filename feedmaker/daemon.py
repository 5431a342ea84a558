"""The daemon: config dir -> lock + store + scheduler (schedule.py) + HTTP server (serve.py) in one asyncio loop.

`run_daemon(config_dir)` is what `feedmaker run` (without --once) calls. One daemon per state directory
(`state_lock`, also taken by `run --once`). SIGTERM/SIGINT stop scheduling, give running crawls up to 5 s,
stop the server and close the store, all within 10 s, and the exit code is 0.

The stages are imported only once the lock is held: they take most of a second to import, and a second
daemon on the same state directory must be refused at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from feedmaker.config import Settings, SiteConfig, load_all
from feedmaker.errors import FeedmakerError, LockedError

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from feedmaker.schedule import SiteRunner
    from feedmaker.serve import SiteStatus
    from feedmaker.store import Store

log = logging.getLogger(__name__)

LOCK_NAME = "feedmaker.lock"
DB_NAME = "feedmaker.db"
DRAIN_SECONDS = 5.0  # running crawls get this long to finish at shutdown, then they are cancelled
SERVER_GRACE_SECONDS = 2  # open HTTP responses get this long at shutdown


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive flock on <state_dir>/feedmaker.lock; raise LockedError at once if another process has it.

    The kernel drops a flock when its holder dies, so a crashed daemon never leaves a stale lock behind.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise LockedError(f"another feedmaker is running on {state_dir} (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def listen(host: str, port: int) -> socket.socket:
    """Bind the server socket before anything starts, so a taken port fails fast with a clear error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise FeedmakerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise FeedmakerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


def site_statuses(
    sites: Sequence[SiteConfig], store: Store, scheduler: AsyncIOScheduler, runner: SiteRunner
) -> list[SiteStatus]:
    """What the status page and /healthz show, read from the store's run history and the scheduler."""
    from feedmaker.schedule import next_run
    from feedmaker.serve import SiteStatus

    statuses = []
    for site in sites:
        last = store.last_run(site.id)
        good = store.last_good_run(site.id)
        upcoming = next_run(scheduler, site.id)
        retry = runner.retry_after(site.id)
        if upcoming is not None and retry is not None:
            upcoming = max(upcoming, retry)
        statuses.append(
            SiteStatus(
                site=site.id,
                name=site.name,
                last_run=last.finished if last else None,
                items=last.items if last else 0,
                not_modified=last.not_modified if last else 0,
                new=last.new if last else 0,
                errors=tuple(last.errors) if last else (),
                warnings=tuple(last.warnings) if last else (),
                failures=store.consecutive_failures(site.id),
                last_good=good.finished if good else None,
                entries=store.entry_count(site.id),
                next_run=upcoming,
            )
        )
    return statuses


async def serve_and_schedule(
    settings: Settings, sites: Sequence[SiteConfig], store: Store, sock: socket.socket, *, verbose: int = 0
) -> int:
    """Run until SIGTERM/SIGINT (or the server dies). Returns the exit code."""
    from feedmaker.crawl import feed_ids
    from feedmaker.fetch import Fetcher
    from feedmaker.models import utcnow
    from feedmaker.schedule import SiteRunner, add_site_jobs, make_scheduler
    from feedmaker.serve import make_app, make_server

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Fetcher(settings.fetch, paused=store.host_pauses()) as fetcher:
            fetcher.robots.preload(store.robots_files())
            scheduler = make_scheduler()
            runner = SiteRunner(settings, sites, fetcher=fetcher, store=store)
            add_site_jobs(scheduler, runner, sites, first_run=utcnow())
            app = make_app(settings, feed_ids(settings, sites), lambda: site_statuses(sites, store, scheduler, runner))
            server = make_server(app, verbose=verbose, grace=SERVER_GRACE_SECONDS)
            scheduler.start()
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            host, port = sock.getsockname()[:2]
            log.info("daemon started pid=%d sites=%d url=http://%s:%d state=%s", os.getpid(), len(sites), host, port, settings.state_dir)
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            code = 0 if stop.is_set() else 1
            if not stop.is_set():
                log.error("server stopped unexpectedly; shutting down")
            stopping.cancel()

            log.info("daemon stopping: %d crawl(s) in flight", runner.in_flight)
            scheduler.pause()
            cancelled = await runner.drain(DRAIN_SECONDS)
            if cancelled:
                log.warning("daemon cancelled %d crawl(s) still running after %.0fs", cancelled, DRAIN_SECONDS)
            scheduler.shutdown(wait=False)
            server.should_exit = True
            try:
                await asyncio.wait_for(serving, timeout=SERVER_GRACE_SECONDS + 1)
            except TimeoutError:
                log.warning("server did not stop in time")
            except Exception:
                log.exception("server failed")
                code = 1
            await asyncio.sleep(0)  # let the scheduler's deferred shutdown run
            store.save_host_pauses(fetcher.paused_hosts())
            store.save_robots_files(fetcher.robots.snapshot())
        return code
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_daemon(config_dir: Path, *, verbose: int = 0) -> int:
    """`feedmaker run`: crawl every site on its schedule and serve the feeds until SIGTERM/SIGINT.

    Raises ConfigError for a bad config, LockedError when another feedmaker holds the state directory and
    FeedmakerError when the server port cannot be bound; returns 0 after a clean stop.
    """
    settings, sites = load_all(config_dir)
    with state_lock(settings.state_dir):
        from feedmaker.crawl import publish
        from feedmaker.feed import clean_stale_temp
        from feedmaker.store import Store

        sock = listen(settings.server.host, settings.server.port)
        with contextlib.closing(sock), Store(settings.state_dir / DB_NAME) as store:
            settings.output_dir.mkdir(parents=True, exist_ok=True)
            clean_stale_temp(settings.output_dir)
            # Feeds from what is stored, before any crawl: a fresh output dir is served at once.
            publish(settings, sites, store)
            code = asyncio.run(serve_and_schedule(settings, sites, store, sock, verbose=verbose))
    log.info("daemon stopped code=%d", code)
    return code
