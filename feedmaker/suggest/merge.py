"""Several groups of story blocks -> one Candidate whose item selector lists them all, when that ranks higher."""

from __future__ import annotations

from collections.abc import Sequence

from feedmaker.suggest.nodes import HEADINGS, ancestors
from feedmaker.suggest.output import Candidate
from feedmaker.suggest.page import ListingPage
from feedmaker.suggest.scoring import article_like, evaluate, size_term, spread_sample

__all__ = ["merge"]


def merge(page: ListingPage, ranked: Sequence[Candidate]) -> Candidate | None:
    """The best group joined with its peers into one selector list (`li.tout, li.latest, div.dek`), or None.

    News front pages spread their stories over differently classed blocks (lead, latest, topic carousels); a
    feed wants all of them. A candidate joins the best one as a peer when it is the same kind of thing:

    - story blocks: most items' headlines are headings with a link, to article-like URLs (_story_blocks);
    - as good per item: its score without the item-count term is at least half the best's, since the count
      term is what makes a small group (three lead stories) rank below a big one, and it is not the question
      here; a worse ratio means another kind of list (related links, tags, a ticker);
    - separate: none of its nodes is, holds or sits inside a node of the groups taken so far (a carousel that
      wraps the best group's items is the same stories again, and a selector list must not match a node twice);
    - new: at least half of its URLs are not read by the groups taken so far.

    The union is then derived and scored like any candidate (evaluate, with each member sampled) and it wins
    only if it outscores the best group: the ranking that picks between single groups picks between one group
    and several, with no margin of its own. It already charges a mix for what it costs: fallback chains where
    the members' markup differs (0.75 each), fields only some members have (no date bonus unless half the items
    have one), repeated URLs (a lead story also under "latest"), and it counts items only up to 60, so a merge
    wins by adding stories, not by adding selectors.
    """
    best = ranked[0]
    if not _story_blocks(page, best):
        return None
    bar = _per_item(best) / 2
    members = [best.item]
    first = page.tree.css(best.item)
    taken = {n.mem_id for n in first}
    around = {a.mem_id for n in first for a in ancestors(n, page.root)}
    covered = {it.url for it in best.items}
    for c in ranked[1:]:
        if _per_item(c) < bar or not _story_blocks(page, c):
            continue
        nodes = page.tree.css(c.item)
        ids = {n.mem_id for n in nodes}
        ups = {a.mem_id for n in nodes for a in ancestors(n, page.root)}
        if ids & (taken | around) or ups & taken:
            continue
        urls = {it.url for it in c.items}
        if len(urls - covered) < len(urls) / 2:
            continue
        members.append(c.item)
        taken |= ids
        around |= ups
        covered |= urls
    if len(members) < 2:
        return None
    merged = evaluate(page, ", ".join(members), members)
    if merged is None or merged.score <= best.score:
        return None
    return merged


def _per_item(c: Candidate) -> float:
    """The score without its item-count term (see _score): how much each item reads like a story."""
    return c.score / size_term(len(c.items))


def _story_blocks(page: ListingPage, c: Candidate) -> bool:
    """Most sampled items have a heading for a headline, with a link, and the items' URLs read as articles."""
    parts = [page.anatomy(n) for n in spread_sample(page.tree.css(c.item))]
    headed = sum(1 for p in parts if p.url and p.title is not None and p.title.tag in HEADINGS)
    urls = {it.url for it in c.items}
    article = sum(article_like(u, page.host) for u in urls) / len(urls)
    return headed >= len(parts) / 2 and article >= 0.5
