"""The daemon: config dir -> lock + store + scheduler (schedule.py) + HTTP server (serve.py) in one asyncio loop.

`run_daemon(config_dir)` is what `feedmaker run` (without --once) calls. `open_session(settings)` sets up and
tears down what `run --once` and the daemon both need: the state lock (one feedmaker per state directory),
the store, a fetcher carrying earlier runs' politeness state and the page worker processes (workers.py).
SIGTERM/SIGINT stop scheduling, give running crawls up to 5 s, stop the server, the page workers and the
store, all within 10 s, and the exit code is 0. A broken site file (a bad schedule, a typo) costs only that
site, at start-up and on reload: its problems are logged as `file:line: key: problem` and it shows as
failing on the status page and in /healthz (`degraded`); only a broken feedmaker.toml, or no valid site at
all, stops start-up. SIGHUP reloads the config: validated first (a broken feedmaker.toml keeps the whole
running config and is logged; a broken site file keeps that site's running config, if it had one), then
added, removed and rescheduled sites and the combined feeds take effect at once; settings read only at
start-up (state and output dirs, [server], [fetch], [limits], log_level) are logged as needing a restart.

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
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from feedmaker.config import Settings, SiteConfig, check_config, listen_url
from feedmaker.config_problems import combined
from feedmaker.errors import ConfigError, FeedmakerError, LockedError

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from feedmaker.fetch import Fetcher
    from feedmaker.schedule import SiteRunner
    from feedmaker.serve import SiteStatus, Status
    from feedmaker.store import Store
    from feedmaker.workers import PagePool

__all__ = [
    "DB_NAME",
    "LOCK_NAME",
    "Daemon",
    "Runnable",
    "Session",
    "by_site",
    "listen",
    "load_runnable",
    "log_broken",
    "loop_factory",
    "loop_name",
    "open_session",
    "run_daemon",
    "site_statuses",
    "state_lock",
]

log = logging.getLogger(__name__)

LOCK_NAME = "feedmaker.lock"
DB_NAME = "feedmaker.db"
DRAIN_SECONDS = 5.0  # running crawls get this long to finish at shutdown, then they are cancelled
SERVER_GRACE_SECONDS = 2  # open HTTP responses get this long at shutdown
# Settings read once at start-up; a reload that changes them logs that a restart is needed and keeps them.
RESTART_ONLY = ("store", "state_dir", "output_dir", "server", "fetch", "limits", "log_level")


@dataclass(frozen=True, slots=True, kw_only=True)
class Runnable:
    """load_runnable -> run --once / daemon: what can run, and the site files that cannot."""

    settings: Settings
    sites: tuple[SiteConfig, ...]
    broken: tuple[ConfigError, ...] = ()  # every problem of every broken site file; those sites do not run


def by_site(errors: Sequence[ConfigError]) -> dict[str, tuple[ConfigError, ...]]:
    """Site id (the site file's stem) -> its problems."""
    found: dict[str, tuple[ConfigError, ...]] = {}
    for error in errors:
        site = Path(error.path).stem
        found[site] = (*found.get(site, ()), error)
    return found


def load_runnable(config_dir: Path) -> Runnable:
    """The config dir as `run --once` and the daemon start it: one broken site file (a bad schedule, a
    typo) costs only that site. Raises ConfigError, naming every problem found, when feedmaker.toml or
    the combined feeds are broken (they shape every site's run) or when no site file is valid at all."""
    found = check_config(config_dir)
    sites_dir = config_dir / "sites"
    broken = tuple(e for e in found.errors if Path(e.path).parent == sites_dir)
    if found.settings is None or not found.sites or len(broken) < len(found.errors):
        raise combined(found.errors or (ConfigError(str(sites_dir), "", "no valid site file"),))
    return Runnable(settings=found.settings, sites=found.sites, broken=broken)


def log_broken(runnable: Runnable) -> None:
    for site, errors in by_site(runnable.broken).items():
        for error in errors:
            log.error("site=%s config error; the site does not run: %s", site, error)


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
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
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


@dataclass(frozen=True, slots=True)
class Session:
    """open_session -> run --once / daemon: the open store, the fetcher and the page workers."""

    store: Store
    fetcher: Fetcher
    pool: PagePool


@contextlib.asynccontextmanager
async def open_session(settings: Settings) -> AsyncIterator[Session]:
    """Hold the state lock, open the store, clear stale temp files from the output dir, start the page
    worker processes and a fetcher with the host pauses and robots.txt files of earlier runs; save those
    again and close everything on exit, the worker processes included (busy ones are killed).

    Politeness state outlives the process: a run from cron every few minutes still honours Retry-After and
    asks each host for robots.txt at most once a day.
    """
    with state_lock(settings.state_dir):
        # Imported once the lock is held: a second feedmaker on this state dir is refused before the slow imports.
        from feedmaker.feed import clean_stale_temp
        from feedmaker.fetch import Fetcher
        from feedmaker.store import open_store, store_url
        from feedmaker.workers import PagePool

        settings.output_dir.mkdir(parents=True, exist_ok=True)
        pool = PagePool(workers=settings.limits.workers, budget=settings.limits.parse_seconds)
        with open_store(store_url(settings.store, os.environ), state_dir=settings.state_dir) as store:
            clean_stale_temp(settings.output_dir)
            # A shared store also shares each host's turn and pauses, so they hold across all workers.
            shared = store if store.SHARED else None
            try:
                # Starting the forkserver imports the extraction stage there: paid once per process lifetime.
                await asyncio.to_thread(pool.start)
                async with Fetcher(settings.fetch, paused=store.host_pauses(), shared=shared) as fetcher:
                    fetcher.robots.preload(store.robots_files())
                    try:
                        yield Session(store=store, fetcher=fetcher, pool=pool)
                    finally:
                        # On the loop, but nothing is served any more: the daemon stops its server first.
                        store.save_host_pauses(fetcher.paused_hosts())
                        store.save_robots_files(fetcher.robots.snapshot())
            finally:
                await asyncio.to_thread(pool.close)


def site_statuses(
    sites: Sequence[SiteConfig],
    store: Store,
    scheduler: AsyncIOScheduler,
    runner: SiteRunner,
    entries: Mapping[str, int],
) -> list[SiteStatus]:
    """What the status page and /healthz show per site, from the store's run history, the scheduler and the
    entry counts of the feeds served (`entries`: what the feeds hold, not what the store holds)."""
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
                entries=entries.get(site.id, 0),
                next_run=upcoming,
                worker=last.worker if last and store.SHARED else None,  # alone, the worker is always this one
            )
        )
    return statuses


