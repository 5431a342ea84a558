"""The untrusted boundary: TOML files -> validated, frozen SiteConfig and Settings.

config/feedmaker.toml holds global settings and combined feeds; config/sites/*.toml holds one site
each (its id is the file stem). Every problem is a ConfigError naming the file and the key.
"""

from __future__ import annotations

import re
import socket
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# Selectors are compiled here so that a typo is a config error at load time, not an empty feed later.
from selectolax.lexbor import LexborHTMLParser, SelectolaxError

from feedmaker import patterns
from feedmaker.config_problems import combined, config_errors, feed_errors, line_of
from feedmaker.errors import ConfigError

__all__ = [
    "MAX_INTERVAL",
    "MIN_INTERVAL",
    "SITE_ID",
    "ArticleSelectors",
    "Canonical",
    "CombinedFeed",
    "ConfigCheck",
    "FetchSettings",
    "FieldChain",
    "FieldSpec",
    "Filters",
    "ImageChain",
    "LinkChain",
    "ListSelectors",
    "Schedule",
    "ServerSettings",
    "Settings",
    "SiteConfig",
    "check_config",
    "check_http_url",
    "check_selector",
    "load_all",
    "load_settings",
    "load_site",
    "load_sites",
]

SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PROBE = LexborHTMLParser("<p></p>")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def check_selector(css: str) -> str:
    try:
        _PROBE.css(css)
    except SelectolaxError as exc:
        raise ValueError(f"invalid CSS selector {css!r}") from exc
    return css


def check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


class FieldSpec(_Frozen):
    """One way to read one field: the first node matching `css`, its text or `attr`."""

    css: str
    attr: str | None = None  # read this attribute instead of the text
    format: str | None = None  # strptime format, for dates printed in a site's own way
    all: bool = False  # join the text of every match (e.g. several authors)
    regex: str | None = None  # keep group 1 (or the whole match) of this RE2 pattern (patterns.py)

    _css = field_validator("css")(classmethod(lambda cls, v: check_selector(v)))

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        return None if v is None else patterns.check_field(v)


def _to_chain(value: Any) -> Any:
    """A field is a CSS string, a table, or a list of either tried in order."""
    if isinstance(value, str | dict):
        value = [value]
    if isinstance(value, list | tuple):
        return tuple({"css": v} if isinstance(v, str) else v for v in value)
    raise ValueError("must be a CSS selector, a table { css = … } or a list of them")


def _link_chain(value: Any) -> Any:
    """`link = "h2 a"` means the href: a link's text is never what a user wants there."""
    chain = _to_chain(value)
    if isinstance(chain, tuple):
        return tuple({**v, "attr": v.get("attr") or "href"} if isinstance(v, dict) else v for v in chain)
    return chain


def _image_chain(value: Any) -> Any:
    """`image = "img.lead"` means its src; `image = "meta[property=og:image]"` means its content."""
    chain = _to_chain(value)
    if isinstance(chain, tuple):
        return tuple(
            {
                **v,
                "attr": v.get("attr")
                or ("content" if str(v.get("css", "")).lstrip().startswith("meta") else "src"),
            }
            if isinstance(v, dict)
            else v
            for v in chain
        )
    return chain


FieldChain = Annotated[tuple[FieldSpec, ...], BeforeValidator(_to_chain), Field(min_length=1)]
LinkChain = Annotated[tuple[FieldSpec, ...], BeforeValidator(_link_chain), Field(min_length=1)]
ImageChain = Annotated[tuple[FieldSpec, ...], BeforeValidator(_image_chain), Field(min_length=1)]


class ArticleSelectors(_Frozen):
    """Fields read on the article page behind each new item's link."""

    headline: FieldChain | None = None
    date: FieldChain | None = None
    modified: FieldChain | None = None  # when the story last changed (the entry's <updated>)
    author: FieldChain | None = None
    summary: FieldChain | None = None
    image: ImageChain | None = None
    content: FieldChain | None = None


class ListSelectors(ArticleSelectors):
    """Fields read on the listing page, inside each `item` node."""

    item: str
    link: LinkChain = (FieldSpec(css="a[href]", attr="href"),)
    next: LinkChain | None = None  # link to the next listing page (pagination)

    _item = field_validator("item")(classmethod(lambda cls, v: check_selector(v)))


