"""feed.py: Atom rendering (schema-valid, deterministic, gated) and atomic feed files."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from feedmaker.errors import FeedError
from feedmaker.feed import TEMP_SUFFIX, clean_stale_temp, feed_url, render_atom, write_feed, xml_text
from feedmaker.models import Article, Entry, FeedMeta
from tests.atom import ATOM, assert_valid_atom
from tests.corpus import CORPORA, atom_schema

RSS_BRIDGE = CORPORA / "atom-samples" / "rss-bridge" / "samples"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BORN = datetime(2026, 1, 1, tzinfo=UTC)  # when an empty feed was first written
META = FeedMeta(
    id="news", title="News", link="https://news.example/", self_url="https://feeds.example/feeds/news.atom"
)


def assert_valid(data: bytes) -> feedparser.FeedParserDict:
    """RFC 4287 structure and feedparser accept the bytes, and the RELAX NG schema where the corpora hold it."""
    return assert_valid_atom(data)


def entry(n: int, **fields: object) -> Entry:
    article_fields: dict[str, object] = {
        "site": "news",
        "url": f"https://news.example/story/{n}",
        "headline": f"Story {n}",
        "published": T0 - timedelta(hours=n),
        "author": "Ada Lovelace",
        "summary": f"Summary of story {n}.",
        "image": f"https://cdn.news.example/img/{n}.jpg",
        "content": f"<p>Body of <b>story</b> {n}.</p>",
    }
    article_fields.update(fields)
    return Entry(
        id=f"urn:uuid:{uuid.UUID(int=n)}",
        key=f"story {n}",
        article=Article(**article_fields),  # type: ignore[arg-type]
        first_seen=T0 - timedelta(hours=n),
        updated=T0 - timedelta(hours=n),
    )


def entries(count: int) -> list[Entry]:
    return [entry(n) for n in range(count)]


def test_normal_entries_validate_and_carry_every_field():
    data = render_atom(META, [*entries(3), entry(9, image="https://cdn.news.example/x.PNG?w=2")])
    parsed = assert_valid(data)
    first = parsed.entries[0]
    assert first.id == f"urn:uuid:{uuid.UUID(int=0)}"
    assert first.title == "Story 0"
    assert first.link == "https://news.example/story/0"
    assert first.author == "Ada Lovelace"
    assert first.summary == "Summary of story 0."
    assert first.content[0].type == "text/html"
    assert first.enclosures == [{"href": "https://cdn.news.example/img/0.jpg", "type": "image/jpeg"}]
    assert parsed.entries[3].enclosures[0]["type"] == "image/png"
    assert first.published_parsed[:5] == (2024, 5, 1, 12, 0)
    assert parsed.feed.title == "News"
    assert parsed.feed.link == "https://news.example/"
    assert any(link.rel == "self" for link in parsed.feed.links)
    assert parsed.feed.generator == "feedmaker"


def test_entries_keep_the_given_newest_first_order():
    parsed = assert_valid(render_atom(META, entries(5)))
    assert [e.title for e in parsed.entries] == [f"Story {n}" for n in range(5)]


def test_empty_feed_validates_and_is_dated_when_first_written():
    born = datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC)
    data = render_atom(META, [], born=born)
    parsed = assert_valid(data)
    assert parsed.entries == []
    assert etree.fromstring(data).findtext(f"{ATOM}updated") == "2026-03-01T09:30:15+00:00"
    with pytest.raises(FeedError, match="first written"):
        render_atom(META, [])


def test_entries_without_date_author_image_or_content_validate():
    """published falls back to first_seen; the feed-level author covers entries without one."""
    bare = entry(1, published=None, author=None, image=None, summary=None, content=None)
    data = render_atom(META, [bare])
    parsed = assert_valid(data)
    assert parsed.entries[0].published_parsed[:4] == (2024, 5, 1, 11)
    assert "author" not in parsed.entries[0] or parsed.entries[0].author == "News"
    assert parsed.feed.author == "News"
    assert parsed.entries[0].enclosures == []


def test_entry_without_usable_link_gets_text_content_instead():
    """RFC 4287 4.1.1.1: no alternate link means content is required."""
    data = render_atom(META, [entry(1, url="javascript:alert(1)", content=None, summary=None)])
    parsed = assert_valid(data)
    assert parsed.entries[0].content[0].value == "Story 1"
    assert all(link.rel != "alternate" for link in parsed.entries[0].links)


def test_feed_updated_is_the_newest_entry_update_not_now():
    older = entry(1)
    newer = Entry(
        id="urn:uuid:newer", key="k", article=entry(2).article, first_seen=T0, updated=T0 + timedelta(days=1)
    )
    data = render_atom(META, [older, newer])
    assert etree.fromstring(data).findtext(f"{ATOM}updated") == "2024-05-02T12:00:00+00:00"


def test_same_input_renders_byte_identical_output():
    first = render_atom(META, entries(20))
    time.sleep(1.1)  # a clock leaking into the output would show in the seconds
    assert render_atom(META, entries(20)) == first


def test_feed_id_is_stable_per_feed_id_and_independent_of_the_host():
    def feed_id(meta: FeedMeta) -> str:
        return str(etree.fromstring(render_atom(meta, [], born=BORN)).findtext(f"{ATOM}id"))

    moved = FeedMeta(id="news", title="Renamed", link="https://elsewhere.example/")
    assert feed_id(META) == feed_id(moved)
    assert feed_id(META).startswith("urn:uuid:")
    assert feed_id(META) != feed_id(FeedMeta(id="sport", title="News", link=META.link))


def test_forbidden_characters_are_removed_and_empty_titles_become_untitled():
    dirty = entry(
        1, headline="\x00\x01\ufffe\ud800", author="A\x0bda", summary="s\x1fum\uffff", content="<p>\x08x</p>"
    )
    meta = FeedMeta(id="news\x00", title="\x07", link="https://news.example/")
    parsed = assert_valid(render_atom(meta, [dirty]))
    assert parsed.feed.title == "(untitled)"
    assert parsed.entries[0].title == "(untitled)"
    assert parsed.entries[0].author == "Ada"
    assert parsed.entries[0].summary == "sum"


def test_only_http_https_and_mailto_links_reach_the_feed():
    hostile = [
        entry(1, url="javascript:alert(1)", image="data:image/png;base64,AAAA"),
        entry(2, url="java\tscript:alert(1)", image="vbscript:x"),
        entry(3, url="mailto:desk@news.example", image="ftp://files.example/a.jpg"),
        entry(4, url="//news.example/relative", image="/relative.jpg"),
        Entry(
            id="urn:uuid:5",
            key="k",
            article=entry(5).article,
            first_seen=T0,
            updated=T0,
            sources=("javascript:alert(2)", "https://other.example/5"),
        ),
    ]
    data = render_atom(
        FeedMeta(id="x", title="X", link="javascript:alert(3)", self_url="file:///etc/passwd"), hostile
    )
    assert_valid(data)
    hrefs = [link.get("href") for link in etree.fromstring(data).iter(f"{ATOM}link")]
    assert hrefs
    assert all(href.split(":", 1)[0] in {"http", "https", "mailto"} for href in hrefs), hrefs


def test_feed_url_percent_encodes_unsafe_ascii_and_keeps_iris():
    assert feed_url(" https://news.example/a b.jpg ") == "https://news.example/a%20b.jpg"
    assert feed_url("https://bücher.example/ä") == "https://bücher.example/ä"
    assert feed_url("https://[::1") is None
    assert feed_url("HTTPS://news.example/") == "HTTPS://news.example/"
    assert xml_text("a\x00b\tc\ud800\uffff") == "ab\tc"


# -- write_feed ------------------------------------------------------------------------------------


def test_write_feed_writes_then_returns_false_for_identical_bytes(tmp_path: Path):
    path = tmp_path / "news.atom"
    data = render_atom(META, entries(3))
    assert write_feed(path, data) is True
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o644
    before = path.stat()
    assert write_feed(path, data) is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert write_feed(path, render_atom(META, entries(4))) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["news.atom"]


def test_write_feed_into_a_missing_directory_raises_feed_error(tmp_path: Path):
    with pytest.raises(FeedError, match="missing"):
        write_feed(tmp_path / "missing" / "news.atom", b"<feed/>")


def test_a_reader_racing_the_writer_never_sees_a_partial_file(tmp_path: Path):
    path = tmp_path / "news.atom"
    versions = [render_atom(META, entries(n)) for n in (300, 301)]  # ~0.5 MB each: writes take a while
    write_feed(path, versions[0])
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        while not stop.is_set():
            write_feed(path, versions[writes % 2])
            writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    reads = torn = 0
    deadline = time.monotonic() + 1.0
    try:
        while time.monotonic() < deadline:
            if path.read_bytes() not in versions:
                torn += 1
            reads += 1
    finally:
        stop.set()
        thread.join()
    assert torn == 0
    assert writes > 5
    assert reads > 50


def test_clean_stale_temp_removes_only_leftover_temp_files(tmp_path: Path):
    feed = tmp_path / "news.atom"
    feed.write_bytes(b"<feed/>")
    (tmp_path / f".news.atom.abc123{TEMP_SUFFIX}").write_bytes(b"<fe")
    (tmp_path / f".sport.atom.x{TEMP_SUFFIX}").write_bytes(b"")
    (tmp_path / ".hidden").write_bytes(b"keep")
    assert clean_stale_temp(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "news.atom"]
    assert clean_stale_temp(tmp_path) == 0
    assert clean_stale_temp(tmp_path / "absent") == 0


def test_a_killed_write_leaves_a_temp_file_that_clean_stale_temp_removes(tmp_path: Path, monkeypatch):
    path = tmp_path / "news.atom"
    write_feed(path, b"old")

    def crash(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(FeedError, match="cannot write"):
        write_feed(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert clean_stale_temp(tmp_path) == 0  # write_feed removed its own temp file
    (tmp_path / f".news.atom.dead{TEMP_SUFFIX}").write_bytes(b"ne")  # as left by SIGKILL
    assert clean_stale_temp(tmp_path) == 1


# -- fuzz --------------------------------------------------------------------------------------------

SPECIALS = [
    "\x00",
    "\x01",
    "\x08",
    "\x0b",
    "\x0c",
    "\x1b",
    "\x1f",
    "\x7f",
    "\x85",
    "\ufffe",
    "\uffff",
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\U0010ffff",
    "\u2028",
    "&",
    "<",
    "]",
    ">",
    "\r",
    "\n",
    " ",
]
NASTY = st.text(st.one_of(st.characters(), st.sampled_from(SPECIALS)), max_size=32)
URLISH = st.one_of(
    NASTY,
    st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(
            ["http://", "https://", "mailto:", "javascript:", "HTTP://", " http://x.example/", "data:"]
        ),
        NASTY,
    ),
)
OFFSETS = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)
DATES = st.datetimes(timezones=OFFSETS)


@st.composite
def fuzzed_entries(draw: st.DrawFn) -> Entry:
    article = Article(
        site=draw(NASTY),
        url=draw(URLISH),
        headline=draw(NASTY),
        published=draw(st.none() | DATES),
        author=draw(st.none() | NASTY),
        summary=draw(st.none() | NASTY),
        image=draw(st.none() | URLISH),
        content=draw(st.none() | NASTY),
        origins=tuple(draw(st.lists(st.tuples(NASTY, NASTY), max_size=2))),
    )
    return Entry(
        id=draw(st.one_of(st.just(f"urn:uuid:{uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))}"), NASTY)),
        key=draw(NASTY),
        article=article,
        first_seen=draw(DATES),
        updated=draw(DATES),
        sources=tuple(draw(st.lists(URLISH, max_size=2))),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    meta=st.builds(
        FeedMeta, id=NASTY, title=NASTY, link=URLISH, self_url=st.none() | URLISH, subtitle=st.none() | NASTY
    ),
    items=st.lists(fuzzed_entries(), max_size=3),
)
def test_fuzz_every_rendered_feed_validates(meta: FeedMeta, items: Sequence[Entry]):
    """Arbitrary code points (C0, U+FFFE, lone surrogates, ...) in every field, and dates in any offset,
    still give a valid feed."""
    data = render_atom(meta, items, born=BORN)
    parsed = assert_valid(data)
    assert len(parsed.entries) == len(items)
    assert render_atom(meta, items, born=BORN) == data


# -- a peer's output: RSS-Bridge ---------------------------------------------------------------------


def rss_bridge_entries(name: str) -> tuple[FeedMeta, list[Entry]]:
    sample = json.loads((RSS_BRIDGE / f"{name}.json").read_text())
    meta = FeedMeta(id=name, title=sample["meta"]["name"], link=sample["meta"]["uri"])
    items = []
    for n, item in enumerate(sample["items"]):
        moment = datetime.fromtimestamp(item["timestamp"], UTC) if "timestamp" in item else T0
        enclosures = item.get("enclosures") or [None]
        items.append(
            Entry(
                id=f"urn:uuid:{uuid.UUID(int=n)}",
                key=item.get("title", ""),
                article=Article(
                    site=name,
                    url=item.get("uri", ""),
                    headline=item.get("title", ""),
                    published=datetime.fromtimestamp(item["timestamp"], UTC) if "timestamp" in item else None,
                    author=item.get("author"),
                    content=item.get("content"),
                    image=enclosures[0],
                ),
                first_seen=moment,
                updated=moment,
            )
        )
    return meta, items


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["feed.common", "feed.empty", "feed.emptyItems", "feed.microblog"])
def test_our_rendering_of_rss_bridge_samples_validates(name: str):
    meta, items = rss_bridge_entries(name)
    parsed = assert_valid(render_atom(meta, items, born=BORN))
    assert [e.title for e in parsed.entries] == [e.article.headline or "(untitled)" for e in items]


@pytest.mark.corpus
def test_rss_bridge_emptyitems_sample_is_invalid_where_ours_is_valid():
    """RSS-Bridge's own expected output for items without timestamps lacks <updated>; ours has it."""
    schema = atom_schema()
    assert schema is not None
    peer = {
        p.stem: schema.validate(etree.parse(str(p)))
        for p in (RSS_BRIDGE / "expectedAtomFormat").glob("*.xml")
    }
    assert peer == {"feed.common": True, "feed.empty": True, "feed.emptyItems": False, "feed.microblog": True}
    meta, items = rss_bridge_entries("feed.emptyItems")
    ours = etree.fromstring(render_atom(meta, items, born=BORN))
    assert schema.validate(ours)
    assert all(e.find(f"{ATOM}updated") is not None for e in ours.iter(f"{ATOM}entry"))
