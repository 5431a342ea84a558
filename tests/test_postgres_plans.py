"""PostgreSQL's plans for the entries-of-a-feed walks (store/base.py ENTRIES_OF_SITE, SOURCES_OF_SITE): with
enough history that the planner sorts when no index fits (shown by dropping the index), each walk is an
index scan under the LIMIT, with no Sort node, as tests/test_store.py checks for SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from feedmaker.store import base as store_base
from feedmaker.store import open_store

SITES, PER_SITE = 40, 1000  # 40 k entries and 40 k sightings: a sort of one site's rows is worth avoiding


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, depth first, the root first."""
    found = [plan]
    for child in plan.get("Plans", ()):
        found.extend(nodes(child))
    return found


def explain(db: Any, query: str) -> list[dict[str, Any]]:
    sql = getattr(store_base, query).replace("?", "%s")
    (plan,) = db.execute(f"EXPLAIN (FORMAT JSON) {sql}", ("s7", 50)).fetchone()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return nodes(plan[0]["Plan"])


@pytest.fixture
def history(postgres_url: str, tmp_path: Path) -> str:
    open_store(postgres_url, state_dir=tmp_path).close()  # the schema, migrated
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(postgres_url, autocommit=True) as db:
        # Dates spread over years in an order unrelated to insertion, so no physical order helps a plan.
        db.execute(
            "INSERT INTO entries (id, site, key, url_key, url, headline, published, first_seen, updated) "
            "SELECT 'urn:uuid:' || n, 's' || (n %% %s), 'key ' || n, 'u' || n, 'https://a.example/' || n, 'h', "
            "CASE WHEN n %% 3 = 0 THEN NULL ELSE to_char(timestamp '2020-01-01' + (n::bigint * 7919 %% 100000) * interval '1 hour', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.000000+00:00') END, "
            "to_char(timestamp '2020-01-01' + (n::bigint * 104729 %% 100000) * interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS.000000+00:00'), "
            "'2026-01-01T00:00:00.000000+00:00' FROM generate_series(1, %s) AS n",
            (SITES, SITES * PER_SITE),
        )
        db.execute(
            "INSERT INTO sources (url_key, site, entry_id, url, first_seen, sort) "
            "SELECT 'f' || e.seq, 's' || ((e.seq + 1) %% %s), e.id, 'https://farm.example/' || e.seq, e.first_seen, "
            "coalesce(e.published, e.first_seen) FROM entries e",
            (SITES,),
        )
        db.execute("ANALYZE")
    return postgres_url


@pytest.mark.parametrize(
    ("query", "index"),
    [("ENTRIES_OF_SITE", "entries_site_newest"), ("SOURCES_OF_SITE", "sources_site_newest")],
)
def test_each_walk_is_an_index_scan_under_the_limit_where_without_the_index_it_sorts(
    history: str, query: str, index: str
):
    import psycopg

    with psycopg.connect(history) as db:
        plan = explain(db, query)
        assert plan[0]["Node Type"] == "Limit", plan[0]
        scans = [n for n in plan if n.get("Index Name") == index]
        assert scans, plan
        assert scans[0]["Node Type"] in ("Index Scan", "Index Only Scan"), plan
        assert scans[0]["Scan Direction"] in ("Forward", "Backward")
        assert not [n for n in plan if n["Node Type"] in ("Sort", "Incremental Sort", "Seq Scan")], plan
        # The control: the same history without that index makes the planner sort, so the check above
        # could fail; rolled back with the transaction.
        db.execute(f"DROP INDEX {index}")
        without = explain(db, query)
        assert [n for n in without if n["Node Type"] in ("Sort", "Incremental Sort")], without
        db.rollback()
