"""feedmaker/store: add/duplicate/update rules, stable ids, migrations, run history, crash safety, concurrency.

The behaviour tests run against both engines (sqlite in memory and in a file, PostgreSQL on the session's own
server) through the one `store` fixture; engine-specific tests (migrations, files, processes) name theirs."""

from __future__ import annotations

import gzip
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedmaker.errors import StoreError
from feedmaker.models import Added, Article, Duplicate, SiteReport, Updated, Validators
from feedmaker.serve_feeds import StoredFeeds
from feedmaker.store import RunRecord, SqliteStore, Store, open_store
from feedmaker.store import base as store_base
from feedmaker.store import history as store_history
from feedmaker.store import sqlite as store_module
from feedmaker.store.feeds import FeedRender, feed_etag
from feedmaker.store.sqlite import SCHEMA_VERSION
from feedmaker.views import View, view_id

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """A fake clock that moves one minute per reading."""

    def __init__(self) -> None:
        self.moment = T0

    def __call__(self) -> datetime:
        self.moment += timedelta(minutes=1)
        return self.moment


@pytest.fixture(params=["memory", "file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = "sqlite:///:memory:" if request.param == "memory" else f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url, state_dir=tmp_path, now=Clock()) as opened:
        yield opened


def article(n: int = 1, *, site: str = "wire", **fields: object) -> Article:
    values: dict[str, object] = {
        "url": f"https://{site}.example/story/{n}",
        "headline": f"Story number {n} told",
    }
    values.update(fields)
    return Article(site=site, **values)  # type: ignore[arg-type]


def add(store: Store, item: Article, key: str | None = None) -> Added | Updated | Duplicate:
    return store.add(item, key=key or item.headline.lower(), url_key=item.url.lower())


def raw(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(path))


def integrity(path: Path) -> str:
    with raw(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


# -- add rules -----------------------------------------------------------------------------------------


def test_first_sighting_is_added_with_a_minted_urn_uuid(store: Store):
    result = add(store, article(1, author="Ada", origins=(("headline", "selector:h1"),)))
    assert isinstance(result, Added)
    entry = result.entry
    assert entry.id.startswith("urn:uuid:")
    assert len(entry.id) == len("urn:uuid:") + 36
    assert entry.first_seen == entry.updated == T0 + timedelta(minutes=1)
    assert entry.key == "story number 1 told"
    assert entry.article == article(1, author="Ada", origins=(("headline", "selector:h1"),))
    assert store.entry_count() == 1


def test_id_never_changes_over_ten_re_adds(store: Store):
    first = add(store, article(1)).entry
    results = [add(store, article(1)) for _ in range(10)]
    assert all(isinstance(r, Duplicate) for r in results)
    assert {r.entry.id for r in results} == {first.id}
    assert all(r.entry.updated == first.updated for r in results)
    assert store.entry_count() == 1


def test_edited_headline_on_the_same_url_updates_and_keeps_the_id(store: Store):
    first = add(store, article(1, author="Ada", summary="old")).entry
    result = add(store, article(1, headline="Story number 1, updated", summary="new"))
    assert isinstance(result, Updated)
    entry = result.entry
    assert entry.id == first.id
    assert entry.key == "story number 1, updated"
    assert entry.article.headline == "Story number 1, updated"
    assert entry.article.summary == "new"
    assert entry.article.author == "Ada"  # None in the new sighting keeps the stored value
    assert entry.first_seen == first.first_seen
    # `updated` is the page's modified date, else its published one, else first seen: an edit the page
    # does not date leaves it alone (entry_updated).
    assert entry.updated == first.updated == entry.first_seen
    assert isinstance(add(store, article(1, headline="Story number 1, updated")), Duplicate)


def test_the_same_url_listed_by_another_site_does_not_overwrite_the_entry(store: Store):
    """Two sites extracting one page differently must not flip the entry back and forth every run."""
    first = add(store, article(1, site="wire", summary="wire summary")).entry
    other = Article(
        site="aggregator", url=first.article.url, headline="STORY NUMBER 1 | Aggregator", summary="agg"
    )
    for _ in range(3):
        result = store.add(other, key="story number 1 aggregator", url_key=first.article.url.lower())
        assert isinstance(result, Duplicate)
        assert result.entry.article == first.article
        assert result.entry.updated == first.updated
    assert isinstance(add(store, article(1, site="wire", summary="wire summary")), Duplicate)


def test_a_new_key_for_unchanged_fields_is_followed_without_an_update(store: Store):
    """A canon upgrade must not mark every stored entry as updated."""
    first = add(store, article(1)).entry
    result = store.add(article(1), key="new canon", url_key=article(1).url.lower())
    assert isinstance(result, Duplicate)
    assert result.entry.key == "new canon"
    assert result.entry.updated == first.updated


def test_same_story_from_another_site_keeps_the_first_and_records_the_source_once(store: Store):
    first = add(store, article(1, site="wire", author="Wire desk")).entry
    copy = article(
        7, site="farm", headline="Story number 1 told", author="Farm bot", image="https://farm.example/a.jpg"
    )
    results = [add(store, copy, key="story number 1 told") for _ in range(10)]
    assert all(isinstance(r, Duplicate) for r in results)
    assert all(r.entry.id == first.id for r in results)
    dup = results[0]
    assert isinstance(dup, Duplicate)
    assert dup.source_url == copy.url
    assert dup.entry.article == first.article  # first-seen wins: nothing of the copy leaks in
    assert dup.entry.sources == (copy.url,)
    assert store.entry_count() == 1
    assert store.entries(["wire"], 10)[0].sources == (copy.url,)
    assert store.known_urls("farm", [copy.url.lower(), "https://farm.example/new"]) == {copy.url.lower()}


def test_a_recorded_source_edited_later_stays_the_same_story_and_its_site_shows_the_edit(store: Store):
    """The farm's edit updates the farm's own sighting: one story still, the wire's fields untouched."""
    first = add(store, article(1, site="wire")).entry
    add(store, article(7, site="farm", headline="Story number 1 told"), key="story number 1 told")
    result = add(store, article(7, site="farm", headline="SHOCKING: story number 1 (video)"), key="shocking")
    assert isinstance(result, Updated)
    assert result.entry.id == first.id
    assert result.entry.article == first.article
    assert store.entry_count() == 1
    assert [e.article.headline for e in store.entries(["farm"], 10)] == ["SHOCKING: story number 1 (video)"]
    assert [e.article.headline for e in store.entries(["wire"], 10)] == ["Story number 1 told"]
    assert isinstance(
        add(store, article(7, site="farm", headline="SHOCKING: story number 1 (video)"), key="shocking"),
        Duplicate,
    )


def test_published_none_stays_none_and_sorting_falls_back_to_first_seen(store: Store):
    dated_old = add(store, article(1, published=T0 - timedelta(days=3))).entry
    undated = add(store, article(2)).entry  # first_seen T0 + 2 min
    dated_new = add(store, article(3, published=T0 + timedelta(days=1))).entry
    other_site = add(store, article(4, site="other", published=T0 + timedelta(days=9))).entry
    assert undated.article.published is None
    listed = store.entries(["wire"], 10)
    assert [e.id for e in listed] == [dated_new.id, undated.id, dated_old.id]
    assert listed[1].article.published is None
    assert [e.id for e in store.entries(["wire", "other"], 2)] == [other_site.id, dated_new.id]
    assert store.entries([], 10) == []
    assert store.entry_count("wire") == 3
    assert store.entry_count("other") == 1
    assert store.entry_count() == 4


def test_dates_come_back_as_the_same_instant_in_the_offset_they_were_given(store: Store):
    from datetime import timezone

    published = datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=timezone(timedelta(hours=-5)))
    entry = add(store, article(1, published=published)).entry
    assert entry.article.published == published
    assert entry.article.published is not None
    assert entry.article.published.utcoffset() == timedelta(hours=-5)
    [again] = store.entries(["wire"], 10)
    assert again.article.published is not None
    assert again.article.published.isoformat() == "2024-01-02T03:04:05.000678-05:00"


def test_same_timestamp_ties_are_broken_by_url_whatever_the_ids(tmp_path: Path):
    """Ties follow the URL, not the ids minted at first sight, so crawl order never reorders a feed."""
    with SqliteStore(tmp_path / "s.db", now=lambda: T0) as db:
        urls = [add(db, article(n)).entry.article.url for n in (3, 1, 4, 0, 2)]
        assert [e.article.url for e in db.entries(["wire"], 10)] == sorted(urls)


def test_known_urls_looks_up_many_keys_at_once(store: Store):
    for n in range(3):
        add(store, article(n))
    wanted = [article(n).url.lower() for n in range(1200)]
    assert store.known_urls("wire", wanted) == {article(n).url.lower() for n in range(3)}
    assert store.known_urls("wire", []) == set()


def test_sort_urls_answers_known_and_filtered_in_one_call(store: Store):
    add(store, article(1))
    store.mark_filtered("wire", [article(2).url.lower()])
    wanted = [article(n).url.lower() for n in (1, 2, 3)]
    assert store.sort_urls("wire", wanted) == ({article(1).url.lower()}, {article(2).url.lower()})
    assert store.sort_urls("farm", wanted) == ({article(1).url.lower()}, set())


def test_unchanged_resightings_in_a_batch_see_the_batch_before_them(store: Store):
    """Re-sightings that change nothing are answered apart from the others (store/base.py `_unchanged`):
    their Duplicate still shows what earlier sightings of the same batch added, and a URL given twice is
    taken in order."""
    first = add(store, article(1))
    copy = article(7, site="farm", headline=article(1).headline)
    moved = article(2, headline="Story number 2 retold")
    add(store, article(2))
    results = store.add_many([
        (copy, article(1).headline.lower(), copy.url.lower()),  # farm's copy: a source of entry 1
        (article(1), article(1).headline.lower(), article(1).url.lower()),  # unchanged
        (moved, moved.headline.lower(), moved.url.lower()),  # an edited headline
        (article(2), article(2).headline.lower(), article(2).url.lower()),  # ... and back, in order
    ])  # fmt: skip
    assert [type(r) for r in results] == [Duplicate, Duplicate, Updated, Updated]
    assert results[1].entry.id == first.entry.id
    assert results[1].entry.sources == (copy.url,)
    assert results[3].entry.article.headline == article(2).headline


def test_add_many_saves_the_listing_validators_with_the_sightings(store: Store):
    listing = "https://wire.example/ config=x"
    store.add_many(
        [(article(1), article(1).headline.lower(), article(1).url.lower())],
        validators=[(listing, Validators(etag='"v1"'))],
    )
    assert store.validators(listing) == Validators(etag='"v1"')
    store.add_many([], validators=[(listing, Validators(etag='"v2"'))])
    assert store.validators(listing) == Validators(etag='"v2"')


def test_lone_surrogates_are_stored_as_replacement_characters(store: Store):
    entry = add(store, article(1, headline="bad \ud800 text")).entry
    assert entry.article.headline == "bad \ufffd text"


# -- validators and runs -------------------------------------------------------------------------------


def test_validators_round_trip_overwrite_and_clear(store: Store):
    url = "https://wire.example/"
    assert store.validators(url) == Validators()
    store.save_validators(url, Validators(etag='"v1"', last_modified="Wed, 01 May 2024 12:00:00 GMT"))
    assert store.validators(url) == Validators(etag='"v1"', last_modified="Wed, 01 May 2024 12:00:00 GMT")
    store.save_validators(url, Validators(etag='"v2"'))
    assert store.validators(url) == Validators(etag='"v2"')
    store.save_validators(url, Validators())
    assert store.validators(url) == Validators()


def report(
    site: str = "wire",
    *,
    errors: tuple[str, ...] = (),
    minute: int = 0,
    items: int = 0,
    new: int = 0,
    duplicates: int = 0,
    pages: int = 0,
) -> SiteReport:
    started = T0 + timedelta(minutes=minute)
    return SiteReport(
        site=site,
        started=started,
        finished=started + timedelta(seconds=3),
        errors=errors,
        items=items,
        new=new,
        duplicates=duplicates,
        pages=pages,
    )


def test_run_history_keeps_counts_fill_rates_and_failures(store: Store):
    assert store.last_run("wire") is None
    assert store.last_good_run("wire") is None
    assert store.consecutive_failures("wire") == 0
    store.record_run(report(items=10, new=4, duplicates=6, pages=2), fill={"headline": 1.0, "author": 0.8})
    good = store.last_good_run("wire")
    assert good == RunRecord(
        site="wire",
        started=T0,
        finished=T0 + timedelta(seconds=3),
        pages=2,
        items=10,
        new=4,
        duplicates=6,
        fill={"author": 0.8, "headline": 1.0},
    )
    assert good is not None
    assert good.ok
    assert good.seconds == 3.0
    for minute in (1, 2, 3):
        store.record_run(report(errors=("fetch failed: https://wire.example/: timed out",), minute=minute))
    store.record_run(report("other", errors=("boom",)))
    last = store.last_run("wire")
    assert last is not None
    assert not last.ok
    assert last.errors == ("fetch failed: https://wire.example/: timed out",)
    assert store.last_good_run("wire") == good
    assert store.consecutive_failures("wire") == 3
    assert store.consecutive_failures("other") == 1
    store.record_run(report(minute=4))
    assert store.consecutive_failures("wire") == 0


def test_run_history_is_pruned_per_site(store: Store, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(store_history, "RUNS_KEPT", 3)
    for minute in range(6):
        store.record_run(report(minute=minute, items=minute))
    store.record_run(report("other"))
    last = store.last_run("wire")
    assert last is not None
    assert last.items == 5
    with store._read("test") as db:
        kept = [tuple(row) for row in db.execute("SELECT items FROM runs WHERE site = 'wire' ORDER BY id")]
    assert kept == [(3,), (4,), (5,)]
    assert store.last_run("other") is not None


# -- migrations, reopening, errors ---------------------------------------------------------------------


def test_migration_from_an_empty_file_and_reopen_keep_data(tmp_path: Path):
    path = tmp_path / "state.db"
    path.touch()
    with SqliteStore(path) as db:
        entry_id = add(db, article(1)).entry.id
        db.save_validators("https://wire.example/", Validators(etag='"x"'))
    with raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with SqliteStore(path) as db:
        assert [e.id for e in db.entries(["wire"], 5)] == [entry_id]
        assert db.validators("https://wire.example/") == Validators(etag='"x"')
        assert isinstance(add(db, article(1)), Duplicate)
    assert integrity(path) == "ok"


def test_a_failing_migration_step_rolls_back_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "state.db"
    SqliteStore(path).close()
    broken = ("CREATE TABLE half_done (x INTEGER)", "INSERT INTO no_such_table VALUES (1)")
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, broken))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(
        StoreError, match=rf"migrate to schema version {SCHEMA_VERSION + 1}.*no such table"
    ) as caught:
        SqliteStore(path)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    with raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half_done" not in tables


def test_a_database_from_a_newer_feedmaker_is_refused(tmp_path: Path):
    path = tmp_path / "state.db"
    with raw(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this feedmaker"):
        SqliteStore(path)


def test_a_file_that_is_not_a_database_raises_store_error(tmp_path: Path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"state\.db.*not a database") as caught:
        SqliteStore(path)
    assert isinstance(caught.value.__cause__, sqlite3.Error)


def test_a_closed_store_raises_store_error(tmp_path: Path):
    db = SqliteStore(tmp_path / "state.db")
    db.close()
    with pytest.raises(StoreError, match="closed"):
        db.entry_count()


def test_integrity_check_passes_after_use(tmp_path: Path):
    path = tmp_path / "state.db"
    with SqliteStore(path) as db:
        for n in range(50):
            add(db, article(n, published=T0))
            add(
                db,
                article(n + 100, site="farm", headline=f"Story number {n} told"),
                key=f"story number {n} told",
            )
        db.record_run(report(), fill={"headline": 1.0})
    assert integrity(path) == "ok"


# -- crash safety and concurrency ------------------------------------------------------------------------

CHILD = """
import sys
from feedmaker.models import Article, SiteReport, Validators
from feedmaker.store import SqliteStore
from datetime import UTC, datetime

path, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.stdout.write("ready\\n")  # imports done: the parent times its kill from here, not from the spawn
sys.stdout.flush()
store = SqliteStore(path)
n = 0
while count == 0 or n < count:
    n += 1
    url = f"https://{tag}.example/story/{n}"
    result = store.add(Article(site="crash", url=url, headline=f"{tag} story {n}"), key=f"{tag} {n}", url_key=url)
    sys.stdout.write(result.entry.id + "\\n")
    sys.stdout.flush()
    if n % 10 == 0:
        now = datetime.now(UTC)
        store.record_run(SiteReport(site=tag, started=now, finished=now, new=10), fill={"headline": 1.0})
        store.save_validators(url, Validators(etag=str(n)))
store.close()
"""


def spawn(path: Path, tag: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), tag, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_sigkill_at_random_moments_loses_no_committed_entry(tmp_path: Path):
    """20 children adding in a loop are SIGKILLed at random moments (some mid-migration, most mid-add)."""
    path = tmp_path / "state.db"
    seed = random.randrange(2**32)
    chance = random.Random(seed)
    committed: set[str] = set()
    for round_ in range(20):
        child = spawn(path, f"k{round_}", 0)
        # Timed from the child's first line, so a loaded machine's slow interpreter start-up does not eat
        # the whole window (the kill still lands before, during or after the migration and the adds).
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        time.sleep(chance.uniform(0.0, 0.4))
        child.kill()
        out, err = child.communicate()
        assert child.returncode == -9, err
        # Only whole lines: the child prints an id after its commit returned.
        committed.update(line for line in out.split("\n")[:-1] if line)
    assert committed, f"seed={seed}: no child got to commit anything"
    assert integrity(path) == "ok", f"seed={seed}"
    with SqliteStore(path) as db:
        stored = {e.id for e in db.entries(["crash"], 1_000_000)}
    assert committed <= stored, f"seed={seed}: lost {len(committed - stored)} committed entries"


def test_two_writer_processes_and_a_reader_never_see_database_is_locked(tmp_path: Path):
    path = tmp_path / "state.db"
    SqliteStore(path).close()  # migrate first, as the daemon does at start
    writers = [spawn(path, f"w{n}", 150) for n in range(2)]
    failures: list[BaseException] = []
    reads = 0
    with SqliteStore(path) as reader:
        while any(w.poll() is None for w in writers):
            try:
                reader.entries(["crash"], 50)
                reader.entry_count("crash")
                reader.known_urls("crash", ["https://w0.example/story/1"])
                reads += 1
            except StoreError as exc:
                failures.append(exc)
        results = [w.communicate() for w in writers]
        count = reader.entry_count("crash")
    assert [w.returncode for w in writers] == [0, 0], [err for _, err in results]
    assert not failures
    assert reads > 0
    assert count == 300
    assert integrity(path) == "ok"


def test_one_store_shared_by_threads_serialises_calls(tmp_path: Path):
    failures: list[BaseException] = []
    with SqliteStore(tmp_path / "state.db") as db:

        def work(tag: str) -> None:
            try:
                for n in range(40):
                    add(db, article(n, site=tag, headline=f"{tag} story {n}"))
                    db.entries([tag], 10)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures
        assert db.entry_count() == 160


def test_a_site_feed_includes_stories_it_saw_second_once_with_the_first_id() -> None:
    """Site B's feed shows the story site A had first, under A's id; the combined feed shows it once."""
    from datetime import UTC, datetime

    from feedmaker.models import Added, Article, Duplicate

    with SqliteStore(":memory:", now=lambda: datetime(2025, 4, 9, tzinfo=UTC)) as store:
        first = store.add(
            Article(site="a", url="https://a.example/1", headline="Kim orders"),
            key="kim orders more launchers",
            url_key="https://a.example/1",
        )
        again = store.add(
            Article(site="b", url="https://b.example/x", headline="KIM ORDERS"),
            key="kim orders more launchers",
            url_key="https://b.example/x",
        )
        assert isinstance(first, Added)
        assert isinstance(again, Duplicate)
        assert [e.id for e in store.entries(["b"], 10)] == [first.entry.id]
        assert [e.id for e in store.entries(["a", "b"], 10)] == [first.entry.id]


def test_a_version_1_database_upgrades_keeping_its_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from datetime import UTC, datetime, timedelta

    path = tmp_path / "state.db"
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
        patch.setattr(store_module, "SCHEMA_VERSION", 1)
        with SqliteStore(path):
            pass
    # The row as version 1 wrote it (today's add also bumps a change counter that version 1 has no table for).
    with raw(path) as db, db:
        db.execute(
            "INSERT INTO entries (id, site, key, url_key, url, headline, first_seen, updated) "
            "VALUES ('urn:uuid:kept', 'a', 'kept', 'https://a.example/1', 'https://a.example/1', 'Kept', ?, ?)",
            (T0.isoformat(), T0.isoformat()),
        )
    with SqliteStore(path) as new:
        assert [e.id for e in new.entries(["a"], 10)] == ["urn:uuid:kept"]
        later = datetime.now(UTC) + timedelta(hours=1)
        new.save_host_pauses({"a.example": later, "gone.example": datetime(2000, 1, 1, tzinfo=UTC)})
        assert set(new.host_pauses()) == {"a.example"}
    with raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_generic_headline_on_two_sites_is_two_stories(store: Store):
    """'Morning briefing' on two sites is not one story: short keys never merge across sites."""
    first = add(store, article(1, site="wire", headline="Morning briefing"))
    other = add(store, article(1, site="farm", headline="Morning briefing"))
    assert isinstance(first, Added)
    assert isinstance(other, Added)
    assert store.entry_count() == 2


def test_a_recurring_headline_on_one_site_is_a_new_story_but_a_moved_one_is_not(store: Store):
    """Same site, same headline, new URL: days apart it is the next edition; same date it is a moved page."""
    monday = datetime(2025, 4, 7, 6, tzinfo=UTC)
    first = add(store, article(1, headline="Your morning briefing for today", published=monday))
    moved = add(store, article(2, headline="Your morning briefing for today", published=monday))
    next_week = add(
        store, article(3, headline="Your morning briefing for today", published=monday + timedelta(days=7))
    )
    assert isinstance(first, Added)
    assert isinstance(moved, Duplicate)
    assert moved.entry.id == first.entry.id
    assert isinstance(next_week, Added)


def test_the_same_url_listed_by_another_site_appears_in_that_sites_feed_once(store: Store):
    first = add(store, article(1, site="wire"))
    listed = Article(site="aggregator", url=first.entry.article.url, headline="Story number 1 told")
    again = store.add(listed, key="story number 1 told", url_key=first.entry.article.url.lower())
    assert isinstance(again, Duplicate)
    assert [e.id for e in store.entries(["aggregator"], 10)] == [first.entry.id]
    assert store.entries(["aggregator"], 10)[0].sources == ()  # no related link to itself


def test_a_re_sighting_keeps_the_date_the_link_and_unchanged_origins(store: Store):
    """'2 hours ago' re-read later, a rotated utm_ parameter and listing-only origins change nothing."""
    url = "https://wire.example/story/1?utm_source=home"
    at_ten = datetime(2025, 3, 1, 10, tzinfo=UTC)
    first = store.add(
        Article(
            site="wire",
            url=url,
            headline="Story number 1 told",
            published=at_ten,
            author="Ann",
            origins=(("headline", "selector:h2"), ("date", "selector:time"), ("author", "selector:.by")),
        ),
        key="story number 1 told",
        url_key="https://wire.example/story/1",
    )
    later = store.add(
        Article(
            site="wire",
            url="https://wire.example/story/1?utm_source=sidebar",
            headline="Story number 1 told",
            published=at_ten + timedelta(minutes=20),
            origins=(("headline", "selector:h2"), ("date", "selector:time")),
        ),
        key="story number 1 told",
        url_key="https://wire.example/story/1",
    )
    assert isinstance(later, Duplicate)
    entry = store.entries(["wire"], 1)[0]
    assert entry.updated == first.entry.updated
    assert entry.article.published == at_ten
    assert entry.article.url == url
    assert entry.article.origin("author") == "selector:.by"


def test_daily_editions_of_a_recurring_title_are_each_a_story(store: Store):
    day = datetime(2025, 3, 1, 6, tzinfo=UTC)
    results = [
        add(store, article(n, headline="Your morning briefing for today", published=day + timedelta(days=n)))
        for n in range(1, 4)
    ]
    assert all(isinstance(r, Added) for r in results)


def test_a_moved_story_with_and_without_a_date_stays_one_entry():
    """Stored with a date; seen again at a new URL half an hour later without one: the same story."""
    clock = [datetime(2025, 3, 4, 12, tzinfo=UTC)]
    with SqliteStore(":memory:", now=lambda: clock[0]) as store:
        first = add(
            store,
            article(
                1, headline="Budget for schools passes the senate", published=clock[0] - timedelta(days=3)
            ),
        )
        clock[0] += timedelta(minutes=30)
        moved = add(store, article(2, headline="Budget for schools passes the senate"))
        dated_again = add(
            store,
            article(
                3, headline="Budget for schools passes the senate", published=clock[0] - timedelta(days=3)
            ),
        )
    assert isinstance(moved, Duplicate)
    assert isinstance(dated_again, Duplicate)
    assert moved.entry.id == dated_again.entry.id == first.entry.id


def test_every_site_listing_a_known_url_gets_the_story_in_its_feed(store: Store):
    """A at U; B's copy at V; then C lists U and D lists V: all four feeds show the one story."""
    first = add(store, article(1, site="a"), key="the one story told here")
    add(store, article(2, site="b"), key="the one story told here")
    for site, source in (("c", first.entry.article.url), ("d", "https://b.example/story/2")):
        listed = Article(site=site, url=source, headline="")
        assert isinstance(store.add(listed, key="", url_key=source.lower()), Duplicate)
    for site in "abcd":
        assert [e.id for e in store.entries([site], 10)] == [first.entry.id]
    assert store.entries(["a"], 1)[0].article.headline == "Story number 1 told"


def test_generic_headlines_at_different_urls_of_one_site_are_separate_stories(store: Store):
    """Seven 'Read more' links to seven URLs of one site in one run are seven entries, not one."""
    results = [add(store, article(n, headline="Read more")) for n in range(7)]
    assert all(isinstance(r, Added) for r in results)
    assert len({r.entry.id for r in results}) == 7
    assert store.entry_count("wire") == 7


def test_a_generic_headline_merges_only_at_the_same_canonical_url(store: Store):
    """A short key re-seen at its own URL is the same entry; at a new URL of the same site, a new story."""
    first = add(store, article(1, headline="Live updates"))
    again = add(store, article(1, headline="Live updates"))
    elsewhere = add(store, article(2, headline="Live updates"))
    assert isinstance(again, Duplicate)
    assert again.entry.id == first.entry.id
    assert isinstance(elsewhere, Added)
    assert elsewhere.entry.id != first.entry.id


def test_headline_less_items_at_different_urls_are_separate_stories(store: Store):
    """An empty key (no headline found) is generic too: it never merges two URLs."""
    first = add(store, article(1, headline=""))
    second = add(store, article(2, headline=""))
    assert isinstance(first, Added)
    assert isinstance(second, Added)


def test_a_megabyte_headline_is_stored_cut_at_a_word_with_an_ellipsis(store: Store):
    """A 1 MB headline, summary and author are capped where they are stored; a re-sighting is no update."""
    words = " ".join(f"word{n}" for n in range(200_000))
    huge = article(1, headline=words, summary=words, author=words)
    entry = add(store, huge, key="huge story key").entry
    for value, limit in (
        (entry.article.headline, store_base.HEADLINE_MAX),
        (entry.article.summary, store_base.SUMMARY_MAX),
        (entry.article.author, store_base.AUTHOR_MAX),
    ):
        assert value is not None
        assert len(value) <= limit
        assert len(value) > limit // 2
        assert value.endswith("\u2026")
        kept = value.removesuffix("\u2026")
        assert words.startswith(kept)
        assert words[len(kept)] == " "  # cut between two words, not inside one
    assert isinstance(add(store, huge, key="huge story key"), Duplicate)
    [listed] = store.entries(["wire"], 10)
    assert listed.article.headline == entry.article.headline


def test_cap_text_keeps_short_text_and_hard_cuts_one_endless_word():
    assert store_base.cap_text("Short headline", 300) == "Short headline"
    assert store_base.cap_text("x" * 300, 300) == "x" * 300
    assert store_base.cap_text("x" * 1000, 300) == "x" * 299 + "\u2026"
    assert store_base.cap_text("Budget passes, " + "y" * 400, 300) == "Budget passes, " + "y" * 284 + "\u2026"


# -- engines: URLs, PostgreSQL migrations, workers racing on one database --------------------------------


def test_store_url_prefers_the_environment_then_the_setting_then_sqlite_in_the_state_dir(tmp_path: Path):
    from feedmaker.store import store_url

    assert store_url(None, {}) == "sqlite:///feedmaker.db"
    assert store_url("postgresql://a@b/c", {}) == "postgresql://a@b/c"
    assert (
        store_url("postgresql://a@b/c", {"FEEDMAKER_STORE": "postgresql://x:secret@y/z"})
        == "postgresql://x:secret@y/z"
    )
    with open_store(store_url(None, {}), state_dir=tmp_path) as opened:
        assert isinstance(opened, SqliteStore)
        assert opened.path == str(tmp_path / "feedmaker.db")
    with open_store(f"sqlite:///{tmp_path / 'abs.db'}", state_dir=tmp_path / "elsewhere") as opened:
        assert opened.path == str(tmp_path / "abs.db")
    with pytest.raises(StoreError, match="use sqlite:///path or postgresql://"):
        open_store("mysql://root:hunter2@db/x", state_dir=tmp_path)


def test_an_unreachable_postgres_server_is_a_store_error_without_the_password(tmp_path: Path):
    pytest.importorskip("psycopg", reason="postgres tier: psycopg is not installed")
    from feedmaker.store import postgres

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(postgres, "POOL_WAIT", 1.0)
        with pytest.raises(StoreError, match="cannot connect") as caught:
            open_store(f"postgresql://feed:hunter2@/none?host={tmp_path}&port=1", state_dir=tmp_path)
    assert "hunter2" not in str(caught.value)


def test_postgres_migrates_once_records_its_version_and_refuses_a_newer_schema(
    postgres_url: str, tmp_path: Path
):
    import psycopg

    from feedmaker.store import postgres

    with open_store(postgres_url, state_dir=tmp_path) as first:
        entry_id = add(first, article(1)).entry.id
    with open_store(postgres_url, state_dir=tmp_path) as again:
        assert [e.id for e in again.entries(["wire"], 5)] == [entry_id]
    with psycopg.connect(postgres_url, autocommit=True) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, postgres.SCHEMA_VERSION + 1))
        db.execute("INSERT INTO schema_version (version) VALUES (%s)", (postgres.SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this feedmaker"):
        open_store(postgres_url, state_dir=tmp_path)


def test_a_failing_postgres_migration_step_rolls_back_whole(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import psycopg

    from feedmaker.store import postgres

    open_store(postgres_url, state_dir=tmp_path).close()
    broken = ("CREATE TABLE half_done (x INTEGER)", "INSERT INTO no_such_table VALUES (1)")
    monkeypatch.setattr(postgres, "MIGRATIONS", (*postgres.MIGRATIONS, broken))
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", postgres.SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match=r"migrate to schema version \d+.*no_such_table") as caught:
        open_store(postgres_url, state_dir=tmp_path)
    assert isinstance(caught.value.__cause__, psycopg.Error)
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT max(version) FROM schema_version").fetchone() == (
            postgres.SCHEMA_VERSION - 1,
        )
        assert db.execute("SELECT to_regclass('half_done')").fetchone() == (None,)


def test_two_postgres_workers_opening_a_new_database_at_once_migrate_it_once(
    postgres_url: str, tmp_path: Path
):
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            open_store(postgres_url, state_dir=tmp_path).close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def race(stores: list[Store], work: list[list[tuple[Article, str, str]]]) -> list[BaseException]:
    """Each store (one worker) adds its n-th batch at the same moment as the others add theirs."""
    failures: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def worker(store: Store, batches: list[tuple[Article, str, str]]) -> None:
        for sighting in batches:
            try:
                start.wait(timeout=30)
                store.add_many([sighting])
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=worker, args=(s, w)) for s, w in zip(stores, work, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_two_workers_storing_one_story_from_two_sites_at_once_keep_one_story_with_two_sightings(
    postgres_url: str, tmp_path: Path
):
    """Unique constraints, not look-ups, decide: 40 stories each added by two workers at the same moment."""
    rounds = 40
    headline = "Harbour bridge reopens after storm number {n}"
    work = [
        [
            (
                article(n, site=site, headline=headline.format(n=n)),
                headline.format(n=n).lower(),
                f"https://{site}.example/story/{n}",
            )
            for n in range(rounds)
        ]
        for site in ("wire", "farm")
    ]
    stores = [open_store(postgres_url, state_dir=tmp_path) for _ in work]
    try:
        failures = race(stores, work)
        assert not failures
        reader = stores[0]
        assert reader.entry_count() == rounds
        entries = reader.entries(["wire", "farm"], 1000)
        assert len(entries) == rounds
        for entry in entries:
            first_site = entry.article.site
            other = "farm" if first_site == "wire" else "wire"
            assert entry.sources == (entry.article.url.replace(first_site, other),)
        assert reader.known_urls("x", [u for batch in work for _, _, u in batch]) == {
            u for batch in work for _, _, u in batch
        }
    finally:
        for store in stores:
            store.close()


def test_two_workers_storing_one_url_from_two_sites_at_once_keep_one_entry(postgres_url: str, tmp_path: Path):
    """An aggregator and the wire list the same page under different headlines at the same moment."""
    rounds = 40
    url = "https://wire.example/story/{n}"
    work = [
        [
            (
                Article(site=site, url=url.format(n=n), headline=f"{site} take {n} on it"),
                f"{site} take {n} on it",
                url.format(n=n),
            )
            for n in range(rounds)
        ]
        for site in ("wire", "aggregator")
    ]
    stores = [open_store(postgres_url, state_dir=tmp_path) for _ in work]
    try:
        assert not race(stores, work)
        assert stores[0].entry_count() == rounds
        for site in ("wire", "aggregator"):
            assert len(stores[1].entries([site], 1000)) == rounds
    finally:
        for store in stores:
            store.close()


# -- site-run leases -------------------------------------------------------------------------------------

LEASE = timedelta(minutes=3)  # three readings of the fake clock


def test_a_slot_is_claimed_by_one_worker_and_never_run_again_once_done(store: Store):
    slot = T0
    store.worker = "a"
    first = store.claim_run("wire", slot, lease=LEASE)
    assert first.won
    assert first.worker == "a"
    assert not first.done
    store.worker = "b"
    held = store.claim_run("wire", slot, lease=LEASE)
    assert not held.won
    assert held.worker == "a"
    assert held.expires == first.expires
    assert not store.renew_run("wire", slot, lease=LEASE)  # b holds nothing to renew
    assert store.claim_run("other", slot, lease=LEASE).won  # another site's slot is its own
    store.worker = "a"
    assert store.renew_run("wire", slot, lease=LEASE)
    store.finish_run("wire", slot)
    store.worker = "b"
    for _ in range(5):  # long after the lease: done stays done
        after = store.claim_run("wire", slot, lease=LEASE)
        assert not after.won
        assert after.done
    assert store.claim_run("wire", slot + timedelta(hours=1), lease=LEASE).won  # the next slot is free


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_it(store: Store):
    store.worker = "dead"
    assert store.claim_run("wire", T0, lease=LEASE).won
    store.worker = "b"
    assert not store.claim_run("wire", T0, lease=LEASE).won  # the clock moves a minute per reading
    assert not store.claim_run("wire", T0, lease=LEASE).won
    taken = store.claim_run("wire", T0, lease=LEASE)
    assert taken.won
    assert taken.worker == "b"
    store.worker = "dead"
    assert not store.renew_run("wire", T0, lease=LEASE)


def test_a_released_lease_is_free_at_once(store: Store):
    store.worker = "a"
    assert store.claim_run("wire", T0, lease=timedelta(hours=1)).won
    store.finish_run("wire", T0, done=False)
    store.worker = "b"
    assert store.claim_run("wire", T0, lease=timedelta(hours=1)).won


def test_runs_record_the_worker_that_ran_them(store: Store):
    store.worker = "host-a:12"
    store.record_run(report())
    last = store.last_run("wire")
    assert last is not None
    assert last.worker == "host-a:12"


def test_eight_workers_claiming_one_slot_at_once_give_exactly_one_winner(postgres_url: str, tmp_path: Path):
    stores = [open_store(postgres_url, state_dir=tmp_path, worker=f"w{n}") for n in range(8)]
    try:
        for round_ in range(10):
            slot = T0 + timedelta(hours=round_)
            start = threading.Barrier(len(stores))
            claims: list[bool] = []

            def claim(store: Store, slot: datetime, start: threading.Barrier, claims: list[bool]) -> None:
                start.wait(timeout=30)
                claims.append(store.claim_run("wire", slot, lease=timedelta(minutes=5)).won)

            threads = [threading.Thread(target=claim, args=(s, slot, start, claims)) for s in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(claims) == [False] * 7 + [True], f"round {round_}"
    finally:
        for store in stores:
            store.close()


def test_a_host_turn_is_held_by_one_worker_and_then_spaced_by_the_delay(store: Store):
    """Clock: one minute per reading. Holding for 90 s, the turn lapses after two readings."""
    store.worker = "a"
    assert store.take_host_turn("news.example", hold=90) == 0.0
    store.worker = "b"
    assert store.take_host_turn("news.example", hold=90) > 0  # a's request is in flight
    assert store.take_host_turn("other.example", hold=90) == 0.0  # another host is its own
    store.worker = "a"
    store.end_host_turn("news.example", delay=150)  # the next request waits 150 s: two more readings
    store.worker = "b"
    assert [store.take_host_turn("news.example", hold=90) for _ in range(3)] == [90.0, 30.0, 0.0]


def test_a_dead_workers_host_turn_lapses_after_its_hold(store: Store):
    store.worker = "dead"
    assert store.take_host_turn("news.example", hold=90) == 0.0
    store.worker = "b"
    assert [store.take_host_turn("news.example", hold=90) for _ in range(2)] == [30.0, 0.0]


# -- change counters and flat queries (issue 12) ---------------------------------------------------------


def test_site_versions_move_with_every_change_a_feed_shows_and_only_then(store: Store):
    """Added and Updated bump the entry's site; a new sighting bumps the sighting site and the entry's own
    site (the entry gains a link); a Duplicate with nothing new bumps nothing."""
    assert store.site_versions(["wire", "farm"]) == {"wire": 0, "farm": 0}
    first = add(store, article(1))
    assert isinstance(first, Added)
    after_add = store.site_versions(["wire", "farm"])
    assert after_add["wire"] > 0
    assert after_add["farm"] == 0
    assert isinstance(add(store, article(1)), Duplicate)  # the same sighting again: nothing changed
    assert store.site_versions(["wire", "farm"]) == after_add
    assert isinstance(add(store, article(1, summary="Now with a summary")), Updated)
    after_update = store.site_versions(["wire", "farm"])
    assert after_update["wire"] > after_add["wire"]
    assert after_update["farm"] == 0
    copy = article(7, site="farm", headline=first.entry.article.headline)
    assert isinstance(add(store, copy, key=first.entry.key), Duplicate)  # a copy: a source of farm
    after_source = store.site_versions(["wire", "farm"])
    assert after_source["farm"] > 0
    assert after_source["wire"] > after_update["wire"]
    assert isinstance(add(store, copy, key=first.entry.key), Duplicate)  # the same copy again
    assert store.site_versions(["wire", "farm"]) == after_source
    assert isinstance(add(store, article(1, summary="Edited again")), Updated)  # the entry farm shows changed
    assert store.site_versions(["farm"])["farm"] > after_source["farm"]


def test_entries_merge_own_and_sighted_entries_newest_first_and_once(store: Store):
    """The walks per site (own entries, later sightings) and the stop rule give the order of one global sort:
    each story once, by the date of the sighting it shows (its earliest on the feed's sites)."""
    rng = random.Random(12)
    sites = ["a", "b", "c"]
    sightings: dict[str, list[tuple[datetime, str, str]]] = {}  # story id -> (instant, site, url)
    for n in range(60):
        site = rng.choice(sites)
        published = T0 - timedelta(hours=rng.randrange(48)) if rng.random() < 0.8 else None
        added = add(store, article(n, site=site, headline=f"Story {n} of the day told", published=published))
        assert isinstance(added, Added)
        entry = added.entry
        sightings[entry.id] = [(published or entry.first_seen, site, entry.article.url)]
        if rng.random() < 0.4:  # sighted by other sites, some at two URLs, dated before or after
            for copy in range(rng.randrange(1, 4)):
                other = rng.choice([s for s in sites if s != site])
                when = T0 - timedelta(hours=rng.randrange(72))
                item = article(1000 + 3 * n + copy, site=other, headline=f"copy {n} {copy}", published=when)
                assert isinstance(add(store, item, key=entry.key), Duplicate)
                sightings[entry.id].append((when, other, item.url))
    for feed_sites, limit in ((["a"], 5), (["b"], 100), (["a", "c"], 7), (sites, 25), (sites, 1), (sites, 3)):
        shown = {}
        for story_id, seen in sightings.items():
            mine = sorted(
                (when, feed_sites.index(site), url) for when, site, url in seen if site in feed_sites
            )
            if mine:
                shown[story_id] = (mine[0][0], mine[0][2])
        expected = sorted(
            sorted(shown, key=lambda i: (shown[i][1], i)), key=lambda i: shown[i][0], reverse=True
        )
        got = store.entries(feed_sites, limit)
        assert [e.id for e in got] == expected[:limit]
        assert [e.article.url for e in got] == [shown[i][1] for i in expected[:limit]]


def test_a_date_found_later_moves_a_sighting_in_its_own_sites_walk_only(store: Store):
    """A sighting's sort key is its own date: the farm's copy moves when the farm's page gives it a date,
    not when the wire's does."""
    old = add(store, article(1, site="wire", headline="An undated story told here"))
    assert isinstance(old, Added)
    assert isinstance(add(store, article(9, site="farm", headline="x"), key=old.entry.key), Duplicate)
    newer = add(store, article(2, site="farm", headline="A farm story of its own"))
    assert isinstance(newer, Added)
    assert [e.id for e in store.entries(["farm"], 1)] == [newer.entry.id]
    later = newer.entry.first_seen + timedelta(days=1)
    assert isinstance(
        add(store, article(1, site="wire", headline="An undated story told here", published=later)), Updated
    )
    assert [e.id for e in store.entries(["farm"], 1)] == [newer.entry.id]
    assert isinstance(
        add(store, article(9, site="farm", headline="x", published=later), key=old.entry.key), Updated
    )
    [shown] = store.entries(["farm"], 1)
    assert (shown.id, shown.article.url, shown.article.published) == (
        old.entry.id,
        article(9, site="farm").url,
        later,
    )


@pytest.mark.parametrize("query", ["ENTRIES_OF_SITE", "SOURCES_OF_SITE"])
def test_the_entries_walks_use_an_index_and_never_sort_the_history(tmp_path: Path, query: str):
    """EXPLAIN QUERY PLAN of each walk: an index in sort order, no temp b-tree, on a store with history."""
    with SqliteStore(tmp_path / "state.db") as db:
        for n in range(200):
            added = add(db, article(n, site=f"s{n % 4}", headline=f"Story {n} of the day told"))
            assert isinstance(added, Added)
            add(db, article(5000 + n, site=f"s{(n + 1) % 4}", headline="x"), key=added.entry.key)
    with raw(tmp_path / "state.db") as conn:
        conn.execute("ANALYZE")
        sql = getattr(store_base, query)
        plan = " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("s1", 50)))
    assert "TEMP B-TREE" not in plan, plan
    index = "entries_site_newest" if query == "ENTRIES_OF_SITE" else "sources_site_newest"
    assert re.search(rf"SEARCH \w+ USING (COVERING )?INDEX {index} \(site=\?\)", plan), plan


# Before step 8 (change counters, sort keys); step 9 (rendered feeds) came after it.
def test_a_database_before_change_counters_gets_sort_keys_for_its_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "state.db"
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:7])
        patch.setattr(store_module, "SCHEMA_VERSION", 7)
        with SqliteStore(path):
            pass
    stamp = T0.isoformat(timespec="microseconds")
    with raw(path) as db, db:
        for n, published in ((1, "2024-01-02T00:00:00.000000+00:00"), (2, None)):
            db.execute(
                "INSERT INTO entries (id, site, key, url_key, url, headline, published, first_seen, updated) "
                "VALUES (?, 'wire', ?, ?, ?, 'h', ?, ?, ?)",
                (f"urn:uuid:{n}", f"key {n}", f"u{n}", f"https://wire.example/{n}", published, stamp, stamp),
            )
            db.execute(
                "INSERT INTO sources (url_key, site, entry_id, url, first_seen) VALUES (?, 'farm', ?, ?, ?)",
                (f"f{n}", f"urn:uuid:{n}", f"https://farm.example/{n}", stamp),
            )
    with SqliteStore(path) as new:
        assert [e.id for e in new.entries(["farm"], 10)] == ["urn:uuid:2", "urn:uuid:1"]  # T0 is after Jan 2
    with raw(path) as db:
        sorts = dict(db.execute("SELECT entry_id, sort FROM sources"))
    assert sorts == {"urn:uuid:1": "2024-01-02T00:00:00.000000+00:00", "urn:uuid:2": stamp}


def test_a_postgres_database_before_change_counters_gets_sort_keys_for_its_sources(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import psycopg

    from feedmaker.store import postgres

    with monkeypatch.context() as patch:
        patch.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:3])
        patch.setattr(postgres, "SCHEMA_VERSION", 3)
        open_store(postgres_url, state_dir=tmp_path).close()
    stamp = T0.isoformat(timespec="microseconds")
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT to_regclass('site_versions')").fetchone() == (None,)
        for n, published in ((1, "2024-01-02T00:00:00.000000+00:00"), (2, None)):
            db.execute(
                "INSERT INTO entries (id, site, key, url_key, url, headline, published, first_seen, updated) "
                "VALUES (%s, 'wire', %s, %s, %s, 'h', %s, %s, %s)",
                (f"urn:uuid:{n}", f"key {n}", f"u{n}", f"https://wire.example/{n}", published, stamp, stamp),
            )
            db.execute(
                "INSERT INTO sources (url_key, site, entry_id, url, first_seen) VALUES (%s, 'farm', %s, %s, %s)",
                (f"f{n}", f"urn:uuid:{n}", f"https://farm.example/{n}", stamp),
            )
    with open_store(postgres_url, state_dir=tmp_path) as new:
        assert [e.id for e in new.entries(["farm"], 10)] == ["urn:uuid:2", "urn:uuid:1"]  # T0 is after Jan 2
        assert new.site_versions(["wire", "farm"]) == {"wire": 0, "farm": 0}
        added = add(new, article(3, published=T0 + timedelta(days=1)))
        assert isinstance(added, Added)
        assert new.site_versions(["wire", "farm"]) == {"wire": 1, "farm": 0}
        assert [e.id for e in new.entries(["wire", "farm"], 1)] == [added.entry.id]
    with psycopg.connect(postgres_url) as db:
        sorts: dict[str, str] = dict(db.execute("SELECT entry_id, sort FROM sources").fetchall())
    assert sorts == {"urn:uuid:1": "2024-01-02T00:00:00.000000+00:00", "urn:uuid:2": stamp}


