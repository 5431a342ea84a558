"""serve.py: feed files -> HTTP with ETag/Last-Modified/304/gzip, OPML, healthz and the status page."""

from __future__ import annotations

import gzip
import os
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

from feedmaker.config import ServerSettings, Settings, listen_url
from feedmaker.serve import (
    RECHECK_SECONDS,
    FeedFiles,
    SiteStatus,
    Status,
    accepts_gzip,
    make_app,
    respond,
)

ATOM = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id>'
    b"<title>News &amp; more</title><updated>2025-01-01T00:00:00Z</updated>"
    + b"<!-- pad -->" * 100
    + b"</feed>\n"
)
FEEDS = [("news", "News & more"), ("blog", "Blog"), ("all", "Everything")]
IDENTITY = {"Accept-Encoding": "identity"}


def statuses() -> list[SiteStatus]:
    return [
        SiteStatus(
            site="news",
            name="News & more",
            last_run=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            items=12,
            new=3,
            entries=40,
            last_good=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            next_run=datetime(2025, 1, 2, 4, 4, 5, tzinfo=UTC),
        ),
        SiteStatus(site="quiet", name="Quiet", last_run=datetime(2025, 1, 2, tzinfo=UTC), not_modified=1),
        SiteStatus(
            site="blog",
            name="<script>alert(1)</script>",
            last_run=datetime(2025, 1, 2, tzinfo=UTC),
            errors=('fetch failed: http://b.example/: HTTP 503 <b>"oops"</b>',),
            failures=3,
        ),
    ]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "news.atom").write_bytes(ATOM)
    return Settings(output_dir=tmp_path, state_dir=tmp_path / "state")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    """A monotonic clock the test moves: the feed path looks at files and the feed list once per RECHECK_SECONDS."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def recheck(self) -> None:
        self.now += RECHECK_SECONDS


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(settings, lambda: FEEDS, lambda: Status(sites=tuple(statuses())), clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.mark.anyio
async def test_feed_is_served_as_atom_with_strong_etag_and_last_modified(
    client: httpx.AsyncClient, settings: Settings
):
    r = await client.get("/feeds/news.atom", headers=IDENTITY)
    assert r.status_code == 200
    assert r.content == ATOM
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert r.headers["etag"].startswith('"')
    assert not r.headers["etag"].startswith("W/")
    mtime = int(os.stat(settings.output_dir / "news.atom").st_mtime)
    assert r.headers["last-modified"] == formatdate(mtime, usegmt=True)
    assert "content-encoding" not in r.headers


@pytest.mark.anyio
async def test_second_poll_with_etag_gets_empty_304(client: httpx.AsyncClient):
    first = await client.get("/feeds/news.atom", headers=IDENTITY)
    again = await client.get("/feeds/news.atom", headers={**IDENTITY, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


@pytest.mark.anyio
async def test_if_none_match_with_another_tag_gets_the_feed(client: httpx.AsyncClient):
    r = await client.get("/feeds/news.atom", headers={**IDENTITY, "If-None-Match": '"stale"'})
    assert r.status_code == 200
    assert r.content == ATOM


@pytest.mark.anyio
async def test_if_modified_since_at_or_after_mtime_gets_304_and_before_gets_200(client: httpx.AsyncClient):
    last_modified = (await client.get("/feeds/news.atom", headers=IDENTITY)).headers["last-modified"]
    assert (
        await client.get("/feeds/news.atom", headers={"If-Modified-Since": last_modified})
    ).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (await client.get("/feeds/news.atom", headers={"If-Modified-Since": old})).status_code == 200
    assert (await client.get("/feeds/news.atom", headers={"If-Modified-Since": "garbage"})).status_code == 200


@pytest.mark.anyio
async def test_if_none_match_wins_over_if_modified_since(client: httpx.AsyncClient):
    """RFC 9110: with If-None-Match present, a matching date does not make a 304."""
    last_modified = (await client.get("/feeds/news.atom")).headers["last-modified"]
    r = await client.get(
        "/feeds/news.atom", headers={"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    )
    assert r.status_code == 200


@pytest.mark.anyio
async def test_gzip_when_asked_with_its_own_etag_and_304(client: httpx.AsyncClient):
    r = await client.get("/feeds/news.atom", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["vary"] == "Accept-Encoding"
    assert r.content == ATOM  # httpx decoded it
    assert int(r.headers["content-length"]) < len(ATOM)
    plain_etag = (await client.get("/feeds/news.atom", headers=IDENTITY)).headers["etag"]
    assert r.headers["etag"] != plain_etag
    again = await client.get(
        "/feeds/news.atom", headers={"Accept-Encoding": "gzip", "If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert "content-encoding" not in again.headers


def test_gzip_body_is_deterministic_and_decodes_to_the_file(settings: Settings):
    feed = FeedFiles(settings.output_dir).get("news")
    assert feed is not None
    assert gzip.decompress(feed.gzipped) == ATOM
    assert FeedFiles(settings.output_dir).get("news") == feed


def test_accept_encoding_parsing():
    assert accepts_gzip("gzip, deflate")
    assert accepts_gzip("br;q=1.0, gzip;q=0.5")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("identity")
    assert not accepts_gzip(None)


@pytest.mark.anyio
async def test_etag_changes_iff_bytes_change(client: httpx.AsyncClient, settings: Settings, clock: Clock):
    path = settings.output_dir / "news.atom"
    first = (await client.get("/feeds/news.atom", headers=IDENTITY)).headers["etag"]
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))  # new mtime, same bytes
    clock.recheck()
    assert (await client.get("/feeds/news.atom", headers=IDENTITY)).headers["etag"] == first
    path.write_bytes(ATOM.replace(b"News", b"Olds"))
    # Within RECHECK_SECONDS of the last look the previous version is served, with its own validators.
    clock.now += RECHECK_SECONDS / 2
    assert (
        await client.get("/feeds/news.atom", headers={**IDENTITY, "If-None-Match": first})
    ).status_code == 304
    clock.recheck()
    r = await client.get("/feeds/news.atom", headers={**IDENTITY, "If-None-Match": first})
    assert r.status_code == 200
    assert r.headers["etag"] != first
    assert b"Olds" in r.content


def test_unchanged_file_is_not_read_again(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """A poll of an unchanged file costs a stat(), not a read and a hash."""
    files = FeedFiles(settings.output_dir)
    first = files.get("news")
    reads: list[Path] = []
    original = Path.open

    def counting(self: Path, *args: Any, **kwargs: Any) -> Any:
        reads.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting)
    assert files.get("news") is first
    assert reads == []


@pytest.mark.anyio
async def test_unknown_feed_is_404_and_known_unpublished_feed_is_503(client: httpx.AsyncClient):
    assert (await client.get("/feeds/nope.atom")).status_code == 404
    assert (await client.get("/feeds/news.rss")).status_code == 404
    assert (await client.get("/feeds/..%2Fstate.atom")).status_code == 404
    unpublished = await client.get("/feeds/blog.atom")
    assert unpublished.status_code == 503
    assert unpublished.headers["retry-after"] == "60"


@pytest.mark.anyio
async def test_head_has_headers_but_no_body(client: httpx.AsyncClient):
    r = await client.head("/feeds/news.atom", headers=IDENTITY)
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(ATOM))


def test_respond_is_pure_and_maps_star_to_304(settings: Settings):
    feed = FeedFiles(settings.output_dir).get("news")
    assert respond(feed, "GET", {"if-none-match": "*"}).status == 304
    assert respond(feed, "GET", {"if-none-match": f"W/{feed.etag}" if feed else ""}).status == 304


@pytest.mark.anyio
async def test_opml_lists_every_feed_with_absolute_urls_from_the_configured_address(
    client: httpx.AsyncClient,
):
    """Without base_url the links name the configured host:port, whatever Host the request carried."""
    r = await client.get("/opml", headers={"Host": "evil.example"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/x-opml")
    root = ET.fromstring(r.content)
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    outlines = root.findall("./body/outline")
    assert [(o.get("title"), o.get("xmlUrl")) for o in outlines] == [
        ("News & more", "http://127.0.0.1:8080/feeds/news.atom"),
        ("Blog", "http://127.0.0.1:8080/feeds/blog.atom"),
        ("Everything", "http://127.0.0.1:8080/feeds/all.atom"),
    ]


@pytest.mark.anyio
async def test_opml_uses_the_configured_base_url(settings: Settings):
    configured = settings.model_copy(update={"server": ServerSettings(base_url="https://feeds.example/sub/")})
    transport = httpx.ASGITransport(
        app=make_app(configured, lambda: FEEDS, lambda: Status(sites=tuple(statuses())))
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/opml")
    urls = [o.get("xmlUrl") for o in ET.fromstring(r.content).iter("outline")]
    assert urls[0] == "https://feeds.example/sub/feeds/news.atom"


@pytest.mark.anyio
async def test_healthz_is_degraded_naming_the_failing_sites(client: httpx.AsyncClient):
    """A failing site never reads as `ok`; the store still writes, so the answer is 200."""
    r = await client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "degraded"
    assert body["failing_sites"] == ["blog"]
    assert body["write_error"] is None
    assert body["counts"] == {"ok": 2, "failing": 1, "pending": 0}
    assert body["sites"]["blog"] == {"state": "failing", "failures": 3}


async def health_of(settings: Settings, status: Status) -> httpx.Response:
    transport = httpx.ASGITransport(app=make_app(settings, lambda: FEEDS, lambda: status))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        return await c.get("/healthz")


@pytest.mark.anyio
async def test_healthz_is_ok_only_when_every_site_and_the_store_are_fine(settings: Settings):
    fine = tuple(s for s in statuses() if s.state == "ok")
    pending = SiteStatus(site="new", name="New")
    r = await health_of(settings, Status(sites=(*fine, pending)))
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["failing_sites"] == []
    assert r.json()["counts"] == {"ok": 2, "failing": 0, "pending": 1}


@pytest.mark.anyio
async def test_healthz_is_failing_with_503_when_the_store_cannot_write(settings: Settings):
    """Even with every site fine: a store that cannot write keeps nothing new."""
    fine = tuple(s for s in statuses() if s.state == "ok")
    error = "state/feedmaker.db: record run of site news: database or disk is full"
    r = await health_of(settings, Status(sites=fine, write_error=error))
    assert r.status_code == 503
    assert r.json()["status"] == "failing"
    assert r.json()["write_error"] == error


@pytest.mark.anyio
async def test_status_page_shows_a_failing_store_and_combined_feed_counts(settings: Settings):
    status = Status(sites=tuple(statuses()), feed_entries=(("all", 7),), write_error="db: disk <full>")
    transport = httpx.ASGITransport(app=make_app(settings, lambda: FEEDS, lambda: status))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        page = (await c.get("/")).text
    assert "writes failing: db: disk &lt;full&gt;" in page
    assert '<a href="/feeds/all.atom">Everything</a> <span class="entries">7 entries</span>' in page


@pytest.mark.anyio
async def test_the_feed_list_is_reread_so_a_reload_shows_within_the_recheck_interval(
    settings: Settings, clock: Clock
):
    """The status page and OPML read the list per request; the feed path once per RECHECK_SECONDS."""
    listed = [("news", "News & more")]
    transport = httpx.ASGITransport(app=make_app(settings, lambda: listed, lambda: Status(), clock=clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get("/feeds/news.atom")).status_code == 200
        assert (await c.get("/feeds/extra.atom")).status_code == 404
        listed[:] = [("extra", "Extra")]
        assert [o.get("title") for o in ET.fromstring((await c.get("/opml")).content).iter("outline")] == [
            "Extra"
        ]
        clock.recheck()
        assert (await c.get("/feeds/news.atom")).status_code == 404
        assert (await c.get("/feeds/extra.atom")).status_code == 503  # known now, not written yet
        assert [o.get("title") for o in ET.fromstring((await c.get("/opml")).content).iter("outline")] == [
            "Extra"
        ]


@pytest.mark.anyio
async def test_status_page_shows_runs_and_failure_reasons_escaped(client: httpx.AsyncClient):
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page
    assert "HTTP 503 &lt;b&gt;&quot;oops&quot;&lt;/b&gt;" in page
    assert "failing x3" in page
    assert "unchanged (304)" in page
    assert "2025-01-02 03:04:05 UTC" in page  # last run
    assert "2025-01-02 04:04:05 UTC" in page  # next run
    assert "News &amp; more" in page
    assert '<a href="/feeds/all.atom">Everything</a>' in page


def test_opml_parses_even_when_a_feed_name_holds_characters_xml_forbids() -> None:
    from feedmaker.serve import render_opml

    data = render_opml([("odd", "Form\x0cfeed News\ud800")], "http://127.0.0.1:8080")
    [outline] = ET.fromstring(data).iter("outline")
    assert outline.get("title") == "Formfeed News"


@pytest.mark.parametrize(
    ("header", "fresh"),
    [
        ('W/"{tag}"', True),  # weak comparison (RFC 9110 §13.1.2): W/ matches our strong tag
        ('"other", W/"{tag}", "more"', True),  # a list, the match in the middle
        ('"other",W/"{tag}-gzip"', True),  # the gzip representation's tag, weakened by a proxy
        ("{tag}", True),  # unquoted, as some clients send it
        ('"a,b", "{tag}"', True),  # an opaque tag holding a comma does not break the list
        ("  *  ", True),
        ('W/"other"', False),
        ('"{tag}x", W/"x{tag}"', False),
        ("", False),
    ],
)
def test_if_none_match_compares_weakly_over_a_list(settings: Settings, header: str, fresh: bool):
    feed = FeedFiles(settings.output_dir).get("news")
    assert feed is not None
    value = header.format(tag=feed.etag.strip('"'))
    assert respond(feed, "GET", {"if-none-match": value}).status == (304 if fresh else 200)


@pytest.mark.anyio
async def test_several_if_none_match_lines_are_one_list(client: httpx.AsyncClient):
    """RFC 9110 §5.3: a field sent on several lines is one comma-separated list; any line may match."""
    etag = (await client.get("/feeds/news.atom", headers=IDENTITY)).headers["etag"]
    headers = [("Accept-Encoding", "identity"), ("If-None-Match", '"stale"'), ("If-None-Match", f"W/{etag}")]
    r = await client.get("/feeds/news.atom", headers=headers)
    assert r.status_code == 304
    stale = await client.get(
        "/feeds/news.atom",
        headers=[("Accept-Encoding", "identity"), ("If-None-Match", '"stale"'), ("If-None-Match", 'W/"x"')],
    )
    assert stale.status_code == 200


@pytest.mark.anyio
async def test_opml_names_the_listening_address_given_by_the_daemon(settings: Settings):
    """The daemon passes the bound address (port 0 picks one); a spoofed Host header never reaches the OPML."""
    app = make_app(settings, lambda: FEEDS, lambda: Status(), listening=listen_url("::1", 4321))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await c.get(
            "/opml", headers={"Host": "attacker.example:666", "X-Forwarded-Host": "attacker.example"}
        )
    urls = [o.get("xmlUrl") for o in ET.fromstring(r.content).iter("outline")]
    assert urls == [
        "http://[::1]:4321/feeds/news.atom",
        "http://[::1]:4321/feeds/blog.atom",
        "http://[::1]:4321/feeds/all.atom",
    ]


def test_a_site_with_config_errors_and_no_run_is_failing_not_pending() -> None:
    """A broken site file: never ran, will not run until fixed, so /healthz must not call it pending."""
    from feedmaker.serve import health, render_status

    broken = SiteStatus(
        site="odd", name="odd", errors=("config error: sites/odd.toml:2: schedule: never fires",)
    )
    code, body = health(Status(sites=(broken, SiteStatus(site="new", name="New"))))
    assert code == 200
    assert body["status"] == "degraded"
    assert body["failing_sites"] == ["odd"]
    assert body["counts"] == {"ok": 0, "failing": 1, "pending": 1}
    page = render_status(Status(sites=(broken,)), [])
    assert "failing: config error: sites/odd.toml:2: schedule: never fires" in page


CONDITIONS: list[list[tuple[str, str]]] = [
    [],
    [("Accept-Encoding", "identity")],
    [("Accept-Encoding", "gzip, deflate, br")],
    [("Accept-Encoding", "br;q=1.0, gzip;q=0")],
    [("Accept-Encoding", "gzip"), ("If-None-Match", "{tag}")],
    [("Accept-Encoding", "identity"), ("If-None-Match", "{gzip_tag}")],
    [("If-None-Match", 'W/{tag}, "x"')],
    [("If-None-Match", '"stale"'), ("If-None-Match", "{tag}")],
    [("If-None-Match", '"stale"'), ("If-Modified-Since", "{modified}")],
    [("If-Modified-Since", "{modified}")],
    [("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    [("If-Modified-Since", "garbage"), ("Accept-Encoding", "gzip")],
]


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("conditions", CONDITIONS)
async def test_the_prepared_feed_path_answers_as_respond_does(
    client: httpx.AsyncClient, settings: Settings, method: str, conditions: list[tuple[str, str]]
):
    """The raw ASGI path picks among replies built ahead; each pick must be the reply `respond` gives."""
    feed = FeedFiles(settings.output_dir).get("news")
    assert feed is not None
    fill = {"tag": feed.etag, "gzip_tag": feed.gzip_etag, "modified": formatdate(feed.modified, usegmt=True)}
    sent = [(name, value.format(**fill)) for name, value in conditions]
    headers: dict[str, str] = {}
    for name, value in sent:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    expected = respond(feed, method, headers)
    unasked = (
        [] if any(name == "Accept-Encoding" for name, _ in sent) else [("Accept-Encoding", "")]
    )  # not httpx's default
    r = await client.request(method, "/feeds/news.atom", headers=[*unasked, *sent])
    assert r.status_code == expected.status
    got = {k: v for k, v in r.headers.items() if k != "content-length"}
    assert got == {k.lower(): v for k, v in expected.headers if k != "Content-Length"}
    if expected.status == 200:
        assert r.headers["content-length"] == dict(expected.headers)["Content-Length"]
    assert r.content == (
        gzip.decompress(expected.body) if r.headers.get("content-encoding") == "gzip" else expected.body
    )


@pytest.mark.anyio
async def test_a_poll_within_the_recheck_interval_costs_no_stat_and_no_feed_list(
    settings: Settings, clock: Clock, monkeypatch: pytest.MonkeyPatch
):
    listed: list[int] = []
    looks: list[str] = []

    def feeds() -> list[tuple[str, str]]:
        listed.append(1)
        return FEEDS

    original = FeedFiles.get

    def counting(self: FeedFiles, feed_id: str) -> Any:
        looks.append(feed_id)
        return original(self, feed_id)

    monkeypatch.setattr(FeedFiles, "get", counting)
    transport = httpx.ASGITransport(app=make_app(settings, feeds, lambda: Status(), clock=clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        for _ in range(5):
            assert (await c.get("/feeds/news.atom")).status_code == 200
            assert (await c.get("/feeds/blog.atom")).status_code == 503
            assert (await c.get("/feeds/nope.atom")).status_code == 404
        assert (len(listed), looks) == (1, ["news", "blog"])
        clock.recheck()
        assert (await c.get("/feeds/news.atom")).status_code == 200
        assert (len(listed), looks) == (2, ["news", "blog", "news"])


@pytest.mark.anyio
async def test_a_published_feed_appears_and_a_removed_one_is_gone_after_the_recheck(
    settings: Settings, clock: Clock
):
    listed = list(FEEDS)
    transport = httpx.ASGITransport(app=make_app(settings, lambda: listed, lambda: Status(), clock=clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get("/feeds/blog.atom")).status_code == 503
        (settings.output_dir / "blog.atom").write_bytes(ATOM)
        clock.recheck()
        assert (await c.get("/feeds/blog.atom", headers=IDENTITY)).content == ATOM
        listed.remove(("blog", "Blog"))
        clock.recheck()
        assert (await c.get("/feeds/blog.atom")).status_code == 404
        (settings.output_dir / "news.atom").unlink()
        clock.recheck()
        assert (await c.get("/feeds/news.atom")).status_code == 503


@pytest.mark.anyio
async def test_other_methods_and_paths_under_feeds_are_refused(client: httpx.AsyncClient):
    assert (await client.post("/feeds/news.atom")).status_code == 405
    assert (await client.get("/feeds/")).status_code == 404
    assert (await client.get("/feeds/sub/news.atom")).status_code == 404
    r = await client.get("/feeds/nope.atom")
    assert (r.headers["content-type"], r.text) == ("text/plain; charset=utf-8", "no such feed\n")


def test_the_c_parser_is_used_when_installed_and_h11_otherwise(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    import importlib.util

    from feedmaker.serve import make_server

    app = make_app(settings, lambda: FEEDS, lambda: Status())
    assert importlib.util.find_spec("httptools") is not None  # declared in pyproject.toml
    assert make_server(app).config.http == "httptools"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert make_server(app).config.http == "h11"


@pytest.mark.anyio
async def test_the_feed_path_over_a_real_socket(settings: Settings):
    """uvicorn (httptools) in front of the raw ASGI path: keep-alive 200, gzip, 304 and HEAD on one connection."""
    import asyncio
    import socket

    from feedmaker.serve import make_server

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(make_app(settings, lambda: FEEDS, lambda: Status()))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            plain = await c.get("/feeds/news.atom", headers=IDENTITY)
            zipped = await c.get("/feeds/news.atom", headers={"Accept-Encoding": "gzip"})
            again = await c.get("/feeds/news.atom", headers={"If-None-Match": plain.headers["etag"]})
            head = await c.head("/feeds/news.atom", headers=IDENTITY)
            opml = await c.get("/opml")
        assert (plain.status_code, plain.content) == (200, ATOM)
        assert (zipped.headers["content-encoding"], zipped.content) == ("gzip", ATOM)
        assert (again.status_code, again.content) == (304, b"")
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(ATOM)))
        assert opml.status_code == 200
    finally:
        server.should_exit = True
        await serving
