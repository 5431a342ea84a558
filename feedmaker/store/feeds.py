"""Rendered feeds kept in the store, so that every instance on one shared database serves the same bytes.

`save_feeds` is the publisher's other destination (besides files in output_dir): each feed's plain and gzip
bytes, its ETag, Last-Modified and the version it was rendered from (the sum of its sites' change counters,
which only grow). A feed row changes only when its bytes changed, and never back to an older render: two
workers publishing the same combined feed from different moments keep the later one.

`feeds_since(seq)` is what a server polls: every write that changes a row takes the next number of the one
`feed_clock` counter, in the same transaction, so rows change in the order of their numbers (the counter's
row lock is held until commit on PostgreSQL; sqlite has one writer at a time). A poll costs one read of the
counter when nothing changed, and returns only the feeds changed since the number the poller last saw.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from feedmaker.store.rows import Db, from_iso, iso
from feedmaker.store.transactions import Transactions

__all__ = ["FeedRender", "Feeds", "StoredFeed", "feed_etag", "gzip_feed"]

GZIP_LEVEL = 6


def feed_etag(body: bytes) -> str:
    """The strong ETag of a feed's bytes: a hash, so it changes iff they change (serve's files use it too)."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def gzip_feed(body: bytes) -> bytes:
    # mtime=0: the same bytes give the same gzip bytes on every machine.
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedRender:
    """publish -> store: one rendered feed."""

    id: str
    body: bytes
    rendered_from: int  # the sum of the feed's sites' change counters that the render read
    entries: int  # entries the feed holds


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFeed:
    """store -> serve: one feed as kept in the store."""

    id: str
    seq: int  # the feed clock's number of the write that made this version
    body: bytes
    gzipped: bytes
    etag: str
    modified: int  # whole seconds since the epoch at which these bytes were first written
    entries: int
    worker: str  # who wrote this version


_COLUMNS = "id, seq, body, gzipped, etag, modified, entries, worker"


class Feeds(Transactions):
    """The store's rendered feeds (see the module docstring)."""

    def save_feeds(self, renders: Sequence[FeedRender], *, now: datetime | None = None) -> list[str]:
        """Keep these renders; the ids of those that changed a row (new bytes, not older than stored)."""
        if not renders:
            return []
        moment = int((now or self._now()).timestamp())
        # Sorted, so that two workers saving overlapping feeds lock their rows in one order.
        ordered = sorted(renders, key=lambda r: r.id)
        prepared = [(r, feed_etag(r.body)) for r in ordered]

        def work(db: Db) -> list[str]:
            seq = int(db.execute("UPDATE feed_clock SET seq = seq + 1 RETURNING seq").fetchone()[0])
            changed = []
            for render, etag in prepared:
                row = db.execute(
                    "INSERT INTO feeds (id, seq, rendered_from, body, gzipped, etag, modified, entries, worker) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, "
                    "rendered_from = excluded.rendered_from, body = excluded.body, gzipped = excluded.gzipped, "
                    "etag = excluded.etag, modified = excluded.modified, entries = excluded.entries, "
                    "worker = excluded.worker "
                    "WHERE feeds.etag <> excluded.etag AND feeds.rendered_from <= excluded.rendered_from "
                    "RETURNING id",
                    (render.id, seq, render.rendered_from, render.body, gzip_feed(render.body), etag, moment,
                     render.entries, self.worker),
                ).fetchone()  # fmt: skip
                if row is not None:
                    changed.append(render.id)
            return changed

        return self._write_retrying(f"save {len(ordered)} feed(s)", work)

    def feeds_since(self, seq: int) -> tuple[int, list[StoredFeed]]:
        """(the feed clock now, the feeds written after number `seq`); `feeds_since(0)` gives them all."""
        with self._read("read feeds") as db:
            clock = int(db.execute("SELECT seq FROM feed_clock").fetchone()[0])
            if clock == seq:
                return clock, []
            rows = db.execute(f"SELECT {_COLUMNS} FROM feeds WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
        found = [
            StoredFeed(id=i, seq=int(s), body=bytes(b), gzipped=bytes(g), etag=e, modified=int(m),
                       entries=int(n), worker=w)
            for i, s, b, g, e, m, n, w in rows
        ]  # fmt: skip
        return max([clock, *(f.seq for f in found)]), found

    def feed_born(self, feed_id: str) -> datetime:
        """When this feed was first written (now, the first time it is asked): an empty feed's <updated>,
        which then stays put, so its bytes and ETag do too, and never says 1970."""
        now = iso(self._now())

        def work(db: Db) -> datetime:
            db.execute(
                "INSERT INTO feed_births (id, born) VALUES (?, ?) ON CONFLICT (id) DO NOTHING", (feed_id, now)
            )
            return from_iso(db.execute("SELECT born FROM feed_births WHERE id = ?", (feed_id,)).fetchone()[0])

        return self._write_retrying(f"record the first write of feed {feed_id}", work)

    def feed_entries(self) -> dict[str, int]:
        """Feed id -> entries its stored version holds (the status page of a shared store)."""
        with self._read("read feed entry counts") as db:
            return {i: int(n) for i, n in db.execute("SELECT id, entries FROM feeds")}
