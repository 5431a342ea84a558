"""What a site run tells its operator: fill rates of the watched fields, drift warnings when a field that was
usually filled is now never filled (its selector rotted), the one line for a failed run, and the log line of
every run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from feedmaker.config import SiteConfig
from feedmaker.errors import ExtractError, FeedmakerError, FetchError
from feedmaker.models import Article, SiteReport
from feedmaker.store import RunRecord

__all__ = ["DRIFT_BEFORE", "WATCHED", "describe_failure", "drift_warnings", "fill_rates", "log_report"]

log = logging.getLogger("feedmaker.crawl")  # the run's lines keep the logger operators filter on

# Fields whose fill rate is watched for drift, with the config key that feeds them.
WATCHED = ("headline", "published", "author", "summary", "image")
SELECTOR_KEY = {
    "headline": "headline",
    "published": "date",
    "author": "author",
    "summary": "summary",
    "image": "image",
}
# A field that was filled in at least this share of items in the last good run and now in none has drifted.
DRIFT_BEFORE = 0.5


def fill_rates(articles: Sequence[Article], section: str) -> dict[str, float]:
    """Share of articles with each watched field filled, keyed "list.published", "article.author", ..."""
    if not articles:
        return {}
    return {
        f"{section}.{name}": sum(1 for a in articles if getattr(a, name)) / len(articles) for name in WATCHED
    }


def describe_failure(site: SiteConfig, exc: Exception, previous: RunRecord | None) -> str:
    """The report's line for a run that stopped at `exc`."""
    if isinstance(exc, FetchError):
        return f"fetch failed: {exc}"
    if isinstance(exc, ExtractError):
        hint = f" (last good run found {previous.items} items)" if previous and previous.items else ""
        return f"extract failed: {exc}{hint}"
    if isinstance(exc, FeedmakerError):
        return str(exc)
    # A bug, but one site's bug must not stop the other sites' runs or the daemon.
    log.error("site=%s run crashed", site.id, exc_info=exc)
    return f"internal error (a bug; the log has the traceback): {type(exc).__name__}: {exc}"


def _selector_for(site: SiteConfig, measured: str) -> str:
    section, name = measured.split(".", 1)
    key = SELECTOR_KEY[name]
    selectors = site.list if section == "list" else site.article
    chain = getattr(selectors, key, None) if selectors is not None else None
    if chain:
        return f"{section}.{key} {' / '.join(spec.css for spec in chain)!r}"
    return f"{section}.{key} (fallbacks only)"


def drift_warnings(site: SiteConfig, before: Mapping[str, float], now: Mapping[str, float]) -> list[str]:
    """A field that was usually filled and now is never filled means its selector rotted."""
    return [
        f"drift: {measured} found in {rate:.0%} of items last good run, now in none; check {_selector_for(site, measured)}"
        for measured, rate in before.items()
        if measured in now and rate >= DRIFT_BEFORE and now[measured] == 0
    ]


def log_report(r: SiteReport) -> None:
    ms = int(r.seconds * 1000)
    if r.ok:
        log.info(
            "site=%s run ok pages=%d items=%d new=%d updated=%d dup=%d not_modified=%d errors=0 warnings=%d ms=%d",
            r.site,
            r.pages,
            r.items,
            r.new,
            r.updated,
            r.duplicates,
            r.not_modified,
            len(r.warnings),
            ms,
        )
    else:
        log.warning(
            "site=%s run failed pages=%d new=%d dup=%d errors=%d ms=%d reason=%s",
            r.site,
            r.pages,
            r.new,
            r.duplicates,
            len(r.errors),
            ms,
            "; ".join(r.errors),
        )
    for warning in r.warnings:
        log.warning("site=%s %s", r.site, warning)
