"""The corpus tier: tests marked `corpus` read the shared corpora and skip, with one reason, where the folder
is absent (a bare clone). Every other test owns its inputs under tests/.

The PostgreSQL tier: `postgres_url` is a fresh database on a server the session starts itself
(tests/postgres_server.py) and stops afterwards; without PostgreSQL's binaries those tests skip with one reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.corpus import missing_corpora
from tests.postgres_server import PostgresServer, find_bindir, remove, start_server

__all__ = ["postgres_server", "postgres_url", "pytest_runtest_setup"]

_databases = itertools.count(1)


@pytest.hookimpl(tryfirst=True)  # before fixtures are set up: some read the corpora
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Skip here rather than with a mark at collection: the summary then groups every corpus skip on one line.
    if item.get_closest_marker("corpus") is not None and (reason := missing_corpora()) is not None:
        pytest.skip(f"corpus tier: {reason}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir, reason = find_bindir()
    if bindir is None:
        pytest.skip(f"postgres tier: {reason}")
    server = start_server(bindir)
    try:
        yield server
    finally:
        remove(server)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database for one test, dropped afterwards."""
    psycopg = pytest.importorskip(
        "psycopg", reason="postgres tier: psycopg is not installed (pip install -e '.[test]')"
    )
    name = f"t{next(_databases)}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url(name)
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
