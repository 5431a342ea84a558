"""Command line: args -> library call -> exit code.

  feedmaker run [--once]          crawl every site (once, or as a daemon serving the feeds)
  feedmaker check SITE            dry run: what each selector extracts, item by item
  feedmaker validate              lint every config file
  feedmaker suggest URL|FILE      propose a site config for a listing page

Exit codes: 0 ok, 1 a site or command failed, 2 a config error.

`run --once` crawls every valid site even when some site files are broken (it prints their problems and
exits 2 after the run); a broken feedmaker.toml, or no valid site file, stops it before anything runs.
SIGTERM or SIGINT during `run --once` starts no new work, cancels the sites still running, writes the feeds
of the sites that finished (what they stored is committed) and exits 1 naming the unfinished sites.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from feedmaker import __version__
from feedmaker.config import Settings, SiteConfig, check_config, load_settings, load_site
from feedmaker.config_problems import combined
from feedmaker.errors import ConfigError, FeedmakerError
from feedmaker.fetch.transport import raise_descriptor_limit
from feedmaker.models import NotModified, Page, SiteReport

__all__ = ["main"]

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedmaker", description="Turn web pages into Atom feeds.")
    parser.add_argument("--version", action="version", version=f"feedmaker {__version__}")
    parser.add_argument(
        "--config", type=Path, default=Path("config"), help="config directory (default: ./config)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: feedmaker's debug lines (one per request); -vv: libraries' too",
    )
    # The same options after the command too (`feedmaker run --once --config DIR`); SUPPRESS keeps the
    # top-level value when they are not repeated there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="config directory (default: ./config)"
    )
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", parents=[common], help="crawl every site; without --once, run as a daemon serving the feeds"
    )
    run.add_argument("--once", action="store_true", help="crawl every site once, write the feeds and exit")
    run.add_argument("--site", action="append", default=[], help="only this site (repeatable)")

    check = sub.add_parser("check", parents=[common], help="dry run of one site's selectors; stores nothing")
    check.add_argument("site", help="site id (config/sites/<id>.toml) or path to a site file")
    source = check.add_mutually_exclusive_group()
    source.add_argument("--html", type=Path, help="read the listing page from this file")
    source.add_argument("--url", help="fetch this URL instead of the first start URL")
    check.add_argument(
        "--article", action="store_true", help="also follow the first item to its article page"
    )
    check.add_argument(
        "--json", action="store_true", help="print the report as JSON (values in full, origins, fill counts)"
    )
    check.add_argument(
        "--full", action="store_true", help="show values in full instead of shortened to 70 characters"
    )

    sub.add_parser("validate", parents=[common], help="lint every config file")

    suggest = sub.add_parser("suggest", parents=[common], help="propose a site config for a listing page")
    suggest.add_argument("source", help="URL or HTML file of a listing page")
    suggest.add_argument("--name", help="site name to put in the config")
    suggest.add_argument("--url", help="with a FILE: the page's real address (links resolve against it)")
    suggest.add_argument(
        "--allow-private", action="store_true", help="with a URL: allow loopback/private addresses (intranet)"
    )
    return parser


def _setup_logging(level: str, verbose: int) -> None:
    """-v shows feedmaker's own DEBUG lines (one per request, each store decision); -vv adds every
    library's debug (httpx, httpcore, apscheduler, ...). Without -v, httpx's INFO line per request is hidden."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    # Set even when basicConfig found handlers already (a second main() in one process, pytest).
    logging.getLogger().setLevel("DEBUG" if verbose >= 2 else level)
    logging.getLogger("feedmaker").setLevel("DEBUG" if verbose >= 1 else logging.NOTSET)
    for library in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(library).setLevel("DEBUG" if verbose >= 2 else "WARNING")
    # psycopg_pool warns at each failed reconnection attempt; the store logs one line per outage instead.
    logging.getLogger("psycopg.pool").setLevel("DEBUG" if verbose >= 2 else "ERROR")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            raise_descriptor_limit()  # a pool per host in play: a soft limit of 1024 would bound reuse
            if not args.once:
                from feedmaker.daemon import run_daemon

                _setup_logging(load_settings(args.config / "feedmaker.toml").log_level, args.verbose)
                return run_daemon(args.config, verbose=args.verbose)
            return _run_once(args.config, args.site, args.verbose)
        if args.command == "check":
            return _check(args)
        if args.command == "validate":
            return _validate(args.config)
        if args.command == "suggest":
            return _suggest(args)
    except ConfigError as exc:
        for error in exc.errors:
            print(f"config error: {error}", file=sys.stderr)
        return 2
    except FeedmakerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `feedmaker check … | head`: the reader left; say nothing more.
        sys.stderr.close()
        return 0
    raise AssertionError(args.command)


