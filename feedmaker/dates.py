"""Date text -> tz-aware datetime in the offset the page printed, or None. Pure: no clock, no I/O (`now` is an argument).

Tried in order: the site's strptime `format`, Unix timestamps, ISO 8601, RFC 2822, CJK numeric forms
(2019年3月5日, 2019.03.05), relative phrases ("3 hours ago", "yesterday", "vor 2 Stunden"), then dateutil's
fuzzy parser over the text with foreign month names translated to English. A date keeps the offset it
was printed with, so a story's local day never moves; the site's time zone is applied to values printed
without one, and relative phrases and Unix timestamps are given in it. Callers compare instants (aware
datetimes compare as instants whatever their offsets); the store sorts by UTC and keeps the offset beside. A date before 1995 or more than a day after `now` is
rejected: a wrong date is worse than none, and nothing is ever filled in from today's date.

An ambiguous numeric date (02/10/2019) is read by `dayfirst` (the page's or site's locale:
`locales.reads_day_first`); when that reading lies in the future, the other one is taken. `dates_in_text` finds
the full dates printed in running text, for pages whose markup names no date.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import warnings
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from dateutil import parser as dateutil_parser

from feedmaker.locales import ENGLISH_MONTHS, MONTH_NAMES, NOISE_WORDS, ZONE_ABBREVIATIONS, fixed_offset

__all__ = ["EARLIEST", "MAX_AHEAD", "common_iso", "dates_in_text", "is_ambiguous", "parse_date"]

EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(days=1)
_MAX_LENGTH = 300  # a date is short; long text is a byline or a paragraph, and fuzzy parsing it is guessing

_WORD = re.compile(r"[^\W\d_]+\.?", re.UNICODE)
_TIMESTAMP = re.compile(r"^\s*(\d{9,10}|\d{12,13})(?:\.\d+)?\s*$")
_ISO = re.compile(
    r"(?<!\d)(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T\s]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|UTC|GMT|[+-](?:\d{2}:?\d{2}|\d{3}|\d{1,2}))?(?![\d:])"
)
_CJK = re.compile(
    r"(?<!\d)(\d{4})\s*(?:[年년]|[./-](?=\s*\d{1,2}\s*[./-]))\s*(\d{1,2})\s*[月월./-]\s*(\d{1,2})(?!\d)\s*[日일]?"
    r"(?:[^\d]{0,12}?(午前|午後|오전|오후|上午|下午|AM|PM|am|pm)?\s*(\d{1,2})\s*[:時时시]\s*(\d{1,2})?\s*[分분]?"
    r"(?:\s*[:]?\s*(\d{1,2})\s*[秒초]?)?\s*(午前|午後|오전|오후|AM|PM|am|pm)?)?"
)
_RELATIVE = re.compile(
    r"\b(?:(\d{1,5}|an?|one)\s+(second|sec|minute|min|hour|hr|day|week|month|year)s?\s+ago"
    r"|vor\s+(\d{1,5}|einer?|einem)\s+(Sekunde|Minute|Stunde|Tag|Woche|Monat|Jahr)(?:n|en|e|s)?)\b",
    re.IGNORECASE,
)
_DAY_WORD = re.compile(
    r"\b(just now|today|yesterday|heute|gestern|aujourd'hui|hier|hoy|ayer|oggi|ieri)\b", re.IGNORECASE
)
_CLOCK = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?", re.IGNORECASE)
_UNIT = {"sec": "second", "min": "minute", "hr": "hour", "sekunde": "second", "minute": "minute",
         "stunde": "hour", "tag": "day", "woche": "week", "monat": "month", "jahr": "year"}  # fmt: skip
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400,
                 "month": 30 * 86400, "year": 365 * 86400}  # fmt: skip
_DEFAULTS = (datetime(2001, 1, 1), datetime(2002, 2, 2))


def parse_date(
    text: str, *, tz: ZoneInfo, fmt: str | None = None, now: datetime, dayfirst: bool | None = None
) -> datetime | None:
    """Parse a date as printed on a page into a tz-aware datetime (its own offset, else `tz`); None when
    unsure or out of range.
    `dayfirst`: how to read an ambiguous numeric date (None: month-first unless dots separate it)."""
    if fmt is None:
        found = common_iso(text, now)
        if found is not None:
            return found
    text = unicodedata.normalize("NFKC", text).strip()
    if not text or len(text) > _MAX_LENGTH:
        return None
    found = _in_range(_aware(text, tz, fmt, now, dayfirst), now)
    if found is None and fmt is None and _AMBIGUOUS.search(text):
        # Of the two readings of 11/03/2026, one in the future cannot be right: try the other.
        first = dayfirst if dayfirst is not None else bool(_DOTTED.search(text))
        found = _in_range(_aware(text, tz, fmt, now, not first), now)
    return found


# The form most machine-readable dates take (<time datetime>, article:published_time, JSON-LD):
# "2026-03-01T09:15:00Z", "2026-03-01T09:15:00.123+05:30", "2026-03-01T09:15-04:00". Each such text
# reads in _iso exactly as datetime.fromisoformat reads it (a zone, so no site zone applies; a
# fraction of 1-6 digits; no ambiguity), at a tenth of the cost of the general path.
_COMMON_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def common_iso(text: str, now: datetime) -> datetime | None:
    """parse_date's result for a text of the common ISO 8601 form above that lies in range; None for
    any other text (which then takes the general path, as does anything this cannot read)."""
    if _COMMON_ISO.fullmatch(text) is None:
        return None
    try:
        found = datetime.fromisoformat(text)
        found.astimezone(UTC)  # an offset that moves it past year 9999 raises here, not in a caller
    except (OverflowError, ValueError):  # hour 24, offset +25:00, ...: the general path decides
        return None
    return found if EARLIEST <= found <= now.astimezone(UTC) + MAX_AHEAD else None


def _aware(text: str, tz: ZoneInfo, fmt: str | None, now: datetime, dayfirst: bool | None) -> datetime | None:
    try:
        found = _parse(text, tz, fmt, now, dayfirst)
        if found is None:
            return None
        if found.tzinfo is None:
            found = found.replace(tzinfo=tz)
        found.astimezone(UTC)  # raises for an instant past year 9999 in UTC
        return found
    except (OverflowError, ValueError, OSError):
        # Page text is untrusted: "9999 years ago", a timestamp past year 9999, "9999-12-31T23:59-14:00" (past
        # 9999 once in UTC), an offset of 99 hours (no zone). The window below rejects them all anyway.
        return None


def _in_range(found: datetime | None, now: datetime) -> datetime | None:
    if found is None or found < EARLIEST or found > now.astimezone(UTC) + MAX_AHEAD:
        return None
    return found


def _parse(text: str, tz: ZoneInfo, fmt: str | None, now: datetime, prefer: bool | None) -> datetime | None:
    dayfirst = False
    if fmt:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            d, m = fmt.find("%d"), fmt.find("%m")
            dayfirst = 0 <= d < m
    stamp = _timestamp(text)
    if stamp is not None:
        return stamp.astimezone(tz)  # an instant with no offset printed: shown in the site's zone
    for parse in (_iso, _rfc2822, _cjk):
        found = parse(text)
        if found is not None:
            return found
    relative = _relative(text, tz, now)
    if relative is not None:
        return relative
    if not fmt and prefer is not None:
        dayfirst = prefer
    elif not fmt and _DOTTED.search(text):
        # 04.03.2025 is day-first wherever dots separate a date (de, ru, pl, ...); month-first never uses them.
        dayfirst = True
    return _fuzzy(text, dayfirst=dayfirst)


_DOTTED = re.compile(r"(?<![\d.])\d{1,2}\.\d{1,2}\.\d{4}(?![\d.])")
# Both numbers at most 12: either could be the month.
_AMBIGUOUS = re.compile(r"(?<![\d./-])(?:0?[1-9]|1[0-2])[/.-](?:0?[1-9]|1[0-2])[/.-]\d{2,4}(?![\d./-])")


def is_ambiguous(text: str) -> bool:
    """Whether `text` holds a numeric date that reads both day-first and month-first (02/10/2019)."""
    return _AMBIGUOUS.search(text) is not None


def _timestamp(text: str) -> datetime | None:
    m = _TIMESTAMP.match(text)
    if not m:
        return None
    value = int(m.group(1))
    if len(m.group(1)) > 10:
        value //= 1000
    return datetime.fromtimestamp(value, UTC)


def _iso(text: str) -> datetime | None:
    m = _ISO.search(text)
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        found = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return None
    if zone:
        found = found.replace(tzinfo=_offset(zone))
    elif hour is not None:
        # A zone may follow a space as a name ("2016-12-09 09:13 EST").
        rest = text[m.end() :].split()
        if rest and rest[0].upper() in ZONE_ABBREVIATIONS:
            found = _with_zone(found, ZONE_ABBREVIATIONS[rest[0].upper()])
    return found


@functools.lru_cache(maxsize=256)  # pure, and pages print few distinct offsets
def _offset(zone: str) -> tzinfo:
    if zone.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    if len(digits) == 3:  # "-500": an hour without its leading zero
        digits = "0" + digits
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return fixed_offset(sign * (hours + minutes / 60))


def _with_zone(naive: datetime, zone: tzinfo) -> datetime:
    return naive.replace(tzinfo=zone)


_RFC2822 = re.compile(r"^(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}")


def _rfc2822(text: str) -> datetime | None:
    if not _RFC2822.match(text):
        return None
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


_CJK_MERIDIEM = {"午前": "am", "오전": "am", "上午": "am", "午後": "pm", "오후": "pm", "下午": "pm"}


def _hour_24(hour: int, meridiem: str | None) -> int:
    """A 12-hour clock's hour on the 24-hour clock: "12 am" is 0, "1 pm" is 13; no marker, no change."""
    marker = (meridiem or "").lower().replace(".", "")
    if marker == "pm" and hour < 12:
        return hour + 12
    if marker == "am" and hour == 12:
        return 0
    return hour


