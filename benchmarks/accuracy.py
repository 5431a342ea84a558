"""Field accuracy on the shared article corpora (located by tests/corpus.py: FEEDMAKER_CORPORA, else
../shared/corpora): exact-match rate per field.

    .venv/bin/python benchmarks/accuracy.py [--misses [FIELD ...]]

Columns: feedmaker with the per-site selectors translated from Mercury (tests/corpus.py), feedmaker
with no selectors (metadata fallbacks only), htmldate's find_date(original_date=True) (dates only) and
trafilatura's extract_metadata, the last two when installed (`pip install -e '.[bench]'`). Rows: the two
shared corpora, then feedmaker's own annotated date fixtures (tests/pages/dates, tests/date_fixtures.py).
The comparison rules (tests/corpus.RULES) are printed first; in short, every tool reads the same bytes,
text is normalised alike, and each tool's dates are compared at the granularity it reports: `date` is
feedmaker to the minute where the truth has a time (htmldate and trafilatura report days only, so
theirs is to the day), and the `date@day` row compares every tool to the day. --misses prints, per
field and column, each page missed with the expected and the found value.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedmaker.errors import ExtractError
from feedmaker.extract import extract_fields
from feedmaker.models import Article
from tests.corpus import (
    RULES,
    CorpusPage,
    Score,
    missing_corpora,
    postlight_pages,
    readability_pages,
    score,
    table,
)
from tests.date_fixtures import date_pages

Extract = Callable[[CorpusPage], Article | None]
POSTLIGHT_FIELDS = ("headline", "date", "date@day", "author", "image", "url")
READABILITY_FIELDS = ("headline", "date", "date@day", "author")
DATE_FIELDS = ("date", "date@day")
DAY_ONLY = frozenset({"htmldate", "trafilatura"})  # tools that report a day, never a time


def _cached(run: Extract) -> Extract:
    """Each page extracted once per column (--misses looks at the results again)."""
    results: dict[Path, Article | None] = {}

    def cached(page: CorpusPage) -> Article | None:
        if page.path not in results:
            results[page.path] = run(page)
        return results[page.path]

    return cached


def ours(selectors: bool) -> Extract:
    def run(page: CorpusPage) -> Article | None:
        try:
            return extract_fields(page.page(), page.site if selectors else page.bare)
        except ExtractError:
            return None

    return _cached(run)


def trafilatura_column() -> Extract | None:
    try:
        from trafilatura.metadata import extract_metadata
    except ImportError:
        return None

    def run(page: CorpusPage) -> Article | None:
        # Bytes, so trafilatura decodes them its own way (a str would need our decoder's choice).
        meta = extract_metadata(page.body, default_url=page.url)
        if meta is None:
            return None
        published = None
        if meta.date:  # htmldate gives YYYY-MM-DD: midnight UTC stands for the day (scored day_only)
            try:
                published = datetime.combine(date.fromisoformat(meta.date[:10]), time(), UTC)
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

    return _cached(run)


def htmldate_column() -> Extract | None:
    # Run as a script, this folder is on sys.path, and its regex.py would shadow the `regex` package that
    # htmldate's dateparser imports.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    try:
        from htmldate import find_date
    except ImportError:
        return None

    def run(page: CorpusPage) -> Article | None:
        # The bytes, as trafilatura gets them; the page URL for its URL cues; "now" as feedmaker's.
        found = find_date(page.body, url=page.url, original_date=True, max_date=page.page().fetched_at)
        published = None
        if found:  # YYYY-MM-DD: midnight UTC stands for the day (scored day_only)
            published = datetime.combine(date.fromisoformat(found[:10]), time(), UTC)
        return Article(site="htmldate", url=page.url, headline="", published=published)

    return _cached(run)


def _show_misses(pages: tuple[CorpusPage, ...], columns: dict[str, Extract], fields: list[str]) -> None:
    for column, run in columns.items():
        day_only = column in DAY_ONLY
        shown = [f for f in fields if f in DATE_FIELDS] if column == "htmldate" else fields
        s = score(pages, run, shown, day_only=day_only)
        for field in shown:
            for name in s[field].misses or ():
                page = next(p for p in pages if p.name == name)
                article = run(page)
                key = {"date": "published", "date@day": "published"}.get(field, field)
                attr = {"date": "published", "date@day": "published"}.get(field, field)
                got = getattr(article, attr, None) if article is not None else "<no article>"
                print(f"  [{column}] {field} {name}: want {page.truth.get(key)!r} got {got!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--misses", nargs="*", metavar="FIELD", help="print the misses (of these fields)")
    args = parser.parse_args()
    if (reason := missing_corpora()) is not None:
        sys.exit(f"accuracy: {reason}")
    print(RULES)
    print()
    dates_only = htmldate_column()
    third_party = trafilatura_column()
    for name, pages in (
        ("postlight-parser", postlight_pages()),
        ("mozilla-readability", readability_pages()),
        ("feedmaker date fixtures", date_pages()),
    ):
        fields = {"postlight-parser": POSTLIGHT_FIELDS, "mozilla-readability": READABILITY_FIELDS}.get(
            name, DATE_FIELDS
        )
        runs: dict[str, Extract] = {}
        if name == "postlight-parser":
            runs["selectors"] = ours(True)
        runs["fallbacks only"] = ours(False)
        if dates_only is not None:
            runs["htmldate"] = dates_only
        if third_party is not None:
            runs["trafilatura"] = third_party
        columns: dict[str, dict[str, Score]] = {
            column: score(
                pages, run, DATE_FIELDS if column == "htmldate" else fields, day_only=column in DAY_ONLY
            )
            for column, run in runs.items()
        }
        print(table(f"{name} ({len(pages)} pages)", columns))
        if args.misses is not None:
            _show_misses(pages, runs, [f for f in fields if not args.misses or f in args.misses])
        print()
    if dates_only is None:
        print("htmldate is not installed: its column is skipped (pip install -e '.[bench]' to compare)")
    if third_party is None:
        print("trafilatura is not installed: its column is skipped (pip install -e '.[bench]' to compare)")


if __name__ == "__main__":
    main()
