"""Frozen data passed between stages: fetch -> extract -> store -> feed, and the reports about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "AddResult",
    "Added",
    "Article",
    "Duplicate",
    "Entry",
    "FeedMeta",
    "FetchResult",
    "Listing",
    "NotModified",
    "Page",
    "RobotsFile",
    "Sighting",
    "SiteReport",
    "Updated",
    "Validators",
    "as_utc",
    "entry_updated",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def entry_updated(article: Article, first_seen: datetime) -> datetime:
    """An entry's Atom `updated`, the one rule for it: the page's modified date when it has one no earlier
    than its published date, else its published date, else when the story was first seen. Never the crawl
    time of a re-sighting: a reader would show every re-crawled story as changed."""
    if article.modified is not None and (article.published is None or article.modified >= article.published):
        return article.modified
    return article.published or first_seen


def as_utc(moment: datetime) -> datetime:
    """Tz-aware UTC. Naive datetimes are taken as UTC; the extremes that cannot shift are clamped."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Validators:
    """What to send next time for a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """fetch -> extract."""

    url: str  # final URL after redirects: the base for relative links
    body: bytes
    encoding: str | None  # charset from Content-Type; extract decides the fallback
    validators: Validators = field(default_factory=Validators)
    fetched_at: datetime = field(default_factory=utcnow)  # always tz-aware (UTC)
    status: int = 200


@dataclass(frozen=True, slots=True)
class NotModified:
    """A 304 is a result, not an error."""

    url: str


FetchResult = Page | NotModified


@dataclass(frozen=True, slots=True)
class RobotsFile:
    """fetch -> robots (and store, to keep it between runs): one robots.txt URL's answer after redirects."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Article:
    """extract -> store: absolute URLs, stripped text, parsed tz-aware dates."""

    site: str
    url: str
    headline: str
    published: datetime | None = None  # in the offset the page gave (dates.py); compared as instants
    modified: datetime | None = None  # when the page says it last changed, likewise
    author: str | None = None
    summary: str | None = None
    image: str | None = None
    content: str | None = None  # sanitised HTML
    # Where each value came from: ("headline", "selector:h1"), ("date", "json-ld"), ...
    origins: tuple[tuple[str, str], ...] = ()

    def origin(self, name: str) -> str | None:
        return next((where for field_name, where in self.origins if field_name == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    """What a listing page yields: the items on it and the next page to follow, if any."""

    url: str
    items: tuple[Article, ...]
    next_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """store -> feed: an Article plus the identity the store gave it."""

    id: str  # minted once at first sight; never recomputed from mutable fields
    key: str  # canonical headline (canon.py)
    article: Article
    first_seen: datetime
    updated: datetime  # entry_updated(article, first_seen): the feed's <updated>
    sources: tuple[str, ...] = ()  # other URLs (other sites) the same story was seen at
    # The site feed this entry's sighting comes from, in a combined feed (Atom <source>); None elsewhere.
    source: FeedMeta | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sighting:
    """store -> views: one site's copy of a story, with the fields that site gave it."""

    article: Article  # article.site is the sighting's site
    url_key: str
    first_seen: datetime
    updated: datetime  # entry_updated(article, first_seen)


@dataclass(frozen=True, slots=True)
class Added:
    entry: Entry


@dataclass(frozen=True, slots=True)
class Updated:
    """A known story whose fields changed (e.g. an edited headline found via its canonical URL)."""

    entry: Entry


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The story is already stored (same canonical key or URL); this sighting was recorded as a source."""

    entry: Entry
    source_url: str


AddResult = Added | Updated | Duplicate


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedMeta:
    id: str  # feed id: site id or combined feed id
    title: str
    link: str  # the site's home (alternate link)
    self_url: str | None = None  # where the feed is served, if known
    subtitle: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteReport:
    """crawl -> cli/schedule/serve: what one run of one site did."""

    site: str
    started: datetime
    finished: datetime
    pages: int = 0
    items: int = 0
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    not_modified: int = 0
    errors: tuple[str, ...] = ()  # one line each, naming the URL or selector at fault
    warnings: tuple[str, ...] = ()  # drift and empty fields: the run worked but something rots

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()
