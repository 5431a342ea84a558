"""The orchestrator: SiteConfig -> fetch -> extract -> canon -> store -> SiteReport, and store -> feed files.

The only module that knows every stage. One broken site never stops the others: crawl_site catches
FeedmakerError and records it in the SiteReport.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from feedmaker.canon import canonical_key, canonical_url
from feedmaker.config import Filters, Settings, SiteConfig
from feedmaker.errors import ExtractError, FeedmakerError, FetchError
from feedmaker.extract import extract_article, extract_listing
from feedmaker.feed import render_atom, write_feed
from feedmaker.fetch import Fetcher
from feedmaker.models import (
    Added,
    Article,
    Duplicate,
    FeedMeta,
    NotModified,
    SiteReport,
    Updated,
    Validators,
    utcnow,
)
from feedmaker.store import Store

log = logging.getLogger(__name__)

# Fields whose fill rate is watched for drift, with the config key that feeds them.
WATCHED = ("headline", "published", "author", "summary", "image")
SELECTOR_KEY = {"headline": "headline", "published": "date", "author": "author", "summary": "summary", "image": "image"}
# A field that was filled in at least this share of items in the last good run and now in none has drifted.
DRIFT_BEFORE = 0.5
# A filtered combined feed picks its entries from this many times feed_size of the newest ones.
FILTER_LOOKBACK = 10


def fill_rates(articles: Sequence[Article], section: str) -> dict[str, float]:
    """Share of articles with each watched field filled, keyed "list.published", "article.author", ..."""
    if not articles:
        return {}
    return {f"{section}.{name}": sum(1 for a in articles if getattr(a, name)) / len(articles) for name in WATCHED}


def _selector_for(site: SiteConfig, measured: str) -> str:
    section, name = measured.split(".", 1)
    key = SELECTOR_KEY[name]
    selectors = site.list if section == "list" else site.article
    chain = getattr(selectors, key, None) if selectors is not None else None
    if chain:
        return f"{section}.{key} {' / '.join(spec.css for spec in chain)!r}"
    return f"{section}.{key} (fallbacks only)"


async def _read_listings(
    site: SiteConfig, fetcher: Fetcher, store: Store, warnings: list[str]
) -> tuple[dict[str, Article], dict[str, Validators], int, int]:
    """Fetch every start URL and follow `list.next` up to max_pages. Returns the items by canonical URL
    (first sighting wins), each parsed page's validators, pages parsed and 304s. A start page that fails
    fails the run; a later page that fails only ends that page chain, with a warning."""
    items: dict[str, Article] = {}
    validators: dict[str, Validators] = {}
    tag = _config_tag(site)
    pages = not_modified = 0
    for start in site.start_urls:
        url: str | None = start
        seen: set[str] = set()
        while url and url not in seen and len(seen) < site.max_pages:
            seen.add(url)
            try:
                result = await fetcher.fetch(
                    url, known=store.validators(f"{url} {tag}"), allow_private=site.allow_private_network, delay=site.delay,
                    site=site.id,
                )
                if isinstance(result, NotModified):
                    # Unchanged listing: its items are stored already, and later pages are unchanged too.
                    not_modified += 1
                    break
                listing = extract_listing(result, site)
            except FeedmakerError as exc:
                if url == start:
                    raise
                warnings.append(f"next page skipped: {exc}")
                break
            pages += 1
            validators[f"{url} {tag}"] = result.validators
            for item in listing.items:
                key = canonical_url(item.url, keep_fragment=_names_an_item(item.url))
                items.setdefault(key, item)
            url = listing.next_url
    return dict(list(items.items())[: site.max_items]), validators, pages, not_modified


def _config_tag(site: SiteConfig) -> str:
    """Listing validators are kept per URL AND site config: after an edited selector, the next run must
    re-read the page instead of getting a 304 for it."""
    config = site.model_dump_json(exclude={"schedule", "path"})
    return f"config={hashlib.sha256(config.encode()).hexdigest()[:16]}"


# Fragments that only point into a page (comments, navigation); any other id-like fragment names an item,
# as a changelog's #v2-1-0 does. Fragments holding "=" or "&" are tracking ("#xtor=RSS-1") and dropped.
_NOISE_FRAGMENTS = re.compile(r"(?i)^(?:top|main|content|main-content|comments?|respond|reply|disqus_thread|comment-\d+|more)$")
_ID_FRAGMENT = re.compile(r"^[A-Za-z][\w.:-]*$")


def _names_an_item(url: str) -> bool:
    """Whether the #fragment of a listing link tells items apart: the same for every page and run, so
    an item's key never changes when other items come and go."""
    fragment = url.partition("#")[2]
    return bool(_ID_FRAGMENT.match(fragment)) and not _NOISE_FRAGMENTS.match(fragment)


