"""Text rules every stage shares: clean text, the one fold for "same words", the one title-affix rule."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

__all__ = ["XML_FORBIDDEN", "clean_html", "clean_text", "compact", "strip_title_affixes"]

XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
TITLE_SEPARATORS = re.compile(r"\s+(?:[|\-\u2013\u2014\u00b7\u2022»:]|::)\s+")


def clean_text(value: str) -> str:
    """NFC, whitespace collapsed, characters XML 1.0 forbids removed."""
    value = XML_FORBIDDEN.sub("", value)
    return unicodedata.normalize("NFC", " ".join(value.split()))


def clean_html(value: str) -> str:
    return unicodedata.normalize("NFC", XML_FORBIDDEN.sub("", value)).strip()


def strip_title_affixes(title: str, site_names: Sequence[str]) -> str:
    """Drop a leading or trailing segment ("Headline | Site", "Site - Headline") that names the site.

    Only whole segments between spaced separators that equal a known site name go: "Spider-Man - Far
    From Home review" keeps every word unless a site is called "Far From Home review".
    """
    names = {compact(n) for n in site_names} - {""}
    parts = TITLE_SEPARATORS.split(title)
    if len(parts) < 2 or not names:
        return title
    separators = TITLE_SEPARATORS.findall(title)
    while len(parts) > 1 and compact(parts[-1]) in names:
        parts.pop()
        separators.pop()
    while len(parts) > 1 and compact(parts[0]) in names:
        parts.pop(0)
        separators.pop(0)
    out = parts[0]
    for separator, part in zip(separators, parts[1:], strict=True):
        out += separator + part
    return out


def compact(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())
