"""Locale -> how a page writes dates: month names and filler words in the supported languages, zone
abbreviations, day-first or month-first numeric dates, and the one time zone a language or country names.
Pure tables and lookups, used by dates, extract (a page's <html lang>) and suggest (a proposed `timezone`).
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

__all__ = [
    "COUNTRY_ZONES", "ENGLISH_MONTHS", "MONTH_NAMES", "NOISE_WORDS", "ZONE_ABBREVIATIONS", "fixed_offset",
    "reads_day_first", "zone_for_locale",
]  # fmt: skip

_NEW_YORK = ZoneInfo("America/New_York")
_CHICAGO = ZoneInfo("America/Chicago")
_DENVER = ZoneInfo("America/Denver")
_LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def fixed_offset(hours: float) -> tzinfo:
    return timezone(timedelta(hours=hours))


# Zone abbreviations dateutil cannot know; "ET" etc. follow daylight saving, "EST" etc. do not.
ZONE_ABBREVIATIONS: dict[str, tzinfo] = {
    "ET": _NEW_YORK,
    "EST": fixed_offset(-5),
    "EDT": fixed_offset(-4),
    "CT": _CHICAGO,
    "CST": fixed_offset(-6),
    "CDT": fixed_offset(-5),
    "MT": _DENVER,
    "MST": fixed_offset(-7),
    "MDT": fixed_offset(-6),
    "PT": _LOS_ANGELES,
    "PST": fixed_offset(-8),
    "PDT": fixed_offset(-7),
    "AKST": fixed_offset(-9),
    "AKDT": fixed_offset(-8),
    "HST": fixed_offset(-10),
    "GMT": UTC,
    "UTC": UTC,
    "UT": UTC,
    "Z": UTC,
    "BST": fixed_offset(1),
    "CET": fixed_offset(1),
    "CEST": fixed_offset(2),
    "MEZ": fixed_offset(1),
    "MESZ": fixed_offset(2),
    "EET": fixed_offset(2),
    "EEST": fixed_offset(3),
    "WET": UTC,
    "WEST": fixed_offset(1),
    "JST": fixed_offset(9),
    "KST": fixed_offset(9),
    "AEST": fixed_offset(10),
    "AEDT": fixed_offset(11),
}

_MONTHS = {
    1: "january jan januar janvier janv enero ene gennaio genn gen janeiro januari",
    2: "february feb februar février fevrier févr fevr febrero febbraio fevereiro fev februari",
    3: "march mar märz maerz mars marzo março marco maart mrt",
    4: "april apr avril avr abril abr aprile",
    5: "may mai mayo maggio mag maio mei",
    6: "june jun juni juin junio giugno giu junho",
    7: "july jul juli juillet juil julio luglio lug julho",
    8: "august aug août aout agosto ago augustus",
    9: "september sep sept septembre septiembre settembre set setembro",
    10: "october oct oktober okt octobre octubre ottobre ott outubro out",
    11: "november nov novembre noviembre novembro",
    12: "december dec dezember dez décembre decembre déc diciembre dic dicembre dezembro",
}
ENGLISH_MONTHS = ("", "January", "February", "March", "April", "May", "June", "July", "August",
                   "September", "October", "November", "December")  # fmt: skip
MONTH_NAMES: dict[str, int] = {name: month for month, names in _MONTHS.items() for name in names.split()}

# Weekdays and filler words in the supported languages; removed so they cannot be read as months or zones.
NOISE_WORDS = frozenset(
    [
        "montag",
        "dienstag",
        "mittwoch",
        "donnerstag",
        "freitag",
        "samstag",
        "sonntag",
        "mo",
        "di",
        "mi",
        "do",
        "fr",
        "sa",
        "so",
        "um",
        "uhr",
        "am",
        "den",
        "lundi",
        "mardi",
        "mercredi",
        "jeudi",
        "vendredi",
        "samedi",
        "dimanche",
        "le",
        "à",
        "h",
        "lunes",
        "martes",
        "miércoles",
        "miercoles",
        "jueves",
        "viernes",
        "sábado",
        "sabado",
        "domingo",
        "de",
        "del",
        "las",
        "los",
        "lunedì",
        "lunedi",
        "martedì",
        "martedi",
        "mercoledì",
        "mercoledi",
        "giovedì",
        "giovedi",
        "venerdì",
        "venerdi",
        "sabato",
        "il",
        "alle",
        "ore",
        "segunda",
        "terça",
        "terca",
        "quarta",
        "quinta",
        "sexta",
        "feira",
        "às",
        "as",
        "maandag",
        "dinsdag",
        "woensdag",
        "donderdag",
        "vrijdag",
        "zaterdag",
        "zondag",
        "om",
        "updated",
        "published",
        "posted",
        "last",
        "modified",
        "date",
        "dated",
        "on",
        "created",
    ]
)

# Where a numeric date is written month-first: US English (and the zones of the US, for a site whose
# pages name no locale). Elsewhere day-first is the rule (en-GB, fr, de, es, ...); year-first locales
# (ja, zh, ko) print the year first, which is never ambiguous. Source: CLDR's short date patterns.
_MONTH_FIRST_LOCALES = frozenset(
    {"en-us", "en-ph", "en-as", "en-gu", "en-mp", "en-pr", "en-um", "en-vi", "es-us"}
)
_US_ZONE = re.compile(r"^(?:US/|America/(?:New_York|Chicago|Denver|Los_Angeles|Phoenix|Anchorage|Boise|Detroit"
                      r"|Juneau|Sitka|Nome|Adak|Menominee|Indiana/|Kentucky/|North_Dakota/)|Pacific/Honolulu$|EST|CST|MST|PST)")  # fmt: skip


def reads_day_first(locale: str | None, zone: str | None = None) -> bool | None:
    """How a page in `locale` (a language tag: "en-GB", "fr_FR", "de") writes 02/10/2019: True for
    day-first, False for month-first, None when unknown (bare "en"; no locale and a UTC or unknown zone).
    The zone decides only when no locale is given."""
    if locale:
        tag = locale.strip().lower().replace("_", "-")
        if tag in _MONTH_FIRST_LOCALES:
            return False
        language = tag.split("-")[0]
        if tag != "en" and language.isalpha():
            return True
        # English alone: the US or anywhere else, so the zone decides.
    if zone:
        if _US_ZONE.match(zone):
            return False
        if zone not in ("UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z"):
            return True
    return None


# Countries with one time zone (or one that most of its press uses), by ISO 3166 code: what a page's locale
# or a domain's country TLD says about the zone of the times it prints without one. Source: IANA tzdata's
# zone1970.tab; countries spanning several zones (us, ca, br, ru, au, mx, id, ...) are left out on purpose.
COUNTRY_ZONES: dict[str, str] = {
    "jp": "Asia/Tokyo", "kr": "Asia/Seoul", "cn": "Asia/Shanghai", "tw": "Asia/Taipei", "hk": "Asia/Hong_Kong",
    "in": "Asia/Kolkata", "th": "Asia/Bangkok", "vn": "Asia/Ho_Chi_Minh", "sg": "Asia/Singapore",
    "ph": "Asia/Manila", "il": "Asia/Jerusalem", "tr": "Europe/Istanbul", "gb": "Europe/London",
    "uk": "Europe/London", "ie": "Europe/Dublin", "de": "Europe/Berlin", "at": "Europe/Vienna",
    "ch": "Europe/Zurich", "fr": "Europe/Paris", "be": "Europe/Brussels", "nl": "Europe/Amsterdam",
    "it": "Europe/Rome", "es": "Europe/Madrid", "pl": "Europe/Warsaw", "cz": "Europe/Prague",
    "se": "Europe/Stockholm", "dk": "Europe/Copenhagen", "no": "Europe/Oslo", "fi": "Europe/Helsinki",
    "gr": "Europe/Athens", "hu": "Europe/Budapest", "ro": "Europe/Bucharest", "ua": "Europe/Kyiv",
    "nz": "Pacific/Auckland", "za": "Africa/Johannesburg", "eg": "Africa/Cairo", "ng": "Africa/Lagos",
    "ar": "America/Argentina/Buenos_Aires", "co": "America/Bogota", "pe": "America/Lima", "cl": "America/Santiago",
}  # fmt: skip
# A language alone names a country when nearly all its pages come from there (not en, es, fr, pt, ar, ...).
_LANGUAGE_COUNTRY = {
    "ja": "jp", "ko": "kr", "zh": "cn", "th": "th", "vi": "vn", "he": "il", "iw": "il", "tr": "tr", "de": "de",
    "it": "it", "nl": "nl", "pl": "pl", "cs": "cz", "sv": "se", "da": "dk", "nb": "no", "nn": "no", "no": "no",
    "fi": "fi", "el": "gr", "hu": "hu", "ro": "ro", "uk": "ua", "hi": "in",
}  # fmt: skip


def zone_for_locale(locale: str | None) -> str | None:
    """The time zone a page in `locale` ("ja", "zh-TW", "en_GB", "fr-FR") prints its times in, when the
    locale names a one-zone country; None for "en", "fr", "es" alone and for multi-zone countries."""
    if not locale:
        return None
    parts = locale.strip().lower().replace("_", "-").split("-")
    region = next((p for p in parts[1:] if len(p) == 2 and p.isalpha()), None)
    if region is None and parts[0] == "zh" and "hant" in parts[1:]:
        region = "tw"
    country = region or _LANGUAGE_COUNTRY.get(parts[0])
    return COUNTRY_ZONES.get(country) if country else None