async def _complete(site: SiteConfig, item: Article, fetcher: Fetcher, warnings: list[str]) -> Article | None:
    """Follow a new item's link for its article-page fields; keep the listing item if that fails."""
    try:
        result = await fetcher.fetch(item.url, allow_private=site.allow_private_network, delay=site.delay, site=site.id)
        if isinstance(result, NotModified):
            return item
        return extract_article(result, site, item)
    except FeedmakerError as exc:
        warnings.append(f"article page skipped: {exc}")
        log.warning("site=%s article failed url=%s reason=%s", site.id, item.url, exc)
        return item if item.headline else None


async def crawl_site(
    site: SiteConfig,
    *,
    settings: Settings,
    fetcher: Fetcher,
    store: Store,
    now: Callable[[], datetime] = utcnow,
) -> SiteReport:
    """One run of one site. Never raises FeedmakerError: failures are in the report, which is also stored."""
    started = now()
    errors: list[str] = []
    warnings: list[str] = []
    counts = {"new": 0, "updated": 0, "duplicates": 0}
    pages = not_modified = 0
    fill: dict[str, float] = {}
    previous = store.last_good_run(site.id)
    try:
        items, validators, pages, not_modified = await _read_listings(site, fetcher, store, warnings)
        rejected = store.filtered_urls(site.id, items)
        known = store.known_urls(site.id, items)
        fresh = [(url_key, item) for url_key, item in items.items() if url_key not in known and url_key not in rejected]
        # Known items go through the store too, with listing fields only: an edited headline updates its
        # entry, and another site's story becomes this site's source. Their URL identifies them.
        def key_of(headline: str) -> str:
            return canonical_key(headline, strip=site.canonical.strip, site_names=(site.name,))

        sightings = [(item, key_of(item.headline), url_key) for url_key, item in items.items() if url_key in known]
        follow = site.article is not None or any(not item.headline for _, item in fresh)
        # New items past max_articles wait for a later run, so that each still gets its article page.
        todo = fresh[: site.max_articles] if follow else fresh
        deferred = len(fresh) - len(todo)
        done = await asyncio.gather(*(_complete(site, item, fetcher, warnings) for _, item in todo)) if follow else [i for _, i in todo]
        # Listing fields are measured over every item, article-page fields over the pages followed now:
        # a run with only known items must not look as if the article page had stopped giving authors.
        fill = {**fill_rates(list(items.values()), "list")}
        if follow:
            fill.update(fill_rates([a for a in done if a], "article"))
        left_out = deferred
        newly_rejected = []
        for (url_key, _), article in zip(todo, done, strict=True):
            if article is None or not article.headline:
                if article is not None:
                    warnings.append(f"{article.url}: no headline found; item skipped")
                left_out += 1
            elif not site.filters.keeps(article.headline, article.summary):
                newly_rejected.append(url_key)
            else:
                sightings.append((article, key_of(article.headline), url_key))
        if newly_rejected:
            store.mark_filtered(site.id, newly_rejected)
        # One transaction per run: one disk sync instead of one per article, and no half-stored run. In a
        # thread, so that the sync does not stall other sites' fetches or the daemon's HTTP server.
        for outcome in await asyncio.to_thread(store.add_many, sightings):
            if isinstance(outcome, Added):
                counts["new"] += 1
            elif isinstance(outcome, Updated):
                counts["updated"] += 1
            elif isinstance(outcome, Duplicate):
                counts["duplicates"] += 1
        if deferred:
            warnings.append(f"{deferred} new item(s) left for the next run (max_articles = {site.max_articles})")
        # Validators last, and only when every item is stored: a 304 next time must not hide one left out.
        if not left_out:
            for url, page_validators in validators.items():
                store.save_validators(url, page_validators)
        warnings.extend(_drift(site, previous.fill if previous else {}, fill))
    except FetchError as exc:
        errors.append(f"fetch failed: {exc}")
    except ExtractError as exc:
        hint = f" (last good run found {previous.items} items)" if previous and previous.items else ""
        errors.append(f"extract failed: {exc}{hint}")
    except FeedmakerError as exc:
        errors.append(str(exc))
    except Exception as exc:
        # A bug, but one site's bug must not stop the other sites' runs or the daemon.
        log.exception("site=%s run crashed", site.id)
        errors.append(f"internal error (a bug; the log has the traceback): {type(exc).__name__}: {exc}")
    report = SiteReport(
        site=site.id,
        started=started,
        finished=now(),
        pages=pages,
        items=counts["new"] + counts["updated"] + counts["duplicates"],
        new=counts["new"],
        updated=counts["updated"],
        duplicates=counts["duplicates"],
        not_modified=not_modified,
        errors=tuple(errors),
        warnings=tuple(warnings),
    )
    # A run that measured nothing (304, no article pages followed) keeps the last measured rates as the baseline.
    store.record_run(report, fill={**(previous.fill if previous else {}), **fill})
    _log_report(report)
    return report