def _cjk(text: str) -> datetime | None:
    m = _CJK.search(text)
    if not m:
        return None
    year, month, day, before, hour, minute, second, after = m.groups()
    marker = (before or after or "").upper()
    h = _hour_24(int(hour or 0), _CJK_MERIDIEM.get(marker, marker))
    try:
        return datetime(int(year), int(month), int(day), h, int(minute or 0), int(second or 0))
    except ValueError:
        return None


def _relative(text: str, tz: ZoneInfo, now: datetime) -> datetime | None:
    now = now.astimezone(UTC)
    m = _RELATIVE.search(text)
    if m:
        amount_text = (m.group(1) or m.group(3)).lower()
        unit = (m.group(2) or m.group(4)).lower()
        amount = int(amount_text) if amount_text.isdigit() else 1
        seconds = _UNIT_SECONDS[_UNIT.get(unit, unit)]
        return (now - timedelta(seconds=amount * seconds)).astimezone(tz)
    m = _DAY_WORD.search(text)
    if not m:
        return None
    word = m.group(1).lower()
    if word == "just now":
        return now.astimezone(tz)
    local_day = now.astimezone(tz).date()
    if word in ("yesterday", "gestern", "hier", "ayer", "ieri"):
        local_day -= timedelta(days=1)
    hour = minute = second = 0
    clock = _CLOCK.search(text)
    if clock:
        minute, second = int(clock.group(2)), int(clock.group(3) or 0)
        hour = _hour_24(int(clock.group(1)), clock.group(4))
    try:
        return datetime(local_day.year, local_day.month, local_day.day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None


_ORDINAL_DOT = re.compile(r"(?<=\d)\.(?=\s)")


def _translate(text: str) -> str:
    """Foreign month names -> English; weekday names and labels dropped (dateutil knows English only)."""

    def word(m: re.Match[str]) -> str:
        raw = m.group(0)
        key = raw.lower().rstrip(".")
        month = MONTH_NAMES.get(key)
        if month is not None:
            return f" {ENGLISH_MONTHS[month]} "
        if key in NOISE_WORDS:
            return " "
        return raw

    text = _WORD.sub(word, text)
    # "9. Dezember" and "9 de diciembre de 2016" leave stray dots and ordinals dateutil trips on.
    return _ORDINAL_DOT.sub(" ", text)


_MONTH_RE = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_TIME_RE = r"\d{1,2}(?::\d{2}){1,2}(?:\s*[AaPp]\.?[Mm]\.?)?(?:\s*(?:[A-Z]{2,5}\b|[+-]\d{2}:?\d{2}))?"
# The date inside a longer line ("Written by X in Y on 1 June 2019 at 08:34 PM EDT. 51 Comments"),
# with a time printed before or after it; other numbers on the line would confuse dateutil.
_WINDOW = re.compile(
    rf"(?:{_TIME_RE}\s*[,-]?\s*)?(?:[A-Z][a-z]{{2,8}}\.?,?\s+)?"
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH_RE},?\s+\d{{4}}|{_MONTH_RE}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{4}})"
    rf"(?:\s*(?:at|@|,|-|\u2013|\|)?\s*{_TIME_RE})?"
)