class Daemon:
    """The running daemon's config (held by the runner, swapped whole on SIGHUP) and what the server reads."""

    def __init__(
        self,
        config_dir: Path,
        store: Store,
        scheduler: AsyncIOScheduler,
        runner: SiteRunner,
        *,
        broken: tuple[ConfigError, ...] = (),
    ) -> None:
        self.config_dir, self.store, self.scheduler, self.runner = config_dir, store, scheduler, runner
        # Site id -> the problems of its broken file, shown as a failing site until a reload fixes it.
        self.broken = by_site(broken)

    def feeds(self) -> list[tuple[str, str]]:
        from feedmaker.publish import feed_ids

        return feed_ids(self.runner.settings, list(self.runner.sites.values()))

    def status(self) -> Status:
        """One snapshot for the status page and /healthz; reads the store, so the server calls it in a thread."""
        from feedmaker.serve import SiteStatus, Status

        settings, sites = self.runner.settings, list(self.runner.sites.values())
        unread: FeedmakerError | None = None
        try:
            # On a shared store the feeds served are the store's (any worker may have written them).
            entries = self.store.feed_entries() if self.store.SHARED else self.runner.feed_entries
            statuses = site_statuses(sites, self.store, self.scheduler, self.runner, entries)
        except FeedmakerError as exc:
            # The store is away: the page and /healthz say so, without the run history it holds.
            log.debug("status without run history reason=%s", exc)
            entries, statuses = {}, [SiteStatus(site=s.id, name=s.name) for s in sites]
            unread = exc
        # A store that cannot be read keeps nothing new either: /healthz says failing.
        failed_write = self.store.write_error or self.runner.publish_error or unread
        return Status(
            sites=tuple(with_config_errors(statuses, self.broken)),
            feed_entries=tuple((f.id, entries.get(f.id, 0)) for f in settings.feed),
            write_error=str(failed_write) if failed_write else None,
            unreachable_since=self.store.unreachable_since,
        )

    async def reload(self) -> None:
        """SIGHUP: load and validate the config dir, then apply it; on any error keep the running config."""
        from feedmaker.models import utcnow
        from feedmaker.schedule import apply_config

        try:
            found = await asyncio.to_thread(load_runnable, self.config_dir)
        except FeedmakerError as exc:
            log.error("config reload failed; keeping the running config: %s", exc)
            return
        log_broken(found)
        loaded, self.broken = found.settings, by_site(found.broken)
        # A site whose file broke while it ran keeps running as it was: a half-saved edit must not stop its
        # feed. Its problem shows on the status page until the file is fixed.
        kept = [self.runner.sites[i] for i in self.broken if i in self.runner.sites]
        if kept:
            log.warning(
                "config reload: keeping the running config of broken site(s) %s", ",".join(s.id for s in kept)
            )
        sites = sorted([*found.sites, *kept], key=lambda s: s.id)
        running = self.runner.settings
        for key in RESTART_ONLY:
            if getattr(loaded, key) != getattr(running, key):
                log.warning(
                    "config reload: %s changed; restart feedmaker to apply it (keeping the running value)",
                    key,
                )
        settings = loaded.model_copy(update={key: getattr(running, key) for key in RESTART_ONLY})
        changes = apply_config(self.scheduler, self.runner, settings, sites, now=utcnow())
        log.info(
            "config reloaded sites=%d added=%s removed=%s rescheduled=%s edited=%s feeds=%d",
            len(sites),
            ",".join(changes.added) or "-",
            ",".join(changes.removed) or "-",
            ",".join(changes.rescheduled) or "-",
            ",".join(changes.edited) or "-",
            len(settings.feed),
        )
        try:
            # Combined feeds may have changed: rewrite every feed from what is stored.
            await self.runner.publish_feeds()
        except FeedmakerError as exc:
            log.warning("publish after reload failed reason=%s", exc)

    async def reload_on(self, hup: asyncio.Event) -> None:
        """One reload at a time; signals arriving during one coalesce into the next."""
        while True:
            await hup.wait()
            hup.clear()
            try:
                await self.reload()
            except Exception:
                log.exception("config reload crashed; keeping the running config")


