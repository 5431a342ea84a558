"""One item selector -> a scored Candidate: field selectors derived from a sample, the page read with them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from feedmaker.config import FieldSpec, ListSelectors
from feedmaker.extract import BadSelector, Node, read_item
from feedmaker.models import Article
from feedmaker.suggest.anatomy import Anatomy, date_format
from feedmaker.suggest.nodes import HEADINGS, TAGGY_PATH, ancestors, flat_text
from feedmaker.suggest.output import Candidate
from feedmaker.suggest.page import MIN_ITEMS, SAMPLE, ListingPage
from feedmaker.suggest.selectors import Spec, fallback_chain, read_value, relative
from feedmaker.urls import site_of

__all__ = ["article_like", "evaluate", "same_items", "size_term", "spread_sample"]

_GENERIC_TEXT = re.compile(
    r"^(?:read|view|learn|see|continue|more|full|weiterlesen|mehr|lire|leer|\W)+(?:\s+\w+){0,3}\W*$", re.I
)


def evaluate(page: ListingPage, css: str, members: Sequence[str] = ()) -> Candidate | None:
    """Derive the field selectors for the items `css` matches, read the page with them and score the result.

    `members` are the selectors `css` joins (see merge); each is sampled in proportion to its size, and at
    least MIN_ITEMS times, so that every member's markup proposes field selectors.
    """
    try:
        nodes = page.tree.css(css)
    except BadSelector:
        return None
    if not MIN_ITEMS <= len(nodes) <= 1000:
        return None
    ids = {n.mem_id for n in nodes}
    nested = sum(1 for n in nodes if any(a.mem_id in ids for a in ancestors(n, page.root)))
    if nested > len(nodes) // 10:
        return None
    sample = spread_sample(nodes) if not members else _stratified(page, nodes, members)
    parts = [page.anatomy(n) for n in sample]
    if sum(1 for p in parts if p.url and p.headline) < MIN_ITEMS:
        return None
    pairs = list(zip(sample, parts, strict=True))

    link, _ = fallback_chain(
        sample,
        [p.url for p in parts],
        (Spec(c, "href") for n, p in pairs if p.anchor is not None for c in relative(n, p.anchor, "[href]")),
        page.read_url,
    )
    headline, _ = fallback_chain(
        sample,
        [p.headline if p.url else None for p in parts],
        (
            Spec(c)
            for n, p in pairs
            for target in (p.title or p.anchor,)
            if target is not None
            for c in relative(n, target, "[href]" if target.tag == "a" else "")
        ),
        read_value,
    )
    if not link or not headline:
        return None
    summary, summary_right = fallback_chain(
        sample,
        [p.summary[1] if p.summary else None for p in parts],
        (Spec(c) for n, p in pairs if p.summary for c in relative(n, p.summary[0])),
        read_value,
    )
    image, image_right = fallback_chain(
        sample,
        [p.image[2] if p.image else None for p in parts],
        (Spec(c, p.image[1]) for n, p in pairs if p.image for c in relative(n, p.image[0])),
        page.read_url,
    )
    half = len(sample) / 2
    selectors = ListSelectors(
        item=css,
        link=tuple(s.field() for s in link),
        headline=tuple(s.field() for s in headline),
        date=_date_chain(sample, parts) or None,
        summary=tuple(s.field() for s in summary) if summary_right >= half else None,
        image=tuple(s.field() for s in image) if image_right >= half else None,
    )
    # An item is read as extraction reads it; suggest wants a headline from the listing itself.
    items = tuple(it for n in nodes if (it := read_item(page.doc, n, selectors)) is not None and it.headline)
    if len(items) < MIN_ITEMS:
        return None
    richness = sum(min(len(flat_text(n)), 400) for n in sample) / len(sample) / 400
    score = _score(page, nodes, items, parts, selectors) * (0.4 + 0.6 * richness)
    return Candidate(selectors=selectors, items=items, score=score, matched=len(nodes))


def spread_sample(nodes: Sequence[Node], size: int = SAMPLE) -> list[Node]:
    """At most `size` nodes spread evenly over `nodes`."""
    return list(nodes[:: max(1, len(nodes) // size)][:size])


def _stratified(page: ListingPage, nodes: Sequence[Node], members: Sequence[str]) -> list[Node]:
    """A sample of a merged selector's `nodes`: each member's share, and at least MIN_ITEMS of every member."""
    picked: set[int] = set()
    for css in members:
        group = page.tree.css(css)
        picked.update(
            n.mem_id for n in spread_sample(group, max(MIN_ITEMS, round(SAMPLE * len(group) / len(nodes))))
        )
    return [n for n in nodes if n.mem_id in picked]  # in page order


def _date_chain(sample: Sequence[Node], parts: Sequence[Anatomy]) -> tuple[FieldSpec, ...]:
    """The date chain, each spec with the strptime format (and regex) its values need; none if unparseable."""
    chain, right = fallback_chain(
        sample,
        [p.date[2] if p.date else None for p in parts],
        (
            Spec(c, p.date[1])
            for n, p in zip(sample, parts, strict=True)
            if p.date
            for c in relative(n, p.date[0], "[datetime]" if p.date[1] else "")
        ),
        read_value,
    )
    if right < len(sample) / 2:
        return ()
    out = []
    for spec in chain:
        found = date_format([v for n in sample if (v := read_value(n, spec)) is not None])
        if found is not None:
            fmt, regex = found
            out.append(FieldSpec(css=spec.css, attr=spec.attr, format=fmt, regex=regex))
    return tuple(out)


def article_like(url: str, site: str) -> float:
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not segments and not parts.query:
        return 0.0
    if TAGGY_PATH.search(parts.path):
        return 0.15
    last = segments[-1] if segments else parts.query
    score = 0.3
    if len(segments) >= 2:
        score += 0.2
    if last.count("-") >= 2 or last.count("_") >= 2:
        score += 0.3
    if re.search(r"\d{4,}", parts.path + parts.query) or last.endswith((".html", ".htm", ".php")):
        score += 0.3
    if site_of(url) != site:
        score *= 0.8
    return min(score, 1.0)


def _score(
    page: ListingPage,
    nodes: Sequence[Node],
    items: Sequence[Article],
    parts: Sequence[Anatomy],
    selectors: ListSelectors,
) -> float:
    n = len(items)
    urls = {it.url for it in items}
    unique = len(urls) / n
    headlines = [it.headline for it in items]
    avg_len = sum(min(len(h), 120) for h in headlines) / n
    generic = sum(1 for h in headlines if _GENERIC_TEXT.match(h) or not re.search(r"[^\W\d_]", h)) / n
    distinct_headlines = len(set(headlines)) / n
    article = sum(article_like(u, page.host) for u in urls) / len(urls)
    precision = n / len(nodes)
    spread = nodes[:: max(1, len(nodes) // 20)]
    chrome = sum(1 for node in spread if page.in_chrome(node)) / len(spread)
    headings = sum(1 for p in parts if p.title is not None and p.title.tag in HEADINGS) / len(parts)
    bonus = 1.0
    bonus += 0.6 if selectors.date else 0.0
    bonus += 0.2 if selectors.image else 0.0
    bonus += 0.2 if selectors.summary else 0.0
    bonus += 0.3 * headings
    # A selector without a class, an id or a semantic tag (`li > a`) matches whatever has that shape.
    # (Each selector of a list: a merged `item` is as vague as its vaguest member.)
    vague = any(not re.search(r"[.#]|article|main|section|\btr\b", css) for css in selectors.item.split(","))
    return float(
        size_term(n)
        * (0.6 if vague else 1.0)
        * (0.1 + 0.9 * min(avg_len, 40) / 40)
        * 0.75 ** (len(selectors.link) + len(selectors.headline or ()) - 2)  # fallback chains: mixed markup
        * (0.2 + 0.8 * article)
        * precision**0.5
        * unique**2
        * distinct_headlines
        * (1 - 0.9 * generic)
        * (1 - 0.85 * chrome)
        * bonus
    )


def size_term(n: int) -> float:
    """What the item count adds to a score: sub-linear, and nothing past 60 (a front page, not a sitemap)."""
    return float(min(n, 60) ** 0.6)


def same_items(a: Candidate, b: Candidate) -> bool:
    urls_a = {it.url for it in a.items}
    urls_b = {it.url for it in b.items}
    return len(urls_a & urls_b) >= 0.9 * max(len(urls_a), len(urls_b))
