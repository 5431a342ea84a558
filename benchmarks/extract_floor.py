"""The floor under extraction: what the least work that yields the same items costs, step by step.

    .venv/bin/python benchmarks/extract_floor.py [--rounds N]   (N >= 5, default 5)

benchmarks/extract.py compares feedmaker's extraction with a bare lexbor parse. This one asks how far
down that ratio can go through selectolax's public API at all, by building the same result with the
least possible work and timing each step of it, cumulatively, beside the bare parse and feedmaker's
own extraction, in one run (interleaved, the order rotating every round; min and median over rounds).

50-item listing (benchmarks/extract.py's generated page and selectors), one hand-written extraction
specialised to those selectors, with no config, no plan, no error handling and no dedup:
  + queries       the 7 tree-wide selector queries (item, 6 fields)
  + owners        each match's item, by walking up its parents (memoised)
  + reads         each item's text and attribute reads
  + cleaning      text.clean_text, urls.absolute, dates.common_iso: the rules every value goes through
  + Article       one models.Article per item (frozen, slotted: STYLE.md's data between stages)
It is checked to give exactly extract_listing's items, so it does the same work and no less. The
"plain Article" row builds a mutable twin of Article instead, to show what frozen costs.

Article pages (the shared corpus, `content` off as in extract.py's first table):
  Document()      parse plus what a Document sets up (<base>, origin, zone)
  + meta index    the one walk for meta / rel=canonical / JSON-LD scripts
  + JSON-LD       decoding the first article object
  + selectors     the site's own selectors, no fallbacks
  extract_fields  everything: the fallbacks for the fields the selectors left empty
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selectolax.lexbor import LexborHTMLParser, LexborNode

from benchmarks.extract import FIFTY_REPEATS, FIFTY_URL, fifty_listing
from feedmaker.config import SiteConfig
from feedmaker.dates import common_iso
from feedmaker.errors import ExtractError
from feedmaker.extract import extract_fields, extract_listing
from feedmaker.extract.fallbacks import ARTICLE_FIELDS
from feedmaker.extract.fields import read_chain
from feedmaker.extract.metadata import Document, select
from feedmaker.models import Article, Page
from feedmaker.text import clean_text
from feedmaker.urls import IMAGE_SCHEMES, LINK_SCHEMES, absolute, plain_origin
from tests.corpus import CORPUS_NOW, missing_corpora, postlight_pages, readability_pages

Step = Callable[[], object]

URL = FIFTY_URL
ORIGIN = plain_origin(URL)
NOW = CORPUS_NOW  # the listing's fetched_at
FIELD_CSS = ("h2 a", "time", ".author", ".summary", "img")  # the link and headline share "h2 a"


@dataclass(slots=True, kw_only=True)
class PlainArticle:
    """models.Article's fields, not frozen: only to price the frozen dataclass's __init__."""

    site: str
    url: str
    headline: str
    published: datetime | None = None
    modified: datetime | None = None
    author: str | None = None
    summary: str | None = None
    image: str | None = None
    content: str | None = None
    origins: tuple[tuple[str, str], ...] = ()


def _queries(tree: LexborHTMLParser) -> list[list[LexborNode]]:
    return [select(tree, css) for css in ("article.post", *FIELD_CSS, "a.next")]


def _columns(tree: LexborHTMLParser) -> tuple[list[LexborNode], list[dict[int, LexborNode]]]:
    """The items, and per field selector: item mem_id -> its first match (the parent walk)."""
    items = select(tree, "article.post")
    owner: dict[int, int | None] = {item.mem_id: item.mem_id for item in items}
    columns = []
    for css in FIELD_CSS:
        column: dict[int, LexborNode] = {}
        for match in select(tree, css):
            path: list[int] = []
            node: LexborNode | None = match
            where: int | None = None
            while node is not None:
                key = node.mem_id
                if key in owner:
                    where = owner[key]
                    break
                path.append(key)
                node = node.parent
            for key in path:
                owner[key] = where
            if where is not None and where not in column:
                column[where] = match
        columns.append(column)
    select(tree, "a.next")
    return items, columns


Raw = tuple[str, str, str, str, str, str]  # href, link text, datetime, author, summary, src


def _raw(items: list[LexborNode], columns: list[dict[int, LexborNode]]) -> list[Raw]:
    a, time_, author, summary, img = columns
    rows = []
    for item in items:
        key = item.mem_id
        link = a[key]
        rows.append(
            (
                link.attributes.get("href") or "",
                link.text(deep=True),
                time_[key].attributes.get("datetime") or "",
                author[key].text(deep=True),
                summary[key].text(deep=True),
                img[key].attributes.get("src") or "",
            )
        )
    return rows


def _clean(rows: list[Raw]) -> list[tuple[str | None, str, datetime | None, str, str, str | None]]:
    return [
        (
            absolute(href, URL, LINK_SCHEMES, ORIGIN),
            clean_text(text),
            common_iso(when, NOW),
            clean_text(author),
            clean_text(summary),
            absolute(src, URL, IMAGE_SCHEMES, ORIGIN),
        )
        for href, text, when, author, summary, src in rows
    ]


_ORIGINS = (
    ("url", "selector:h2 a@href"), ("headline", "selector:h2 a"), ("date", "selector:time@datetime"),
    ("author", "selector:.author"), ("summary", "selector:.summary"), ("image", "selector:img@src"),
)  # fmt: skip


def _articles(body: bytes, kind: type[Article] | type[PlainArticle]) -> list[Article | PlainArticle]:
    tree = LexborHTMLParser(body)
    return [
        kind(
            site="bench",
            url=url or "",
            headline=headline,
            published=published,
            author=author,
            summary=summary,
            image=image,
            origins=_ORIGINS,
        )
        for url, headline, published, author, summary, image in _clean(_raw(*_columns(tree)))
    ]


def listing_steps() -> list[tuple[str, Step]]:
    page, site = fifty_listing()
    body = page.body
    ours = extract_listing(page, site).items
    floor = _articles(body, Article)
    # The floor does all the work extract_listing does for this page (origins aside: its order differs).
    fields = ("url", "headline", "published", "author", "summary", "image")
    if [[getattr(a, f) for f in fields] for a in floor] != [[getattr(a, f) for f in fields] for a in ours]:
        sys.exit("extract_floor: the hand-written extraction does not give extract_listing's items")
    return [
        ("bare parse", lambda: LexborHTMLParser(body)),
        ("+ queries", lambda: _queries(LexborHTMLParser(body))),
        ("+ owners", lambda: _columns(LexborHTMLParser(body))),
        ("+ reads", lambda: _raw(*_columns(LexborHTMLParser(body)))),
        ("+ cleaning", lambda: _clean(_raw(*_columns(LexborHTMLParser(body))))),
        ("+ plain Article", lambda: _articles(body, PlainArticle)),
        ("+ Article (floor)", lambda: _articles(body, Article)),
        ("extract_listing", lambda: extract_listing(page, site)),
    ]


def article_steps() -> list[tuple[str, list[Step]]]:
    pages = []
    for corpus_page in (*postlight_pages(), *readability_pages()):
        site = corpus_page.site
        if site.article is not None:
            site = site.model_copy(update={"article": site.article.model_copy(update={"content": None})})
        pages.append((corpus_page.page(), site))

    def document(page: Page, site: SiteConfig, depth: int) -> object:
        doc = Document(page, site)
        if depth >= 1:
            _ = doc.meta
        if depth >= 2:
            _ = doc.jsonld
        if depth >= 3:
            for name, kind, _ in ARTICLE_FIELDS:
                chain = getattr(site.article, name) if site.article is not None else None
                read_chain(doc, doc.tree, chain, kind)
        return doc

    def full(page: Page, site: SiteConfig) -> object:
        try:
            return extract_fields(page, site)
        except ExtractError:
            return None

    def each(step: Callable[[Page, SiteConfig], object]) -> list[Step]:
        return [functools.partial(step, page, site) for page, site in pages]

    def upto(n: int) -> Callable[[Page, SiteConfig], object]:
        return lambda page, site: document(page, site, n)

    return [
        ("bare parse", [functools.partial(LexborHTMLParser, page.body) for page, _ in pages]),
        ("Document()", each(upto(0))),
        ("+ meta index", each(upto(1))),
        ("+ JSON-LD", each(upto(2))),
        ("+ selectors", each(upto(3))),
        ("extract_fields", each(full)),
    ]


def measure(steps: list[tuple[str, list[Step]]], rounds: int, repeats: int) -> list[list[float]]:
    """Seconds per round for each step: every unit of work run by all steps in turn (the order rotating
    from round to round), `repeats` times."""
    for _, units in steps:
        for unit in units:
            unit()
    totals = [[0.0] * rounds for _ in steps]
    clock = time.perf_counter
    gc.collect()
    for r in range(rounds):
        order = list(range(len(steps)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for u in range(len(steps[0][1])):
            for _ in range(repeats):
                for s in order:
                    unit = steps[s][1][u]
                    started = clock()
                    unit()
                    totals[s][r] += clock() - started
    return totals


def report(title: str, steps: list[tuple[str, list[Step]]], totals: list[list[float]], per: int) -> None:
    print(title)
    print(f"   {'step':22s} {'ms/page min':>12s} {'median':>8s}   {'x bare min':>10s} {'median':>7s}")
    bare = totals[0]
    for (label, _), seconds in zip(steps, totals, strict=True):
        ms = [s * 1e3 / per for s in seconds]
        ratio = [s / b for s, b in zip(seconds, bare, strict=True)]
        print(
            f"   {label:22s} {min(ms):12.3f} {statistics.median(ms):8.3f}"
            f"   {min(ratio):10.2f} {statistics.median(ratio):7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds: at least 5, so that the min and median mean something")
    # Articles first, as in benchmarks/extract.py: after the corpus's large pages, glibc serves the
    # parser's big blocks from its heap rather than fresh mmap'ed (page-faulting) memory, which roughly
    # halves a bare parse of the small listing. A daemon lives in that state; measuring the listing in
    # a fresh process's state would flatter every ratio.
    if (reason := missing_corpora()) is not None:
        print(f"article pages: skipped ({reason}); the listing below is measured in a fresh process's state")
    else:
        articles = article_steps()
        count = len(articles[0][1])
        report(
            f"== article pages ({count}, `content` off, {args.rounds} rounds)",
            articles,
            measure(articles, args.rounds, 1),
            count,
        )
    listing = [(label, [step]) for label, step in listing_steps()]
    report(
        f"== 50-item listing ({FIFTY_REPEATS} runs per round, {args.rounds} rounds)",
        listing,
        measure(listing, args.rounds, FIFTY_REPEATS),
        FIFTY_REPEATS,
    )


if __name__ == "__main__":
    main()
