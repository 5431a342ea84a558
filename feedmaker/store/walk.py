"""A feed's entries from the store: (sites, limit, View) -> the newest `limit` Entries, each story once, as
views.py shows it in that feed. SQL both engines share.

Cost is flat in history size. Each site has two index walks, newest first by its own sighting's date: the
stories it saw first (`entries`, index entries_site_newest) and those it saw later (`sources`, index
sources_site_newest); both read only the index. The stories found are loaded whole (every sighting: the
feed shows one, links the others) and placed by views.py. A story's place in a feed is its shown
sighting's date, never newer than the sighting a walk found it by, so once the `limit`-th best story is
newer than where every walk still going has got to, no story a walk has not reached can come before it:
the walks stop there, else each walk still above that date reads twice as many rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from feedmaker.models import Entry, as_utc
from feedmaker.store.rows import (
    ENTRY_COLUMNS,
    SIGHTING_COLUMNS,
    Db,
    chunks,
    entry_sighting,
    from_iso,
    sighting_from_row,
)
from feedmaker.store.transactions import Transactions
from feedmaker.views import View, view_entry

__all__ = ["ENTRIES_OF_SITE", "SOURCES_OF_SITE", "Walks"]

# The two index walks of one site, newest first: (story id, sort key) of the stories it saw first, and of
# those it saw later. The sort key is the sighting's coalesce(published, first_seen).
ENTRIES_OF_SITE = (
    "SELECT id, coalesce(published, first_seen) FROM entries WHERE site = ? "
    "ORDER BY coalesce(published, first_seen) DESC, id LIMIT ?"
)
SOURCES_OF_SITE = "SELECT entry_id, sort FROM sources WHERE site = ? ORDER BY sort DESC, entry_id LIMIT ?"


class _Walk:
    """One index walk: how many rows it reads next, and where its last read ended (None: at its end)."""

    def __init__(self, query: str, site: str, rows: int) -> None:
        self.query, self.site, self.rows = query, site, rows
        self.reached: datetime | None = None
        self.done = False


def _instant(entry: Entry) -> datetime:
    return as_utc(entry.article.published or entry.first_seen)


def _newest_first(entries: Iterable[Entry]) -> list[Entry]:
    """Newest first; ties by URL, then id: an order that does not depend on which site was crawled first."""
    by_url = sorted(entries, key=lambda e: (e.article.url, e.id))
    return sorted(by_url, key=_instant, reverse=True)


class Walks(Transactions):
    """The store's feed reads."""

    def entries(self, sites: Sequence[str], limit: int, *, view: View | None = None) -> list[Entry]:
        """The newest `limit` stories seen on these sites, each once as `view` shows it (views.py: its
        sighting on these sites with the earliest date; without a `view.feed`, under the story's own id),
        newest first by the shown sighting's date (`_newest_first`)."""
        sites = list(dict.fromkeys(sites))
        if not sites or limit <= 0:
            return []
        view = view or View()
        walks = [_Walk(query, site, limit) for site in sites for query in (ENTRIES_OF_SITE, SOURCES_OF_SITE)]
        found: dict[str, Entry | None] = {}
        with self._read(f"read entries of {', '.join(sites)}") as db:
            while True:
                new: list[str] = []
                for walk in (w for w in walks if not w.done):
                    rows = db.execute(walk.query, (walk.site, walk.rows)).fetchall()
                    for row in rows:
                        if row[0] not in found:
                            found[row[0]] = None
                            new.append(row[0])
                    walk.done = len(rows) < walk.rows
                    walk.reached = None if walk.done else from_iso(rows[-1][1])
                found.update(self._views(db, new, sites, view))
                shown = _newest_first(e for e in found.values() if e is not None)
                going = [w for w in walks if not w.done and w.reached is not None]
                if not going:
                    return shown[:limit]
                if len(shown) >= limit:
                    bar = _instant(shown[limit - 1])
                    # A story no walk reached yet is dated at most where its walk stopped: strictly older
                    # than the bar, it cannot displace the first `limit`.
                    going = [w for w in going if w.reached is not None and w.reached >= bar]
                    if not going:
                        return shown[:limit]
                for walk in going:
                    walk.rows *= 2

    def _views(
        self, db: Db, story_ids: Sequence[str], sites: Sequence[str], view: View
    ) -> dict[str, Entry | None]:
        """The stories' entries in this view, every sighting loaded (None: no sighting on these sites)."""
        heads: dict[str, tuple[Any, ...]] = {}
        seen: dict[str, list[Any]] = {}
        for chunk in chunks(story_ids):
            marks = ", ".join("?" * len(chunk))
            for row in db.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE id IN ({marks})", chunk):
                heads[row[0]] = row
                seen[row[0]] = [entry_sighting(row)]
            for row in db.execute(
                f"SELECT {SIGHTING_COLUMNS} FROM sources WHERE entry_id IN ({marks})", chunk
            ):
                if row[0] in seen:
                    seen[row[0]].append(sighting_from_row(row))
        return {
            story_id: view_entry(story_id, row[2], row[1], seen[story_id], sites, view)
            for story_id, row in heads.items()
        }
