"""The orchestrator: SiteConfig -> fetch -> extract -> canon -> store -> SiteReport.

The only module that knows every stage. `crawl_site` reads top to bottom as its steps:
read listings -> partition known/new -> follow articles -> filter -> store -> summarise, each a small
function passing a frozen value to the next. One broken site never stops the others: crawl_site catches
FeedmakerError and records it in the SiteReport. Store calls run in a worker thread (the store
serialises them), so a disk sync never stalls other sites' fetches or the daemon's HTTP server, and
page extraction runs in a worker process of a PagePool (workers.py) within `[limits] parse_seconds`, with the
keys of a listing's items computed there too, so a hostile page costs its own item or site an error and
nothing else. A site run has `[limits] site_run_seconds`: article
pages not reached by then are left for the next run, as those past max_articles are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from feedmaker.canon import headline_key
from feedmaker.config import Settings, SiteConfig
from feedmaker.errors import FeedmakerError, StoreError
from feedmaker.extract import extract_article, extract_listing
from feedmaker.fetch import Fetcher
from feedmaker.models import (
    Added,
    Article,
    Duplicate,
    NotModified,
    Page,
    SiteReport,
    Updated,
    Validators,
    utcnow,
)
from feedmaker.publish import publish
from feedmaker.run_report import describe_failure, drift_warnings, fill_rates, log_report
from feedmaker.store import RunRecord, Store, is_generic_key
from feedmaker.workers import KeyedListing, PagePool, with_keys

__all__ = [
    "RUN_SHARE",
    "Deadline",
    "crawl_all",
    "crawl_site",
    "run_seconds",
]

log = logging.getLogger(__name__)

# A site run may use this share of its schedule interval at most (see run_seconds).
RUN_SHARE = 0.8

# (article, canonical headline key, canonical URL key): one sighting, as Store.add_many takes it.
Sighting = tuple[Article, str, str]


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a site run's budget runs out, on the monotonic clock."""

    seconds: float  # the budget, for messages
    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def left(self) -> float:
        return self.at - time.monotonic()


NO_DEADLINE = Deadline(math.inf, math.inf)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listings:
    """read_listings -> partition: the items by canonical URL (first sighting wins) and what reading cost."""

    items: tuple[tuple[str, Article], ...]
    keys: tuple[str, ...]  # each item's headline key, in item order, as the page worker computed it
    validators: tuple[tuple[str, Validators], ...]  # per parsed page, saved once every item is stored
    pages: int
    not_modified: int
    out_of_time: bool = False  # listing pages were left unread: the next run must not get a 304 for the first
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition:
    """partition -> follow/filter: items the store knows (listing fields only) and new ones."""

    known: tuple[Sighting, ...]
    fresh: tuple[tuple[str, Article], ...]
    keys: tuple[tuple[str, str], ...] = ()  # (url key, headline key) of fresh items, from their listing


@dataclass(frozen=True, slots=True, kw_only=True)
class Followed:
    """follow_articles -> filter: new items completed from their article pages (None: dropped)."""

    todo: tuple[tuple[str, Article], ...]
    done: tuple[Article | None, ...]  # one per todo item
    deferred: int  # new items past max_articles, left for a later run
    followed: bool  # whether article pages were fetched at all
    late: int = (
        0  # new items whose article page was not reached within the site run budget, left for a later run
    )
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Sorted:
    """filter_articles -> store: what goes to the store, what the site's filters rejected, what was left out."""

    sightings: tuple[Sighting, ...]
    rejected: tuple[str, ...]  # url keys
    left_out: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """store_sightings -> summarise: what the store made of the sightings."""

    new: int = 0
    updated: int = 0
    duplicates: int = 0


def run_seconds(site: SiteConfig, settings: Settings) -> float:
    """A site run's budget: `[limits] site_run_seconds`, and well under the site's schedule interval
    (RUN_SHARE of it; for a cron line, of the gap between fires), so that one run ends before the next is due."""
    return min(settings.limits.site_run_seconds, RUN_SHARE * site.schedule.seconds_between_runs())


