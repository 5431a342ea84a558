"""Extraction speed: feedmaker's listing + article extraction against a bare lexbor parse of the same bytes.

    .venv/bin/python benchmarks/extract.py [--rounds N]   (N >= 5, default 5)

It ends with the feed build figures of benchmarks/feed_build.py (1,000 and 10,000 entries).

Both run over the same shared corpus pages (located by tests/corpus.py: FEEDMAKER_CORPORA, else
../shared/corpora) in the same process. Every page is run once first (imports,
regex compilation, lazy caches); then, each round, every page is parsed bare and extracted right
after one another, the order of the two alternating from round to round, so that machine noise and
a warm CPU cache favour neither. "bare" is `LexborHTMLParser(body)` on the very bytes `Page.body`
holds: parsing only, no decoding, no selectors. The ratio is our time over bare time, computed per
round; the report gives its min and median over the rounds. Targets: <= 1.5x for article pages, <= 3x
for the 50-item listing (a generated blog-style listing: 50 items of headline, link, date, author,
summary and image inside realistic page chrome). Nothing is cached across calls: each extraction parses
its page afresh.

With `content`, nh3 (ammonia) sanitising the article body is part of our time. Its own share is
measured too, by timing `sanitize_html` alone on exactly the inputs extraction handed it (recorded
in the warm-up pass), interleaved with the rest, so the report shows how much of the ratio is nh3's.
"""

from __future__ import annotations

import argparse
import gc
import statistics
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
from tests.corpus import CORPUS_NOW, LISTINGS, missing_corpora, postlight_pages, readability_pages

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


FIFTY_REPEATS = 20


def fifty_item_listing() -> bytes:
    """A blog-style listing of 50 items in the chrome a real page has (nav, meta tags, scripts, footer)."""
    nav = "".join(f'<li><a href="/section/{n}">Section {n}</a></li>' for n in range(40))
    items = "".join(
        f'<article class="post"><h2 class="title"><a href="/2026/03/{n:02d}/a-story-about-item-{n}">'
        f"Story {n}: what happened at the council meeting &amp; after</a></h2>"
        f'<div class="meta"><span class="author">By Ada Lovelace</span> · '
        f'<time datetime="2026-03-{1 + n % 28:02d}T{n % 24:02d}:15:00Z">{1 + n % 28} Mar 2026</time></div>'
        f'<img src="/img/{n}.jpg" alt="" width="320" height="180">'
        f'<p class="summary">A short summary of story {n}, in a sentence or two: who did what, where, and '
        f'why it <em>matters</em> to readers of this site.</p><a class="more" href="/2026/03/{n:02d}/a-story-about-item-{n}">Read more</a></article>'
        for n in range(50)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>News - Example</title>'
        '<meta name="description" content="All the news"><meta property="og:site_name" content="Example News">'
        '<link rel="stylesheet" href="/main.css"><script>window.dataLayer=[];function gtag(){dataLayer.push(arguments)}</script>'
        f'</head><body><header><a href="/">Example News</a><nav><ul>{nav}</ul></nav></header>'
        f'<main><h1>Latest</h1>{items}<a class="next" href="/page/2">Older posts</a></main>'
        '<footer><p>&copy; 2026 Example</p><script src="/app.js"></script></footer></body></html>'
    ).encode()


FIFTY_URL = "https://news.example/"


def fifty_listing() -> tuple[Page, SiteConfig]:
    """The generated listing as fetched, and its site's selectors (benchmarks/extract_floor.py reads
    the same items by hand)."""
    site = SiteConfig(
        id="bench", name="bench", start_urls=(FIFTY_URL,), max_items=50,
        list=ListSelectors.model_validate({
            "item": "article.post", "headline": "h2 a", "link": {"css": "h2 a", "attr": "href"},
            "date": {"css": "time", "attr": "datetime"}, "author": ".author", "summary": ".summary",
            "image": {"css": "img", "attr": "src"}, "next": {"css": "a.next", "attr": "href"},
        }),
    )  # fmt: skip
    page = Page(url=FIFTY_URL, body=fifty_item_listing(), encoding=None, fetched_at=CORPUS_NOW)
    return page, site