# -- each sighting its own fields (schema step sqlite 9 / postgres 5) ------------------------------------------

_OLD_ENTRY = (
    "INSERT INTO entries (id, site, key, url_key, url, headline, published, summary, origins, first_seen, updated) "
    "VALUES ('urn:uuid:old', 'wire', 'an old story told by the wire', 'u1', 'https://wire.example/1', "
    "'An old story told by the wire', '2024-01-02T00:00:00.000000+00:00', 'wire summary', "
    '\'[["headline", "selector:h1"]]\', ?, ?)'
)
_OLD_SOURCE = (
    "INSERT INTO sources (url_key, site, entry_id, url, first_seen, sort) "
    "VALUES ('f1', 'farm', 'urn:uuid:old', 'https://farm.example/1', ?, '2024-01-02T00:00:00.000000+00:00')"
)


def _check_sightings_upgrade(new: Store) -> None:
    """What an upgraded store shows: old sightings keep what their feed showed (the story's fields, their own
    URL) with the id every feed had, the first site keeps its id; new sightings keep their own fields."""
    stamp = T0.isoformat(timespec="microseconds")
    [farm] = new.entries(["farm"], 10)
    [wire] = new.entries(["wire"], 10)
    assert (farm.id, farm.article.url, farm.article.headline, farm.article.summary) == (
        "urn:uuid:old", "https://farm.example/1", "An old story told by the wire", "wire summary",
    )  # fmt: skip
    assert farm.article.origins == (("headline", "selector:h1"),)
    assert farm.first_seen == datetime.fromisoformat(stamp)
    assert farm.updated == farm.article.published  # entry_updated: no modified date, so the published one
    assert (wire.id, wire.article.url, wire.sources) == (
        "urn:uuid:old",
        "https://wire.example/1",
        ("https://farm.example/1",),
    )
    # In the feeds: the first site's feed keeps the id it published; the farm's gets its own, once.
    assert [e.id for e in new.entries(["wire"], 10, view=View(feed="wire"))] == ["urn:uuid:old"]
    assert [e.id for e in new.entries(["farm"], 10, view=View(feed="farm"))] == [
        view_id("urn:uuid:old", "wire", "farm")
    ]
    copy = article(2, site="mirror", headline="AN OLD STORY TOLD BY THE WIRE", summary="mirror summary")
    assert isinstance(add(new, copy, key="an old story told by the wire"), Duplicate)
    [mirror] = new.entries(["mirror"], 10)
    assert (mirror.article.headline, mirror.article.summary) == (
        "AN OLD STORY TOLD BY THE WIRE",
        "mirror summary",
    )