async def crawl_site(
    site: SiteConfig,
    *,
    settings: Settings,
    fetcher: Fetcher,
    store: Store,
    now: Callable[[], datetime] = utcnow,
    pool: PagePool | None = None,
) -> SiteReport:
    """One run of one site. Never raises FeedmakerError: failures are in the report, which is also stored.

    `pool` extracts pages in worker processes; without one (tests, tools) extraction runs in this process."""
    deadline = Deadline.after(run_seconds(site, settings))
    started = now()
    previous = await asyncio.to_thread(store.last_good_run, site.id)
    listings: Listings | None = None
    followed: Followed | None = None
    kept: Sorted | None = None
    stored: Stored | None = None
    error: str | None = None
    try:
        listings = await read_listings(site, fetcher, store, pool=pool, deadline=deadline)
        split = await asyncio.to_thread(partition, site, listings, store)
        followed = await follow_articles(site, split.fresh, fetcher, pool=pool, deadline=deadline)
        kept = filter_articles(site, split, followed)
        stored = await asyncio.to_thread(store_sightings, site, store, listings, kept)
    except Exception as exc:
        error = describe_failure(site, exc, previous)
    report, fill = summarise(
        site,
        started=started,
        finished=now(),
        previous=previous,
        listings=listings,
        followed=followed,
        kept=kept,
        stored=stored,
        error=error,
    )
    try:
        # A run that measured nothing (304, no article pages followed) keeps the last measured rates as the baseline.
        recorded = await asyncio.to_thread(
            store.record_run, report, fill={**(previous.fill if previous else {}), **fill}
        )
        if not recorded:
            # Another worker took the slot over (this one's lease lapsed): its run is the slot's record,
            # and this one must not rewrite the feed as well. record_run logged it.
            return replace(
                report, errors=(*report.errors, "run not recorded: another worker holds its lease")
            )
    except StoreError as exc:
        # The run happened but left no trace: report it failed, so that no feed is rewritten from it.
        report = replace(report, errors=(*report.errors, f"run not recorded: {exc}"))
        if store.unreachable_since is not None:
            # The store said once that it is away; a failure line per site run would bury that line.
            log.debug("site=%s run not recorded reason=%s", site.id, exc)
            return report
    log_report(report)
    return report


async def read_listings(
    site: SiteConfig,
    fetcher: Fetcher,
    store: Store,
    *,
    pool: PagePool | None = None,
    deadline: Deadline = NO_DEADLINE,
) -> Listings:
    """Fetch every start URL and follow `list.next` up to max_pages. A start page that fails fails the
    run; a later page that fails, or that the site run budget leaves no time for, only ends that page
    chain, with a warning."""
    items: dict[str, Article] = {}
    keys: dict[str, str] = {}
    validators: dict[str, Validators] = {}
    warnings: list[str] = []
    tag = _config_tag(site)
    pages = not_modified = 0
    out_of_time = False
    for start in site.start_urls:
        url: str | None = start
        seen: set[str] = set()
        while url and url not in seen and len(seen) < site.max_pages:
            seen.add(url)
            if url != site.start_urls[0] and deadline.left() <= 0:
                warnings.append(
                    f"listing page not read: the site run budget of {deadline.seconds:g} s is used up: {url}"
                )
                out_of_time = True
                break
            try:
                known = await asyncio.to_thread(store.validators, f"{url} {tag}")
                result = await fetcher.fetch(
                    url, known=known, allow_private=site.allow_private_network, delay=site.delay, site=site.id
                )
                if isinstance(result, NotModified):
                    # Unchanged listing: its items are stored already, and later pages are unchanged too.
                    not_modified += 1
                    break
                keyed = await _listing(pool, result, site)
            except FeedmakerError as exc:
                if url == start:
                    raise
                warnings.append(f"next page skipped: {exc}")
                break
            pages += 1
            validators[f"{url} {tag}"] = result.validators
            for item, url_key, key in zip(keyed.listing.items, keyed.url_keys, keyed.keys, strict=True):
                if url_key not in items:
                    items[url_key], keys[url_key] = item, key
            url = keyed.listing.next_url
    kept = tuple(items.items())[: site.max_items]
    return Listings(
        items=kept,
        keys=tuple(keys[url_key] for url_key, _ in kept),
        validators=tuple(validators.items()),
        pages=pages,
        not_modified=not_modified,
        out_of_time=out_of_time,
        warnings=tuple(warnings),
    )


def partition(site: SiteConfig, listings: Listings, store: Store) -> Partition:
    """Split the items into known ones and new ones, leaving out those the site's filters rejected before.

    Known items go through the store too, with listing fields only: an edited headline updates its entry,
    and another site's story becomes this site's source. Their URL identifies them."""
    url_keys = [url_key for url_key, _ in listings.items]
    known, rejected = store.sort_urls(site.id, url_keys)
    seen: list[Sighting] = []
    fresh: list[tuple[str, Article]] = []
    fresh_keys: list[tuple[str, str]] = []
    for (url_key, item), key in zip(listings.items, listings.keys, strict=True):
        if url_key in known:
            # A generic listing headline is no news about a known item: it must not replace the article page's.
            if _is_generic(site, item.headline, key):
                item, key = replace(item, headline=""), headline_key(site, "")
            seen.append((item, key, url_key))
        elif url_key not in rejected:
            fresh.append((url_key, item))
            fresh_keys.append((url_key, key))
    return Partition(known=tuple(seen), fresh=tuple(fresh), keys=tuple(fresh_keys))


