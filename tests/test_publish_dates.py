"""Dates and self links in published feeds: entries in their publisher's offset, a feed's `updated` its newest
entry's, an empty feed dated when it was first written (never 1970) and stable, and a self link from the
configured host:port when `base_url` is unset."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from feedmaker.config import ServerSettings, Settings, SiteConfig
from feedmaker.models import Article
from feedmaker.publish import Publisher, publish
from feedmaker.store import SqliteStore, Store
from tests.atom import ATOM, assert_valid_atom

T0 = datetime(2025, 4, 10, 9, 0, tzinfo=UTC)
SEOUL = timezone(timedelta(hours=9))


class Clock:
    def __init__(self) -> None:
        self.moment = T0

    def __call__(self) -> datetime:
        self.moment += timedelta(minutes=1)
        return self.moment


def site(site_id: str) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "id": site_id,
            "name": site_id.title(),
            "start_urls": [f"https://{site_id}.example/"],
            "list": {"item": "li"},
        }
    )


def world(tmp_path: Path, **server: object) -> tuple[Settings, list[SiteConfig], Store]:
    settings = Settings(output_dir=tmp_path / "out", state_dir=tmp_path, server=ServerSettings(**server))  # type: ignore[arg-type]
    return settings, [site("wire"), site("quiet")], SqliteStore(tmp_path / "state.db", now=Clock())


def feed_xml(settings: Settings, feed_id: str) -> etree._Element:
    data = (settings.output_dir / f"{feed_id}.atom").read_bytes()
    assert_valid_atom(data)
    return etree.fromstring(data)


def test_entries_are_dated_in_their_offset_and_the_feed_by_its_newest_entry(tmp_path: Path) -> None:
    settings, sites, store = world(tmp_path)
    with store:
        published = datetime(2025, 4, 9, 23, 30, tzinfo=SEOUL)
        for n, (pub, mod) in enumerate(
            [(published, published + timedelta(hours=5)), (published - timedelta(days=1), None)]
        ):
            store.add(
                Article(
                    site="wire",
                    url=f"https://wire.example/{n}",
                    headline=f"Story {n} told at length",
                    published=pub,
                    modified=mod,
                ),
                key=f"story {n}",
                url_key=f"wire/{n}",
            )
        publish(settings, sites, store)
    root = feed_xml(settings, "wire")
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}published") for e in entries] == [
        "2025-04-09T23:30:00+09:00",
        "2025-04-08T23:30:00+09:00",
    ]
    assert [e.findtext(f"{ATOM}updated") for e in entries] == [
        "2025-04-10T04:30:00+09:00",
        "2025-04-08T23:30:00+09:00",
    ]
    assert root.findtext(f"{ATOM}updated") == "2025-04-10T04:30:00+09:00"


def test_an_empty_feed_is_dated_when_first_written_and_keeps_its_bytes(tmp_path: Path) -> None:
    settings, sites, store = world(tmp_path)
    with store:
        publish(settings, sites, store)
        first = (settings.output_dir / "quiet.atom").read_bytes()
        # A later process (a new Publisher, the clock moved on) renders the same bytes: same ETag for readers.
        Publisher(settings, sites).publish(store)
        assert (settings.output_dir / "quiet.atom").read_bytes() == first
    updated = datetime.fromisoformat(str(feed_xml(settings, "quiet").findtext(f"{ATOM}updated")))
    assert T0 < updated < T0 + timedelta(hours=1)
    assert b"1970" not in first


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({"base_url": "https://feeds.example/sub/"}, "https://feeds.example/sub/feeds/wire.atom"),
        ({"host": "127.0.0.1", "port": 8321}, "http://127.0.0.1:8321/feeds/wire.atom"),
        ({"host": "::1", "port": 8321}, "http://[::1]:8321/feeds/wire.atom"),
        ({"host": "0.0.0.0", "port": 8321}, f"http://{socket.getfqdn()}:8321/feeds/wire.atom"),
        ({"host": "127.0.0.1", "port": 0}, None),  # the port is only known once bound: no self link
    ],
)
def test_the_self_link_comes_from_base_url_else_the_configured_address(
    tmp_path: Path, server: dict[str, object], expected: str | None
) -> None:
    settings, sites, store = world(tmp_path, **server)
    with store:
        publish(settings, sites, store)
    links = [
        link.get("href")
        for link in feed_xml(settings, "wire").findall(f"{ATOM}link")
        if link.get("rel") == "self"
    ]
    assert links == ([expected] if expected else [])
