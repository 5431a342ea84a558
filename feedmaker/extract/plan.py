"""FieldChains compiled once per selectors object: what reading a field needs, without pydantic on the hot path.

A listing reads ~6 fields x 50 items per page, and every read used to go through the FieldSpec model
(attribute access on a pydantic model costs several times a slot read) and format its origin label
afresh. A plan holds each spec's css / attr / regex / format as plain slots and its label ready-made;
it is built the first time a selectors object is seen and reused for every later page of that site
(site configs are loaded once and live as long as the process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feedmaker.config import FieldSpec, ListSelectors
from feedmaker.extract.fallbacks import ARTICLE_FIELDS
from feedmaker.extract.fields import Kind, spec_label

__all__ = ["ChainPlan", "ListingPlan", "SpecPlan", "chain_plan", "listing_plan"]


@dataclass(frozen=True, slots=True)
class SpecPlan:
    """One FieldSpec as reading it needs it."""

    css: str
    attr: str | None
    regex: str | None
    format: str | None
    all: bool
    label: str  # the origin recorded for a value it yields (fields.spec_label)
    spec: FieldSpec  # for the rarer paths (all=True) that go through fields.read_spec


ChainPlan = tuple[SpecPlan, ...]


def chain_plan(chain: Sequence[FieldSpec] | None) -> ChainPlan:
    return tuple(
        SpecPlan(
            css=spec.css,
            attr=spec.attr,
            regex=spec.regex,
            format=spec.format,
            all=spec.all,
            label=spec_label(spec),
            spec=spec,
        )
        for spec in chain or ()
    )


@dataclass(frozen=True, slots=True)
class ListingPlan:
    """A site's listing selectors, compiled: the link chain, then the article fields it names, in
    fallbacks.ARTICLE_FIELDS order (the order values, and so origins, are recorded in)."""

    link: ChainPlan
    fields: tuple[tuple[str, Kind, ChainPlan], ...]  # only the fields the site gives selectors for
    headline_from_link: bool  # no headline selector: the link's text is the headline


# id(selectors) -> (selectors, plan). The selectors object is held, so its id cannot be reused by another
# object while the entry exists; the identity check guards against a stale entry all the same. Bounded:
# a process that reloads configs over and over (the daemon on every change) starts afresh past the cap.
_PLANS: dict[int, tuple[ListSelectors, ListingPlan]] = {}
_MAX_PLANS = 4096


def listing_plan(selectors: ListSelectors) -> ListingPlan:
    hit = _PLANS.get(id(selectors))
    if hit is not None and hit[0] is selectors:
        return hit[1]
    plan = ListingPlan(
        link=chain_plan(selectors.link),
        fields=tuple(
            (name, kind, chain)
            for name, kind, _ in ARTICLE_FIELDS
            if (chain := chain_plan(getattr(selectors, name)))
        ),
        headline_from_link=selectors.headline is None,
    )
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[id(selectors)] = (selectors, plan)
    return plan