def test_a_version_8_database_gives_its_sightings_their_own_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "state.db"
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:8])
        patch.setattr(store_module, "SCHEMA_VERSION", 8)
        with SqliteStore(path):
            pass
    stamp = T0.isoformat(timespec="microseconds")
    with raw(path) as db, db:
        db.execute(_OLD_ENTRY, (stamp, stamp))
        db.execute(_OLD_SOURCE, (stamp,))
    with SqliteStore(path) as new:
        _check_sightings_upgrade(new)
    with raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_postgres_version_4_database_gives_its_sightings_their_own_fields(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import psycopg

    from feedmaker.store import postgres

    with monkeypatch.context() as patch:
        patch.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:4])
        patch.setattr(postgres, "SCHEMA_VERSION", 4)
        open_store(postgres_url, state_dir=tmp_path).close()
    stamp = T0.isoformat(timespec="microseconds")
    with psycopg.connect(postgres_url) as db:
        db.execute(_OLD_ENTRY.replace("?", "%s"), (stamp, stamp))
        db.execute(_OLD_SOURCE.replace("?", "%s"), (stamp,))
    with open_store(postgres_url, state_dir=tmp_path) as new:
        _check_sightings_upgrade(new)
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT max(version) FROM schema_version").fetchone() == (postgres.SCHEMA_VERSION,)


