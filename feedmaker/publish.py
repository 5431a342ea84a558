"""Publishing: store -> Atom feeds, one per site and one per combined feed, as files in output_dir and, on a
shared store (PostgreSQL, `Store.SHARED`), in the store too, so that every instance serves the same bytes.

`Publisher(settings, sites)` is built once per config load: the feed plans and a site -> feeds map.
`Publisher.publish(store, only=...) -> Published` considers only the feeds touching the sites in `only`, and
renders a feed only when its version moved since it was last written: the change counters of its sites
(`Store.site_versions`, bumped with every change a feed shows) plus its config (meta, sites, filters, size).
So a site run costs the same with 10 sites configured or 5,000, and an unchanged feed is not even rendered.
A rendered feed still replaces its file only when the bytes changed (feed.write_feed: temp file, fsync,
rename); on a shared store the rendered feeds of one publish are saved in one transaction
(`Store.save_feeds`: a row changes only when its bytes did, and never back to an older render, so a worker
publishing a combined feed from older counters than another's loses). `publish(settings, sites, store, only=...)` is the one-shot form (`run --once`, tests).

It blocks on disk syncs, so async callers run it in a worker thread (`asyncio.to_thread`); the store
serialises its own calls and a lock here serialises publishes, so a slower render of older entries never
lands after a newer one.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from feedmaker.config import Filters, Settings, SiteConfig
from feedmaker.feed import render_atom, write_feed
from feedmaker.models import Entry, FeedMeta
from feedmaker.store import Store
from feedmaker.store.feeds import FeedRender
from feedmaker.views import View

__all__ = ["FILTER_LOOKBACK", "Published", "Publisher", "feed_ids", "feed_path", "publish"]

# A filtered combined feed picks its entries from this many times feed_size of the newest ones.
FILTER_LOOKBACK = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """publish -> daemon: the files replaced, and how many entries each considered feed holds."""

    written: tuple[Path, ...] = ()
    stored: tuple[str, ...] = ()  # ids of the feeds whose row in a shared store changed
    entries: tuple[tuple[str, int], ...] = ()  # (feed id, entries in the file), for every feed considered


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    meta: FeedMeta
    sites: tuple[str, ...]
    filters: Filters
    size: int  # feed_size
    view: View  # which sighting shows each story, under which ids (views.py)
    # A combined feed's sites as feeds, for each entry's Atom <source>; empty for a site's own feed.
    sources: Mapping[str, FeedMeta] = field(default_factory=dict)

    @property
    def config(self) -> tuple[object, ...]:
        """Everything besides the entries that shapes the file: a change here re-renders the feed."""
        sources = tuple(sorted(self.sources.items()))
        return (
            self.meta,
            self.sites,
            self.filters.include,
            self.filters.exclude,
            self.size,
            self.view,
            sources,
        )


@dataclass(frozen=True, slots=True)
class _Written:
    """A feed file as last written (or found unchanged): the version it shows and its entry count."""

    version: tuple[object, ...]
    entries: int


def feed_ids(settings: Settings, sites: Sequence[SiteConfig]) -> list[tuple[str, str]]:
    """(id, title) of every feed: one per site, then the combined feeds."""
    return [(s.id, s.name) for s in sites] + [(f.id, f.title) for f in settings.feed]


def feed_path(settings: Settings, feed_id: str) -> Path:
    return settings.output_dir / f"{feed_id}.atom"


def _self_url(settings: Settings, feed_id: str) -> str | None:
    base = settings.server.public_url()
    return f"{base}/feeds/{feed_id}.atom" if base else None


def _plans(settings: Settings, sites: Sequence[SiteConfig]) -> list[_Plan]:
    by_id = {s.id: s for s in sites}
    size = settings.feed_size
    plans = [
        _Plan(meta=FeedMeta(id=s.id, title=s.name, link=s.home_url, self_url=_self_url(settings, s.id)), sites=(s.id,),
              filters=Filters(), size=size, view=View(feed=s.id))
        for s in sites
    ]  # fmt: skip
    site_feeds = {plan.meta.id: plan.meta for plan in plans}
    for combined in settings.feed:
        first = by_id.get(combined.sites[0])
        link = first.home_url if first else "about:blank"
        meta = FeedMeta(
            id=combined.id, title=combined.title, link=link, self_url=_self_url(settings, combined.id)
        )
        view = View(feed=combined.id, prefer=combined.prefer, override=combined.prefer_overrides)
        sources = {site: site_feeds[site] for site in combined.sites if site in site_feeds}
        plans.append(
            _Plan(
                meta=meta,
                sites=combined.sites,
                filters=combined.filters,
                size=size,
                view=view,
                sources=sources,
            )
        )
    return plans


class Publisher:
    """The feeds of one config, and the version each feed file was last written at."""

    def __init__(
        self, settings: Settings, sites: Sequence[SiteConfig], *, previous: Publisher | None = None
    ) -> None:
        self.settings = settings
        self._plans = _plans(settings, sites)
        self._order = {plan.meta.id: n for n, plan in enumerate(self._plans)}
        self._by_site: dict[str, list[_Plan]] = {}
        for plan in self._plans:
            for site in dict.fromkeys(plan.sites):
                self._by_site.setdefault(site, []).append(plan)
        # Kept across a reload: a version holds the feed's config, so an edited feed never matches its old one.
        self._written: dict[str, _Written] = dict(previous._written) if previous else {}
        self._lock: threading.Lock = previous._lock if previous else threading.Lock()

    def plans_for(self, only: Iterable[str] | None) -> list[_Plan]:
        """The feeds touching these sites (None = all), each once, in config order."""
        if only is None:
            return list(self._plans)
        chosen = {p.meta.id: p for site in only for p in self._by_site.get(site, ())}
        return sorted(chosen.values(), key=lambda p: self._order[p.meta.id])

    def publish(self, store: Store, *, only: set[str] | None = None) -> Published:
        """Render the feeds touching `only` (site ids; None = all) whose version moved; write those whose
        bytes changed."""
        plans = self.plans_for(only)
        if not plans:
            return Published()
        with self._lock:
            self.settings.output_dir.mkdir(parents=True, exist_ok=True)
            # Counters are read before the entries: a change between the two leaves an older version beside
            # newer bytes, which costs one extra render later, never a missed change.
            counters = store.site_versions({site for plan in plans for site in plan.sites})
            written: list[Path] = []
            counts: list[tuple[str, int]] = []
            renders: list[FeedRender] = []
            for plan in plans:
                version = (plan.config, tuple(counters[s] for s in plan.sites))
                path = feed_path(self.settings, plan.meta.id)
                last = self._written.get(plan.meta.id)
                if last is not None and last.version == version and path.exists():
                    counts.append((plan.meta.id, last.entries))
                    continue
                entries = _entries(store, plan)
                born = None if entries else store.feed_born(plan.meta.id)
                body = render_atom(plan.meta, entries, born=born)
                if write_feed(path, body):
                    written.append(path)
                if store.SHARED:
                    source = sum(counters[s] for s in set(plan.sites))
                    renders.append(
                        FeedRender(id=plan.meta.id, body=body, rendered_from=source, entries=len(entries))
                    )
                self._written[plan.meta.id] = _Written(version, len(entries))
                counts.append((plan.meta.id, len(entries)))
            # After the files: a failing database leaves this instance's files current, and the next publish
            # of these feeds renders them again (their versions are only remembered once saved).
            try:
                stored = store.save_feeds(renders)
            except BaseException:
                for render in renders:
                    self._written.pop(render.id, None)
                raise
            return Published(written=tuple(written), stored=tuple(stored), entries=tuple(counts))


def _entries(store: Store, plan: _Plan) -> list[Entry]:
    """The feed's entries as its view shows them; in a combined feed each names its site feed (<source>)."""
    if plan.filters.include or plan.filters.exclude:
        # Filtered at write time, so a changed filter applies to stored entries too. Look further back
        # than feed_size so that a strict filter still fills the feed.
        candidates = store.entries(plan.sites, plan.size * FILTER_LOOKBACK, view=plan.view)
        entries = [e for e in candidates if plan.filters.keeps(e.article.headline, e.article.summary)][
            : plan.size
        ]
    else:
        entries = store.entries(plan.sites, plan.size, view=plan.view)
    if not plan.sources:
        return entries
    return [dataclasses.replace(e, source=plan.sources.get(e.article.site)) for e in entries]


def publish(
    settings: Settings, sites: Sequence[SiteConfig], store: Store, *, only: set[str] | None = None
) -> Published:
    """One-shot publish: render every feed touching `only` (site ids; None = all), write those whose bytes
    changed. Long-running callers keep a `Publisher`, which also skips feeds whose version did not move."""
    return Publisher(settings, sites).publish(store, only=only)
