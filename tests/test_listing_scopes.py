"""extract.listing.ItemScopes: one tree-wide query per selector answers exactly what item.css_first does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from feedmaker import text
from feedmaker.config import ListSelectors, SiteConfig
from feedmaker.extract import extract_listing, listing
from feedmaker.extract.listing import ItemScopes
from feedmaker.extract.metadata import Document, Node
from feedmaker.models import Page

TAGS = ("div", "article", "li", "h2", "span", "a", "p", "time", "section")
CLASSES = ("", "post", "title", "x")
SELECTORS = (
    "a", "h2 a", "a[href]", ".title", "div > a", "article a, li a", "span:first-child", "p + a",
    "section a", "li:nth-child(2) a", "a:not([href])", "time", ".post .title", "div",
)  # fmt: skip
ITEM_SELECTORS = ("article", "li", ".post", "article, li", "div > *", "section li")


def element(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["text", '<a href="/x">link</a>', "<time datetime='2026-01-01'>d</time>", ""])
    if depth == 0:
        return leaf
    children = st.lists(element(depth - 1), max_size=4).map("".join)

    def build(args: tuple[str, str, str, bool]) -> str:
        tag, cls, inner, href = args
        attrs = (f' class="{cls}"' if cls else "") + (' href="/h"' if href and tag == "a" else "")
        return f"<{tag}{attrs}>{inner}</{tag}>"

    return st.one_of(
        leaf, st.tuples(st.sampled_from(TAGS), st.sampled_from(CLASSES), children, st.booleans()).map(build)
    )


def document(html: str) -> Document:
    page = Page(
        url="https://l.example/",
        body=html.encode(),
        encoding="utf-8",
        fetched_at=datetime(2027, 1, 1, tzinfo=UTC),
    )
    return Document(
        page, SiteConfig(id="t", name="t", start_urls=("https://l.example/",), list=ListSelectors(item="*"))
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(element(4), min_size=1, max_size=6).map("".join), st.sampled_from(ITEM_SELECTORS))
def test_item_scopes_answer_as_css_first_for_every_item_and_selector(body: str, item_css: str):
    doc = document(f"<html><body><main>{body}</main></body></html>")
    items = doc.tree.css(item_css)
    scopes = ItemScopes(doc, items)
    nested = any(
        other is not item and other.mem_id in {a.mem_id for a in ancestors(item)}
        for item in items
        for other in items
    )
    assert scopes.nested == nested
    if nested:
        return
    for css in SELECTORS:
        for item in items:
            expected = item.css_first(css)
            got = scopes.first(css, item.mem_id)
            assert (got.mem_id if got is not None else None) == (
                expected.mem_id if expected is not None else None
            ), css


def ancestors(node: Node) -> Iterator[Node]:
    up = node.parent
    while up is not None:
        yield up
        up = up.parent


def test_a_listing_reads_the_same_batched_or_not():
    """Ten items (batched) and the same page cut to three (per-item queries) give the same first items."""
    rows = [
        f'<li class="post"><h2><a href="/a/{n}">Story {n}</a></h2><span class="by">Ann {n}</span>'
        f'<time datetime="2026-01-{n + 1:02d}T10:00:00Z">x</time><a href="/other/{n}">more</a></li>'
        for n in range(10)
    ]
    selectors = ListSelectors.model_validate(
        {"item": "li.post", "headline": "h2 a", "author": ".by", "link": {"css": "h2 a", "attr": "href"}}
    )
    site = SiteConfig(id="t", name="t", start_urls=("https://l.example/",), list=selectors)

    def listing(html: str) -> list[tuple[object, ...]]:
        page = Page(
            url="https://l.example/",
            body=html.encode(),
            encoding="utf-8",
            fetched_at=datetime(2027, 1, 1, tzinfo=UTC),
        )
        return [
            (i.url, i.headline, i.author, i.published, i.origins) for i in extract_listing(page, site).items
        ]

    many = listing(f"<ul>{''.join(rows)}</ul>")
    few = listing(f"<ul>{''.join(rows[:3])}</ul>")  # under _BATCHED_ITEMS: css_first per item
    assert len(many) == 10
    assert many[: len(few)] == few
    assert many[3] == (
        "https://l.example/a/3",
        "Story 3",
        "Ann 3",
        datetime(2026, 1, 4, 10, tzinfo=UTC),
        many[3][4],
    )


def _page(html: str) -> Page:
    return Page(
        url="https://l.example/",
        body=html.encode(),
        encoding="utf-8",
        fetched_at=datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_read_a_field_at_a_time_each_item_takes_the_first_spec_that_yields():
    """Column-wise reading keeps each item's own chain: a spec that yields nothing for one item gives way
    to the next spec for that item alone; duplicates and max_items are counted as items are kept."""
    rows = [
        f'<li><a href="/a/{n % 12}">Story {n % 12}</a>'
        + (f'<span class="by">Ann {n}</span>' if n % 3 else f'<b class="alt">Bob {n}</b>')
        + "</li>"
        for n in range(30)
    ]
    selectors = ListSelectors.model_validate(
        {"item": "li", "headline": "a", "author": [".by", ".alt"], "link": {"css": "a", "attr": "href"}}
    )
    site = SiteConfig(id="t", name="t", start_urls=("https://l.example/",), list=selectors, max_items=10)
    items = extract_listing(_page(f"<ul>{''.join(rows)}</ul>"), site).items
    assert [i.url for i in items] == [f"https://l.example/a/{n}" for n in range(10)]
    assert [i.author for i in items[:4]] == ["Bob 0", "Ann 1", "Ann 2", "Bob 3"]
    assert items[0].origin("author") == "selector:.alt"
    assert items[1].origin("author") == "selector:.by"


def test_a_bug_in_one_item_of_a_batched_listing_costs_that_item_only(monkeypatch, caplog):
    rows = "".join(f'<li><a href="/a/{n}">Story {n}</a></li>' for n in range(12))
    site = SiteConfig(
        id="t",
        name="t",
        start_urls=("https://l.example/",),
        list=ListSelectors.model_validate(
            {"item": "li", "headline": "a", "link": {"css": "a", "attr": "href"}}
        ),
    )
    real = text.clean_text

    def flaky(value: str) -> str:
        if value == "Story 4":
            raise RuntimeError("boom")
        return real(value)

    monkeypatch.setattr(listing, "clean_text", flaky)
    items = extract_listing(_page(f"<ul>{rows}</ul>"), site).items
    assert [i.headline for i in items] == [f"Story {n}" for n in range(12) if n != 4]
    assert "RuntimeError: boom" in caplog.text
