"""Site settings a listing page implies beyond its selectors: the time zone its dates are printed in, and a
`[canonical] strip` pattern for a prefix or suffix most of its headlines share ("Indexbit Exchange: ...").

Pure: the parsed page and the items extract read from it in, proposals (each with the reason) out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from feedmaker import patterns
from feedmaker.extract import Document
from feedmaker.locales import COUNTRY_ZONES, zone_for_locale
from feedmaker.urls import host_of

__all__ = ["Hint", "strip_hint", "timezone_hint"]

# An ISO 8601 time with its offset, as pages print it in <time datetime>, meta and JSON-LD.
_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*([+-]\d{2}):?(\d{2})(?!\d)")
_DATE_SOURCES = "[datetime], meta[content], script[type*='ld+json' i]"
# A headline's prefix ends, and its suffix starts, at one of these separators (":", "-", "|", dashes).
_DASHES = "\u2013\u2014"  # en and em dash
_PREFIX = re.compile(rf"^(\S.{{1,58}}?)\s*(?::|\s[-|{_DASHES}]|[-|{_DASHES}]\s)\s*\S")
_SUFFIX = re.compile(
    rf"\S\s*(?:\s[-|{_DASHES}:]|[-|{_DASHES}]\s|\s?[-|{_DASHES}](?=[A-Z]))\s*([^-|{_DASHES}:]{{2,60}}?)\s*$"
)
_SHARE = 0.6  # the share of headlines an affix must start or end for a pattern to be proposed
_MIN_HEADLINES = 3
# Countries with several zones: an offset on the page's dates picks one (-05:00 in January is New York's,
# in July Chicago's). Their main press zones, from IANA tzdata's zone1970.tab.
_SEVERAL_ZONES: dict[str, tuple[str, ...]] = {
    "us": ("America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
           "America/Anchorage", "Pacific/Honolulu"),
    "ca": ("America/Toronto", "America/Winnipeg", "America/Edmonton", "America/Vancouver", "America/Halifax"),
    "au": ("Australia/Sydney", "Australia/Brisbane", "Australia/Adelaide", "Australia/Perth"),
    "br": ("America/Sao_Paulo", "America/Manaus"),
    "mx": ("America/Mexico_City", "America/Tijuana"),
    "ru": ("Europe/Moscow",),
}  # fmt: skip
_REGEX_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")


@dataclass(frozen=True, slots=True, kw_only=True)
class Hint:
    value: str  # a zone name for `timezone`, an RE2 pattern for `[canonical] strip`
    reason: str  # why, in words, for the config's comment


def timezone_hint(doc: Document) -> Hint | None:
    """The zone the page's dates are printed in: from the offsets its machine-readable dates carry (the
    zone of the page's language or country domain with that offset on that day, else a fixed offset),
    else from <html lang> (a one-zone country), else from the domain's country TLD."""
    html = doc.tree.css_first("html")
    lang = html.attributes.get("lang") if html is not None else None
    tld = (host_of(doc.url) or "").rsplit(".", 1)[-1].lower()
    named = [(zone, f'<html lang="{lang}">') for zone in (zone_for_locale(lang),) if zone]
    region = _region(lang)
    named += [(zone, f'<html lang="{lang}">') for zone in _SEVERAL_ZONES.get(region or "", ())]
    if tld in COUNTRY_ZONES:
        named.append((COUNTRY_ZONES[tld], f"the .{tld} domain"))
    named += [(zone, f"the .{tld} domain") for zone in _SEVERAL_ZONES.get(tld, ())]
    offset = _printed_offset(doc)
    if offset is not None:
        minutes, when = offset
        text = _offset_text(minutes)
        for zone, source in named:
            if ZoneInfo(zone).utcoffset(when) == timedelta(minutes=minutes):
                return Hint(value=zone, reason=f"the page's dates carry {text}, as {zone} does; {source}")
        if minutes == 0:
            return None  # UTC is the default already
        if minutes % 60 == 0:
            # IANA's Etc/GMT zones count the other way round: Etc/GMT-9 is UTC+09:00.
            return Hint(value=f"Etc/GMT{-minutes // 60:+d}", reason=f"the page's dates carry {text}")
        return None
    if named:
        zone, source = named[0]
        return Hint(value=zone, reason=f"from {source}")
    return None


def _region(lang: str | None) -> str | None:
    parts = (lang or "").strip().lower().replace("_", "-").split("-")
    return next((p for p in parts[1:] if len(p) == 2 and p.isalpha()), None)


def _printed_offset(doc: Document) -> tuple[int, datetime] | None:
    """The commonest UTC offset (minutes) on the page's dates, with one date that carries it."""
    seen: Counter[int] = Counter()
    when: dict[int, datetime] = {}
    for node in doc.tree.css(_DATE_SOURCES)[:400]:
        attrs = node.attributes
        text = attrs.get("datetime") or attrs.get("content") or (node.text() if node.tag == "script" else "")
        for m in _OFFSET.finditer(text or ""):
            sign = -1 if m.group(1)[0] == "-" else 1
            minutes = sign * (abs(int(m.group(1))) * 60 + int(m.group(2)))
            seen[minutes] += 1
            if minutes not in when:
                try:
                    when[minutes] = datetime.fromisoformat(m.group(0)[:10])
                except ValueError:
                    continue
    if not seen:
        return None
    minutes = seen.most_common(1)[0][0]
    return (minutes, when[minutes]) if minutes in when else None


def _offset_text(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def strip_hint(headlines: Sequence[str]) -> Hint | None:
    """A `[canonical] strip` pattern for the prefix ("Indexbit Exchange:") or suffix ("-GrowthSphere
    Strategies") that at least 60 % of the headlines (three or more) share; None when none does."""
    texts = [" ".join(h.split()) for h in headlines if h and h.strip()]
    if len(texts) < _MIN_HEADLINES:
        return None
    need = max(_MIN_HEADLINES, -(-len(texts) * 6 // 10))
    for regex, build in ((_PREFIX, _prefix_pattern), (_SUFFIX, _suffix_pattern)):
        counts = Counter(m.group(1).casefold() for t in texts if (m := regex.search(t)))
        if not counts:
            continue
        affix, count = counts.most_common(1)[0]
        if count < need:
            continue
        original = next(
            m.group(1) for t in texts if (m := regex.search(t)) and m.group(1).casefold() == affix
        )
        pattern = build(original)
        try:
            patterns.check_any_case(pattern)
        except ValueError:
            continue
        where = "start" if regex is _PREFIX else "end"
        return Hint(value=pattern, reason=f"{count} of {len(texts)} headlines {where} with {original!r}")
    return None


def _literal(text: str) -> str:
    """`text` as an RE2 pattern: metacharacters escaped, any run of spaces as \\s+."""
    return r"\s+".join(_REGEX_SPECIAL.sub(r"\\\1", word) for word in text.split())


def _prefix_pattern(prefix: str) -> str:
    return rf"^{_literal(prefix)}\s*(?::|[-|{_DASHES}])\s*"


def _suffix_pattern(suffix: str) -> str:
    return rf"\s*[-|{_DASHES}:]\s*{_literal(suffix)}$"