async def follow_articles(
    site: SiteConfig,
    fresh: Sequence[tuple[str, Article]],
    fetcher: Fetcher,
    *,
    pool: PagePool | None = None,
    deadline: Deadline = NO_DEADLINE,
) -> Followed:
    """Complete new items from their article pages: always with `[article]` selectors, and for listings
    that give no headline. New items past max_articles, and those whose page is not done when the site
    run budget runs out, wait for a later run, so each still gets its page."""
    follow = site.article is not None or any(not item.headline for _, item in fresh)
    todo = tuple(fresh[: site.max_articles] if follow else fresh)
    if not follow:
        return Followed(todo=todo, done=tuple(item for _, item in todo), deferred=0, followed=False)
    tasks = [asyncio.ensure_future(_complete(site, item, fetcher, pool)) for _, item in todo]
    try:
        if tasks:
            left = deadline.left()
            await asyncio.wait(tasks, timeout=None if left == math.inf else max(left, 0.0))
    finally:
        # Out of time (or the run itself was cancelled): the pages still in flight are given up.
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
    reached = [(pair, task.result()) for pair, task in zip(todo, tasks, strict=True) if not task.cancelled()]
    warnings = [warning for _, (_, warning) in reached if warning]
    if late := len(todo) - len(reached):
        warnings.append(
            f"{late} new item(s) left for the next run: their article pages were not done within "
            f"the site run budget of {deadline.seconds:g} s ([limits] site_run_seconds)"
        )
    return Followed(
        todo=tuple(pair for pair, _ in reached),
        done=tuple(article for _, (article, _) in reached),
        deferred=len(fresh) - len(todo),
        followed=True,
        late=late,
        warnings=tuple(warnings),
    )


async def _listing(pool: PagePool | None, page: Page, site: SiteConfig) -> KeyedListing:
    return await pool.keyed_listing(page, site) if pool else with_keys(extract_listing(page, site), site)


async def _complete(
    site: SiteConfig, item: Article, fetcher: Fetcher, pool: PagePool | None
) -> tuple[Article | None, str | None]:
    """Follow a new item's link for its article-page fields; keep the listing item if that fails.

    A generic listing headline ("Read more") gives way to the article page's; it stays if the page has none."""
    generic = _is_generic(site, item.headline, headline_key(site, item.headline))
    try:
        result = await fetcher.fetch(
            item.url, allow_private=site.allow_private_network, delay=site.delay, site=site.id
        )
        if isinstance(result, NotModified):
            return item, None
        if pool:
            article = await pool.article(result, site, item, generic_headline=generic)
        else:
            article = extract_article(result, site, item, generic)
        return article, None
    except FeedmakerError as exc:
        log.warning("site=%s article failed url=%s reason=%s", site.id, item.url, exc)
        return (item if item.headline else None), f"article page skipped: {exc}"
    except Exception as exc:  # a bug on one odd page costs that item its article fields, not the run
        log.error(
            "site=%s item %s: article: %s: %s", site.id, item.url, type(exc).__name__, exc, exc_info=exc
        )
        return (item if item.headline else None), f"item {item.url}: article: {type(exc).__name__}: {exc}"


def filter_articles(site: SiteConfig, split: Partition, followed: Followed) -> Sorted:
    """Drop new items without a headline, set aside those the site's filters reject, keep the rest."""
    sightings = list(split.known)
    rejected: list[str] = []
    warnings: list[str] = []
    left_out = followed.deferred + followed.late
    listed = dict(split.keys)
    for (url_key, item), article in zip(followed.todo, followed.done, strict=True):
        if article is None or not article.headline:
            if article is not None:
                warnings.append(f"{article.url}: no headline found; item skipped")
            left_out += 1
        elif not site.filters.keeps(article.headline, article.summary):
            rejected.append(url_key)
        else:
            # The listing's key holds while the article page left the headline as listed.
            same = article.headline == item.headline and url_key in listed
            key = listed[url_key] if same else headline_key(site, article.headline)
            sightings.append((article, key, url_key))
    return Sorted(
        sightings=tuple(sightings), rejected=tuple(rejected), left_out=left_out, warnings=tuple(warnings)
    )


def store_sightings(site: SiteConfig, store: Store, listings: Listings, kept: Sorted) -> Stored:
    """Write the run to the store; blocking (disk syncs), so crawl_site runs it in a worker thread."""
    if kept.rejected:
        store.mark_filtered(site.id, kept.rejected)
    # One transaction per run: one disk sync instead of one per article, and no half-stored run. Validators
    # with it, and only when every item is stored: a 304 next time must not hide one left out.
    complete = not kept.left_out and not listings.out_of_time
    outcomes = store.add_many(kept.sightings, validators=listings.validators if complete else ())
    return Stored(
        new=sum(isinstance(o, Added) for o in outcomes),
        updated=sum(isinstance(o, Updated) for o in outcomes),
        duplicates=sum(isinstance(o, Duplicate) for o in outcomes),
    )


