"""The store's one interface and the SQL both engines share: Article -> AddResult (Added | Updated |
Duplicate), stored Entry rows -> feed, conditional-GET validators, run history, politeness state.

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

import abc
import contextlib
import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType, TracebackType
from typing import Any, Protocol, TypeVar

from feedmaker.errors import StoreError
from feedmaker.models import (
    Added,
    AddResult,
    Article,
    Duplicate,
    Entry,
    RobotsFile,
    SiteReport,
    Updated,
    Validators,
    as_utc,
    utcnow,
)

__all__ = [
    "AUTHOR_MAX",
    "HEADLINE_MAX",
    "RUNS_KEPT",
    "SUMMARY_MAX",
    "Claim",
    "Cursor",
    "Db",
    "RunRecord",
    "Store",
    "cap_text",
    "default_worker",
    "is_generic_key",
]

log = logging.getLogger(__name__)

RUNS_KEPT = 500  # run records kept per site; enough for drift and failure history


# A canonical key shorter than this many words ("read more", "live updates", "morning briefing") is too
# generic to name one story: it merges nothing by key, on one site or across sites (see `is_generic_key`).
GENERIC_KEY_WORDS = 4
# One site repeating a headline at a new URL within this time is the same story moved; later, it is the
# next edition of a recurring title (a daily "Morning briefing" comes back after 24 h).
RECURRING_GAP = timedelta(hours=20)
VALIDATORS_KEPT = timedelta(days=30)
# Text fields are cut to these lengths (at a word, with an ellipsis) as they are stored, so that a page
# with a megabyte "headline" gives a feed entry a reader can show, and the database stays small. Real
# headlines stay well under 300 characters; a summary is a teaser, not the article (content is not cut).
HEADLINE_MAX = 300
SUMMARY_MAX = 2000
AUTHOR_MAX = 200
ELLIPSIS = "\u2026"
_LAST_WORD = re.compile(r"\s+\S*$")
# robots.txt files older than robots.py's cache lifetime (a day) are of no use to the next process.
ROBOTS_KEPT = timedelta(days=1)
LEASES_KEPT = timedelta(days=2)  # site-run leases kept for the status page and debugging
# A write that lost a deadlock or serialisation race against another worker is run again this many times.
WRITE_ATTEMPTS = 5

# The stored article fields, in column order (see `_merge` for how a re-sighting changes them).
_MERGED = ("url", "headline", "published", "author", "summary", "image", "content", "origins")
_ENTRY_COLUMNS = "id, site, key, url_key, url, headline, published, author, summary, image, content, origins, first_seen, updated"
_SURROGATE = re.compile("[\x00\ud800-\udfff]")
_T = TypeVar("_T")
# The two index walks of `entries`, each newest first: a site's own entries (entries_site_newest) and the
# entries it sighted later (sources_site_newest, then the entry by primary key). The last column is the
# sort key; {join} is the engine's JOIN_IN_ORDER, {limit} a row count.
ENTRIES_OF_SITE = (
    f"SELECT {_ENTRY_COLUMNS}, coalesce(published, first_seen) FROM entries WHERE site = ? "
    "ORDER BY coalesce(published, first_seen) DESC, id LIMIT ?"
)
SOURCES_OF_SITE = (
    f"SELECT {', '.join('e.' + c.strip() for c in _ENTRY_COLUMNS.split(','))}, coalesce(e.published, e.first_seen) "
    "FROM sources s {join} entries e ON e.id = s.entry_id WHERE s.site = ? ORDER BY s.sort DESC, s.entry_id LIMIT ?"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord(SiteReport):
    """A stored SiteReport plus the share of items in which each watched field was filled."""

    fill: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    # Which feedmaker process ran it (None: recorded before workers were named); not part of what ran.
    worker: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """claim_run -> schedule: who holds a site's run for one schedule slot, and until when."""

    won: bool  # this worker holds the lease now and runs the site
    worker: str  # the holder
    expires: datetime  # the holder renews it while the run lasts; once past, another worker may take over
    done: bool  # the run finished (well or not): nobody runs this slot again


