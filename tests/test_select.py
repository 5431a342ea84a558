"""extract.metadata.select / select_first: the shared selector engine answers as each page's own does."""

from __future__ import annotations

import pytest
from selectolax.lexbor import LexborHTMLParser

from feedmaker.extract.metadata import BadSelector, select, select_first


def test_select_answers_as_the_tree_and_its_nodes_do():
    """One engine serves page after page, and goes on serving after a selector it cannot parse."""
    html = '<html><body><ul><li class="x">1</li><li>2</li></ul><p class="x">3</p></body></html>'
    first, second = LexborHTMLParser(html), LexborHTMLParser(html.replace("3", "4"))
    for tree in (first, second, first):
        assert [n.text() for n in select(tree, ".x")] == [n.text() for n in tree.css(".x")]
        ul = tree.css_first("ul")
        assert ul is not None
        assert [n.text() for n in select(ul, "li")] == ["1", "2"]
        found = select_first(ul, "li")
        assert found is not None
        assert found.text() == "1"
        html_node = select_first(tree, "html")
        assert html_node is not None
        assert html_node.tag == "html"  # the scope itself can match, as in css_first
        assert select_first(tree, "nav") is None
    with pytest.raises(BadSelector):
        select(first, "p[")
    assert [n.text() for n in select(second, "p")] == ["4"]
