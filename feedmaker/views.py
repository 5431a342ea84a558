"""Which copy of a story a feed shows: a story's Sightings + the feed's View -> one Entry (or none).

A pure rule module (no I/O), shared by the store's entries walk (which needs each story's place in a feed
to know when it may stop) and publish. The rules:

- A site's feed shows that site's own sighting (its headline, link, summary and date); a site that saw
  one story at two URLs shows the earlier one.
- A combined feed shows each story once, represented by its original: the sighting (on one of the feed's
  sites) with the earliest publication instant, a sighting without a date counting from when it was first
  seen. Ties go to the feed's `prefer` sites in their order, then to the order of its `sites`, then to
  the smaller URL, so the choice never depends on which site was crawled first. With `override`, a
  `prefer` site's sighting is the original whenever the story has one, whatever the dates.
- Every other sighting's URL (any site) is a related link, ranked by the same rule.
- The entry id is unique to (story, feed) and never changes: the id minted at first sight in the feed of
  the site that saw the story first (the id every feed carried before views existed), elsewhere a uuid5
  of that id and the feed id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from feedmaker.models import Entry, Sighting, as_utc

__all__ = ["VIEW_NAMESPACE", "View", "instant", "ranked", "view_entry", "view_id"]

# The uuid5 namespace of per-feed entry ids; fixed forever, or every derived id would change.
VIEW_NAMESPACE = uuid.UUID("5d1f6c2e-6a4b-5f3e-9c1d-7e0b8a2f4c61")


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """How one feed shows its stories."""

    feed: str | None = None  # the feed's id; None: entries keep the story's own id (tools, tests)
    prefer: tuple[str, ...] = ()  # sites whose sighting wins a tie, in this order
    override: bool = False  # a `prefer` site's sighting wins whatever the dates


def instant(sighting: Sighting) -> datetime:
    """When a sighting says its story happened: its publication instant, else when it was first seen."""
    return as_utc(sighting.article.published or sighting.first_seen)


def ranked(sightings: Sequence[Sighting], sites: Sequence[str], view: View) -> list[Sighting]:
    """`sightings` best first: the feed's original (see the module docstring), then the others."""
    order = {site: n for n, site in enumerate(dict.fromkeys(sites))}
    prefer = {site: n for n, site in enumerate(dict.fromkeys(view.prefer))}

    def rank(s: Sighting) -> tuple[object, ...]:
        site = s.article.site
        # Sightings outside the feed come last whatever their dates: they can only be related links.
        outside = site not in order
        preferred = prefer.get(site, len(prefer))
        place = order.get(site, len(order))
        if view.override:
            return (outside, preferred, instant(s), place, site, s.article.url)
        return (outside, instant(s), preferred, place, site, s.article.url)

    return sorted(sightings, key=rank)


def view_id(story_id: str, first_site: str, feed: str | None) -> str:
    """The id of a story's entry in one feed (see the module docstring)."""
    if feed is None or feed == first_site:
        return story_id
    return f"urn:uuid:{uuid.uuid5(VIEW_NAMESPACE, f'{story_id} {feed}')}"


def view_entry(
    story_id: str, key: str, first_site: str, sightings: Sequence[Sighting], sites: Sequence[str], view: View
) -> Entry | None:
    """The entry a feed over `sites` shows for one story, or None when none of its sightings is on them."""
    best = ranked(sightings, sites, view)
    if not best or best[0].article.site not in sites:
        return None
    shown = best[0]
    related = dict.fromkeys(s.article.url for s in best[1:] if s.url_key != shown.url_key)
    return Entry(
        id=view_id(story_id, first_site, view.feed),
        key=key,
        article=shown.article,
        first_seen=shown.first_seen,
        updated=shown.updated,
        sources=tuple(url for url in related if url != shown.article.url),
    )
