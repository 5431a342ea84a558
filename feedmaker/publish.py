"""Publishing: store -> Atom files in output_dir, one per site and one per combined feed.

`publish(settings, sites, store, only=...) -> Published` renders every feed touching the sites in `only`
and replaces the files whose bytes changed (feed.write_feed: temp file, fsync, rename). It blocks on disk
syncs, so async callers run it in a worker thread (`asyncio.to_thread`); the store serialises its own calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from feedmaker.config import Filters, Settings, SiteConfig
from feedmaker.feed import render_atom, write_feed
from feedmaker.models import FeedMeta
from feedmaker.store import Store

__all__ = ["FILTER_LOOKBACK", "Published", "feed_ids", "feed_path", "publish"]

# A filtered combined feed picks its entries from this many times feed_size of the newest ones.
FILTER_LOOKBACK = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """publish -> daemon: the files replaced, and how many entries each rendered feed holds."""

    written: tuple[Path, ...] = ()
    entries: tuple[tuple[str, int], ...] = ()  # (feed id, entries in the file), for every feed rendered


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    meta: FeedMeta
    sites: tuple[str, ...]
    filters: Filters


def feed_ids(settings: Settings, sites: Sequence[SiteConfig]) -> list[tuple[str, str]]:
    """(id, title) of every feed: one per site, then the combined feeds."""
    return [(s.id, s.name) for s in sites] + [(f.id, f.title) for f in settings.feed]


def feed_path(settings: Settings, feed_id: str) -> Path:
    return settings.output_dir / f"{feed_id}.atom"


def _self_url(settings: Settings, feed_id: str) -> str | None:
    base = settings.server.base_url
    return f"{base.rstrip('/')}/feeds/{feed_id}.atom" if base else None


def _plans(settings: Settings, sites: Sequence[SiteConfig]) -> list[_Plan]:
    by_id = {s.id: s for s in sites}
    plans = [
        _Plan(
            meta=FeedMeta(id=s.id, title=s.name, link=s.home_url, self_url=_self_url(settings, s.id)),
            sites=(s.id,),
            filters=Filters(),
        )
        for s in sites
    ]
    for combined in settings.feed:
        first = by_id.get(combined.sites[0])
        link = first.home_url if first else "about:blank"
        meta = FeedMeta(
            id=combined.id, title=combined.title, link=link, self_url=_self_url(settings, combined.id)
        )
        plans.append(_Plan(meta=meta, sites=combined.sites, filters=combined.filters))
    return plans


def publish(
    settings: Settings, sites: Sequence[SiteConfig], store: Store, *, only: set[str] | None = None
) -> Published:
    """Render every feed touching `only` (site ids; None = all) and write those whose bytes changed."""
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    counts: list[tuple[str, int]] = []
    for plan in _plans(settings, sites):
        if only is not None and not only.intersection(plan.sites):
            continue
        if plan.filters.include or plan.filters.exclude:
            # Filtered at write time, so a changed filter applies to stored entries too. Look further back
            # than feed_size so that a strict filter still fills the feed.
            candidates = store.entries(plan.sites, settings.feed_size * FILTER_LOOKBACK)
            entries = [e for e in candidates if plan.filters.keeps(e.article.headline, e.article.summary)][
                : settings.feed_size
            ]
        else:
            entries = store.entries(plan.sites, settings.feed_size)
        path = feed_path(settings, plan.meta.id)
        if write_feed(path, render_atom(plan.meta, entries)):
            written.append(path)
        counts.append((plan.meta.id, len(entries)))
    return Published(written=tuple(written), entries=tuple(counts))
