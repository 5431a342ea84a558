"""Headline -> canonical key (URL -> canonical URL lives in feedmaker.urls). Pure, no I/O.

Two sightings of one story (a wire headline and a content farm's copy of it with the farm's name
glued on) must give the same key; two different stories must not. So the key keeps every word of
the headline and drops only what is not the story: typography, case, punctuation, the site's own
`strip` patterns, and affixes that are exactly one of the known site names.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from feedmaker import patterns
from feedmaker.text import fold, strip_title_affixes
from feedmaker.urls import canonical_url  # the URL half of "same story", kept importable from here

if TYPE_CHECKING:
    from feedmaker.config import SiteConfig

__all__ = ["canonical_key", "canonical_url", "headline_key"]


def canonical_key(headline: str, *, strip: Sequence[str] = (), site_names: Sequence[str] = ()) -> str:
    """The same-story key of a headline.

    NFKC first (full-width forms, ligatures); then the site's `strip` regexes, case-insensitive, on that
    text; then affixes that name one of `site_names` ("Site: ", " - Site", " | Site", " -Site": the one rule,
    text.strip_title_affixes); then text.fold: quotes, apostrophes and dashes folded, case folded,
    punctuation dropped and whitespace collapsed.
    Apostrophes inside words vanish ("Korea's" -> "koreas") so curly and straight ones agree; other
    punctuation becomes a space ("US-led" -> "us led"). An affix that names no known site is a word
    of the headline and stays ("Spider-Man - Far From Home review").
    """
    text = unicodedata.normalize("NFKC", headline)
    for pattern in strip:
        text = patterns.blank_out(pattern, text)
    return fold(strip_title_affixes(text, site_names))


def headline_key(site: SiteConfig, headline: str) -> str:
    """The canonical key of a headline on this site (canon.py), which tells copies of one story apart from news."""
    return canonical_key(headline, strip=site.canonical.strip, site_names=(site.name,))