def _selected(sites: list[SiteConfig], wanted: list[str]) -> list[SiteConfig]:
    if not wanted:
        return sites
    known = {s.id for s in sites}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ConfigError("--site", "", f"unknown site(s) {unknown}; known: {sorted(known)}")
    return [s for s in sites if s.id in wanted]


class Progress:
    """One line per finished site on a terminal, so a long run shows it is alive."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.done, self.out = total, 0, out

    def __call__(self, report: SiteReport) -> None:
        self.done += 1
        if self.out.isatty():
            state = "ok" if report.ok else "FAILED"
            print(
                f"[{self.done}/{self.total}] {report.site}: {state} new={report.new} ({report.seconds:.1f} s)",
                file=self.out,
            )


def _run_once(config_dir: Path, wanted: list[str], verbose: int) -> int:
    from feedmaker.crawl import crawl_all
    from feedmaker.daemon import load_runnable, log_broken, open_session

    found = load_runnable(config_dir)
    settings, all_sites = found.settings, list(found.sites)
    # With --site, only the named sites' files count; a named broken one is reported, the rest still run.
    broken = tuple(e for e in found.broken if not wanted or Path(e.path).stem in wanted)
    runnable = [w for w in wanted if w not in {Path(e.path).stem for e in broken}]
    if wanted and not runnable:
        raise combined(broken)
    sites = _selected(all_sites, runnable)
    _setup_logging(settings.log_level, verbose)
    log_broken(replace(found, broken=broken))

    skipped: list[str] = []

    async def go() -> list[SiteReport]:
        from feedmaker.leases import Leases

        # As in the daemon: a signal stops the run cleanly instead of killing it with the finished feeds unwritten.
        loop, stop = asyncio.get_running_loop(), asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with open_session(settings) as session:
                # On a shared store each site's run for its current slot is claimed as a daemon claims it, so
                # `run --once` from cron on several machines (and daemons) run each site once per slot.
                leases = Leases(session.store, on_skip=skipped.append) if session.store.SHARED else None
                return await crawl_all(
                    settings,
                    sites,
                    fetcher=session.fetcher,
                    store=session.store,
                    pool=session.pool,
                    on_done=Progress(len(sites), sys.stderr),
                    all_sites=all_sites,
                    stop=stop,
                    hold=leases.hold if leases is not None else None,
                )
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    reports = asyncio.run(go())
    _print_summary(reports, settings)
    failed = [r.site for r in reports if not r.ok]
    finished = {r.site for r in reports}
    unfinished = [s.id for s in sites if s.id not in finished and s.id not in skipped]
    if skipped:
        print(f"run by other workers this slot: {', '.join(skipped)}", file=sys.stderr)
    if failed:
        print(f"failed sites: {', '.join(failed)}", file=sys.stderr)
        if reports and all(not r.ok and r.pages == 0 for r in reports):
            # Most often an offline machine: the shipped example sites are all on the internet.
            print(
                "hint: no site gave a single page; these sites need the internet (`make demo` runs offline)",
                file=sys.stderr,
            )
    if unfinished:
        print(f"stopped by a signal; unfinished sites: {', '.join(unfinished)}", file=sys.stderr)
    if broken:
        for error in broken:
            print(f"config error: {error}", file=sys.stderr)
        return 2
    return 1 if failed or unfinished else 0


def _print_summary(reports: list[SiteReport], settings: Settings) -> None:
    rows = [("site", "status", "pages", "items", "new", "upd", "dup", "secs")]
    for r in reports:
        status = "ok" if r.ok else "FAILED"
        rows.append(
            (
                r.site,
                status,
                str(r.pages),
                str(r.items),
                str(r.new),
                str(r.updated),
                str(r.duplicates),
                f"{r.seconds:.1f}",
            )
        )
    _table(rows, sys.stdout)
    for r in reports:
        for err in r.errors:
            print(f"  {r.site}: error: {err}")
        for warning in r.warnings:
            print(f"  {r.site}: warning: {warning}")
    print(f"feeds written to {settings.output_dir}")


def _table(rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _validate(config_dir: Path) -> int:
    """Every problem of every file, one `file:line: key: problem` line each (what editors and CI parse)."""
    found = check_config(config_dir)
    for site in found.sites:
        print(
            f"ok  {site.path}  ({site.name}, {len(site.start_urls)} start URL(s), schedule {site.schedule.text})"
        )
    if found.errors:
        for error in found.errors:
            print(error, file=sys.stderr)
        files = len({e.path for e in found.errors})
        print(f"config error: {len(found.errors)} problem(s) in {files} file(s)", file=sys.stderr)
        return 2
    assert found.settings is not None
    print(f"{len(found.sites)} site(s), {len(found.settings.feed)} combined feed(s): all valid")
    return 0


def _load_check_site(config_dir: Path, ref: str) -> SiteConfig:
    path = Path(ref)
    if path.suffix == ".toml" or path.is_file():
        return load_site(path)
    candidate = config_dir / "sites" / f"{ref}.toml"
    if not candidate.exists():
        raise ConfigError(str(candidate), "", "no such site file")
    return load_site(candidate)


def _check(args: argparse.Namespace) -> int:
    from feedmaker.fetch import Fetcher
    from feedmaker.report import build_report, render_json, render_text

    settings = load_settings(args.config / "feedmaker.toml")
    site = _load_check_site(args.config, args.site)
    _setup_logging(settings.log_level, args.verbose)

    async def fetch(url: str) -> Page:
        async with Fetcher(settings.fetch) as fetcher:
            result = await fetcher.fetch(url, allow_private=site.allow_private_network)
        assert not isinstance(result, NotModified)  # no validators sent, so no 304
        return result

    if args.html:
        try:
            body = args.html.read_bytes()
        except OSError as exc:
            print(f"error: --html {args.html}: cannot read: {exc.strerror}", file=sys.stderr)
            return 2
        page = Page(url=args.url or site.start_urls[0], body=body, encoding=None)
    else:
        page = asyncio.run(fetch(args.url or site.start_urls[0]))
    follow = None
    if args.article:
        follow = (lambda url: page) if args.html else (lambda url: asyncio.run(fetch(url)))
        if args.html and not args.json:
            print("(--article with --html: the article page is not fetched; showing listing page fallbacks)")
    report = build_report(site, page, follow=follow)
    print(render_json(report) if args.json else render_text(report, width=None if args.full else 70))
    return 0 if report.ok else 1


def _suggest(args: argparse.Namespace) -> int:
    from feedmaker.suggest import suggest

    source: str = args.source
    if source.startswith(("http://", "https://")):
        from feedmaker.extract import decode_html
        from feedmaker.fetch import Fetcher

        settings = load_settings(args.config / "feedmaker.toml")

        async def fetch() -> Page:
            async with Fetcher(settings.fetch) as fetcher:
                result = await fetcher.fetch(source, allow_private=args.allow_private)
            assert not isinstance(result, NotModified)
            return result

        page = asyncio.run(fetch())
        html, url = decode_html(page.body, page.encoding), page.url
    else:
        from feedmaker.extract import decode_html

        if not args.url:
            raise ConfigError(
                "suggest", "--url", "give the page's address with a FILE: links resolve against it"
            )
        try:
            html, url = decode_html(Path(source).read_bytes(), None), args.url
        except OSError as exc:
            raise ConfigError(source, "", f"cannot read: {exc.strerror}") from exc
    suggestion = suggest(html, url)
    print(suggestion.to_toml(args.name))
    return 0
