"""report: the one account of what a site config extracts, shared by `check` and these tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedmaker.config import load_site
from feedmaker.models import Page
from feedmaker.report import CheckReport, build_report, render_json, render_text

LISTING = """<html><head><title>News Example</title></head><body><ul>
<li class="story"><h2><a href="/a">First story of the day</a></h2><span class="date">4 March 2025</span>
  <p>The first summary, which is long enough to need shortening when it is shown in a terminal of eighty columns.</p></li>
<li class="story"><h2><a href="/b">Second story of the day</a></h2><span class="date">5 March 2025</span></li>
<li class="story"><h2>An item without a link</h2></li>
<li class="story"><h2><a href="/c">Third story of the day</a></h2><time datetime="2025-03-06T08:00:00Z">6 Mar</time></li>
</ul><a rel="next" href="/page/2">older</a></body></html>"""

ARTICLE = """<html><head><title>Article headline - News Example</title>
<meta property="og:title" content="OG headline - News Example"><meta name="author" content="Jane Doe"></head>
<body><h2>From h2</h2><span class="when">Date:2025-03-04 10:00:00</span><div class="body"><p>Text.</p></div></body></html>"""

SITE = """name = "News Example"
start_urls = ["https://news.example/"]
[list]
item = "li.story"
headline = "h2"
date = { css = ".date", format = "%d %B %Y" }
summary = "p"
next = "a[rel=next]"
"""


def site_file(tmp_path: Path, text: str = SITE) -> Path:
    path = tmp_path / "news.toml"
    path.write_text(text, encoding="utf-8")
    return path


def report_for(
    tmp_path: Path, text: str = SITE, html: str = LISTING, *, article: str | None = None
) -> CheckReport:
    site = load_site(site_file(tmp_path, text))
    follow = None if article is None else (lambda url: Page(url=url, body=article.encode(), encoding="utf-8"))
    return build_report(
        site, Page(url="https://news.example/", body=html.encode(), encoding="utf-8"), follow=follow
    )


def test_items_carry_values_and_origins_and_fields_their_fill_counts(tmp_path: Path) -> None:
    report = report_for(tmp_path)
    assert report.ok
    assert [i.url for i in report.items] == [
        "https://news.example/a",
        "https://news.example/b",
        "https://news.example/c",
    ]
    first = report.items[0]
    assert (first.field("headline").value, first.field("headline").origin) == (
        "First story of the day",
        "selector:h2",
    )
    assert first.field("published").value == "2025-03-04T00:00:00+00:00"
    assert first.field("published").origin == "selector:.date"
    assert first.field("author").value is None
    stats = {s.key: s for s in report.fields}
    assert (stats["link"].selector, stats["link"].filled, stats["link"].total) == ("a[href]@href", 3, 3)
    assert stats["date"].origins == (("selector:.date", 2), ("time[datetime]", 1))
    assert stats["author"].selector is None
    assert report.next_url == "https://news.example/page/2"
    assert report.warnings == ("list.summary 'p' is empty in 2/3 item(s)",)


def test_a_date_format_that_never_matches_is_a_warning_although_dates_were_read(tmp_path: Path) -> None:
    """The general parser reads '4 March 2025' whatever the format says: the report says the format is dead."""
    report = report_for(tmp_path, SITE.replace("%d %B %Y", "%d.%m.%Y"))
    assert report.items[0].field("published").value == "2025-03-04T00:00:00+00:00"
    assert (
        "list.date '.date' format '%d.%m.%Y' matched none of 2 date(s) such as '4 March 2025'; "
        "dates came from the general date parser (2), time[datetime] (1)"
    ) in report.warnings


def test_a_date_format_whose_selector_reads_nothing_is_a_warning_when_fallbacks_fill_the_dates(
    tmp_path: Path,
) -> None:
    html = LISTING.replace(
        '<span class="date">4 March 2025</span>', '<time datetime="2025-03-04">4 Mar</time>'
    )
    html = html.replace('<span class="date">5 March 2025</span>', '<time datetime="2025-03-05">5 Mar</time>')
    report = report_for(tmp_path, html=html)
    assert (
        "list.date '.date' format '%d %B %Y' read no text on any item; dates came from time[datetime] (3)"
        in report.warnings
    )


def test_a_matching_date_format_gives_no_warning(tmp_path: Path) -> None:
    assert not [w for w in report_for(tmp_path).warnings if "format" in w]


def test_the_article_page_fills_what_the_listing_lacks_and_names_each_source(tmp_path: Path) -> None:
    """Moved from extract.field_report: a chain's first selector misses, its second carries the field,
    metadata fills the rest."""
    text = SITE.replace('headline = "h2"', 'headline = ".none"').replace(
        'date = { css = ".date", format = "%d %B %Y" }\n', ""
    )
    text += '[article]\nheadline = ["h1.none", "h2"]\ndate = { css = ".when", format = "Date:%Y-%m-%d %H:%M:%S" }\n'
    report = report_for(tmp_path, text, LISTING.replace('class="date"', 'class="x"'), article=ARTICLE)
    assert report.article is not None
    assert report.article_url == "https://news.example/a"
    assert (report.article.field("headline").value, report.article.field("headline").origin) == (
        "From h2",
        "selector:h2",
    )
    assert (report.article.field("author").value, report.article.field("author").origin) == (
        "Jane Doe",
        "meta:author",
    )
    assert report.article.field("published").value == "2025-03-04T10:00:00+00:00"
    assert not [w for w in report.warnings if "article.date" in w]
    wrong = report_for(
        tmp_path,
        text.replace("Date:%Y-%m-%d", "%d.%m.%Y"),
        LISTING.replace('class="date"', 'class="x"'),
        article=ARTICLE,
    )
    assert (
        "article.date '.when' format '%d.%m.%Y %H:%M:%S' did not match 'Date:2025-03-04 10:00:00'; "
        "the general date parser read it instead"
    ) in wrong.warnings


def test_a_page_without_items_is_an_error_naming_the_selector(tmp_path: Path) -> None:
    report = report_for(tmp_path, SITE.replace("li.story", "li.gone"))
    assert not report.ok
    assert report.error is not None
    assert "'li.gone'" in report.error
    assert render_text(report).splitlines()[-1].startswith("error: ")


def test_text_shortens_values_unless_full_width(tmp_path: Path) -> None:
    report = report_for(tmp_path)
    short = render_text(report)
    assert "The first summary, which is long enough to need shortening when it is…" in short
    assert "eighty columns." not in short
    assert "eighty columns." in render_text(report, width=None)
    table = [line.split() for line in short.splitlines()]
    assert ["date", ".date", "3/3", "selector,time[datetime]"] in table


def test_json_holds_full_values_origins_counts_and_warnings(tmp_path: Path) -> None:
    data = json.loads(render_json(report_for(tmp_path)))
    assert data["ok"] is True
    assert len(data["items"]) == 3
    summary = data["items"][0]["fields"]["summary"]
    assert summary["value"].endswith("eighty columns.")
    assert summary["origin"] == "selector:p"
    assert data["fields"]["date"] == {
        "selector": ".date",
        "filled": 3,
        "total": 3,
        "origins": {"selector:.date": 2, "time[datetime]": 1},
    }
    assert data["warnings"] == ["list.summary 'p' is empty in 2/3 item(s)"]
    assert data["next"] == "https://news.example/page/2"


@pytest.mark.parametrize("html", ["<html><body></body></html>", LISTING.replace('href="/', 'data-x="/')])
def test_json_of_a_failed_page_says_why(tmp_path: Path, html: str) -> None:
    data = json.loads(render_json(report_for(tmp_path, html=html)))
    assert data["ok"] is False
    assert data["items"] == []
    assert "li.story" in data["error"] or "a[href]" in data["error"]