# -- rendered feeds (store/feeds.py), served alike by every instance on a shared store -----------------------


def render(feed_id: str, body: bytes, rendered_from: int, entries: int = 1) -> FeedRender:
    return FeedRender(id=feed_id, body=body, rendered_from=rendered_from, entries=entries)


def test_save_feeds_keeps_new_bytes_and_never_an_older_render(store: Store):
    store.worker = "w1"
    assert store.save_feeds([render("b", b"<b1/>", 5), render("a", b"<a1/>", 3)], now=T0) == ["a", "b"]
    assert store.save_feeds([render("a", b"<a1/>", 4)]) == []  # same bytes: the row stays as it was
    assert store.save_feeds([render("a", b"<a0/>", 2)]) == []  # rendered from older counters: refused
    assert store.save_feeds([render("a", b"<a2/>", 4, entries=2)], now=T0 + timedelta(hours=1)) == ["a"]
    assert store.save_feeds([]) == []
    _, feeds = store.feeds_since(0)
    a = next(f for f in feeds if f.id == "a")
    assert (a.body, a.entries, a.worker) == (b"<a2/>", 2, "w1")
    assert a.etag == feed_etag(b"<a2/>")
    assert gzip.decompress(a.gzipped) == b"<a2/>"
    assert a.modified == int((T0 + timedelta(hours=1)).timestamp())
    assert store.feed_entries() == {"a": 2, "b": 1}


