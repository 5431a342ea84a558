"""The store's one interface and the SQL both engines share: Article -> AddResult (Added | Updated |
Duplicate), stored Entry rows -> feed. Store is that plus the shared crawl state (coordination.py) and run
history (history.py), over an engine's transactions (transactions.py); rows.py turns rows into Entries.

The engines (`sqlite.py`, the embedded default; `postgres.py`, several daemons on one database) supply a
connection and transactions; everything written here is plain SQL both dialects agree on, with `?`
placeholders. Headline, author and summary are capped as they are stored (`cap_text`, HEADLINE_MAX,
AUTHOR_MAX, SUMMARY_MAX).

Concurrency: sqlite serialises writers with BEGIN IMMEDIATE, so a look-up before an insert is safe there.
PostgreSQL runs workers' transactions side by side (READ COMMITTED), so the add rules lean on unique
constraints instead: a new URL is inserted with ON CONFLICT (url_key) DO NOTHING and looked up again when
another worker won, and a new story first upserts its canonical key's row in `story_keys`, which holds
the row lock until commit, so a second worker with the same story waits and then sees the first one's
entry (`_claim_key`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from feedmaker.models import Added, AddResult, Article, Duplicate, Entry, Updated, Validators, as_utc
from feedmaker.store.coordination import Claim, Coordination
from feedmaker.store.feeds import Feeds
from feedmaker.store.history import RUNS_KEPT, History, RunRecord
from feedmaker.store.rows import (
    AUTHOR_MAX,
    ENTRY_COLUMNS,
    ENTRY_FIELDS,
    ENTRY_FIRST_SEEN,
    HEADLINE_MAX,
    MERGED,
    PUBLISHED,
    SIGHTING_COLUMNS,
    SIGHTING_FIELDS,
    SIGHTING_FIRST_SEEN,
    SUMMARY_MAX,
    Cursor,
    Db,
    article_values,
    cap_text,
    chunks,
    clean,
    entry_from_row,
    from_iso,
    iso,
)  # fmt: skip
from feedmaker.store.transactions import default_worker
from feedmaker.store.walk import ENTRIES_OF_SITE, SOURCES_OF_SITE, Walks

__all__ = [
    "AUTHOR_MAX", "ENTRIES_OF_SITE", "HEADLINE_MAX", "RUNS_KEPT", "SOURCES_OF_SITE", "SUMMARY_MAX", "Claim",
    "Cursor", "Db", "RunRecord", "Store", "cap_text", "default_worker", "is_generic_key",
]  # fmt: skip

log = logging.getLogger(__name__)


# A canonical key shorter than this many words ("read more", "live updates", "morning briefing") is too
# generic to name one story: it merges nothing by key, on one site or across sites (see `is_generic_key`).
GENERIC_KEY_WORDS = 4
# One site repeating a headline at a new URL within this time is the same story moved; later, it is the
# next edition of a recurring title (a daily "Morning briefing" comes back after 24 h).
RECURRING_GAP = timedelta(hours=20)


def is_generic_key(key: str) -> bool:
    """The one rule for generic headlines: such a key never makes two URLs one story; only a matching
    canonical URL (or a recorded source URL) does. Seven "Read more" links on one page are seven stories."""
    return len(key.split()) < GENERIC_KEY_WORDS


class Store(Walks, Coordination, History, Feeds):
    """The feedmaker database. Every method is atomic and safe to call from several threads; other
    processes (and, on PostgreSQL, other machines) may use the same database concurrently."""

    # The column that orders rows by insertion (sqlite's rowid; an identity column in PostgreSQL).
    ROW_ORDER = "rowid"

    def _claim_key(self, db: Db, key: str, now: str) -> None:
        """Hold the canonical key until commit, so no other worker mints an entry for the same story
        meanwhile. sqlite's one writer at a time holds every key already."""
        return

    # -- entries -------------------------------------------------------------------------------------

    def add(self, article: Article, *, key: str, url_key: str) -> AddResult:
        """Store one sighting of a story, committed before returning (see `add_many` for the rules)."""
        return self.add_many([(article, key, url_key)])[0]

    def add_many(
        self,
        sightings: Sequence[tuple[Article, str, str]],
        *,
        validators: Sequence[tuple[str, Validators]] = (),
    ) -> list[AddResult]:
        """Store (article, key, url_key) sightings in ONE transaction, committed before returning: one disk
        sync per site run instead of one per article. The listing pages' `validators` (url, validators), if
        given, are saved in the same transaction, after the sightings: they stand for every item stored. Each
        sighting, in order:

        1. `url_key` is a stored entry's URL, seen by the same site: merge (see `_merge`). A changed field
           gives Updated (updated = now, key = the new key); otherwise Duplicate. Seen by another site:
           Duplicate, unchanged, recorded as that site's source.
        2. `url_key` was already recorded as another sighting (source) of an entry: Duplicate of that
           entry, unchanged (first-seen wins, even if this copy's headline was edited since).
        3. An entry has `key` and the key is not generic (see `_copied_from`): Duplicate; the first-seen
           entry keeps its id and fields, and this URL and site are recorded once as a source.
        4. Otherwise Added, with an id minted here once ("urn:uuid:<uuid4>").
        """
        if not sightings:
            if validators:
                with self._write(f"save validators of {validators[0][0]!r}") as db:
                    for url, page_validators in validators:
                        self._save_validators(db, url, page_validators)
            return []
        # Each sighting is seen a microsecond before the one after it: undated stories of one run get
        # distinct first-seen times (their <updated>; feed validators flag entries sharing one), the first
        # listed (the newest, on a listing) the latest.
        start = self._now()
        nows = [iso(start - timedelta(microseconds=n)) for n in range(len(sightings))]
        what = f"add {sightings[0][0].url!r}" if len(sightings) == 1 else f"add {len(sightings)} articles"

        def work(db: Db) -> list[AddResult]:
            results = self._add_all(db, sightings, nows)
            for url, page_validators in validators:
                self._save_validators(db, url, page_validators)
            return results

        return self._write_retrying(what, work)

    def _add_all(
        self, db: Db, sightings: Sequence[tuple[Article, str, str]], nows: Sequence[str]
    ) -> list[AddResult]:
        """`_add` for each sighting, in order; except that re-sightings which change nothing (rule 1 without
        a change: most of every run) are found with one query and answered with one more, instead of three
        queries each. They write nothing, so leaving them out of the order changes no other sighting."""
        unchanged = self._unchanged(db, sightings)
        results: list[AddResult | None] = [
            None
            if n in unchanged
            else self._add(db, article, key=clean(key), url_key=clean(url_key), now=now)
            for n, ((article, key, url_key), now) in enumerate(zip(sightings, nows, strict=True))
        ]
        entries = self._entries_by_id(db, sorted(set(unchanged.values())))
        return [
            Duplicate(entries[unchanged[n]], sightings[n][0].url) if result is None else result
            for n, result in enumerate(results)
        ]

    def _unchanged(self, db: Db, sightings: Sequence[tuple[Article, str, str]]) -> dict[int, str]:
        """Index -> entry id of the sightings that `_merge` would answer with Duplicate and no write: the
        entry's own site sees its URL again with no field changed and the same key. A URL given twice is left
        to `_add`, as the first of the two may change the entry the second is compared with."""
        counts: dict[str, int] = {}
        for _, _, url_key in sightings:
            counts[clean(url_key)] = counts.get(clean(url_key), 0) + 1
        keys = sorted(k for k, count in counts.items() if count == 1)
        rows: dict[str, tuple[Any, ...]] = {}
        for chunk in chunks(keys):
            found = db.execute(
                f"SELECT {ENTRY_COLUMNS} FROM entries WHERE url_key IN ({_marks(len(chunk))})", chunk
            )
            rows.update((row[3], tuple(row)) for row in found)
        unchanged: dict[int, str] = {}
        for n, (article, key, url_key) in enumerate(sightings):
            row = rows.get(clean(url_key))
            if row is None or row[1] != clean(article.site) or (clean(key) or row[2]) != row[2]:
                continue
            if not _changes(row[ENTRY_FIELDS], article_values(article)):
                unchanged[n] = row[0]
        return unchanged

    def _entries_by_id(self, db: Db, entry_ids: Sequence[str]) -> dict[str, Entry]:
        """`_entry_by_id` for many entries, in two queries per chunk of ids."""
        sources = self._sources(db, entry_ids)
        found: dict[str, Entry] = {}
        for chunk in chunks(entry_ids):
            for row in db.execute(
                f"SELECT {ENTRY_COLUMNS} FROM entries WHERE id IN ({_marks(len(chunk))})", chunk
            ):
                found[row[0]] = entry_from_row(row, sources.get(row[0], ()))
        return found

    def _add(self, db: Db, article: Article, *, key: str, url_key: str, now: str) -> AddResult:
        site = clean(article.site)
        row = db.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE url_key = ?", (url_key,)).fetchone()
        if row is not None and row[1] == site:
            return self._merge(db, row, article, key=key, now=now)
        sighting = db.execute(
            f"SELECT {SIGHTING_COLUMNS} FROM sources WHERE url_key = ? AND site = ?", (url_key, site)
        ).fetchone()
        if sighting is not None:
            return self._merge_sighting(db, sighting, article, now=now)
        if row is not None:
            # Another site lists the same URL: its own sighting of that story, with the fields it gave.
            self._record_source(db, row[0], article, url_key=url_key, now=now)
            return Duplicate(self._entry_by_id(db, row[0]), article.url)
        source = db.execute("SELECT entry_id FROM sources WHERE url_key = ?", (url_key,)).fetchone()
        if source is not None:
            self._record_source(db, source[0], article, url_key=url_key, now=now)
            return Duplicate(self._entry_by_id(db, source[0]), article.url)
        self._claim_key(db, key, now)
        row = self._copied_from(db, article, key=key, now=now)
        if row is not None:
            self._record_source(db, row[0], article, url_key=url_key, now=now)
            log.debug("site=%s duplicate of entry=%s url=%s", article.site, row[0], article.url)
            return Duplicate(self._entry_by_id(db, row[0]), article.url)
        entry_id = f"urn:uuid:{uuid.uuid4()}"
        inserted = db.execute(
            f"INSERT INTO entries ({ENTRY_COLUMNS}) VALUES ({_marks(6 + len(MERGED))}) "
            "ON CONFLICT (url_key) DO NOTHING",
            (entry_id, site, key, url_key, *article_values(article), now, now),
        ).rowcount
        if not inserted:
            # Another worker stored this URL since the look-up above; it is visible now, so rule 1 applies.
            return self._add(db, article, key=key, url_key=url_key, now=now)
        self._touch(db, entry_id)
        log.debug("site=%s added entry=%s url=%s", article.site, entry_id, article.url)
        return Added(self._entry_by_id(db, entry_id))

    def _record_source(self, db: Db, entry_id: str, article: Article, *, url_key: str, now: str) -> None:
        """A new sighting of a stored story, with this site's fields; sorted in its site's walk by its own
        date (else now, when it is first seen)."""
        values = article_values(article)
        inserted = db.execute(
            f"INSERT INTO sources (url_key, site, entry_id, {', '.join(MERGED)}, first_seen, updated, sort) "
            f"VALUES ({_marks(6 + len(MERGED))}) ON CONFLICT DO NOTHING",
            (url_key, clean(article.site), entry_id, *values, now, now, values[PUBLISHED] or now),
        )
        if inserted.rowcount:
            # The story joins this site's feed and gains a link in every feed holding it.
            self._touch(db, entry_id)

    def _touch(self, db: Db, entry_id: str) -> None:
        """Bump the change counter of every site whose feed shows this entry: its own site and the sites
        that sighted it (sources). PostgreSQL needs the subquery named and the counter qualified; sqlite
        needs the WHERE to tell the upsert's ON from a join's. The sites are locked in name order, so two
        workers touching overlapping sites never deadlock on the counters."""
        db.execute(
            "INSERT INTO site_versions (site, version) "
            "SELECT site, 1 FROM (SELECT site FROM entries WHERE id = ? UNION SELECT site FROM sources WHERE entry_id = ?) "
            "AS touched WHERE true ORDER BY site ON CONFLICT (site) DO UPDATE SET version = site_versions.version + 1",
            (entry_id, entry_id),
        )

    def site_versions(self, sites: Iterable[str]) -> dict[str, int]:
        """Each site's change counter (0 for a site never changed): equal counters, equal feed entries."""
        keys = sorted(set(sites))
        found = dict.fromkeys(keys, 0)
        with self._read("read site versions") as db:
            for chunk in chunks(keys):
                marks = ", ".join("?" * len(chunk))
                found.update(
                    db.execute(f"SELECT site, version FROM site_versions WHERE site IN ({marks})", chunk)
                )
        return found

    def _copied_from(self, db: Db, article: Article, *, key: str, now: str) -> tuple[Any, ...] | None:
        """The stored entry that a sighting at a new URL repeats, by canonical key; None for a new story.

        A generic key (`is_generic_key`: "Read more", "Live updates") matches nothing, on any site.
        Across sites a key match is the same story, however late (farms re-post wire copy months after).
        On one site, the same headline at a new URL is the same story moved when it is close in time to the
        site's latest entry with that key (publish dates compared when both have one, else first sight with
        now), and otherwise the next edition of a recurring title.
        """
        if is_generic_key(key):
            return None
        rows: list[tuple[Any, ...]] = db.execute(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE key = ? ORDER BY first_seen, {self.ROW_ORDER}",
            (key,),
        ).fetchall()
        if not rows:
            return None
        same_site = [r for r in rows if r[1] == clean(article.site)]
        if same_site:
            last = same_site[-1]
            last_published = last[ENTRY_FIELDS][PUBLISHED]
            if last_published and article.published:
                gap = abs(as_utc(article.published) - from_iso(last_published))
            else:
                gap = from_iso(now) - from_iso(last[ENTRY_FIRST_SEEN])
            return last if gap < RECURRING_GAP else None
        return rows[0]

    def _merge(self, db: Db, row: tuple[Any, ...], article: Article, *, key: str, now: str) -> AddResult:
        """A re-sighting of a stored URL by the site that saw the story first (see `_changes`). Only a real
        change gives Updated."""
        entry_id = row[0]
        key = key or row[2]  # a sighting without a headline (known by its URL) keeps the stored key
        changes = _changes(row[ENTRY_FIELDS], article_values(article))
        if changes:
            assignments = ", ".join(f"{name} = ?" for name in changes)
            db.execute(
                f"UPDATE entries SET {assignments}, key = ?, updated = ? WHERE id = ?",
                (*changes.values(), key, now, entry_id),
            )
            self._touch(db, entry_id)
            log.debug("site=%s updated entry=%s fields=%s", article.site, entry_id, ",".join(changes))
            return Updated(self._entry_by_id(db, entry_id))
        if key != row[2]:
            # A new canonical key for unchanged fields (the canon rules changed): follow it silently, so a
            # canon upgrade does not mark every stored entry as updated.
            db.execute("UPDATE entries SET key = ? WHERE id = ?", (key, entry_id))
        return Duplicate(self._entry_by_id(db, entry_id), article.url)

    def _merge_sighting(self, db: Db, row: tuple[Any, ...], article: Article, *, now: str) -> AddResult:
        """A re-sighting of a later sighting's URL by its own site: its fields follow the same rules as an
        entry's (`_changes`), and its site's feed (and any combined feed it represents) shows the change."""
        entry_id, site, url_key = row[0], row[1], row[2]
        changes = _changes(row[SIGHTING_FIELDS], article_values(article))
        if not changes:
            return Duplicate(self._entry_by_id(db, entry_id), article.url)
        published = changes.get("published", row[SIGHTING_FIELDS][PUBLISHED])
        assignments = ", ".join(f"{name} = ?" for name in changes)
        db.execute(
            f"UPDATE sources SET {assignments}, updated = ?, sort = ? WHERE url_key = ? AND site = ?",
            (*changes.values(), now, published or row[SIGHTING_FIRST_SEEN], url_key, site),
        )
        self._touch(db, entry_id)
        log.debug("site=%s updated sighting of entry=%s fields=%s", site, entry_id, ",".join(changes))
        return Updated(self._entry_by_id(db, entry_id))

    def _entry_by_id(self, db: Db, entry_id: str) -> Entry:
        row = db.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return entry_from_row(row, self._sources(db, [entry_id]).get(entry_id, ()))

    def _sources(self, db: Db, entry_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for chunk in chunks(entry_ids):
            marks = ", ".join("?" * len(chunk))
            # A source at the entry's own URL (another site listing the same page) adds no link.
            for entry_id, url in db.execute(
                "SELECT s.entry_id, s.url FROM sources s JOIN entries e ON e.id = s.entry_id "
                f"WHERE s.entry_id IN ({marks}) AND s.url_key != e.url_key ORDER BY s.first_seen, s.url",
                chunk,
            ):
                if url not in found.get(entry_id, ()):
                    found.setdefault(entry_id, []).append(url)
        return {entry_id: tuple(urls) for entry_id, urls in found.items()}

    def known_urls(self, site: str, url_keys: Iterable[str]) -> set[str]:
        """Which of these canonical URLs are stored already, as an entry or a source, from any site."""
        with self._read(f"look up known URLs for site {site}") as db:
            return _known(db, url_keys)

    def sort_urls(self, site: str, url_keys: Iterable[str]) -> tuple[set[str], set[str]]:
        """`known_urls` and `filtered_urls` of these canonical URLs, in one read transaction: what a run
        asks of every listing."""
        keys = list(url_keys)  # read twice
        with self._read(f"look up known and filtered URLs for site {site}") as db:
            return _known(db, keys), _filtered(db, site, keys)

    def filtered_urls(self, site: str, url_keys: Iterable[str]) -> set[str]:
        """Which of these canonical URLs this site's filters rejected before (see `mark_filtered`)."""
        with self._read(f"look up filtered URLs for site {site}") as db:
            return _filtered(db, site, url_keys)

    def mark_filtered(self, site: str, url_keys: Iterable[str]) -> None:
        now = iso(self._now())
        with self._write(f"remember filtered URLs of site {site}") as db:
            db.executemany(
                "INSERT INTO filtered (url_key, site, seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(clean(k), site, now) for k in url_keys],
            )

    def entry_count(self, site: str | None = None) -> int:
        with self._read("count entries") as db:
            if site is None:
                row = db.execute("SELECT count(*) FROM entries").fetchone()
            else:
                row = db.execute("SELECT count(*) FROM entries WHERE site = ?", (site,)).fetchone()
        return int(row[0])


# The origin (Article.origins) of each stored field that has one under another name.
_ORIGIN_KEYS = {"published": "date", "published_offset": "date", "modified_offset": "modified"}


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _changes(stored_values: Sequence[Any], fresh_values: Sequence[Any]) -> dict[str, Any]:
    """What a re-sighting changes in a stored sighting (MERGED values, as stored). Text fields take new
    non-None values (an edited headline); the URL keeps its first form (rotating tracking parameters map to
    one url_key) and a known date stays (re-reading "2 hours ago" every run must not move it); the origins
    of changed fields follow them. Empty when nothing changed."""
    stored = dict(zip(MERGED, stored_values, strict=True))
    fresh = dict(zip(MERGED, fresh_values, strict=True))
    changes = {
        name: fresh[name]
        for name in ("headline", "author", "summary", "image", "content")
        if fresh[name] and fresh[name] != stored[name]  # "" (no headline on the listing) is no value
    }
    if stored["published"] is None and fresh["published"] is not None:
        changes["published"] = fresh["published"]
        changes["published_offset"] = fresh["published_offset"]
    # A modified date only moves later: a page that stops printing it, or a copy quoting an older one,
    # does not take the story's last change back. (Fixed-width UTC text: text order is time order.)
    if fresh["modified"] is not None and (
        stored["modified"] is None or fresh["modified"] > stored["modified"]
    ):
        changes["modified"] = fresh["modified"]
        changes["modified_offset"] = fresh["modified_offset"]
    if changes:
        origins = dict(json.loads(stored["origins"] or "[]"))
        new_origins = dict(json.loads(fresh["origins"] or "[]"))
        for name in changes:
            origin_key = _ORIGIN_KEYS.get(name, name)
            if origin_key in new_origins:
                origins[origin_key] = new_origins[origin_key]
        changes["origins"] = json.dumps([list(pair) for pair in origins.items()])
    return changes


def _known(db: Db, url_keys: Iterable[str]) -> set[str]:
    """Which of these canonical URLs are stored, as an entry or a source, from any site."""
    return _present(
        db,
        "SELECT url_key FROM entries WHERE url_key IN ({marks}) UNION SELECT url_key FROM sources WHERE url_key IN ({marks})",
        url_keys,
        lambda chunk: (*chunk, *chunk),
    )


def _filtered(db: Db, site: str, url_keys: Iterable[str]) -> set[str]:
    """Which of these canonical URLs the site's filters rejected before."""
    return _present(
        db,
        "SELECT url_key FROM filtered WHERE site = ? AND url_key IN ({marks})",
        url_keys,
        lambda chunk: (site, *chunk),
    )


def _present(
    db: Db, query: str, url_keys: Iterable[str], params: Callable[[Sequence[str]], tuple[str, ...]]
) -> set[str]:
    """The url_keys a query finds, asked in chunks that stay under SQLite's parameter limit."""
    keys = sorted({clean(k) for k in url_keys})
    found: set[str] = set()
    for chunk in chunks(keys):
        found.update(r[0] for r in db.execute(query.format(marks=_marks(len(chunk))), params(chunk)))
    return found
