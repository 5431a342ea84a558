"""A deterministic many-site news fixture served from memory on loopback addresses, for benchmarks/peers.py.

Site n (0-based) lives at http://127.0.0.<2 + n % hosts>:<port>/site-<n>/ and has:

  /site-<n>/            a listing page with 15-25 items (the newest articles), in one of four markup families
  /site-<n>/all.html    the same family of listing, linking to every article of the site (for crawls)
  /site-<n>/a/<k>.html  article pages: <h1> headline, <time datetime>, byline, a few paragraphs, page chrome
  /robots.txt           allows everything

Every page is rendered once, up front, into bytes; the server is a small asyncio HTTP/1.1 server (keep-alive,
Content-Length, GET/HEAD) bound to every address on one port. `/__stats` returns request counts as JSON.

As a program it serves until its stdin is closed (the parent went away) or --lifetime seconds pass:

  python benchmarks/fixture_site.py --sites 200 --articles 50 --hosts 200 --lifetime 900
  -> prints one line `READY <port> <host> <host> ...` on stdout once every address listens
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import html
import json
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

FAMILIES = ("article", "card", "story", "table")

# Families: CSS selectors for feedmaker (list.*) and the same picks as XPath for RSS-Bridge's XPathBridge.
CSS: dict[str, dict[str, str]] = {
    "article": {"item": "article.post", "link": "h2 a", "headline": "h2", "date": "time"},
    "card": {"item": "div.card.news", "link": "a.card__link", "headline": "h3.card__title", "date": "time"},
    "story": {
        "item": "ul.stories > li.story",
        "link": "a.story-link",
        "headline": "a.story-link",
        "date": "time",
    },
    "table": {
        "item": "table.archive tbody tr",
        "link": "td.what a",
        "headline": "td.what a",
        "date": "td.when time",
    },
}


def _cls(name: str) -> str:
    """XPath for `.name` (a class token, as CSS means it)."""
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


XPATH: dict[str, dict[str, str]] = {
    "article": {
        "item": f"//article[{_cls('post')}]",
        "title": ".//h2",
        "uri": ".//h2//a/@href",
        "timestamp": ".//time/@datetime",
    },
    "card": {
        "item": f"//div[{_cls('card')} and {_cls('news')}]",
        "title": f".//h3[{_cls('card__title')}]",
        "uri": f".//a[{_cls('card__link')}]/@href",
        "timestamp": ".//time/@datetime",
    },
    "story": {
        "item": f"//ul[{_cls('stories')}]/li[{_cls('story')}]",
        "title": f".//a[{_cls('story-link')}]",
        "uri": f".//a[{_cls('story-link')}]/@href",
        "timestamp": ".//time/@datetime",
    },
    "table": {
        "item": f"//table[{_cls('archive')}]//tbody/tr",
        "title": f".//td[{_cls('what')}]//a",
        "uri": f".//td[{_cls('what')}]//a/@href",
        "timestamp": f".//td[{_cls('when')}]//time/@datetime",
    },
}

_SUBJECTS = (
    "City council",
    "Harbour authority",
    "Regional court",
    "University of Zürich",
    "Rail operator",
    "Central bank",
    "Health ministry",
    "Wind-farm consortium",
    "Football club",
    "Café owners",
    "Space agency",
    "Weather service",
    "Teachers' union",
    "Museum of Modern Art",
    "Port workers",
    "Water board",
    "Tech start-up",
    "Library trust",
)
_VERBS = (
    "approves",
    "delays",
    "rejects",
    "announces",
    "reviews",
    "cancels",
    "expands",
    "defends",
    "opens",
    "halts",
    "doubles",
    "questions",
    "secures",
    "revises",
)
_OBJECTS = (
    "budget for new bridge",
    "plan for night trains",
    "ban on diesel buses",
    "rules for short-term rentals",
    "funding for flood barriers",
    "merger with rival",
    "timetable for 2027",
    "“green” housing scheme",
    "report on air quality",
    "deal with suppliers",
    "inquiry into outage",
    "pay offer & pension reform",
    "expansion of cycle lanes",
    "sale of historic depot",
    "tests of self-driving ferries",
)
_WORDS = (
    "the",
    "council",
    "said",
    "on",
    "Tuesday",
    "that",
    "plans",
    "would",
    "be",
    "reviewed",
    "after",
    "residents",
    "raised",
    "concerns",
    "about",
    "costs",
    "and",
    "delays",
    "officials",
    "expect",
    "a",
    "decision",
    "next",
    "month",
    "while",
    "critics",
    "argue",
    "the",
    "proposal",
    "goes",
    "too",
    "far",
    "or",
    "not",
    "far",
    "enough",
)
_ZONES = (UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5)), timezone(timedelta(hours=1)))
_EPOCH = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Item:
    """What a listing shows for one article, and what a feed builder should get out of it."""

    site: int
    number: int
    url: str  # absolute
    headline: str  # plain text (unescaped)
    published: datetime  # tz-aware


def host_of(site: int, hosts: int) -> str:
    return f"127.0.0.{2 + site % hosts}"


def family_of(site: int) -> str:
    return FAMILIES[site % len(FAMILIES)]


def listing_size(site: int) -> int:
    """15..25 items, varying by site, so that per-site min/max mean something."""
    return 15 + (site * 7) % 11


class Fixture:
    """All pages of `sites` sites with `articles` articles each, rendered to bytes keyed by (host, path)."""

    def __init__(self, sites: int, articles: int, *, hosts: int = 0, port: int = 0) -> None:
        if sites < 1 or articles < 1:
            raise ValueError("need at least one site and one article per site")
        self.sites, self.articles = sites, max(articles, max(listing_size(n) for n in range(sites)))
        self.hosts = min(hosts or sites, 250)
        self.port = port
        self._items = [[self._item(n, k) for k in range(self.articles)] for n in range(sites)]

    # -- what the pages hold ---------------------------------------------------------------------------------

    def base(self, site: int) -> str:
        return f"http://{host_of(site, self.hosts)}:{self.port}"

    def listing_url(self, site: int) -> str:
        return f"{self.base(site)}/site-{site}/"

    def all_url(self, site: int) -> str:
        return f"{self.base(site)}/site-{site}/all.html"

    def article_url(self, site: int, number: int) -> str:
        return f"{self.base(site)}/site-{site}/a/{number}.html"

    def _item(self, site: int, number: int) -> Item:
        rng = random.Random(site * 100_003 + number)
        headline = (
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
            f" — report {site}.{number}"  # globally unique, so that no feed builder may merge two items
        )
        published = (_EPOCH - timedelta(hours=number * 5 + site % 7, minutes=rng.randrange(60))).astimezone(
            _ZONES[(site + number) % len(_ZONES)]
        )
        return Item(
            site=site,
            number=number,
            url=self.article_url(site, number),
            headline=headline,
            published=published,
        )

    def expected(self, site: int) -> list[Item]:
        """The items on the listing page /site-<n>/, in page order."""
        return self._items[site][: listing_size(site)]

    def all_items(self, site: int) -> list[Item]:
        return self._items[site]

    def crawl_urls(self, pages: int) -> list[str]:
        """`pages` article URLs, round-robin over the sites (so every host gets its share)."""
        urls = [self.article_url(n, k) for k in range(self.articles) for n in range(self.sites)]
        if pages > len(urls):
            raise ValueError(f"only {len(urls)} article pages exist; raise articles per site")
        return urls[:pages]

    # -- rendering -------------------------------------------------------------------------------------------

    def _href(self, item: Item) -> str:
        """Links are written the way the family writes them: root-relative, absolute, relative, with utm_*."""
        family = family_of(item.site)
        if family == "card":
            return item.url
        if family == "story":
            return f"a/{item.number}.html"
        if family == "table":
            return f"/site-{item.site}/a/{item.number}.html?utm_source=frontpage&amp;utm_medium=web"
        return f"/site-{item.site}/a/{item.number}.html"

    @staticmethod
    def _shown_date(d: datetime) -> str:
        return d.strftime("%d %b %Y, %H:%M")

    def _render_item(self, item: Item) -> str:
        h, d = html.escape(item.headline, quote=False), item.published.isoformat()
        href, shown = self._href(item), self._shown_date(item.published)
        family = family_of(item.site)
        if family == "article":
            return (
                f'<article class="post"><h2 class="title"><a href="{href}">{h}</a></h2>\n'
                f'  <time datetime="{d}">{shown}</time>\n'
                f'  <p class="excerpt">What happened, in two lines: {h.lower()}.</p></article>\n'
            )
        if family == "card":
            return (
                f'<div class="card news" data-id="{item.number}"><a class="card__link" href="{href}">'
                f'<img src="/img/{item.number}.jpg" alt=""><h3 class="card__title">{h}</h3></a>\n'
                f'  <div class="card__meta"><time class="ts" datetime="{d}">{shown}</time> · by Staff</div></div>\n'
            )
        if family == "story":
            return (
                f'<li class="story"><span class="kicker">Local</span> <a class="story-link" href="{href}">{h}</a>'
                f' <time datetime="{d}">{shown}</time></li>\n'
            )
        return (
            f'<tr><td class="when"><time datetime="{d}">{shown}</time></td>'
            f'<td class="what"><a href="{href}">{h}</a></td><td class="tags">news</td></tr>\n'
        )

    def _chrome(self, site: int, title: str, body: str) -> bytes:
        family = family_of(site)
        meta = (
            '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            if family == "table"
            else '<meta charset="utf-8">'
        )
        nav = "".join(
            f'<li><a href="/site-{site}/section/{s}/">{s.title()}</a></li>'
            for s in ("world", "city", "sport")
        )
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head>{meta}<title>{html.escape(title)}</title>'
            f'<link rel="stylesheet" href="/static/site.css"><script>window.dataLayer=[];</script></head>\n'
            f'<body class="family-{family}"><header class="masthead"><a class="logo" href="/site-{site}/">'
            f"Fixture Site {site}</a><nav><ul>{nav}</ul></nav></header>\n"
            f'<main id="content">\n{body}</main>\n'
            f'<footer><p>&copy; 2026 Fixture Site {site}. <a href="/site-{site}/about/">About</a></p></footer>'
            "</body></html>\n"
        ).encode()

    def _render_listing(self, site: int, items: list[Item]) -> bytes:
        rows = "".join(self._render_item(i) for i in items)
        family = family_of(site)
        if family == "story":
            rows = f'<ul class="stories">\n{rows}</ul>\n'
        elif family == "table":
            rows = f'<table class="archive"><thead><tr><th>When</th><th>What</th><th></th></tr></thead><tbody>\n{rows}</tbody></table>\n'
        elif family == "card":
            rows = f'<section class="grid">\n{rows}</section>\n'
        return self._chrome(site, f"Latest news - Fixture Site {site}", f"<h1>Latest</h1>\n{rows}")

    def _render_article(self, item: Item) -> bytes:
        rng = random.Random(item.site * 7_919 + item.number)
        paragraphs = "".join(
            "<p>"
            + " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(40, 80))).capitalize()
            + ".</p>\n"
            for _ in range(rng.randrange(4, 8))
        )
        h = html.escape(item.headline, quote=False)
        related = "".join(
            f'<li><a href="/site-{item.site}/a/{(item.number + j) % self.articles}.html">Related {j}</a></li>'
            for j in range(1, 4)
        )
        body = (
            f'<article class="story-page"><h1 class="headline">{h}</h1>\n'
            f'<p class="meta">By <span class="byline">Staff Reporter</span> · '
            f'<time datetime="{item.published.isoformat()}">{self._shown_date(item.published)}</time></p>\n'
            f'<div class="body">\n{paragraphs}</div></article>\n<aside><ul class="related">{related}</ul></aside>\n'
        )
        return self._chrome(item.site, f"{item.headline} - Fixture Site {item.site}", body)

    def pages(self, *, listings_only: bool = False) -> dict[tuple[str, str], bytes]:
        """Every page, keyed by (host, path); with listings_only just the listings and robots.txt (a daemon
        benchmark of thousands of listing-only sites needs no article pages in memory)."""
        out: dict[tuple[str, str], bytes] = {}
        for n in range(self.sites):
            host = host_of(n, self.hosts)
            out[host, f"/site-{n}/"] = self._render_listing(n, self.expected(n))
            if listings_only:
                continue
            out[host, f"/site-{n}/all.html"] = self._render_listing(n, self._items[n])
            for item in self._items[n]:
                out[host, f"/site-{n}/a/{item.number}.html"] = self._render_article(item)
        for k in range(self.hosts):
            out[host_of(k, self.hosts), "/robots.txt"] = b"User-agent: *\nDisallow:\n"
        return out


# -- the server ----------------------------------------------------------------------------------------------

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request"}


class Server:
    """In-memory pages over asyncio HTTP/1.1 on several loopback addresses sharing one port."""

    def __init__(self, pages: dict[tuple[str, str], bytes], hosts: list[str]) -> None:
        self.pages, self.hosts = pages, hosts
        self.stats: Counter[str] = Counter()
        self._servers: list[asyncio.Server] = []
        self.port = 0

    async def start(self, port: int = 0, attempts: int = 20) -> int:
        for _ in range(attempts):
            try:
                first = await asyncio.start_server(self._client, self.hosts[0], port, backlog=1024)
            except OSError:
                if port:
                    raise
                continue
            chosen: int = first.sockets[0].getsockname()[1]
            servers = [first]
            try:
                for host in self.hosts[1:]:
                    servers.append(await asyncio.start_server(self._client, host, chosen, backlog=1024))
            except OSError as exc:
                for s in servers:
                    s.close()
                if port or exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self._servers, self.port = servers, chosen
            return chosen
        raise OSError("no free port shared by every loopback address")

    async def close(self) -> None:
        for s in self._servers:
            s.close()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 2)

    def _kind(self, path: str) -> str:
        if path.endswith("/robots.txt"):
            return "robots"
        if "/a/" in path:
            return "article"
        return "listing"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = writer.get_extra_info("sockname")[0]
        self.stats["connections"] += 1  # TCP connections accepted: shows whether clients reuse them
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                except (
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    TimeoutError,
                    ConnectionError,
                ):
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
                }
                if len(parts) != 3:
                    status, body, ctype = 400, b"bad request\n", "text/plain"
                    keep = False
                else:
                    method, target, version = parts
                    conn = headers.get("connection", "").lower()
                    keep = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
                    path = target.split("?", 1)[0]
                    if path.startswith("http://"):  # absolute-form
                        path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
                    if path == "/__stats":
                        status, body, ctype = 200, json.dumps(self.stats).encode(), "application/json"
                    elif method not in ("GET", "HEAD"):
                        status, body, ctype = 405, b"", "text/plain"
                    else:
                        page = self.pages.get((host, path))
                        if page is None:
                            status, body, ctype = 404, b"<h1>not found</h1>", "text/html; charset=utf-8"
                            self.stats["404"] += 1
                        else:
                            kind = self._kind(path)
                            status, body = 200, page
                            ctype = (
                                "text/plain; charset=utf-8"
                                if kind == "robots"
                                else "text/html; charset=utf-8"
                            )
                            self.stats[kind] += 1
                    if method == "HEAD":
                        body = b""
                out = (
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
                ).encode() + body
                writer.write(out)
                await writer.drain()
                if not keep:
                    return
        except ConnectionError:
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _serve(args: argparse.Namespace) -> None:
    count = min(args.hosts or args.sites, 250)
    hosts = [host_of(k, count) for k in range(count)]
    # Pages hold absolute links (family "card"), so the port must be known before they are rendered.
    server = Server({}, hosts)
    port = await server.start(args.port)
    server.pages = Fixture(args.sites, args.articles, hosts=count, port=port).pages(
        listings_only=args.listings_only
    )
    print("READY", port, *hosts, flush=True)

    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def wait_stdin() -> None:
        with contextlib.suppress(Exception):
            sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or exited
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=wait_stdin, daemon=True).start()
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), args.lifetime)
    await server.close()
    print(
        f"fixture server stopped after {time.monotonic() - started:.0f} s: {dict(server.stats)}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--articles", type=int, default=50, help="article pages per site")
    parser.add_argument(
        "--hosts", type=int, default=0, help="loopback addresses 127.0.0.2.. (0: one per site, max 250)"
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--listings-only", action="store_true", help="serve only the listing pages and robots.txt"
    )
    parser.add_argument(
        "--lifetime", type=float, default=900.0, help="stop after this many seconds at the latest"
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
