"""Listing page -> a suggested site config: find the repeated article blocks and the selectors that read them.

`suggest(html, url) -> Suggestion`; `Suggestion.to_toml(site_name)` is the text of a `config/sites/*.toml`.
Pure: no I/O. The approach follows html2rss's auto_source:

1. Seed item containers from the links: the children of any node holding three or more linked children, and,
   for each group of links that share a structural path, their ancestors up to the last level at which every
   ancestor still holds one article URL.
2. Turn each container set into item selectors (`tag.class`, with a parent for context when needed); stable
   classes only, so ids, hashes and state classes (`is-active`, `css-1x2y3z`) never end up in a config.
3. For each selector, find the headline, link, date, summary and image of every item, derive relative selectors
   (a fallback chain where one selector is not enough) and read the page with them, as extract does.
4. Rank the selectors by what they read: many items, headline-length text, article-like URLs, headings, dates,
   images, and nothing from nav/footer/aside/menus/comments.
5. On front pages that spread their stories over differently classed groups (lead, latest, topic rows), join
   the best selector with its peers into one selector list (`li.tout, div.dek`) when that list ranks higher.

Field selectors are run with selectolax's `node.css_first`, which also matches the item node itself. The items a
Candidate shows are read by extract's own listing reader (`extract.read_item`), so what `suggest` previews is
what `check` and the crawler will read.
"""

from __future__ import annotations

from feedmaker.errors import ExtractError
from feedmaker.extract import listing_document
from feedmaker.suggest.candidates import container_sets, item_selectors
from feedmaker.suggest.merge import merge
from feedmaker.suggest.nodes import flat_text
from feedmaker.suggest.output import Candidate, Suggestion
from feedmaker.suggest.page import ListingPage
from feedmaker.suggest.scoring import evaluate, same_items
from feedmaker.urls import site_of

__all__ = ["MIN_SCORE", "Candidate", "Suggestion", "suggest"]

# Below this a "list" is a menu or a tag cloud: a nav bar scores about 0.01, a real list 1 and up.
MIN_SCORE = 0.2


def suggest(html: str, url: str) -> Suggestion:
    """Find the repeated article blocks of a listing page; `url` is the page's address, the base for its links.

    Raises ExtractError when no block repeats at least three times with a link and a headline.
    """
    doc = listing_document(html, url)
    tree = doc.tree
    root = tree.body
    title_node = tree.css_first("title")
    title = flat_text(title_node) if title_node is not None else None
    if root is None:
        raise ExtractError(url, "*", "no repeated article blocks found")
    page = ListingPage(
        doc=doc, tree=tree, root=root, url=url, host=site_of(url), size=max(1, len(root.text(deep=True)))
    )
    seeds = container_sets(page)
    selectors = item_selectors(page, seeds)
    found: list[Candidate] = []
    for css in selectors:
        candidate = evaluate(page, css)
        if candidate is not None:
            found.append(candidate)
    found = sorted((c for c in found if c.score >= MIN_SCORE), key=lambda c: -c.score)
    if not found:
        raise ExtractError(url, "*", "no repeated article blocks found")
    unique: list[Candidate] = []
    for c in found:
        if not any(same_items(c, u) for u in unique):
            unique.append(c)
    merged = merge(page, unique)
    if merged is not None:
        unique.insert(0, merged)
    return Suggestion(url=url, title=title or None, best=unique[0], candidates=tuple(unique[:10]))
