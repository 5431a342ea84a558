"""Field accuracy on the shared article corpora: exact-match rate per field.

    .venv/bin/python benchmarks/accuracy.py

Columns: feedmaker with the per-site selectors translated from Mercury (tests/corpus.py), feedmaker
with no selectors (metadata fallbacks only), and trafilatura's extract_metadata when it is installed
(`pip install -e '.[bench]'`). Comparison rules are tests/corpus.py's: HTML-unescaped, whitespace
collapsed, case-insensitive text; dates to the minute in UTC (to the day where the corpus only has
the day); URLs as strings. The postlight `url` truth is the URL the page was fetched from, not its
canonical link, so that row measures agreement with the fetch URL.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedmaker.errors import ExtractError
from feedmaker.extract import extract_fields
from feedmaker.models import Article
from tests.corpus import FIELDS, CorpusPage, Score, postlight_pages, readability_pages, score, table


def ours(selectors: bool) -> Any:
    def run(page: CorpusPage) -> Article | None:
        try:
            return extract_fields(page.page(), page.site if selectors else page.bare)
        except ExtractError:
            return None

    return run


def trafilatura_column() -> Any:
    try:
        from trafilatura.metadata import extract_metadata
    except ImportError:
        return None

    def run(page: CorpusPage) -> Article | None:
        meta = extract_metadata(page.body.decode("utf-8", "replace"), default_url=page.url)
        if meta is None:
            return None
        published = None
        if meta.date:
            try:
                published = datetime.fromisoformat(meta.date).replace(tzinfo=UTC)
            except ValueError:
                published = None
        return Article(
            site="trafilatura",
            url=meta.url or "",
            headline=meta.title or "",
            published=published,
            author=meta.author,
            image=meta.image,
        )

    return run


def main() -> None:
    third_party = trafilatura_column()
    for name, pages in (
        ("postlight-parser", postlight_pages()),
        ("mozilla-readability", readability_pages()),
    ):
        fields = FIELDS if name == "postlight-parser" else ("headline", "date", "author")
        columns: dict[str, dict[str, Score]] = {}
        if name == "postlight-parser":
            columns["selectors"] = score(pages, ours(True), fields)
        columns["fallbacks only"] = score(pages, ours(False), fields)
        if third_party is not None:
            columns["trafilatura"] = score(pages, third_party, fields)
        print(table(f"{name} ({len(pages)} pages)", columns))
        print()
    if third_party is None:
        print("trafilatura is not installed: its column is skipped (pip install -e '.[bench]' to compare)")


if __name__ == "__main__":
    main()
