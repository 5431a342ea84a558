"""Extraction speed: feedmaker's listing + article extraction against a bare lexbor parse of the same bytes.

    .venv/bin/python benchmarks/extract.py [--rounds N]

It ends with the feed build figures of benchmarks/feed_build.py (1,000 and 10,000 entries).

Both run over the same shared corpus pages (located by tests/corpus.py: FEEDMAKER_CORPORA, else
../shared/corpora) in the same process. Every page is run once first (imports,
regex compilation, lazy caches); then, each round, every page is parsed bare and extracted right
after one another, the order of the two alternating from round to round, so that machine noise and
a warm CPU cache favour neither. "bare" is `LexborHTMLParser(body)` on the very bytes `Page.body`
holds: parsing only, no decoding, no selectors. The ratio is our time over bare time; the target is
<= 1.5. Nothing is cached across calls: each extraction parses its page afresh.

With `content`, nh3 (ammonia) sanitising the article body is part of our time. Its own share is
measured too, by timing `sanitize_html` alone on exactly the inputs extraction handed it (recorded
in the warm-up pass), interleaved with the rest, so the report shows how much of the ratio is nh3's.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selectolax.lexbor import LexborHTMLParser

import feedmaker.extract.fields
from feedmaker.config import ListSelectors, SiteConfig
from feedmaker.errors import ExtractError
from feedmaker.extract import extract_fields, extract_listing
from feedmaker.models import Page
from tests.corpus import LISTINGS, missing_corpora, postlight_pages, readability_pages

Job = tuple[bytes, Callable[[], object]]


def _listing_jobs() -> list[Job]:
    # Selector configs: upstream's for nuxt and apple (apple really lists >100 items, so max_items=1000);
    # a generic "article, li" with the default max_items=50 for the two front pages.
    configs = {
        "html2rss/nuxt-releases.html": ("https://github.com/nuxt/nuxt.js/releases", {
            "item": ".release", "headline": ".release-header .text-normal a",
            "link": {"css": ".release-header .text-normal a", "attr": "href"},
            "author": {"css": ".avatar", "attr": "alt"}, "date": {"css": "relative-time", "attr": "datetime"},
        }),
        "html2rss/apple_support_security_releases.html": ("https://support.apple.com/en-gb/100100", {
            "item": ".table-wrapper table tbody > tr:not(:first-child)", "headline": "a",
            "link": {"css": "a", "attr": "href"}, "summary": "td:nth-child(2)", "date": "td:nth-child(3)",
        }),
        "newspaper4k/cnn_main_site.html": ("https://edition.cnn.com/", {"item": "article, li"}),
        "html2rss/time_homepage_page_1.html": ("https://page.com/", {"item": "article, li"}),
    }  # fmt: skip
    jobs: list[Job] = []
    for file, (url, selectors) in configs.items():
        body = (LISTINGS / file).read_bytes()
        max_items = 1000 if "apple" in file else 50
        site = SiteConfig(
            id="bench",
            name="bench",
            start_urls=(url,),
            max_items=max_items,
            list=ListSelectors.model_validate(selectors),
        )
        page = Page(url=url, body=body, encoding=None, fetched_at=datetime(2027, 1, 1, tzinfo=UTC))

        def run(page: Page = page, site: SiteConfig = site) -> object:
            return extract_listing(page, site)

        jobs.append((body, run))
    return jobs


def _article_jobs(*, content: bool) -> list[Job]:
    jobs: list[Job] = []
    for corpus_page in (*postlight_pages(), *readability_pages()):
        page, site = corpus_page.page(), corpus_page.site
        if not content and site.article is not None:
            site = site.model_copy(update={"article": site.article.model_copy(update={"content": None})})

        def run(page: Page = page, site: SiteConfig = site) -> object:
            try:
                return extract_fields(page, site)
            except ExtractError:
                return None

        jobs.append((page.body, run))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if (reason := missing_corpora()) is not None:
        sys.exit(f"extract: {reason}")
    listings = _listing_jobs()
    for content in (False, True):
        articles = _article_jobs(content=content)
        print(f"== {'with' if content else 'without'} `content` (nh3-sanitised article body)")
        _report(_measure(articles + listings, args.rounds), len(articles))
    print("== feed build (render_atom, feedgen)")
    from benchmarks.feed_build import run as feed_build

    feed_build(args.rounds)


Sanitize = tuple[str, str]  # sanitize_html's arguments: the body's HTML, the base URL


class Timing:
    """Seconds per page (summed over rounds): bare parse, our extraction, nh3 alone on its inputs."""

    def __init__(self, jobs: list[Job], rounds: int) -> None:
        self.bodies = [body for body, _ in jobs]
        self.rounds = rounds
        self.bare = [0.0] * len(jobs)
        self.ours = [0.0] * len(jobs)
        self.nh3 = [0.0] * len(jobs)
        self.nh3_calls = 0

    def totals(self, pages: slice) -> tuple[float, float, float]:
        return sum(self.bare[pages]), sum(self.ours[pages]), sum(self.nh3[pages])


def _measure(jobs: list[Job], rounds: int) -> Timing:
    timing = Timing(jobs, rounds)
    # Warm-up, recording what extraction hands nh3 so that nh3 can be timed alone on the same inputs.
    recorded: list[list[Sanitize]] = []
    original = feedmaker.extract.fields.sanitize_html

    def recording(html: str, base_url: str) -> str:
        recorded[-1].append((html, base_url))
        return original(html, base_url)

    feedmaker.extract.fields.sanitize_html = recording
    try:
        for body, run in jobs:
            recorded.append([])
            LexborHTMLParser(body)
            run()
    finally:
        feedmaker.extract.fields.sanitize_html = original
    timing.nh3_calls = sum(map(len, recorded))
    clock = time.perf_counter
    gc.collect()
    for round_number in range(rounds):
        for i, (body, run) in enumerate(jobs):
            # Alternate which goes first, so neither always finds the page's bytes warm in cache.
            for step in (0, 1) if round_number % 2 == 0 else (1, 0):
                started = clock()
                if step == 0:
                    LexborHTMLParser(body)
                    timing.bare[i] += clock() - started
                else:
                    run()
                    timing.ours[i] += clock() - started
            if recorded[i]:
                started = clock()
                for html, base_url in recorded[i]:
                    original(html, base_url)
                timing.nh3[i] += clock() - started
    return timing


def _report(timing: Timing, articles: int) -> None:
    rounds, count = timing.rounds, len(timing.bodies)
    megabytes = sum(map(len, timing.bodies)) / 1e6
    bare, ours, nh3 = timing.totals(slice(None))
    pages = count * rounds
    print(f"{count} pages ({megabytes:.1f} MB) x {rounds} rounds")
    print(f"bare LexborHTMLParser(bytes): {pages / bare:8.1f} pages/s  {megabytes * rounds / bare:6.1f} MB/s")
    print(f"feedmaker extract:            {pages / ours:8.1f} pages/s  {megabytes * rounds / ours:6.1f} MB/s")
    print(f"overhead ratio (ours / bare): {ours / bare:.2f}x  (target <= 1.5x)")
    if timing.nh3_calls:
        print(
            f"   of which nh3 sanitising ({timing.nh3_calls} bodies, timed alone): {nh3 / bare:.2f}x bare"
            f" = {nh3 / ours:.0%} of our time; without it: {(ours - nh3) / bare:.2f}x"
        )
    for label, part in ((f"article pages only ({articles})", slice(0, articles)),
                        (f"listing pages only ({count - articles})", slice(articles, None))):  # fmt: skip
        bare, ours, nh3 = timing.totals(part)
        n = (part.stop or count) - part.start
        line = f"   {label}: {n * rounds / ours:.1f} pages/s vs bare {n * rounds / bare:.1f} pages/s, ratio {ours / bare:.2f}x"
        if nh3:
            line += f" (nh3 alone {nh3 / bare:.2f}x)"
        print(line)


if __name__ == "__main__":
    main()