def _fifty_job() -> Job:
    page, site = fifty_listing()
    assert len(extract_listing(page, site).items) == 50
    return page.body, lambda: extract_listing(page, site)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds: at least 5, so that the min and median mean something")
    if (reason := missing_corpora()) is not None:
        sys.exit(f"extract: {reason}")
    listings = _listing_jobs()
    # One small page timed once per round is at the mercy of a single scheduler tick: it runs
    # FIFTY_REPEATS times per round (each time bare and ours interleaved, like every other page).
    fifty = [_fifty_job()] * FIFTY_REPEATS
    for content in (False, True):
        articles = _article_jobs(content=content)
        print(f"== {'with' if content else 'without'} `content` (nh3-sanitised article body)")
        _report(_measure([*articles, *listings, *fifty], args.rounds), len(articles), len(listings))
    print("== feed build (render_atom, feedgen)")
    from benchmarks.feed_build import run as feed_build

    feed_build(args.rounds)


Sanitize = tuple[str, str]  # sanitize_html's arguments: the body's HTML, the base URL


class Timing:
    """Seconds per round per page: bare parse, our extraction, nh3 alone on its inputs."""

    def __init__(self, jobs: list[Job], rounds: int) -> None:
        self.bodies = [body for body, _ in jobs]
        self.rounds = rounds
        self.bare = [[0.0] * len(jobs) for _ in range(rounds)]
        self.ours = [[0.0] * len(jobs) for _ in range(rounds)]
        self.nh3 = [[0.0] * len(jobs) for _ in range(rounds)]
        self.nh3_calls = 0

    def per_round(self, pages: slice) -> list[tuple[float, float, float]]:
        """(bare, ours, nh3) seconds of each round over `pages`."""
        return [
            (sum(b[pages]), sum(o[pages]), sum(n[pages]))
            for b, o, n in zip(self.bare, self.ours, self.nh3, strict=True)
        ]


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
        bare, ours, nh3 = timing.bare[round_number], timing.ours[round_number], timing.nh3[round_number]
        for i, (body, run) in enumerate(jobs):
            # Alternate which goes first, so neither always finds the page's bytes warm in cache.
            for step in (0, 1) if round_number % 2 == 0 else (1, 0):
                started = clock()
                if step == 0:
                    LexborHTMLParser(body)
                    bare[i] += clock() - started
                else:
                    run()
                    ours[i] += clock() - started
            if recorded[i]:
                started = clock()
                for html, base_url in recorded[i]:
                    original(html, base_url)
                nh3[i] += clock() - started
    return timing


def _min_median(values: list[float], fmt: str) -> str:
    return f"min {format(min(values), fmt)} median {format(statistics.median(values), fmt)}"


def _report(timing: Timing, articles: int, listings: int) -> None:
    rounds, count = timing.rounds, len(timing.bodies)
    distinct = count - FIFTY_REPEATS + 1
    megabytes = sum(map(len, timing.bodies[:distinct])) / 1e6
    print(
        f"{distinct} pages ({megabytes:.1f} MB) x {rounds} rounds; per round: min and median over the rounds"
    )
    groups = (
        (f"all pages ({distinct})", slice(0, distinct), None),
        (f"article pages ({articles})", slice(0, articles), 1.5),
        (f"corpus listings ({listings})", slice(articles, articles + listings), None),
        (
            f"50-item listing (generated; {FIFTY_REPEATS} runs per round)",
            slice(articles + listings, count),
            3.0,
        ),
    )
    for label, part, target in groups:
        per_round = timing.per_round(part)
        pages = len(timing.bodies[part])
        bare_ms = [b * 1e3 / pages for b, _, _ in per_round]
        ours_ms = [o * 1e3 / pages for _, o, _ in per_round]
        ratios = [o / b for b, o, _ in per_round]
        goal = f"  (target <= {target}x)" if target else ""
        print(f"{label}:")
        print(f"   bare parse ms/page  {_min_median(bare_ms, '8.3f')}")
        print(f"   extract ms/page     {_min_median(ours_ms, '8.3f')}")
        print(f"   ratio ours/bare     {_min_median(ratios, '8.2f')}{goal}")
        if any(n for _, _, n in per_round):
            nh3_ratio = [n / b for b, _, n in per_round]
            rest = [(o - n) / b for b, o, n in per_round]
            print(f"   of which nh3 alone  {_min_median(nh3_ratio, '8.2f')} (x bare)")
            print(f"   without nh3         {_min_median(rest, '8.2f')} (x bare)")


if __name__ == "__main__":
    main()