_SIMPLE = re.compile(
    r"^(?:[A-Z][a-z]{2,8}\.?,?\s+)?(?:(?P<d1>\d{1,2})(?:st|nd|rd|th)?\s+(?P<m1>[A-Za-z]{3,9})\.?,?|(?P<m2>[A-Za-z]{3,9})\.?\s+(?P<d2>\d{1,2})(?:st|nd|rd|th)?,?)"
    r"\s+(?P<y>\d{4})(?:,?\s+(?:at\s+)?(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?\s*(?P<ap>[AaPp]\.?[Mm]\.?)?)?$"
)


def _simple(translated: str) -> datetime | None:
    """ "24 Mar 2026", "March 24, 2026 4:19 pm": the common zone-less forms, without dateutil's cost."""
    m = _SIMPLE.match(translated)
    if not m:
        return None
    month = MONTH_NAMES.get((m.group("m1") or m.group("m2")).lower())
    if month is None:
        return None
    hour = _hour_24(int(m.group("h") or 0), m.group("ap"))
    try:
        return datetime(
            int(m.group("y")),
            month,
            int(m.group("d1") or m.group("d2")),
            hour,
            int(m.group("mi") or 0),
            int(m.group("s") or 0),
        )
    except ValueError:
        return None


def _fuzzy(text: str, *, dayfirst: bool) -> datetime | None:
    translated = " ".join(_translate(text).split())
    simple = _simple(translated)
    if simple is not None:
        return simple
    window = _WINDOW.search(translated)
    if window:
        found = _dateutil(window.group(0), dayfirst=dayfirst)
        if found is not None:
            return found
    return _dateutil(translated, dayfirst=dayfirst)


