"""Text rules every stage shares: clean text, the one fold for "same words", the one title-affix rule.

Pure string functions. extract cleans what it reads and drops a site's name from titles; canon keys
headlines; feed writes XML. Each calls these, so "the same words" and "the site's name" mean one thing.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

__all__ = [
    "MAX_AFFIX_WORDS", "XML_FORBIDDEN", "clean_html", "clean_text", "compact", "fold", "strip_title_affixes",
]  # fmt: skip

# Characters XML 1.0 forbids (C0 controls but tab, newline and CR; U+FFFE, U+FFFF; lone surrogates).
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

_FOLD = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
        "\u00a0": " ",
    }
)  # fmt: skip
_APOSTROPHES = re.compile(r"(?<=\w)'(?=\w)")
_ASCII_NOT_WORD = re.compile(r"[^a-z0-9]+")

# Title separators: "::", a bar, colon, middle dot, bullet or guillemet with any spacing, and a dash or
# slash only with a space on at least one side, so "Spider-Man", "AC/DC" and "X-ray" are never split.
# A colon needs none ("Daily Planet:Story"); it only ever goes when the text before it names the site.
_DASHES = "\\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_TITLE_SEPARATOR = re.compile(
    rf"\s*(?:::|[|:\u00b7\u2022\u00bb])\s*|\s+(?:[{_DASHES}]+|/)\s*|(?:[{_DASHES}]+|/)\s+"
)
MAX_AFFIX_WORDS = 4  # a longer affix is part of the headline, whatever it says


def clean_text(value: str) -> str:
    """NFC, whitespace collapsed, characters XML 1.0 forbids removed."""
    if value.isascii():
        # Most text read off a page: ASCII is its own NFC, and printable ASCII has nothing to remove.
        # The check comes before the split: str.split() takes some forbidden controls for spaces.
        if value.isprintable():
            # Printable ASCII has no whitespace but " ": without a doubled, leading or trailing one,
            # the split and join below would give back the same text (and cost a list of its words).
            if "  " not in value and value[:1] != " " and value[-1:] != " ":
                return value
        elif XML_FORBIDDEN.search(value) is not None:
            value = XML_FORBIDDEN.sub("", value)
        return " ".join(value.split())
    value = XML_FORBIDDEN.sub("", value)
    return unicodedata.normalize("NFC", " ".join(value.split()))


def clean_html(value: str) -> str:
    return unicodedata.normalize("NFC", XML_FORBIDDEN.sub("", value)).strip()


def fold(text: str) -> str:
    """The words of `text`: casefolded letters and digits separated by single spaces. Curly and straight
    quotes and dashes agree; apostrophes inside words vanish ("Korea's" -> "koreas"); other punctuation
    is a space ("US-led" -> "us led"). Combining marks (Indic and Thai vowel signs) stay inside their
    word; invisible format characters (soft hyphen, zero-width space) vanish."""
    text = _APOSTROPHES.sub("", text.translate(_FOLD).casefold())
    if text.isascii():  # the common case, at regex speed: ASCII has no marks and no format characters
        return _ASCII_NOT_WORD.sub(" ", text).strip()
    out = []
    for ch in text:
        if ch.isalnum():
            out.append(ch)
        else:
            category = unicodedata.category(ch)
            if category[0] == "M":
                out.append(ch)
            elif category != "Cf":
                out.append(" ")
    return " ".join("".join(out).split())


def compact(text: str) -> str:
    """fold() without the spaces: "Ars Technica", "arstechnica" and "ARS-TECHNICA" are one name."""
    return fold(text).replace(" ", "")


def strip_title_affixes(title: str, site_names: Sequence[str]) -> str:
    """Drop leading and trailing segments ("Headline | Site", "Site: Headline", "Headline -Site") that
    name the site; the one rule for titles (extract) and headlines (canon).

    Only whole segments between separators (see _TITLE_SEPARATOR) go, and only when they are one of
    `site_names` in at most MAX_AFFIX_WORDS words, compared by compact(): "Spider-Man - Far From Home
    review" keeps every word unless a site is called "Far From Home review". What is left is never empty.
    """
    cuts = list(_TITLE_SEPARATOR.finditer(title))
    if not cuts:
        return title
    names = {_compact_name(n) for n in site_names} - {""}
    if not names:
        return title
    # Segment i runs from the end of cut i-1 to the start of cut i.
    bounds = [0, *(m.end() for m in cuts)], [*(m.start() for m in cuts), len(title)]
    segments = [title[a:b] for a, b in zip(*bounds, strict=True)]
    first, last = 0, len(segments) - 1
    while last > first and _names_site(segments[last], names):
        last -= 1
    while first < last and _names_site(segments[first], names):
        first += 1
    return title[bounds[0][first] : bounds[1][last]].strip()


# A site's names come back with every title of it (its name, og:site_name, its host).
_compact_name = functools.lru_cache(maxsize=4096)(compact)


def _names_site(segment: str, names: set[str]) -> bool:
    words = fold(segment)
    return bool(words) and len(words.split()) <= MAX_AFFIX_WORDS and words.replace(" ", "") in names