def with_config_errors(
    statuses: Sequence[SiteStatus], broken: dict[str, tuple[ConfigError, ...]]
) -> list[SiteStatus]:
    """The statuses with each broken site file's problems as errors (failing), broken sites not running added."""
    from feedmaker.serve import SiteStatus

    shown = []
    for status in statuses:
        problems = tuple(f"config error: {e}" for e in broken.get(status.site, ()))
        shown.append(replace(status, errors=(*problems, *status.errors)) if problems else status)
    running = {s.site for s in statuses}
    shown += [
        SiteStatus(site=site, name=site, errors=tuple(f"config error: {e}" for e in errors))
        for site, errors in sorted(broken.items())
        if site not in running
    ]
    return shown


async def serve_and_schedule(
    config_dir: Path,
    settings: Settings,
    sites: Sequence[SiteConfig],
    session: Session,
    sock: socket.socket,
    *,
    verbose: int = 0,
    broken: tuple[ConfigError, ...] = (),
) -> int:
    """Run until SIGTERM/SIGINT (or the server dies); SIGHUP reloads the config. Returns the exit code."""
    from feedmaker.crawl import crawl_site
    from feedmaker.models import utcnow
    from feedmaker.schedule import SiteRunner, add_site_jobs, make_scheduler
    from feedmaker.serve import StoredFeeds, make_app, make_server

    loop = asyncio.get_running_loop()
    stop, hup = asyncio.Event(), asyncio.Event()
    scheduler = make_scheduler()
    runner = SiteRunner(
        settings,
        sites,
        fetcher=session.fetcher,
        store=session.store,
        crawl=partial(crawl_site, pool=session.pool),
    )
    daemon = Daemon(config_dir, session.store, scheduler, runner, broken=broken)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup.set)
    try:
        # Feeds from what is stored, before any crawl: a fresh output dir is served at once.
        await runner.publish_feeds()
        add_site_jobs(scheduler, runner, sites, first_run=utcnow())
        host, port = sock.getsockname()[:2]
        if not settings.server.base_url and host in ("0.0.0.0", "::"):
            log.warning(
                "server listens on %s without [server] base_url: /opml names that address, which other machines cannot reach; set base_url",
                host,
            )
        # On a shared store every instance serves the feeds kept there, whichever worker published them.
        stored = StoredFeeds(session.store) if session.store.SHARED else None
        app = make_app(settings, daemon.feeds, daemon.status, listening=listen_url(host, port), stored=stored)
        server = make_server(app, verbose=verbose, grace=SERVER_GRACE_SECONDS)
        scheduler.start()
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        reloading = asyncio.create_task(daemon.reload_on(hup))
        log.info(
            "daemon started pid=%d sites=%d url=http://%s:%d state=%s loop=%s",
            os.getpid(),
            len(sites),
            host,
            port,
            settings.state_dir,
            loop_name(loop),
        )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        code = 0 if stop.is_set() else 1
        if not stop.is_set():
            log.error("server stopped unexpectedly; shutting down")
        stopping.cancel()
        reloading.cancel()

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
        return code
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (a dependency where it builds), else None: asyncio's own.

    The daemon's one loop serves HTTP, drives every fetch and hands work to the page workers and the store
    thread; uvloop (libuv, in C) costs less per callback, socket read and timer than asyncio's pure-Python
    selector loop: less loop CPU per request and per fetch (benchmarks/serve.py compares both loops)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run_daemon(config_dir: Path, *, verbose: int = 0) -> int:
    """`feedmaker run`: crawl every site on its schedule and serve the feeds until SIGTERM/SIGINT.

    Raises ConfigError for a bad config, LockedError when another feedmaker holds the state directory and
    FeedmakerError when the server port cannot be bound; returns 0 after a clean stop.
    """
    # Until the loop's handler is in place a SIGHUP (an early `systemctl reload`) must not kill the daemon;
    # the config it would reload is read next anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    found = load_runnable(config_dir)
    log_broken(found)
    settings, sites = found.settings, list(found.sites)

    async def main() -> int:
        async with open_session(settings) as session:
            sock = listen(settings.server.host, settings.server.port)
            with contextlib.closing(sock):
                return await serve_and_schedule(
                    config_dir, settings, sites, session, sock, verbose=verbose, broken=found.broken
                )

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        code = runner.run(main())
    log.info("daemon stopped code=%d", code)
    return code
