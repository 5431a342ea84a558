"""State: one Store interface (base.py), two engines. URL -> Store.

`sqlite:///feedmaker.db` (the default; a relative path is relative to the state dir, `sqlite:////abs/path`
is absolute) keeps everything in one file for one machine. `postgresql://user@host/db` (libpq's URL or
key=value form) shares one database between any number of daemons. FEEDMAKER_STORE in the environment
wins over the `store` setting, so that a password need not be written in a config file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from feedmaker.errors import StoreError
from feedmaker.models import utcnow
from feedmaker.store.base import Claim, RunRecord, Store, cap_text, is_generic_key
from feedmaker.store.sqlite import SqliteStore

__all__ = [
    "DB_NAME", "ENV_VAR", "Claim", "RunRecord", "SqliteStore", "Store", "cap_text", "is_generic_key", "open_store",
    "store_url",
]  # fmt: skip

DB_NAME = "feedmaker.db"
ENV_VAR = "FEEDMAKER_STORE"
_POSTGRES = ("postgresql://", "postgres://")


def store_url(configured: str | None, environ: Mapping[str, str]) -> str:
    """The store to open: the environment's, else the setting's, else sqlite in the state dir."""
    return environ.get(ENV_VAR) or configured or f"sqlite:///{DB_NAME}"


def open_store(
    url: str, *, state_dir: Path, now: Callable[[], datetime] = utcnow, worker: str | None = None
) -> Store:
    """Open (and migrate) the store a URL names. Raises StoreError for an unknown scheme, a missing
    driver or a database that cannot be opened."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://").removeprefix("/")
        if path in ("", ":memory:"):
            return SqliteStore(":memory:", now=now, worker=worker)
        return SqliteStore(path if path.startswith("/") else state_dir / path, now=now, worker=worker)
    if url.startswith(_POSTGRES):
        try:
            from feedmaker.store.postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"{url.split('@')[-1]}: PostgreSQL needs psycopg: pip install 'feedmaker[postgres]'"
            ) from exc
        return PostgresStore(url, now=now, worker=worker)
    raise StoreError(
        f"store = {url.split('://')[0]!r}://...: use sqlite:///path or postgresql://user@host/db"
    )