def test_feeds_since_returns_only_the_feeds_written_after_the_number_seen(store: Store):
    store.save_feeds([render("a", b"<a1/>", 1), render("b", b"<b1/>", 1)])
    seen, feeds = store.feeds_since(0)
    assert sorted(f.id for f in feeds) == ["a", "b"]
    assert store.feeds_since(seen) == (seen, [])  # nothing new: one read of the counter
    store.save_feeds([render("b", b"<b2/>", 2)])
    later, changed = store.feeds_since(seen)
    assert later > seen
    assert [(f.id, f.body) for f in changed] == [("b", b"<b2/>")]
    assert all(f.seq > seen for f in changed)


def test_stored_feeds_load_what_changed_with_the_etags_the_files_would_have(store: Store):
    served = StoredFeeds(store)
    assert served.refresh() == []
    assert served.get("a") is None
    store.save_feeds([render("a", b"<a1/>", 1)], now=T0)
    assert served.refresh() == ["a"]
    assert served.refresh() == []
    feed = served.get("a")
    assert feed is not None
    tag = feed_etag(b"<a1/>")
    assert (feed.body, feed.etag, feed.gzip_etag) == (b"<a1/>", tag, f'{tag[:-1]}-gzip"')
    assert gzip.decompress(feed.gzipped) == b"<a1/>"
    assert feed.modified == int(T0.timestamp())
    store.save_feeds([render("a", b"<a2/>", 2)])
    assert served.refresh() == ["a"]
    assert served.get("a").body == b"<a2/>"  # type: ignore[union-attr]
