"""Publishing: FeedMeta + Entries -> Atom bytes (RFC 4287) -> a feed file replaced atomically.

The only module importing feedgen. Rendering is deterministic: the same input gives the same bytes (a
stable ETag), so nothing here reads the clock. Dates are written in the offset the page gave them
(models.py, dates.py), so a story's local day is the one its publisher printed. The feed's `updated` is
its newest entry's `updated`; an empty feed's is `born`, the time it was first written (the store keeps
it), which does not change from run to run.

Every string passes `xml_text` before it reaches feedgen (XML 1.0 forbids C0 controls other than tab,
newline and carriage return, U+FFFE, U+FFFF and lone surrogates; lxml raises on them), and every URL
passes `feed_url` (http, https and mailto only), so the output always validates against the RFC 4287
schema whatever the extractor let through.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from feedgen.feed import FeedEntry, FeedGenerator

from feedmaker import __version__
from feedmaker.errors import FeedError
from feedmaker.models import Entry, FeedMeta, as_utc
from feedmaker.text import XML_FORBIDDEN
from feedmaker.urls import href

__all__ = [
    "FEED_NAMESPACE",
    "GENERATOR_URI",
    "TEMP_SUFFIX",
    "UNTITLED",
    "clean_stale_temp",
    "feed_url",
    "render_atom",
    "write_feed",
    "xml_text",
]

log = logging.getLogger(__name__)

UNTITLED = "(untitled)"
GENERATOR_URI = "https://github.com/feedmaker/feedmaker"
# Feed ids are uuid5 names of the feed id in this namespace: stable when the host or the server's
# base URL changes (a URL-based id would turn every subscriber's feed into a new one), and a real,
# registered URN scheme (tag: would need an authority and a date that we do not own).
FEED_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, GENERATOR_URI)
TEMP_SUFFIX = ".feedmaker-tmp"
# Decided by extension, not by the mimetypes module, whose answers depend on the host's /etc/mime.types.
_IMAGE_TYPES = {
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".ico": "image/vnd.microsoft.icon",
    ".jpe": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
}


def xml_text(value: str | None) -> str:
    """`value` without the characters XML 1.0 forbids (None -> "")."""
    if not value:
        return ""
    return XML_FORBIDDEN.sub("", value)


def feed_url(value: str | None) -> str | None:
    """An http, https or mailto URL fit for an href, or None. Spaces and other characters that are not
    allowed raw in a URL are percent-encoded; anything else (javascript:, data:, relative) is dropped."""
    return href(xml_text(value))


def _title(value: str | None) -> str:
    return " ".join(xml_text(value).split()) or UNTITLED


_MAX_OFFSET = timedelta(hours=14)


def _shown(moment: datetime) -> datetime:
    """Tz-aware in its own offset; in UTC when naive, when the offset is not whole minutes (RFC 3339 cannot
    write it) or beyond the +-14:00 that xsd:dateTime allows (Atom's schema cannot take it)."""
    offset = moment.utcoffset()
    if offset is None or offset.seconds % 60 or offset.microseconds or abs(offset) > _MAX_OFFSET:
        return as_utc(moment)
    return moment


def _image_type(url: str) -> str | None:
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return _IMAGE_TYPES.get(path[dot:]) if dot > path.rfind("/") else None


def _feed_id(feed_id: str) -> str:
    return f"urn:uuid:{uuid.uuid5(FEED_NAMESPACE, xml_text(feed_id))}"


class _EntryLinks:
    """Entry links other than the alternate one, and the entry's <source>, as a feedgen entry extension.

    feedgen 1.0's FeedEntry drops the rel and type of every entry link (the loop variable is rebound
    to the new element before its attributes are read), which would turn an image enclosure into a
    second alternate link, and writes no Atom <source>. Its extension hook writes our elements as they are.
    """

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []
        self.source: FeedMeta | None = None

    def extend_atom(self, entry: Any) -> Any:
        # No namespace: feedgen builds un-namespaced elements under a literal xmlns attribute.
        for attributes in self.links:
            entry.append(entry.makeelement("link", attributes))
        if self.source is not None:
            entry.append(_source(entry, self.source))
        return entry

    def extend_rss(self, item: Any) -> Any:
        return item

    def extend_ns(self) -> dict[str, str]:
        return {}


def _source(entry: Any, meta: FeedMeta) -> Any:
    """RFC 4287 4.2.11: the feed an entry is copied from, named as that feed names itself (id, title, links)."""
    source = entry.makeelement("source", {})
    for name, text in (("id", _feed_id(meta.id)), ("title", _title(meta.title))):
        child = source.makeelement(name, {})
        child.text = text
        source.append(child)
    for rel, url, kind in (
        ("alternate", meta.link, "text/html"),
        ("self", meta.self_url, "application/atom+xml"),
    ):
        link = feed_url(url)
        if link:
            source.append(source.makeelement("link", {"rel": rel, "href": link, "type": kind}))
    return source


def _entry(entry: Entry) -> FeedEntry:
    article = entry.article
    item = FeedEntry()
    item.register_extension("feedmaker_links", _EntryLinks, atom=True, rss=False)
    extra: list[dict[str, str]] = item.feedmaker_links.links
    item.id(xml_text(entry.id).strip() or f"urn:uuid:{uuid.uuid5(FEED_NAMESPACE, xml_text(article.url))}")
    title = _title(article.headline)
    item.title(title)
    item.updated(_shown(entry.updated))
    item.published(_shown(article.published or entry.first_seen))
    link = feed_url(article.url)
    if link:
        # Written without rel by feedgen (see _EntryLinks), which RFC 4287 reads as rel="alternate".
        item.link(href=link, rel="alternate")
    author = " ".join(xml_text(article.author).split())
    if author:
        item.author(name=author)
    summary = xml_text(article.summary).strip()
    if summary:
        item.summary(summary)
    content = xml_text(article.content).strip()
    if content:
        item.content(content, type="html")
    elif not link:
        # RFC 4287 4.1.1.1: an entry without an alternate link must carry content.
        item.content(summary or title, type="text")
    image = feed_url(article.image)
    if image:
        image_type = _image_type(image)
        extra.append({"rel": "enclosure", "href": image, **({"type": image_type} if image_type else {})})
    for source in dict.fromkeys(filter(None, map(feed_url, entry.sources))):
        if source != link:
            extra.append({"rel": "related", "href": source})
    item.feedmaker_links.source = entry.source
    return item


def render_atom(meta: FeedMeta, entries: Sequence[Entry], *, born: datetime | None = None) -> bytes:
    """Atom bytes for `entries` in the order given (the store gives them newest first). `born`, when the
    feed was first written, dates a feed without entries (required then)."""
    generator = FeedGenerator()
    title = _title(meta.title)
    generator.id(_feed_id(meta.id))
    generator.title(title)
    # Atom needs an author on the feed or on every entry; entries name their own when they know it.
    generator.author(name=title)
    home = feed_url(meta.link)
    if home:
        generator.link(href=home, rel="alternate", type="text/html")
    self_url = feed_url(meta.self_url)
    if self_url:
        generator.link(href=self_url, rel="self", type="application/atom+xml")
    subtitle = xml_text(meta.subtitle).strip()
    if subtitle:
        generator.subtitle(subtitle)
    generator.generator("feedmaker", version=__version__, uri=GENERATOR_URI)
    # The newest entry's, in that entry's own offset (max compares instants).
    newest = max((e.updated for e in entries), key=as_utc, default=born)
    if newest is None:
        raise FeedError(f"feed {meta.id}: an empty feed needs the time it was first written (born)")
    generator.updated(_shown(newest))
    try:
        for entry in entries:
            generator.add_entry(_entry(entry), order="append")
        data: bytes = generator.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    except (ValueError, TypeError) as exc:
        raise FeedError(f"feed {meta.id}: cannot render: {exc}") from exc
    return data


def write_feed(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` atomically; False (file untouched) when it holds these bytes already.

    A reader sees the old file or the new one, never a mix: the bytes go to a temp file in the same
    directory, are fsynced, renamed over `path`, and the directory is fsynced so the rename survives
    a power cut.
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise FeedError(f"{path}: cannot read: {exc.strerror}") from exc
    directory = path.parent
    try:
        fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise FeedError(f"{path}: cannot create a temp file: {exc.strerror}") from exc
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            # mkstemp makes 0600; a feed is public and usually served by another user.
            os.fchmod(out.fileno(), 0o644)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise FeedError(f"{path}: cannot write: {exc.strerror}") from exc
    _fsync_directory(directory)
    log.debug("feed written path=%s bytes=%d", path, len(data))
    return True


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename itself is still atomic
    finally:
        os.close(fd)


def clean_stale_temp(directory: Path) -> int:
    """Remove temp files a crashed write_feed left in `directory`; returns how many.

    Call it at start-up, before any writer runs (the daemon holds the state lock then).
    """
    removed = 0
    try:
        leftovers = sorted(directory.glob(f".*{TEMP_SUFFIX}"))
    except OSError as exc:
        raise FeedError(f"{directory}: cannot list: {exc.strerror}") from exc
    for leftover in leftovers:
        try:
            leftover.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise FeedError(f"{leftover}: cannot remove stale temp file: {exc.strerror}") from exc
        removed += 1
        log.info("removed stale temp file path=%s", leftover)
    return removed