def _all_parts_printed(found: datetime, first_default: datetime) -> bool:
    """No date part equals the first default's, so none of them can have come from it."""
    return (
        found.year != first_default.year
        and found.month != first_default.month
        and found.day != first_default.day
    )


def _dateutil(translated: str, *, dayfirst: bool) -> datetime | None:
    results: list[datetime] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown zone names; we reject those results below anyway
        for default in _DEFAULTS:
            if results and _all_parts_printed(results[0], _DEFAULTS[0]):
                return results[0]
            try:
                found = dateutil_parser.parse(
                    translated,
                    default=default,
                    fuzzy=True,
                    dayfirst=dayfirst,
                    tzinfos=ZONE_ABBREVIATIONS,
                )
            except (ValueError, OverflowError, TypeError, LookupError):
                return None
            results.append(found)
    first, second = results
    # dateutil fills missing parts from `default`: differing results mean a part was never printed.
    if first.date() != second.date():
        return None
    return first


_MONTH_NAME = "|".join(sorted((re.escape(n) for n in MONTH_NAMES), key=len, reverse=True))
_TEXT_TIME = (
    r"(?:\s*(?:,|at|um|à|a las|alle|-|\u2013|\||@)?\s*\d{1,2}(?::\d{2}|\s?h\s?\d{2})(?::\d{2})?"
    r"(?:\s*[ap]\.?m\.?)?(?:\s*(?:Uhr|(?-i:[A-Z]{2,5})\b|[+-]\d{2}:?\d{2}))?)?"
)
# A full date (day, month and four-digit year) in running text, with its time when one follows.
_DATE_IN_TEXT = re.compile(
    rf"(?<![\w/.-])(?:\d{{1,2}}(?:st|nd|rd|th|\.)?\s*(?:de\s+)?(?:{_MONTH_NAME})\.?,?\s*(?:de\s+)?\d{{4}}"
    rf"|(?:{_MONTH_NAME})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|\d{{4}}-\d{{2}}-\d{{2}}(?:T\d{{2}}:\d{{2}}(?::\d{{2}})?(?:Z|[+-]\d{{2}}:?\d{{2}})?)?"
    rf"|\d{{4}}\s*[年/.]\s*\d{{1,2}}\s*[月/.]\s*\d{{1,2}}\s*日?"
    rf"|\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{4}})(?![\w/-]){_TEXT_TIME}",
    re.IGNORECASE,
)


def dates_in_text(text: str, limit: int = 5) -> list[str]:
    """The first `limit` full dates printed in `text` (day, month and a four-digit year, with a following
    time): what parse_date is then given, for pages whose markup names no date."""
    return [m.group(0) for _, m in zip(range(limit), _DATE_IN_TEXT.finditer(text), strict=False)]
