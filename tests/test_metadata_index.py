"""extract.metadata: the one index walk answers the fallbacks' page-wide selectors exactly as lexbor does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from feedmaker.config import ListSelectors, SiteConfig
from feedmaker.extract.metadata import _INDEXED, BadSelector, Document, select, select_first
from feedmaker.models import Page

TAGS = ("div", "h1", "time", "span", "meta", "link", "script", "a")
# Attribute values chosen to probe the rules: word lists, case, non-ASCII case, whitespace lexbor does
# not split on (U+00A0), an empty value and a valueless attribute.
ATTRIBUTES = (
    "", 'itemprop="author"', 'itemprop="Author"', 'itemprop="name"', 'itemprop="author name"',
    'itemprop="datePublished"', 'itemprop="DATEPUBLISHED"', 'itemprop="x\tdateModified"',
    'itemprop="dateModified\u00a0"', 'itemprop="\u212aauthor"', 'itemprop=""', "itemprop",
    'datetime="2026-01-01"', "datetime", "pubdate", 'rel="canonical"', 'rel="Canonical x"',
    'href="/c"', 'type="application/ld+json"', 'type="application/LD+JSON"', 'content="c"', 'value="v"',
)  # fmt: skip


def element(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["text", "", "<time>t</time>", "<h1>h</h1>"])
    if depth == 0:
        return leaf
    children = st.lists(element(depth - 1), max_size=3).map("".join)

    def build(args: tuple[str, list[str], str]) -> str:
        tag, attrs, inner = args
        return f"<{tag} {' '.join(attrs)}>{inner}</{tag}>"

    return st.one_of(
        leaf,
        st.tuples(st.sampled_from(TAGS), st.lists(st.sampled_from(ATTRIBUTES), max_size=3), children).map(
            build
        ),
    )


def document(html: str) -> Document:
    page = Page(
        url="https://m.example/a",
        body=html.encode(),
        encoding="utf-8",
        fetched_at=datetime(2027, 1, 1, tzinfo=UTC),
    )
    site = SiteConfig(id="t", name="t", start_urls=("https://m.example/",), list=ListSelectors(item="*"))
    return Document(page, site)


@settings(max_examples=400, deadline=None)
@given(st.lists(element(3), min_size=1, max_size=5).map("".join))
def test_indexed_selectors_answer_as_the_tree_does(body: str):
    doc = document(f"<html><head><title>t</title></head><body>{body}</body></html>")
    reference = LexborHTMLParser(doc.page.body)  # a second parse: its own selector engine, untouched
    for css in _INDEXED:
        expected = [node.html for node in reference.css(css)]
        assert [node.html for node in doc.nodes(css)] == expected, css
    canonical = reference.css_first('link[rel~="canonical" i][href]')
    assert (doc.canonical.html if doc.canonical is not None else None) == (
        canonical.html if canonical is not None else None
    )


def test_a_selector_outside_the_index_is_run_on_the_tree():
    doc = document('<html><body><p class="a">1</p><p class="a b">2</p></body></html>')
    assert [node.text() for node in doc.nodes("p.a")] == ["1", "2"]


def test_select_answers_as_the_tree_and_its_nodes_do():
    """The shared selector engine gives what css / css_first give, across pages and after a bad selector."""
    html = '<html><body><ul><li class="x">1</li><li>2</li></ul><p class="x">3</p></body></html>'
    first, second = LexborHTMLParser(html), LexborHTMLParser(html.replace("3", "4"))
    for tree in (first, second, first):
        assert [n.text() for n in select(tree, ".x")] == [n.text() for n in tree.css(".x")]
        ul = tree.css_first("ul")
        assert ul is not None
        found = select_first(ul, "li")
        assert found is not None
        assert found.text() == "1"
        assert select_first(tree, "p.x") is not None
        assert select_first(tree, "nav") is None
    with pytest.raises(BadSelector):
        select(first, "p[")
    assert [n.text() for n in select(second, "p")] == ["4"]
