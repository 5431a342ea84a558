"""Headline -> canonical key, URL -> canonical URL. Pure string functions, no I/O.

Two sightings of one story (a wire headline and a content farm's copy of it with the farm's name
glued on) must give the same key; two different stories must not. So the key keeps every word of
the headline and drops only what is not the story: typography, case, punctuation, the site's own
`strip` patterns, and affixes that are exactly one of the known site names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from feedmaker import patterns

_FOLD = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
        "\u00a0": " ",
    }
)  # fmt: skip
_APOSTROPHES = re.compile(r"(?<=\w)'(?=\w)")
_SEPARATOR = r"(?:[-|:\u00b7\u2022/]+|::)"
# The tail after a separator that follows whitespace: "Headline -Brand", "Headline | Brand".
_SUFFIX = re.compile(rf"\s+{_SEPARATOR}\s*(?P<tail>[^-|:\u00b7\u2022]+?)\s*$")
_PREFIX = re.compile(rf"^\s*(?P<head>[^-|:\u00b7\u2022]+?)\s*{_SEPARATOR}\s*")
MAX_AFFIX_WORDS = 4

_TRACKING = frozenset(
    # Not "ref": many sites use it as the article id (news.php?ref=101).
    {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "_ga", "yclid", "ref_src", "ref_url"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _words_only(text: str) -> str:
    """Casefolded letters and digits separated by single spaces. Combining marks (Indic and Thai vowel
    signs) stay inside their word; invisible format characters (soft hyphen, zero-width space) vanish."""
    text = _APOSTROPHES.sub("", text.translate(_FOLD).casefold())
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


def strip_site_affixes(headline: str, site_names: Sequence[str]) -> str:
    """Remove leading "Site: " and trailing " - Site" / " | Site" / " -Site" affixes naming a known site."""
    names = {_words_only(n) for n in site_names}
    names.discard("")
    if not names:
        return headline
    text = headline
    while True:
        before = text
        suffix = _SUFFIX.search(text.translate(_FOLD))
        if suffix and _is_site(suffix.group("tail"), names) and suffix.start() > 0:
            text = text[: suffix.start()]
        prefix = _PREFIX.match(text.translate(_FOLD))
        if prefix and _is_site(prefix.group("head"), names) and prefix.end() < len(text):
            text = text[prefix.end() :]
        if text == before:
            return text.strip()


def _is_site(affix: str, names: set[str]) -> bool:
    words = _words_only(affix)
    return bool(words) and len(words.split()) <= MAX_AFFIX_WORDS and words in names


def canonical_key(headline: str, *, strip: Sequence[str] = (), site_names: Sequence[str] = ()) -> str:
    """The same-story key of a headline.

    NFKC first (full-width forms, ligatures); then the site's `strip` regexes, case-insensitive, on that
    text; then affixes that name one of `site_names` ("Site: ", " - Site", " | Site", " -Site"); then
    quotes, apostrophes and dashes folded, case folded, punctuation dropped and whitespace collapsed.
    Apostrophes inside words vanish ("Korea's" -> "koreas") so curly and straight ones agree; other
    punctuation becomes a space ("US-led" -> "us led"). An affix that names no known site is a word
    of the headline and stays ("Spider-Man - Far From Home review").
    """
    text = unicodedata.normalize("NFKC", headline)
    for pattern in strip:
        text = patterns.blank_out(pattern, text)
    text = strip_site_affixes(text, site_names)
    return _words_only(text)


def canonical_url(url: str, *, keep_fragment: bool = False) -> str:
    """Lowercase scheme and host, no fragment (unless `keep_fragment`: items of one page that differ only
    by #anchor), no default port, no tracking parameters, sorted query.

    Deliberately conservative: the path is kept byte for byte ("/index.html", trailing slashes and case
    can all name different resources on some servers).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if parts.username is not None:
        auth = parts.username + (f":{parts.password}" if parts.password is not None else "")
        host = f"{auth}@{host}"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    # Parameters are kept as written (no re-encoding), only filtered and sorted.
    query = sorted(p for p in parts.query.split("&") if p and not _is_tracking(p.split("=", 1)[0]))
    path = parts.path or ("/" if parts.netloc else "")
    return urlunsplit((scheme, host, path, "&".join(query), parts.fragment if keep_fragment else ""))


def _is_tracking(raw_key: str) -> bool:
    key = unquote_plus(raw_key).lower()
    return key.startswith("utm_") or key in _TRACKING