def is_generic_key(key: str) -> bool:
    """The one rule for generic headlines: such a key never makes two URLs one story; only a matching
    canonical URL (or a recorded source URL) does. Seven "Read more" links on one page are seven stories."""
    return len(key.split()) < GENERIC_KEY_WORDS


def cap_text(value: str, limit: int) -> str:
    """`value` if it fits in `limit` characters, else cut at the last word break that keeps at least half
    of it (a hard cut for one endless word) and ended with an ellipsis, `limit` characters at most."""
    if len(value) <= limit:
        return value
    cut = value[: limit - len(ELLIPSIS)]
    word = _LAST_WORD.search(cut)
    if word and word.start() >= limit // 2:
        cut = cut[: word.start()]
    return cut.rstrip(" \t\n,;:-") + ELLIPSIS


def _capped(value: str | None, limit: int) -> str | None:
    return None if value is None else cap_text(value, limit)


def default_worker() -> str:
    """This process's name in leases and run records: FEEDMAKER_WORKER, else host:pid."""
    return os.environ.get("FEEDMAKER_WORKER") or f"{socket.gethostname()}:{os.getpid()}"


def _iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order."""
    return as_utc(moment).isoformat(timespec="microseconds")


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _iso(moment)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _text(value: str) -> str:
    # Lone surrogates cannot be encoded as UTF-8, nor NUL stored in PostgreSQL text; they only come from
    # broken input, so keep the rest.
    return _SURROGATE.sub("\ufffd", value)


def _text_or_none(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """One open transaction of an engine: `?` placeholders, rows as tuples."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class Store(abc.ABC):
    """The feedmaker database. Every method is atomic and safe to call from several threads; other
    processes (and, on PostgreSQL, other machines) may use the same database concurrently."""

    # The column that orders rows by insertion (sqlite's rowid; an identity column in PostgreSQL).
    ROW_ORDER = "rowid"
    # The join that walks sources before entries in `entries` (sqlite plans CROSS JOIN in the written order).
    JOIN_IN_ORDER = "JOIN"
    # Whether other machines' workers use this database too, so site runs are claimed by lease (schedule.py).
    SHARED = False

    def __init__(self, path: str, *, now: Callable[[], datetime] = utcnow, worker: str | None = None) -> None:
        self.path = path  # where the database is, for messages (never with a password)
        self.worker = worker or default_worker()
        self._now = now
        # The last write transaction's failure (disk full, read-only file, server gone); None once one
        # commits. The daemon's /healthz reports it: a store that cannot write keeps nothing new.
        self.write_error: StoreError | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @abc.abstractmethod
    def _transaction(self, *, write: bool, action: str) -> contextlib.AbstractContextManager[Db]:
        """One transaction, committed when the block ends and rolled back on any error; the engine's
        errors come out as StoreError naming the action, with the engine's error as the cause."""

    def _retryable(self, exc: BaseException | None) -> bool:
        """Whether a failed write lost a race another worker won, so that running it again can succeed."""
        return False

    def _claim_key(self, db: Db, key: str, now: str) -> None:
        """Hold the canonical key until commit, so no other worker mints an entry for the same story
        meanwhile. sqlite's one writer at a time holds every key already."""
        return

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[Db]:
        """One read transaction: the queries inside see one snapshot (entries and their sources)."""
        with self._transaction(write=False, action=action) as db:
            yield db

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[Db]:
        """One write transaction; its failure is kept in `write_error` until a write commits."""
        try:
            with self._transaction(write=True, action=action) as db:
                yield db
        except StoreError as exc:
            self.write_error = exc
            raise
        self.write_error = None

    def _write_retrying(self, action: str, work: Callable[[Db], _T]) -> _T:
        """`work` in one write transaction, run again when it lost a race (a deadlock between two
        workers' add_many: the database aborts one of them, and it succeeds once the other committed)."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._write(action) as db:
                    return work(db)
            except StoreError as exc:
                if attempt == WRITE_ATTEMPTS or not self._retryable(exc.__cause__):
                    raise
                log.info("store %s lost a race attempt=%d reason=%s", action, attempt, exc.__cause__)
        raise AssertionError("unreachable")

    # -- entries -------------------------------------------------------------------------------------

    def add(self, article: Article, *, key: str, url_key: str) -> AddResult:
        """Store one sighting of a story, committed before returning (see `add_many` for the rules)."""
        return self.add_many([(article, key, url_key)])[0]

    def add_many(self, sightings: Sequence[tuple[Article, str, str]]) -> list[AddResult]:
        """Store (article, key, url_key) sightings in ONE transaction, committed before returning: one disk
        sync per site run instead of one per article. Each sighting, in order:

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
            return []
        now = _iso(self._now())
        what = f"add {sightings[0][0].url!r}" if len(sightings) == 1 else f"add {len(sightings)} articles"
        return self._write_retrying(
            what,
            lambda db: [
                self._add(db, a, key=_text(key), url_key=_text(url_key), now=now)
                for a, key, url_key in sightings
            ],
        )

    def _add(self, db: Db, article: Article, *, key: str, url_key: str, now: str) -> AddResult:
        row = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE url_key = ?", (url_key,)).fetchone()
        if row is not None:
            if row[1] != _text(article.site):
                # Another site lists the same URL: first-seen wins, or two sites' extractions of one page
                # would overwrite each other on every run; the sighting makes it part of that site's feed.
                self._record_source(db, row[0], article, url_key=url_key, now=now)
                return Duplicate(self._entry_by_id(db, row[0]), article.url)
            return self._merge(db, row, article, key=key, now=now)
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
            f"INSERT INTO entries ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (url_key) DO NOTHING",
            (entry_id, _text(article.site), key, url_key, *_article_values(article), now, now),
        ).rowcount
        if not inserted:
            # Another worker stored this URL since the look-up above; it is visible now, so rule 1 applies.
            return self._add(db, article, key=key, url_key=url_key, now=now)
        self._touch(db, entry_id)
        log.debug("site=%s added entry=%s url=%s", article.site, entry_id, article.url)
        return Added(self._entry_by_id(db, entry_id))

    def _record_source(self, db: Db, entry_id: str, article: Article, *, url_key: str, now: str) -> None:
        inserted = db.execute(
            "INSERT INTO sources (url_key, site, entry_id, url, first_seen, sort) "
            "SELECT ?, ?, id, ?, ?, coalesce(published, first_seen) FROM entries WHERE id = ? ON CONFLICT DO NOTHING",
            (url_key, _text(article.site), _text(article.url), now, entry_id),
        )
        if inserted.rowcount:
            # The entry joins this site's feed and gains a link in every feed holding it.
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
            for chunk in _chunks(keys):
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
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE key = ? ORDER BY first_seen, {self.ROW_ORDER}",
            (key,),
        ).fetchall()
        if not rows:
            return None
        same_site = [r for r in rows if r[1] == _text(article.site)]
        if same_site:
            last = same_site[-1]
            if last[6] and article.published:
                gap = abs(as_utc(article.published) - _time(last[6]))
            else:
                gap = _time(now) - _time(last[12])
            return last if gap < RECURRING_GAP else None
        return rows[0]

    def _merge(self, db: Db, row: tuple[Any, ...], article: Article, *, key: str, now: str) -> AddResult:
        """A re-sighting of a stored URL by its own site. Text fields take new non-None values (an edited
        headline); the URL keeps its first form (rotating tracking parameters map to one url_key) and a
        known date stays (re-reading "2 hours ago" every run must not move it); the origins of changed
        fields follow them. Only a real change gives Updated."""
        stored = dict(zip(_MERGED, row[4:12], strict=True))
        fresh = dict(zip(_MERGED, _article_values(article), strict=True))
        changes = {
            name: fresh[name]
            for name in ("headline", "author", "summary", "image", "content")
            if fresh[name] and fresh[name] != stored[name]  # "" (no headline on the listing) is no value
        }
        if stored["published"] is None and fresh["published"] is not None:
            changes["published"] = fresh["published"]
        entry_id = row[0]
        key = key or row[2]  # a sighting without a headline (known by its URL) keeps the stored key
        if changes:
            origins = dict(json.loads(stored["origins"] or "[]"))
            new_origins = dict(json.loads(fresh["origins"] or "[]"))
            for name in changes:
                origin_key = "date" if name == "published" else name
                if origin_key in new_origins:
                    origins[origin_key] = new_origins[origin_key]
            changes["origins"] = json.dumps([list(pair) for pair in origins.items()])
            assignments = ", ".join(f"{name} = ?" for name in changes)
            db.execute(
                f"UPDATE entries SET {assignments}, key = ?, updated = ? WHERE id = ?",
                (*changes.values(), key, now, entry_id),
            )
            if "published" in changes:
                db.execute(
                    "UPDATE sources SET sort = (SELECT coalesce(published, first_seen) FROM entries WHERE id = ?) "
                    "WHERE entry_id = ?",
                    (entry_id, entry_id),
                )
            self._touch(db, entry_id)
            log.debug("site=%s updated entry=%s fields=%s", article.site, entry_id, ",".join(changes))
            return Updated(self._entry_by_id(db, entry_id))
        if key != row[2]:
            # A new canonical key for unchanged fields (the canon rules changed): follow it silently, so a
            # canon upgrade does not mark every stored entry as updated.
            db.execute("UPDATE entries SET key = ? WHERE id = ?", (key, entry_id))
        return Duplicate(self._entry_by_id(db, entry_id), article.url)

    def _entry_by_id(self, db: Db, entry_id: str) -> Entry:
        row = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row, self._sources(db, [entry_id]).get(entry_id, ()))

    def _sources(self, db: Db, entry_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for chunk in _chunks(entry_ids):
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
        return self._present(
            f"look up known URLs for site {site}",
            "SELECT url_key FROM entries WHERE url_key IN ({marks}) UNION SELECT url_key FROM sources WHERE url_key IN ({marks})",
            url_keys,
            lambda chunk: (*chunk, *chunk),
        )

    def filtered_urls(self, site: str, url_keys: Iterable[str]) -> set[str]:
        """Which of these canonical URLs this site's filters rejected before (see `mark_filtered`)."""
        return self._present(
            f"look up filtered URLs for site {site}",
            "SELECT url_key FROM filtered WHERE site = ? AND url_key IN ({marks})",
            url_keys,
            lambda chunk: (site, *chunk),
        )

    def _present(
        self,
        action: str,
        query: str,
        url_keys: Iterable[str],
        params: Callable[[Sequence[str]], tuple[str, ...]],
    ) -> set[str]:
        """The url_keys a query finds, asked in chunks that stay under SQLite's parameter limit."""
        keys = sorted({_text(k) for k in url_keys})
        found: set[str] = set()
        with self._read(action) as db:
            for chunk in _chunks(keys):
                sql = query.format(marks=", ".join("?" * len(chunk)))
                found.update(r[0] for r in db.execute(sql, params(chunk)))
        return found

    def mark_filtered(self, site: str, url_keys: Iterable[str]) -> None:
        now = _iso(self._now())
        with self._write(f"remember filtered URLs of site {site}") as db:
            db.executemany(
                "INSERT INTO filtered (url_key, site, seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(_text(k), site, now) for k in url_keys],
            )

    def entries(self, sites: Sequence[str], limit: int) -> list[Entry]:
        """The newest `limit` entries first seen on these sites or seen there later as a source (so a
        site's own feed never misses a story another site had first), by coalesce(published, first_seen)
        desc, then id. Each story appears once, with the id it got at first sight.

        Cost is flat in history size: per site, two index walks newest first (its entries, its sources) that
        stop after `limit` distinct entries, then a merge of at most 2 x sites x limit rows."""
        if not sites or limit <= 0:
            return []
        found: dict[str, tuple[Any, ...]] = {}
        with self._read(f"read entries of {', '.join(sites)}") as db:
            for site in dict.fromkeys(sites):
                for query in (ENTRIES_OF_SITE, SOURCES_OF_SITE.format(join=self.JOIN_IN_ORDER)):
                    for row in self._newest(db, query, site, limit):
                        found.setdefault(row[0], row)
            # Newest first, ties by id: sort by the tie-break, then (stable) by the key.
            rows = sorted(
                sorted(found.values(), key=lambda r: str(r[0])), key=lambda r: str(r[-1]), reverse=True
            )[:limit]
            sources = self._sources(db, [r[0] for r in rows])
        return [_entry(r[:-1], sources.get(r[0], ())) for r in rows]

    def _newest(self, db: Db, query: str, site: str, limit: int) -> list[tuple[Any, ...]]:
        """The first `limit` distinct entries of one index walk. A site with two sightings of one entry
        repeats it, so a short answer with the row limit reached is asked again for twice the rows (a
        LIMIT rather than a lazy cursor: psycopg fetches a whole result at once)."""
        rows_wanted = limit
        while True:
            rows = db.execute(query, (site, rows_wanted)).fetchall()
            distinct: dict[str, tuple[Any, ...]] = {}
            for row in rows:
                distinct.setdefault(row[0], row)
            if len(distinct) >= limit or len(rows) < rows_wanted:
                return list(distinct.values())[:limit]
            rows_wanted *= 2

    def entry_count(self, site: str | None = None) -> int:
        with self._read("count entries") as db:
            if site is None:
                row = db.execute("SELECT count(*) FROM entries").fetchone()
            else:
                row = db.execute("SELECT count(*) FROM entries WHERE site = ?", (site,)).fetchone()
        return int(row[0])

    # -- conditional GET state -----------------------------------------------------------------------

    def validators(self, url: str) -> Validators:
        with self._read(f"read validators of {url!r}") as db:
            row = db.execute(
                "SELECT etag, last_modified FROM validators WHERE url = ?", (_text(url),)
            ).fetchone()
        return Validators() if row is None else Validators(etag=row[0], last_modified=row[1])

    def save_validators(self, url: str, v: Validators) -> None:
        with self._write(f"save validators of {url!r}") as db:
            if v.etag is None and v.last_modified is None:
                db.execute("DELETE FROM validators WHERE url = ?", (_text(url),))
            else:
                db.execute(
                    "INSERT INTO validators (url, etag, last_modified, saved) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, "
                    "last_modified = excluded.last_modified, saved = excluded.saved",
                    (_text(url), _text_or_none(v.etag), _text_or_none(v.last_modified), _iso(self._now())),
                )

    # -- run history ---------------------------------------------------------------------------------

    def host_pauses(self) -> dict[str, datetime]:
        """Hosts paused by Retry-After that have not resumed yet."""
        now = _iso(self._now())
        with self._read("read host pauses") as db:
            return {
                host: _time(until)
                for host, until in db.execute("SELECT host, until FROM host_pauses WHERE until > ?", (now,))
            }

    def save_host_pauses(self, pauses: Mapping[str, datetime]) -> None:
        """Keep these pauses, the later one where a host has two (other workers save theirs too), and
        drop expired ones."""
        with self._write("save host pauses") as db:
            db.execute("DELETE FROM host_pauses WHERE until <= ?", (_iso(self._now()),))
            db.executemany(
                "INSERT INTO host_pauses (host, until) VALUES (?, ?) ON CONFLICT (host) DO UPDATE "
                "SET until = excluded.until WHERE excluded.until > host_pauses.until",
                [(_text(h), _iso(u)) for h, u in sorted(pauses.items())],
            )

    def robots_files(self) -> list[tuple[str, datetime, RobotsFile]]:
        with self._read("read robots.txt cache") as db:
            rows = db.execute("SELECT url, fetched, status, body FROM robots").fetchall()
        return [(url, _time(fetched), RobotsFile(status, bytes(body))) for url, fetched, status, body in rows]

    def save_robots_files(self, files: Iterable[tuple[str, datetime, RobotsFile]]) -> None:
        """Keep these robots.txt files, the newer fetch where a URL has two (other workers save theirs
        too), and drop files older than the cache lifetime."""
        with self._write("save robots.txt cache") as db:
            db.execute("DELETE FROM robots WHERE fetched < ?", (_iso(self._now() - ROBOTS_KEPT),))
            db.executemany(
                "INSERT INTO robots (url, fetched, status, body) VALUES (?, ?, ?, ?) ON CONFLICT (url) DO UPDATE "
                "SET fetched = excluded.fetched, status = excluded.status, body = excluded.body "
                "WHERE excluded.fetched > robots.fetched",
                sorted((_text(url), _iso(fetched), f.status, f.body) for url, fetched, f in files),
            )

    def record_run(self, report: SiteReport, *, fill: Mapping[str, float] = MappingProxyType({})) -> None:
        """Append one run of one site; keeps the newest RUNS_KEPT runs per site."""
        self._write_retrying(
            f"record run of site {report.site}", lambda db: self._record_run(db, report, fill)
        )

    def _record_run(self, db: Db, report: SiteReport, fill: Mapping[str, float]) -> None:
        db.execute(
            "INSERT INTO runs (site, ok, started, finished, pages, items, new, updated, duplicates, "
            "not_modified, errors, warnings, fill, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                report.site,
                int(report.ok),
                _iso(report.started),
                _iso(report.finished),
                report.pages,
                report.items,
                report.new,
                report.updated,
                report.duplicates,
                report.not_modified,
                json.dumps(list(report.errors)),
                json.dumps(list(report.warnings)),
                json.dumps(dict(sorted(fill.items()))),
                self.worker,
            ),
        )
        db.execute(
            "DELETE FROM runs WHERE site = ? AND id <= "
            "(SELECT id FROM runs WHERE site = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (report.site, report.site, RUNS_KEPT),
        )
        # Validators of pages not fetched for a month (old config versions, moved listings) are dead weight.
        db.execute("DELETE FROM validators WHERE saved < ?", (_iso(report.finished - VALIDATORS_KEPT),))

    def last_run(self, site: str) -> RunRecord | None:
        return self._run(site, "")

    def last_good_run(self, site: str) -> RunRecord | None:
        return self._run(site, "AND ok = 1")

    def _run(self, site: str, condition: str) -> RunRecord | None:
        with self._read(f"read runs of site {site}") as db:
            row = db.execute(
                "SELECT site, started, finished, pages, items, new, updated, duplicates, not_modified, "
                f"errors, warnings, fill, worker FROM runs WHERE site = ? {condition} ORDER BY id DESC LIMIT 1",
                (site,),
            ).fetchone()
        if row is None:
            return None
        return RunRecord(
            site=row[0],
            started=_time(row[1]),
            finished=_time(row[2]),
            pages=row[3],
            items=row[4],
            new=row[5],
            updated=row[6],
            duplicates=row[7],
            not_modified=row[8],
            errors=tuple(json.loads(row[9])),
            warnings=tuple(json.loads(row[10])),
            fill=MappingProxyType({str(k): float(v) for k, v in json.loads(row[11]).items()}),
            worker=row[12],
        )

    def consecutive_failures(self, site: str) -> int:
        """Failed runs since the last good one (all of them if none was good)."""
        with self._read(f"count failures of site {site}") as db:
            row = db.execute(
                "SELECT count(*) FROM runs WHERE site = ? AND ok = 0 AND id > "
                "coalesce((SELECT max(id) FROM runs WHERE site = ? AND ok = 1), 0)",
                (site, site),
            ).fetchone()
        return int(row[0])

    # -- site-run leases: one worker per (site, schedule slot) -----------------------------------------

    def claim_run(self, site: str, slot: datetime, *, lease: timedelta) -> Claim:
        """Take the run of `site` for the slot starting at `slot`, unless another worker holds it (its
        lease not yet expired) or it is done. One statement decides, so of several workers asking at
        once exactly one wins; a lease left by a dead worker is taken over once it expires."""
        now = self._now()
        with self._write(f"claim run of site {site}") as db:
            won = db.execute(
                "INSERT INTO leases (site, slot, worker, claimed, expires, done) VALUES (?, ?, ?, ?, ?, 0) "
                "ON CONFLICT (site, slot) DO UPDATE SET worker = excluded.worker, claimed = excluded.claimed, "
                "expires = excluded.expires WHERE leases.done = 0 AND leases.expires <= excluded.claimed "
                "RETURNING worker",
                (site, _iso(slot), self.worker, _iso(now), _iso(now + lease)),
            ).fetchone()
            row = db.execute(
                "SELECT worker, expires, done FROM leases WHERE site = ? AND slot = ?", (site, _iso(slot))
            ).fetchone()
        return Claim(won=won is not None, worker=row[0], expires=_time(row[1]), done=bool(row[2]))

    def renew_run(self, site: str, slot: datetime, *, lease: timedelta) -> bool:
        """Extend this worker's lease; False when it lost it (expired and taken over by another worker)."""
        with self._write(f"renew run of site {site}") as db:
            renewed = db.execute(
                "UPDATE leases SET expires = ? WHERE site = ? AND slot = ? AND worker = ? AND done = 0",
                (_iso(self._now() + lease), site, _iso(slot), self.worker),
            ).rowcount
        return bool(renewed)

    def finish_run(self, site: str, slot: datetime, *, done: bool = True) -> None:
        """Mark this worker's run of the slot done; with done=False release it for another worker now (a
        run cancelled at shutdown). Leases older than LEASES_KEPT are dropped."""
        now = self._now()
        with self._write(f"finish run of site {site}") as db:
            if done:
                db.execute(
                    "UPDATE leases SET done = 1, expires = ? WHERE site = ? AND slot = ? AND worker = ?",
                    (_iso(now), site, _iso(slot), self.worker),
                )
            else:
                db.execute(
                    "UPDATE leases SET expires = claimed WHERE site = ? AND slot = ? AND worker = ? AND done = 0",
                    (site, _iso(slot), self.worker),
                )
            db.execute("DELETE FROM leases WHERE site = ? AND slot < ?", (site, _iso(now - LEASES_KEPT)))

    # -- per-host turns across workers (the fetcher's HostGate asks these on a shared store) -----------

    def take_host_turn(self, host: str, *, hold: float) -> float:
        """Take `host`'s one request in flight for at most `hold` seconds: 0.0 when taken, else the
        seconds until it may be free (another worker's request is in flight, or its delay not over).
        One statement decides, so two workers never both get the turn; a turn held by a dead worker
        lapses after `hold`."""
        now = self._now()
        with self._write(f"take turn of host {host}") as db:
            taken = db.execute(
                "INSERT INTO host_turns (host, holder, held_until, next_allowed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (host) DO UPDATE SET holder = excluded.holder, held_until = excluded.held_until "
                "WHERE host_turns.next_allowed <= excluded.next_allowed "
                "AND (host_turns.holder IS NULL OR host_turns.held_until <= excluded.next_allowed) RETURNING host",
                (_text(host), self.worker, _iso(now + timedelta(seconds=hold)), _iso(now)),
            ).fetchone()
            if taken is not None:
                return 0.0
            holder, held_until, next_allowed = db.execute(
                "SELECT holder, held_until, next_allowed FROM host_turns WHERE host = ?", (_text(host),)
            ).fetchone()
        free = max(_time(next_allowed), _time(held_until)) if holder is not None else _time(next_allowed)
        return max((free - now).total_seconds(), 0.001)

    def end_host_turn(self, host: str, *, delay: float) -> None:
        """Give `host`'s turn back; the next request to it, from any worker, waits `delay` seconds."""
        with self._write(f"end turn of host {host}") as db:
            db.execute(
                "UPDATE host_turns SET holder = NULL, next_allowed = ? WHERE host = ? AND holder = ?",
                (_iso(self._now() + timedelta(seconds=delay)), _text(host), self.worker),
            )


def _article_values(article: Article) -> tuple[str | None, ...]:
    """The merged fields of an article, in _MERGED order, as stored (text fields capped)."""
    return (
        _text(article.url),
        _text(cap_text(article.headline, HEADLINE_MAX)),
        _iso_or_none(article.published),
        _text_or_none(_capped(article.author, AUTHOR_MAX)),
        _text_or_none(_capped(article.summary, SUMMARY_MAX)),
        _text_or_none(article.image),
        _text_or_none(article.content),
        json.dumps([list(pair) for pair in article.origins]),
    )


def _entry(row: tuple[Any, ...], sources: tuple[str, ...]) -> Entry:
    (entry_id, site, key, _url_key, url, headline, published, author, summary, image, content, origins,
     first_seen, updated) = row  # fmt: skip
    article = Article(
        site=site,
        url=url,
        headline=headline,
        published=None if published is None else _time(published),
        author=author,
        summary=summary,
        image=image,
        content=content,
        origins=tuple((str(name), str(where)) for name, where in json.loads(origins)),
    )
    return Entry(
        id=entry_id,
        key=key,
        article=article,
        first_seen=_time(first_seen),
        updated=_time(updated),
        sources=sources,
    )
