"""Where the feed path's bytes come from: `FeedFiles` (output_dir/<id>.atom, the single-machine case) or
`StoredFeeds` (the feeds kept in a shared store, so that every instance serves the same bytes and validators).
Each gives `get(feed_id) -> FeedFile | None`, one version of a feed with everything a poll needs precomputed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from feedmaker.store.feeds import StoredFeed

__all__ = ["FeedFile", "FeedFiles", "FeedStore", "StoredFeeds"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedFile:
    """One version of one feed file, with everything a poll needs precomputed."""

    body: bytes
    gzipped: bytes
    etag: str  # strong: a hash of the bytes, so it changes iff they change
    gzip_etag: str  # the gzip representation is a different entity, so it gets its own strong tag
    modified: int  # whole seconds since the epoch: the resolution of Last-Modified


class FeedFiles:
    """output_dir/<id>.atom, read and hashed once per version: a poll of an unchanged file costs one stat()."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self._cache: dict[str, tuple[tuple[int, int, int], FeedFile]] = {}

    def get(self, feed_id: str) -> FeedFile | None:
        path = self.output_dir / f"{feed_id}.atom"
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            self._cache.pop(feed_id, None)
            return None
        cached = self._cache.get(feed_id)
        if cached and cached[0] == _version(stat):
            return cached[1]
        # write_feed replaces the file by rename: the bytes read through one descriptor are one whole version,
        # and the key comes from that descriptor, so it always names the bytes cached with it.
        try:
            with path.open("rb") as fh:
                version = _version(os.fstat(fh.fileno()))
                body = fh.read()
        except FileNotFoundError:
            return None
        digest = hashlib.sha256(body).hexdigest()[:32]
        feed = FeedFile(
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            etag=f'"{digest}"',
            gzip_etag=f'"{digest}-gzip"',
            modified=version[1] // 1_000_000_000,
        )
        self._cache[feed_id] = (version, feed)
        return feed


class FeedStore(Protocol):
    def feeds_since(self, seq: int) -> tuple[int, list[StoredFeed]]: ...

    @property
    def unreachable_since(self) -> datetime | None: ...


class StoredFeeds:
    """The feeds kept in a shared store, all in memory; `refresh()` (blocking: call it in a thread) loads the
    ones written since its last call and returns their ids."""

    def __init__(self, store: FeedStore) -> None:
        self.store = store
        self._seq = 0
        self._feeds: dict[str, FeedFile] = {}

    def refresh(self) -> list[str]:
        seq, changed = self.store.feeds_since(self._seq)
        for stored in changed:
            self._feeds[stored.id] = FeedFile(
                body=stored.body,
                gzipped=stored.gzipped,
                etag=stored.etag,
                gzip_etag=f'{stored.etag[:-1]}-gzip"',  # as FeedFiles spells it
                modified=stored.modified,
            )
        self._seq = seq
        return [stored.id for stored in changed]

    def get(self, feed_id: str) -> FeedFile | None:
        return self._feeds.get(feed_id)

    @property
    def store_away(self) -> bool:
        """The store is in an outage it has logged once already (so a failed poll need not say it again)."""
        return self.store.unreachable_since is not None


def _version(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)
