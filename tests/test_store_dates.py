"""Dates in the store, on both engines: the page's offset kept beside the UTC sort text, modified dates that
only move later, one `updated` rule (models.entry_updated), and the time each feed was first written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from feedmaker.models import Article, Updated, entry_updated
from feedmaker.store import Store, open_store
from feedmaker.views import View

T0 = datetime(2025, 4, 10, 9, 0, tzinfo=UTC)
SEOUL = timezone(timedelta(hours=9))
NEW_YORK = timezone(timedelta(hours=-4))


class Clock:
    """Moves one second per reading."""

    def __init__(self) -> None:
        self.moment = T0

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url, state_dir=tmp_path, now=Clock()) as opened:
        yield opened


def story(site: str = "wire", n: int = 1, **fields: object) -> Article:
    values: dict[str, object] = {
        "url": f"https://{site}.example/{n}",
        "headline": f"Story {n} about launchers",
    }
    values.update(fields)
    return Article(site=site, **values)  # type: ignore[arg-type]


def add(store: Store, article: Article) -> object:
    return store.add(article, key=article.headline.lower(), url_key=article.url)


def test_published_and_modified_keep_their_offsets_and_sort_as_instants(store: Store) -> None:
    late_in_seoul = datetime(2025, 4, 9, 23, 30, tzinfo=SEOUL)  # 14:30 UTC
    earlier_in_new_york = datetime(2025, 4, 9, 10, 0, tzinfo=NEW_YORK)  # 14:00 UTC
    add(store, story(n=1, published=late_in_seoul, modified=late_in_seoul + timedelta(hours=2)))
    add(store, story(n=2, headline="Another story entirely", published=earlier_in_new_york))
    newest, older = store.entries(["wire"], 10, view=View(feed="wire"))
    assert newest.article.url.endswith("/1")  # 14:30 UTC after 14:00 UTC, whatever the local clocks say
    assert newest.article.published is not None
    assert newest.article.modified is not None
    assert newest.article.published.isoformat() == "2025-04-09T23:30:00+09:00"
    assert newest.article.modified.isoformat() == "2025-04-10T01:30:00+09:00"
    assert older.article.published is not None
    assert older.article.published.isoformat() == "2025-04-09T10:00:00-04:00"


def test_a_modified_date_only_moves_later(store: Store) -> None:
    published = datetime(2025, 4, 9, 8, 0, tzinfo=NEW_YORK)
    edited = published + timedelta(hours=3)
    add(store, story(published=published, modified=edited))
    # A re-crawl that reads an older modified date (a cached copy) or none keeps the later one.
    add(store, story(published=published, modified=published + timedelta(hours=1)))
    add(store, story(published=published))
    [entry] = store.entries(["wire"], 10)
    assert entry.article.modified == edited
    later = edited + timedelta(days=1)
    result = add(store, story(published=published, modified=later))
    assert isinstance(result, Updated)
    [entry] = store.entries(["wire"], 10)
    assert entry.article.modified == later
    assert entry.updated == later


def test_updated_is_modified_else_published_else_first_seen(store: Store) -> None:
    published = datetime(2025, 4, 9, 8, 0, tzinfo=SEOUL)
    add(
        store,
        story(
            n=1,
            headline="Modified after publication",
            published=published,
            modified=published + timedelta(hours=1),
        ),
    )
    add(
        store,
        story(
            n=2,
            headline="Modified before publication",
            published=published,
            modified=published - timedelta(days=1),
        ),
    )
    add(store, story(n=3, headline="Published only", published=published))
    add(store, story(n=4, headline="No date at all"))
    by_url = {e.article.url[-1]: e for e in store.entries(["wire"], 10)}
    assert by_url["1"].updated == published + timedelta(hours=1)
    assert by_url["2"].updated == published  # a modified date before publication is no modification
    assert by_url["3"].updated == published
    assert by_url["4"].updated == by_url["4"].first_seen
    for entry in by_url.values():
        assert entry.updated == entry_updated(entry.article, entry.first_seen)
    # Re-seeing the stories changes nothing: `updated` is never the time of a crawl.
    before = {url: e.updated for url, e in by_url.items()}
    for n in (1, 2, 3, 4):
        add(store, story(n=n, headline=by_url[str(n)].article.headline))
    assert {e.article.url[-1]: e.updated for e in store.entries(["wire"], 10)} == before


def test_undated_stories_of_one_run_have_distinct_first_seen_times(store: Store) -> None:
    store.add_many(
        [
            (story(n=n, headline=f"Undated story number {n}"), f"undated story number {n}", f"u{n}")
            for n in range(5)
        ]
    )
    entries = store.entries(["wire"], 10)
    assert len({e.updated for e in entries}) == 5
    # The first listed is the newest: the feed keeps the listing's order.
    assert [e.article.url[-1] for e in entries] == ["0", "1", "2", "3", "4"]


def test_each_sighting_keeps_its_own_offset(store: Store) -> None:
    instant = datetime(2025, 4, 8, 16, 29, 11, tzinfo=UTC)
    add(store, story("wire", published=instant.astimezone(NEW_YORK)))
    add(store, story("farm", published=instant.astimezone(SEOUL)))
    [wire] = store.entries(["wire"], 10, view=View(feed="wire"))
    [farm] = store.entries(["farm"], 10, view=View(feed="farm"))
    assert wire.article.published is not None
    assert farm.article.published is not None
    assert wire.article.published.isoformat() == "2025-04-08T12:29:11-04:00"
    assert farm.article.published.isoformat() == "2025-04-09T01:29:11+09:00"


def test_a_feed_is_born_once(store: Store) -> None:
    born = store.feed_born("news")
    assert store.feed_born("news") == born  # the clock moved; the answer did not
    assert store.feed_born("other") > born
