"""The parts of the schema both engines write alike (sqlite.py and postgres.py keep their own MIGRATIONS,
whose steps differ in types and order): one spelling per table, so the two dialects cannot drift apart.
"""

from __future__ import annotations

__all__ = [
    "DATES",
    "FILTERED",
    "HOST_PAUSES",
    "HOST_TURNS",
    "LEASES",
    "ROBOTS_CLAIMS",
    "SOURCES_FIELDS",
    "SOURCES_INDEXES",
    "SOURCES_SORT",
    "VALIDATORS",
    "VALIDATORS_SAVED",
    "entries_table",
    "feeds_tables",
    "runs_table",
]

VALIDATORS = """CREATE TABLE validators (
            url TEXT PRIMARY KEY,
            etag TEXT,
            last_modified TEXT,
            saved TEXT NOT NULL
        )"""

# Every run prunes validators not saved for a month (History._record_run): through this index that costs
# the same with 10 listings stored or 50,000, instead of a scan of the table per run.
VALIDATORS_SAVED = "CREATE INDEX validators_saved ON validators (saved)"

HOST_PAUSES = """CREATE TABLE host_pauses (
            host TEXT PRIMARY KEY,
            until TEXT NOT NULL
        )"""

FILTERED = """CREATE TABLE filtered (
            url_key TEXT NOT NULL,
            site TEXT NOT NULL,
            seen TEXT NOT NULL,
            PRIMARY KEY (url_key, site)
        )"""

LEASES = """CREATE TABLE leases (
            site TEXT NOT NULL,
            slot TEXT NOT NULL,
            worker TEXT NOT NULL,
            claimed TEXT NOT NULL,
            expires TEXT NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (site, slot)
        )"""

HOST_TURNS = """CREATE TABLE host_turns (
            host TEXT PRIMARY KEY,
            holder TEXT,
            held_until TEXT NOT NULL,
            next_allowed TEXT NOT NULL
        )"""

# Who is fetching a robots.txt for every worker, until when (Coordination.claim_robots_fetch).
ROBOTS_CLAIMS = """CREATE TABLE robots_claims (
            url TEXT PRIMARY KEY,
            worker TEXT NOT NULL,
            until TEXT NOT NULL
        )"""

SOURCES_INDEXES = (
    "CREATE INDEX sources_entry ON sources (entry_id, first_seen)",
    "CREATE INDEX sources_site ON sources (site, entry_id)",
)
# Each source carries its entry's sort key (coalesce(published, first_seen)), so that the sightings of one
# site are walked newest first through an index and stop at the feed's limit (`Store.entries`).
SOURCES_SORT = (
    "ALTER TABLE sources ADD COLUMN sort TEXT NOT NULL DEFAULT ''",
    "UPDATE sources SET sort = coalesce("
    "(SELECT coalesce(e.published, e.first_seen) FROM entries e WHERE e.id = sources.entry_id), '')",
    "CREATE INDEX sources_site_newest ON sources (site, sort DESC, entry_id)",
)

# Each sighting keeps the fields its own site gave it (views.py decides which one a feed shows). Rows stored
# before get their story's fields, which is what their site's feed showed until then, under their own URL,
# and their own sort key (their date, else when they were first seen).
SOURCES_FIELDS = (
    "ALTER TABLE sources ADD COLUMN headline TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE sources ADD COLUMN published TEXT",
    "ALTER TABLE sources ADD COLUMN author TEXT",
    "ALTER TABLE sources ADD COLUMN summary TEXT",
    "ALTER TABLE sources ADD COLUMN image TEXT",
    "ALTER TABLE sources ADD COLUMN content TEXT",
    "ALTER TABLE sources ADD COLUMN origins TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE sources ADD COLUMN updated TEXT NOT NULL DEFAULT ''",
    "UPDATE sources SET (headline, published, author, summary, image, content, origins, updated) = "
    "(SELECT e.headline, e.published, e.author, e.summary, e.image, e.content, e.origins, sources.first_seen "
    "FROM entries e WHERE e.id = sources.entry_id) WHERE entry_id IN (SELECT id FROM entries)",
    "UPDATE sources SET sort = coalesce(published, first_seen)",
)


# Dates keep the offset the page printed them in (seconds east of UTC; NULL: UTC, as every row stored before),
# and a page's modified date is kept beside its published one (store/rows.py MERGED). An empty feed carries
# the time it was first written (store/feeds.py `feed_born`), so its <updated> never moves or says 1970.
DATES = (
    *(
        f"ALTER TABLE {table} ADD COLUMN {column} {kind}"
        for table in ("entries", "sources")
        for column, kind in (
            ("published_offset", "INTEGER"),
            ("modified", "TEXT"),
            ("modified_offset", "INTEGER"),
        )
    ),
    "CREATE TABLE feed_births (id TEXT PRIMARY KEY, born TEXT NOT NULL)",
)


def entries_table(row_order: str) -> str:
    """The entries table; `row_order` is a column definition that numbers rows in insertion order where the
    engine has none of its own (sqlite has rowid)."""
    return f"""CREATE TABLE entries (
            id TEXT PRIMARY KEY,
            {row_order}
            site TEXT NOT NULL,
            key TEXT NOT NULL,
            url_key TEXT NOT NULL UNIQUE,
            url TEXT NOT NULL,
            headline TEXT NOT NULL,
            published TEXT,
            author TEXT,
            summary TEXT,
            image TEXT,
            content TEXT,
            origins TEXT NOT NULL DEFAULT '[]',
            first_seen TEXT NOT NULL,
            updated TEXT NOT NULL
        )"""


def runs_table(id_type: str) -> str:
    """The run records; `id_type` is the engine's auto-numbered primary key."""
    return f"""CREATE TABLE runs (
            id {id_type},
            site TEXT NOT NULL,
            ok INTEGER NOT NULL,
            started TEXT NOT NULL,
            finished TEXT NOT NULL,
            pages INTEGER NOT NULL,
            items INTEGER NOT NULL,
            new INTEGER NOT NULL,
            updated INTEGER NOT NULL,
            duplicates INTEGER NOT NULL,
            not_modified INTEGER NOT NULL,
            errors TEXT NOT NULL,
            warnings TEXT NOT NULL,
            fill TEXT NOT NULL
        )"""


def sources_table(name: str) -> str:
    """The sightings table, one row per (URL, site); `name` differs while sqlite's step 4 rebuilds it."""
    return f"""CREATE TABLE {name} (
            url_key TEXT NOT NULL,
            site TEXT NOT NULL,
            entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            PRIMARY KEY (url_key, site)
        )"""


def feeds_tables(blob: str) -> tuple[str, ...]:
    """Rendered feeds (store/feeds.py) and the one counter numbering their changes; `blob` is the engine's
    bytes type."""
    return (
        f"""CREATE TABLE feeds (
            id TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            rendered_from BIGINT NOT NULL,
            body {blob} NOT NULL,
            gzipped {blob} NOT NULL,
            etag TEXT NOT NULL,
            modified BIGINT NOT NULL,
            entries INTEGER NOT NULL,
            worker TEXT NOT NULL
        )""",
        "CREATE INDEX feeds_seq ON feeds (seq)",
        "CREATE TABLE feed_clock (one INTEGER PRIMARY KEY CHECK (one = 1), seq BIGINT NOT NULL)",
        "INSERT INTO feed_clock (one, seq) VALUES (1, 0)",
    )