class Canonical(_Frozen):
    strip: tuple[str, ...] = ()  # site-specific regexes (any case) removed before the canonical key is made
    # Also remove them from the headline readers see ("Indexbit Exchange: Story" shown as "Story"). Off by
    # default: the patterns were written for matching, and a headline they would empty is kept as it is.
    strip_display: bool = False

    @field_validator("strip")
    @classmethod
    def _patterns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(patterns.check_any_case(p) for p in v)


class Filters(_Frozen):
    """Keep an item only if it matches some `include` (when given) and no `exclude` (regex, any case).

    Every user regex (these, `[canonical] strip`, a field's `regex`) is RE2 syntax, checked and compiled at
    load by patterns.py: Python's syntax without backreferences or lookarounds, matched in linear time."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(patterns.check_any_case(p) for p in v)

    def keeps(self, headline: str, summary: str | None = None) -> bool:
        # No trailing newline without a summary: RE2's `$` is the end of the text only (Python's `re` also
        # matched before a final "\n"), and `(video)$` must still see the headline's end.
        text = f"{headline}\n{summary}" if summary else headline
        if self.include and not any(patterns.matches(p, text) for p in self.include):
            return False
        return not any(patterns.matches(p, text) for p in self.exclude)


_EVERY = re.compile(r"^every\s+(\d+)\s*(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Seconds are allowed (the test and demo daemons run `every 2s`); the per-host delay keeps a public host
# safe from a short schedule anyway. Beyond a year the trigger's arithmetic overflows for absurd values.
MIN_INTERVAL = 1
MAX_INTERVAL = 366 * 86400


class Schedule(_Frozen):
    """`every 30m` (s, m, h, d; 1 s to 366 d) or a five-field cron line that fires at some time.

    The one schedule check: `validate`, `run --once` and the daemon all reach it through config loading."""

    text: str
    interval: int | None = None  # seconds, for `every ...`
    cron: str | None = None

    @classmethod
    def parse(cls, text: str) -> Schedule:
        text = text.strip()
        if m := _EVERY.match(text):
            seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
                raise ValueError(f"interval {text!r} must be between 1 s and 366 days")
            return cls(text=text, interval=seconds)
        if len(text.split()) == 5:
            from apscheduler.triggers.cron import CronTrigger

            try:
                trigger = CronTrigger.from_crontab(text, timezone=UTC)
            except ValueError as exc:
                raise ValueError(f"invalid cron line {text!r}: {exc}") from exc
            # "0 0 30 2 *" parses but names no real day; APScheduler answers None after searching to year 9999.
            if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
                raise ValueError(f"cron line {text!r} never fires (no such day)")
            return cls(text=text, cron=text)
        raise ValueError(f"schedule {text!r} is neither 'every N(s|m|h|d)' nor a five-field cron line")

    def seconds_between_runs(self, now: datetime | None = None) -> float:
        """The run interval; for a cron line, the gap between its next two fire times after `now`."""
        if self.interval is not None:
            return float(self.interval)
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(str(self.cron), timezone=UTC)
        first = trigger.get_next_fire_time(None, now or datetime.now(UTC))
        second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
        return float((second - first).total_seconds())


def _schedule(value: Any) -> Any:
    return Schedule.parse(value) if isinstance(value, str) else value


class SiteConfig(_Frozen):
    id: str
    path: str = ""
    name: str
    home: str | None = None  # the site's front page, for the feed's alternate link
    start_urls: tuple[str, ...] = Field(min_length=1)
    timezone: str = "UTC"  # applied only to dates printed without an offset; unset: the zone the page's <html lang> names (ja: Asia/Tokyo), else UTC
    language: str | None = None
    schedule: Annotated[Schedule, BeforeValidator(_schedule)] = Schedule(text="every 1h", interval=3600)
    max_pages: int = Field(default=1, ge=1, le=50)  # listing pages followed via list.next
    max_items: int = Field(default=50, ge=1, le=1000)  # items taken per run
    max_articles: int = Field(default=20, ge=0, le=500)  # article pages followed per run (new items only)
    delay: float | None = Field(default=None, ge=0)  # per-host gap in seconds; None = global default
    allow_private_network: bool = False  # let this site reach loopback/private addresses (intranets, tests)
    list: ListSelectors
    article: ArticleSelectors | None = None
    canonical: Canonical = Canonical()
    filters: Filters = Filters()

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not SITE_ID.match(v):
            raise ValueError(
                f"site id {v!r} must be lowercase letters, digits, '-' or '_' (it is the file name)"
            )
        return v

    @field_validator("start_urls")
    @classmethod
    def _urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_http_url(u) for u in v)

    @field_validator("home")
    @classmethod
    def _home(cls, v: str | None) -> str | None:
        return None if v is None else check_http_url(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def home_url(self) -> str:
        return self.home or self.start_urls[0]


class FetchSettings(_Frozen):
    user_agent: str = "feedmaker/0.1 (+https://github.com/feedmaker/feedmaker)"
    timeout: float = Field(default=30.0, gt=0)  # total deadline per fetch, body included
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)  # decoded body cap
    delay: float = Field(default=1.0, ge=0)  # minimum gap between requests to one host
    retries: int = Field(default=2, ge=0, le=10)
    max_redirects: int = Field(default=5, ge=0, le=20)
    concurrency: int = Field(default=16, ge=1, le=256)  # requests in flight over all hosts
    obey_robots: bool = True
    allow_private_networks: tuple[str, ...] = ()  # CIDRs or hosts reachable despite the private-address guard


class LimitSettings(_Frozen):
    parse_seconds: float = Field(
        default=10.0, gt=0, le=600
    )  # per page: decode + parse + extract, in a worker process
    site_run_seconds: float = Field(
        default=300.0, gt=0, le=86_400
    )  # per site run; article pages not reached wait
    workers: int | None = Field(
        default=None, ge=1, le=8
    )  # page worker processes; None = the CPU count (at most 8)


class ServerSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    base_url: str | None = None  # public URL of the server, for feed self links and OPML

    def public_url(self) -> str | None:
        """Where feed readers reach this server: `base_url`, else the configured host:port (a wildcard host
        named by this machine's name); None for port 0, whose port is only known once bound."""
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.port == 0:
            return None
        host = socket.getfqdn() if self.host in ("", "0.0.0.0", "::") else self.host
        return listen_url(host, self.port)


def listen_url(host: str, port: int) -> str:
    """`http://host:port` of a listening address (IPv6 in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class CombinedFeed(_Frozen):
    id: str
    title: str
    sites: tuple[str, ...] = Field(min_length=1)
    filters: Filters = Filters()  # applied when the feed is written, on top of each site's own filters
    # Whose sighting represents a story found on several of the sites (views.py): the earliest published;
    # `prefer` breaks ties in its order, and with `prefer_overrides` a listed site wins whatever the dates.
    prefer: tuple[str, ...] = ()
    prefer_overrides: bool = False

    _id = field_validator("id")(classmethod(lambda cls, v: SiteConfig._id(v)))


class Settings(_Frozen):
    path: str = ""
    output_dir: Path = Path("output")
    state_dir: Path = Path("state")
    # sqlite:///feedmaker.db (in state_dir; the default) or postgresql://user@host/db; FEEDMAKER_STORE wins.
    store: str | None = Field(default=None, pattern=r"^(sqlite|postgres|postgresql)://")
    feed_size: int = Field(default=50, ge=1, le=10_000)  # newest N entries per feed
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    fetch: FetchSettings = FetchSettings()
    server: ServerSettings = ServerSettings()
    limits: LimitSettings = LimitSettings()
    feed: tuple[CombinedFeed, ...] = ()

    @model_validator(mode="after")
    def _unique_feeds(self) -> Settings:
        ids = [f.id for f in self.feed]
        if len(ids) != len(set(ids)):
            raise ValueError(f"feed ids must be unique, got {ids}")
        return self


_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)$")


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's error carries its position only in the message: "… (at line 2, column 10)".
        at = _TOML_AT.search(str(exc))
        line = int(at.group(1)) if at else None
        raise ConfigError(str(path), "", f"TOML syntax: {exc}", line=line) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", f"not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from exc


_RESERVED = ("id", "path")  # set from the file, never written in it


def load_site(path: Path) -> SiteConfig:
    """One site file. Raises ConfigError naming every problem in it (ConfigErrors when several)."""
    data, text = _read_toml(path)
    problems = [
        ConfigError(str(path), key, "is set from the file name; remove it", line=line_of(text, (key,)))
        for key in _RESERVED
        if key in data
    ]
    try:
        site = SiteConfig.model_validate(
            {**{k: v for k, v in data.items() if k not in _RESERVED}, "id": path.stem, "path": str(path)}
        )
    except ValidationError as exc:
        problems += config_errors(path, exc, SiteConfig, text, hidden=_RESERVED)
    if problems:
        raise combined(sorted(problems, key=lambda e: e.line or 0))
    return site


def load_sites(directory: Path) -> list[SiteConfig]:
    """Every `*.toml` in `directory`, sorted by id. Raises naming every problem in every file."""
    sites, errors = _read_sites(directory)
    if errors:
        raise combined(errors)
    return sites


def _read_sites(directory: Path) -> tuple[list[SiteConfig], list[ConfigError]]:
    sites: list[SiteConfig] = []
    errors: list[ConfigError] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            sites.append(load_site(path))
        except ConfigError as exc:
            errors += exc.errors
    return sites, errors


def load_settings(path: Path) -> Settings:
    """Global settings; a missing file means all defaults. Relative output/state dirs resolve against the
    project folder when the config folder is named `config` (./config -> ./output, ./state), else against
    the config folder itself (a demo's or a test's config dir keeps its state beside it)."""
    return _read_settings(path)[0]


def _read_settings(path: Path) -> tuple[Settings, str]:
    data, text = _read_toml(path) if path.exists() else ({}, "")
    try:
        settings = Settings.model_validate({**data, "path": str(path)})
    except ValidationError as exc:
        raise combined(config_errors(path, exc, Settings, text)) from exc
    root = path.parent.parent if path.parent.name == "config" else path.parent
    settings = settings.model_copy(
        update={
            "output_dir": settings.output_dir
            if settings.output_dir.is_absolute()
            else root / settings.output_dir,
            "state_dir": settings.state_dir
            if settings.state_dir.is_absolute()
            else root / settings.state_dir,
        }
    )
    return settings, text


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigCheck:
    """One pass over a config directory: what is valid and every problem found (`validate` prints both)."""

    settings: Settings | None  # None when feedmaker.toml itself is invalid
    sites: tuple[SiteConfig, ...]
    errors: tuple[ConfigError, ...]


def check_config(config_dir: Path) -> ConfigCheck:
    """Every file of `config_dir` checked, each problem collected rather than raised."""
    if not config_dir.is_dir():
        missing = ConfigError(str(config_dir), "", "no such config directory (give one with --config DIR)")
        return ConfigCheck(settings=None, sites=(), errors=(missing,))
    errors: list[ConfigError] = []
    settings: Settings | None = None
    text = ""
    try:
        settings, text = _read_settings(config_dir / "feedmaker.toml")
    except ConfigError as exc:
        errors += exc.errors
    sites, site_errors = _read_sites(config_dir / "sites")
    errors += site_errors
    if not sites and not site_errors:
        errors.append(
            ConfigError(
                str(config_dir / "sites"), "", "no site files (*.toml); see README 'Writing a site config'"
            )
        )
    if settings is not None:
        # Every file's stem is a site id, valid or not: a feed naming a broken site is not a second problem.
        ids = {p.stem for p in (config_dir / "sites").glob("*.toml")}
        errors += feed_errors(settings, ids, text)
    return ConfigCheck(settings=settings, sites=tuple(sites), errors=tuple(errors))


def load_all(config_dir: Path) -> tuple[Settings, list[SiteConfig]]:
    """Settings plus sites, with cross-checks: combined feeds name existing sites and no id clashes.
    Raises ConfigError naming every problem of every file (ConfigErrors when several)."""
    found = check_config(config_dir)
    if found.errors:
        raise combined(found.errors)
    assert found.settings is not None  # no errors means feedmaker.toml loaded
    return found.settings, list(found.sites)