def _drift(site: SiteConfig, before: Mapping[str, float], now: Mapping[str, float]) -> list[str]:
    """A field that was usually filled and now is never filled means its selector rotted."""
    return [
        f"drift: {measured} found in {rate:.0%} of items last good run, now in none; check {_selector_for(site, measured)}"
        for measured, rate in before.items()
        if measured in now and rate >= DRIFT_BEFORE and now[measured] == 0
    ]


def _log_report(r: SiteReport) -> None:
    ms = int(r.seconds * 1000)
    if r.ok:
        log.info(
            "site=%s run ok pages=%d items=%d new=%d updated=%d dup=%d not_modified=%d errors=0 warnings=%d ms=%d",
            r.site, r.pages, r.items, r.new, r.updated, r.duplicates, r.not_modified, len(r.warnings), ms,
        )
    else:
        log.warning(
            "site=%s run failed pages=%d new=%d dup=%d errors=%d ms=%d reason=%s",
            r.site, r.pages, r.new, r.duplicates, len(r.errors), ms, "; ".join(r.errors),
        )
    for warning in r.warnings:
        log.warning("site=%s %s", r.site, warning)


def feed_ids(settings: Settings, sites: Sequence[SiteConfig]) -> list[tuple[str, str]]:
    """(id, title) of every feed: one per site, then the combined feeds."""
    return [(s.id, s.name) for s in sites] + [(f.id, f.title) for f in settings.feed]


def feed_path(settings: Settings, feed_id: str) -> Path:
    return settings.output_dir / f"{feed_id}.atom"


def _self_url(settings: Settings, feed_id: str) -> str | None:
    base = settings.server.base_url
    return f"{base.rstrip('/')}/feeds/{feed_id}.atom" if base else None


def publish(settings: Settings, sites: Sequence[SiteConfig], store: Store, *, only: set[str] | None = None) -> list[Path]:
    """Render every feed touching `only` (site ids; None = all) and write those whose bytes changed."""
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    by_id = {s.id: s for s in sites}
    plans: list[tuple[FeedMeta, tuple[str, ...], Filters]] = [
        (FeedMeta(id=s.id, title=s.name, link=s.home_url, self_url=_self_url(settings, s.id)), (s.id,), Filters())
        for s in sites
    ]
    for combined in settings.feed:
        first = by_id.get(combined.sites[0])
        link = first.home_url if first else "about:blank"
        meta = FeedMeta(id=combined.id, title=combined.title, link=link, self_url=_self_url(settings, combined.id))
        plans.append((meta, combined.sites, combined.filters))
    written = []
    for meta, site_ids, filters in plans:
        if only is not None and not only.intersection(site_ids):
            continue
        if filters.include or filters.exclude:
            # Filtered at write time, so a changed filter applies to stored entries too. Look further back
            # than feed_size so that a strict filter still fills the feed.
            candidates = store.entries(site_ids, settings.feed_size * FILTER_LOOKBACK)
            entries = [e for e in candidates if filters.keeps(e.article.headline, e.article.summary)][: settings.feed_size]
        else:
            entries = store.entries(site_ids, settings.feed_size)
        data = render_atom(meta, entries)
        path = feed_path(settings, meta.id)
        if write_feed(path, data):
            written.append(path)
    return written


async def crawl_all(
    settings: Settings,
    sites: Sequence[SiteConfig],
    *,
    fetcher: Fetcher,
    store: Store,
    on_done: Callable[[SiteReport], None] | None = None,
    all_sites: Sequence[SiteConfig] | None = None,
) -> list[SiteReport]:
    """Crawl these sites concurrently (the fetcher keeps per-host politeness), then rewrite the feeds
    that touch them. `all_sites` (default: `sites`) is the whole config, which combined feeds draw on."""

    async def one(site: SiteConfig) -> SiteReport:
        report = await crawl_site(site, settings=settings, fetcher=fetcher, store=store)
        if on_done:
            on_done(report)
        return report

    reports = await asyncio.gather(*(one(s) for s in sites))
    publish(settings, all_sites or sites, store, only={s.id for s in sites})
    return list(reports)