def summarise(
    site: SiteConfig,
    *,
    started: datetime,
    finished: datetime,
    previous: RunRecord | None,
    listings: Listings | None,
    followed: Followed | None,
    kept: Sorted | None,
    stored: Stored | None,
    error: str | None,
) -> tuple[SiteReport, dict[str, float]]:
    """The report and the fill rates of a run, from whichever steps completed."""
    warnings = [
        *(listings.warnings if listings else ()),
        *(followed.warnings if followed else ()),
        *(kept.warnings if kept else ()),
    ]
    # Listing fields are measured over every item, article-page fields over the pages followed now:
    # a run with only known items must not look as if the article page had stopped giving authors.
    fill: dict[str, float] = {}
    if listings is not None and followed is not None:
        fill.update(fill_rates([item for _, item in listings.items], "list"))
        if followed.followed:
            fill.update(fill_rates([a for a in followed.done if a], "article"))
    if stored is not None and followed is not None:
        if followed.deferred:
            warnings.append(
                f"{followed.deferred} new item(s) left for the next run (max_articles = {site.max_articles})"
            )
        warnings.extend(drift_warnings(site, previous.fill if previous else {}, fill))
    counts = stored or Stored()
    report = SiteReport(
        site=site.id,
        started=started,
        finished=finished,
        pages=listings.pages if listings else 0,
        items=counts.new + counts.updated + counts.duplicates,
        new=counts.new,
        updated=counts.updated,
        duplicates=counts.duplicates,
        not_modified=listings.not_modified if listings else 0,
        errors=(error,) if error else (),
        warnings=tuple(warnings),
    )
    return report, fill


def _is_generic(site: SiteConfig, headline: str, key: str) -> bool:
    """A listing headline (with its headline_key) the article page should replace: generic by the store's
    one rule, on a site whose article pages are read. Without `[article]` it stays; the store keeps such
    items apart by URL."""
    return site.article is not None and bool(headline) and is_generic_key(key)


def _config_tag(site: SiteConfig) -> str:
    """Listing validators are kept per URL AND site config: after an edited selector, the next run must
    re-read the page instead of getting a 304 for it."""
    config = site.model_dump_json(exclude={"schedule", "path"})
    return f"config={hashlib.sha256(config.encode()).hexdigest()[:16]}"


async def crawl_all(
    settings: Settings,
    sites: Sequence[SiteConfig],
    *,
    fetcher: Fetcher,
    store: Store,
    on_done: Callable[[SiteReport], None] | None = None,
    all_sites: Sequence[SiteConfig] | None = None,
    stop: asyncio.Event | None = None,
    pool: PagePool | None = None,
    hold: Callable[[SiteConfig], AbstractAsyncContextManager[bool]] | None = None,
) -> list[SiteReport]:
    """Crawl these sites concurrently (the fetcher keeps per-host politeness), then rewrite the feeds
    that touch them. `all_sites` (default: `sites`) is the whole config, which combined feeds draw on.
    `hold(site)` (a shared store's lease, leases.py) is held around each site's run; a site it refuses
    (another worker ran it this slot) has no report.

    When `stop` is set (SIGTERM to `run --once`) the sites still running are cancelled and have no
    report; the feeds of the sites that finished are written all the same. Reports keep `sites` order."""

    async def one(site: SiteConfig) -> SiteReport | None:
        async with hold(site) if hold else contextlib.nullcontext(True) as held:
            if not held:
                return None
            report = await crawl_site(site, settings=settings, fetcher=fetcher, store=store, pool=pool)
        if on_done:
            on_done(report)
        return report

    runs = [asyncio.create_task(one(s)) for s in sites]
    waits: set[asyncio.Future[Any]] = {asyncio.gather(*runs, return_exceptions=True)}
    if stop is not None:
        waits.add(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Reached on stop, and when crawl_all itself is cancelled: no crawl outlives it.
        for waiting in (*waits, *runs):
            waiting.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    # A crash in one() is re-raised here.
    reports = [report for run in runs if not run.cancelled() and (report := run.result()) is not None]
    if unfinished := [s.id for s, run in zip(sites, runs, strict=True) if run.cancelled()]:
        log.warning("run stopped sites_unfinished=%s", ",".join(unfinished))
    await asyncio.to_thread(publish, settings, all_sites or sites, store, only={r.site for r in reports})
    return reports
