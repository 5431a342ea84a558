"""Feed build cost: render_atom for 1,000 and 10,000 entries, the XML gate alone, and RFC 4287 schema
validation per 1,000 entries (the schema comes from the shared corpora, tests/corpus.py says where; that
row is skipped with a note when they are absent).

    .venv/bin/python benchmarks/feed_build.py [--repeat N]

Entries carry every field (headline, dates, author, summary, ~1 kB of HTML content, image, one source),
with a sprinkle of characters the XML gate removes, so the gate does real work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lxml import etree

from feedmaker.feed import render_atom, xml_text
from feedmaker.models import Article, Entry, FeedMeta
from tests.corpus import atom_schema, missing_corpora

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
META = FeedMeta(
    id="bench", title="Bench", link="https://bench.example/", self_url="https://feeds.example/bench.atom"
)
PARAGRAPH = '<p>Lorem ipsum dolor sit amet, <a href="https://bench.example/x">consectetur</a> adipiscing elit.\x0b</p>'


def make_entries(count: int) -> list[Entry]:
    return [
        Entry(
            id=f"urn:uuid:{uuid.UUID(int=n)}",
            key=f"story {n}",
            article=Article(
                site="bench",
                url=f"https://bench.example/news/{n}/a-story-about-things",
                headline=f"Story {n}: something happened\x00 somewhere",
                published=T0 - timedelta(minutes=n),
                author="Ada Lovelace",
                summary="A short summary of what happened, in a sentence or two.\ufffe",
                image=f"https://cdn.bench.example/img/{n}.jpg",
                content=PARAGRAPH * 10,
            ),
            first_seen=T0 - timedelta(minutes=n),
            updated=T0 - timedelta(minutes=n),
            sources=(f"https://other.example/{n}",),
        )
        for n in range(count)
    ]


def best_of(repeat: int, work: Callable[[], object]) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    run(parser.parse_args().repeat)


def run(repeat: int) -> None:
    """Print render time for 1,000 and 10,000 entries, and the validation gate's cost."""
    schema = atom_schema()
    print(f"{'what':<40} {'best ms':>10} {'median ms':>10}")
    for count in (1_000, 10_000):
        items = make_entries(count)
        data = render_atom(META, items)
        best, median = best_of(repeat, lambda items=items: render_atom(META, items))  # type: ignore[misc]
        print(
            f"{f'render_atom {count:,} entries':<40} {best * 1000:>10.1f} {median * 1000:>10.1f}   ({len(data) / 1e6:.1f} MB)"
        )
        fields = [
            value
            for e in items
            for value in (e.id, e.article.headline, e.article.author, e.article.summary, e.article.content)
        ]
        best, median = best_of(repeat, lambda fields=fields: [xml_text(v) for v in fields])  # type: ignore[misc]
        print(f"{f'  of which XML gate, {count:,} entries':<40} {best * 1000:>10.1f} {median * 1000:>10.1f}")
        if count != 1_000:
            continue
        if schema is None:
            print(
                f"{'parse + RelaxNG validate 1,000 entries':<40} skipped: {missing_corpora() or 'no schema file'}"
            )
            continue
        gate = schema
        best, median = best_of(repeat, lambda data=data, gate=gate: gate.validate(etree.fromstring(data)))  # type: ignore[misc]
        print(f"{'parse + RelaxNG validate 1,000 entries':<40} {best * 1000:>10.1f} {median * 1000:>10.1f}")
        assert gate.validate(etree.fromstring(data)), gate.error_log


if __name__ == "__main__":
    main()
