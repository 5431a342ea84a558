"""Extraction speed: feedmaker's listing + article extraction against a bare lexbor parse of the same bytes.

    .venv/bin/python benchmarks/extract.py [--rounds N]

It ends with the feed build figures of benchmarks/feed_build.py (1,000 and 10,000 entries).

Both run over the same corpus pages in the same process, interleaved per round so that machine noise
hits both alike. "bare" is `LexborHTMLParser(body)`: parsing only, no decoding, no selectors. The
ratio is our time over bare time; the target is <= 1.5.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selectolax.lexbor import LexborHTMLParser

from feedmaker.config import ListSelectors, SiteConfig
from feedmaker.errors import ExtractError
from feedmaker.extract import extract_fields, extract_listing
from feedmaker.models import Page
from tests.corpus import LISTINGS, postlight_pages, readability_pages

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
    listings = _listing_jobs()
    for content in (False, True):
        articles = _article_jobs(content=content)
        print(f"== {'with' if content else 'without'} `content` (nh3-sanitised article body)")
        _run(articles + listings, args.rounds)
        print(f"   of which article pages only ({len(articles)}):", end=" ")
        _run(articles, args.rounds, brief=True)
    print(f"== listing pages only ({len(listings)}):", end=" ")
    _run(listings, args.rounds, brief=True)
    print("== feed build (render_atom, feedgen)")
    from benchmarks.feed_build import run as feed_build

    feed_build(args.rounds)


def _run(jobs: list[Job], rounds: int, *, brief: bool = False) -> None:
    megabytes = sum(len(body) for body, _ in jobs) / 1e6
    bare = ours = 0.0
    for job in jobs:  # warm-up: imports, regex compilation, lazy caches
        job[1]()
    for _ in range(rounds):
        for body, run in jobs:
            started = time.perf_counter()
            LexborHTMLParser(body)
            bare += time.perf_counter() - started
            started = time.perf_counter()
            run()
            ours += time.perf_counter() - started
    pages = len(jobs) * rounds
    if brief:
        print(f"{pages / ours:.1f} pages/s vs bare {pages / bare:.1f} pages/s, ratio {ours / bare:.2f}x")
        return
    print(f"{len(jobs)} pages ({megabytes:.1f} MB) x {rounds} rounds")
    print(f"bare LexborHTMLParser(bytes): {pages / bare:8.1f} pages/s  {megabytes * rounds / bare:6.1f} MB/s")
    print(f"feedmaker extract:            {pages / ours:8.1f} pages/s  {megabytes * rounds / ours:6.1f} MB/s")
    print(f"overhead ratio (ours / bare): {ours / bare:.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
