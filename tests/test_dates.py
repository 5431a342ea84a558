"""dates.parse_date: every printed form we support, the zone rules, and what must be rejected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedmaker.dates import EARLIEST, MAX_AHEAD, dates_in_text, parse_date
from feedmaker.locales import reads_day_first, zone_for_locale

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")


def parse(text: str, tz: ZoneInfo = UTC_ZONE, fmt: str | None = None, now: datetime = NOW) -> datetime | None:
    return parse_date(text, tz=tz, fmt=fmt, now=now)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-12-09T09:13:00.000Z", utc(2016, 12, 9, 9, 13)),
        ("2016-12-09T09:13:00+01:00", utc(2016, 12, 9, 8, 13)),
        ("2016-12-09 09:13:00", utc(2016, 12, 9, 9, 13)),
        ("2016-12-09", utc(2016, 12, 9)),
        ("2018-10-29T10:15-500", utc(2018, 10, 29, 15, 15)),
        ("Published 2016-12-09T09:13:00Z by staff", utc(2016, 12, 9, 9, 13)),
    ],
)
def test_iso_8601_forms_parse_to_utc(text: str, expected: datetime) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("2016-12-09T09:13:00+09:00", 9 * 60),
        ("2016-12-09T23:13:00-05:00", -5 * 60),
        ("Fri, 09 Dec 2016 23:13:00 -0500", -5 * 60),
        ("2016-12-09 23:13 EST", -5 * 60),
        ("2016-12-09T23:13:00Z", 0),
    ],
)
def test_results_keep_the_printed_offset(text: str, offset: int) -> None:
    # The publisher's offset is kept, so a late-evening story's local day does not move to UTC's.
    found = parse(text, tz=SEOUL)
    assert found is not None
    assert found.utcoffset() == timedelta(minutes=offset)
    assert found.day == 9


def test_zone_less_relative_and_unix_dates_are_given_in_the_site_zone() -> None:
    now = datetime(2025, 4, 9, 16, 0, tzinfo=UTC)  # 01:00 on 10 April in Seoul
    for text in ("2025-04-10 00:30", "1744245000", "2 hours ago", "today 00:30"):
        found = parse_date(text, tz=SEOUL, now=now)
        assert found is not None, text
        assert found.utcoffset() == timedelta(hours=9), text
        assert found.date().isoformat() in ("2025-04-09", "2025-04-10"), text
    assert parse_date("today 00:30", tz=SEOUL, now=now) == datetime(2025, 4, 9, 15, 30, tzinfo=UTC)


def test_site_zone_applies_only_to_zone_less_values() -> None:
    assert parse("2025-04-09 01:29:11", tz=SEOUL) == utc(2025, 4, 8, 16, 29, 11)
    assert parse("2025-04-09T01:29:11Z", tz=SEOUL) == utc(2025, 4, 9, 1, 29, 11)
    assert parse("Wed, 09 Apr 2025 01:29:11 +0000", tz=SEOUL) == utc(2025, 4, 9, 1, 29, 11)


def test_rfc_2822_dates_parse() -> None:
    assert parse("Fri, 09 Dec 2016 09:13:00 -0500") == utc(2016, 12, 9, 14, 13)
    assert parse("09 Dec 2016 09:13:00 GMT") == utc(2016, 12, 9, 9, 13)


def test_explicit_format_from_the_seed_page() -> None:
    assert parse("Date:2025-04-09 01:29:11", tz=SEOUL, fmt="Date:%Y-%m-%d %H:%M:%S") == utc(
        2025, 4, 8, 16, 29, 11
    )


def test_format_that_does_not_fit_falls_back_to_day_first_parsing() -> None:
    """A site whose format says day-before-month keeps that order when the text has extra words."""
    assert parse("Posted 05/03/2019", fmt="%d/%m/%Y") == utc(2019, 3, 5)
    assert parse("Posted 05/03/2019") == utc(2019, 5, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1481274780", utc(2016, 12, 9, 9, 13)),
        ("1481274780000", utc(2016, 12, 9, 9, 13)),
    ],
)
def test_unix_timestamps_in_seconds_and_milliseconds(text: str, expected: datetime) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "December 9, 2016",
        "9 December 2016",
        "9. Dezember 2016",
        "Freitag, 9. Dezember 2016",
        "9 décembre 2016",
        "vendredi 9 décembre 2016",
        "9 de diciembre de 2016",
        "9 dicembre 2016",
        "9 de dezembro de 2016",
        "9 december 2016",
        "2016年12月9日",
        "2016년 12월 9일",
        "2016.12.09",
        "2016/12/09",
    ],
)
def test_month_names_in_seven_languages_and_cjk_numeric_forms(text: str) -> None:
    assert parse(text) == utc(2016, 12, 9)


def test_cjk_forms_with_time_and_afternoon_marker() -> None:
    assert parse("2019年3月5日 15時20分", tz=ZoneInfo("Asia/Tokyo")) == utc(2019, 3, 5, 6, 20)
    assert parse("2019년 3월 5일 오후 3:20", tz=SEOUL) == utc(2019, 3, 5, 6, 20)


def test_labelled_us_date_with_zone_abbreviation() -> None:
    assert parse("Updated 5:12 PM ET, Fri December 9, 2016") == utc(2016, 12, 9, 22, 12)
    assert parse("Dec 16, 2016, 4:19 PM EST") == utc(2016, 12, 16, 21, 19)
    assert parse("June 1, 2016 10:00 PT") == utc(2016, 6, 1, 17, 0)


def test_date_inside_a_byline_with_other_numbers() -> None:
    text = "Written by Michael Larabel in Valve on 1 June 2019 at 08:34 PM EDT. 51 Comments"
    assert parse(text) == utc(2019, 6, 2, 0, 34)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 hours ago", utc(2025, 6, 1, 9, 0)),
        ("an hour ago", utc(2025, 6, 1, 11, 0)),
        ("2 days ago", utc(2025, 5, 30, 12, 0)),
        ("vor 2 Stunden", utc(2025, 6, 1, 10, 0)),
        ("yesterday", utc(2025, 5, 31)),
        ("Yesterday at 10:30 pm", utc(2025, 5, 31, 22, 30)),
        ("just now", NOW),
    ],
)
def test_relative_dates_count_back_from_now(text: str, expected: datetime) -> None:
    assert parse(text) == expected


def test_relative_day_words_use_the_site_zone() -> None:
    assert parse("today 09:00", tz=SEOUL) == utc(2025, 6, 1, 0, 0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "no date here",
        "5:12 PM",  # a time without a day
        "December 9",  # no year: dateutil would take this year
        "December 2016",  # no day
        "Page 2 of 5",
        "1994-12-31",  # before 1995
        "2025-06-03T00:00:00Z",  # more than a day after now
        "9999999999999",
        "2016-13-45",
        "x" * 1000,
    ],
)
def test_missing_parts_old_and_future_dates_are_rejected(text: str) -> None:
    assert parse(text) is None


def test_a_day_ahead_is_tolerated_for_clock_skew() -> None:
    assert parse("2025-06-02T06:00:00Z") == utc(2025, 6, 2, 6, 0)


def test_huge_relative_amounts_do_not_overflow() -> None:
    assert parse("9999 years ago") is None


def test_numeric_offsets_parse_alike_on_repeated_calls() -> None:
    # _offset is memoised: the same offset text must give the same instant however often it is seen.
    utc, now = ZoneInfo("UTC"), datetime(2027, 1, 1, tzinfo=UTC)
    cases = {
        "2016-12-09T09:13:00+05:30": datetime(2016, 12, 9, 3, 43, tzinfo=UTC),
        "2016-12-09 09:13 -500": datetime(2016, 12, 9, 14, 13, tzinfo=UTC),
        "Mon, 12 Dec 2016 10:00:00 GMT": datetime(2016, 12, 12, 10, tzinfo=UTC),
    }
    for _ in range(2):
        assert {text: parse_date(text, tz=utc, now=now) for text in cases} == cases


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("04.03.2025", datetime(2025, 3, 3, 23, 0, tzinfo=UTC)),
        ("04.03.2025 14:30", datetime(2025, 3, 4, 13, 30, tzinfo=UTC)),
        ("05.03.2025 | 10:12", datetime(2025, 3, 5, 9, 12, tzinfo=UTC)),
        ("24.03.2025", datetime(2025, 3, 23, 23, 0, tzinfo=UTC)),
    ],
)
def test_dotted_dates_are_day_first(text: str, expected: datetime) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_date(text, tz=berlin, now=datetime(2025, 5, 20, 12, tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-14:00",  # past year 9999 once in UTC: OverflowError before the window check
        "0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
        "0000-01-01",  # year 0 does not exist
        "10000-01-01",
        "2020-01-01T10:00:00+99:00",  # no zone is 99 hours off
        "2020-01-01T10:00:00-24:00",
        "99999999999999",  # a Unix timestamp far past year 9999
        "9999999999999999999",
        "9999-12-31",
        "31.12.9999 23:59",
        "Dec 31, 9999 11:59 PM",
        "9999年12月31日 23時59分",
    ],
)
def test_dates_outside_any_calendar_or_zone_are_rejected_not_raised(text: str) -> None:
    for zone in (UTC_ZONE, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")):
        assert parse(text, tz=zone) is None
        assert parse(text, tz=zone, fmt="%Y-%m-%dT%H:%M:%S%z") is None


# ----------------------------------------------------------------------------------------------- hypothesis

ZONES = st.sampled_from([UTC_ZONE, SEOUL, NEW_YORK, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")])
FORMATS = st.sampled_from([None, "%Y-%m-%d", "%d.%m.%Y %H:%M", "%Y-%m-%dT%H:%M:%S%z", "%s", "%b %d, %Y"])
NOWS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=80)


def _mostly(low: int, high: int, *edges: int) -> st.SearchStrategy[int]:
    """Integers in the calendar's range, its edges, and anything up to 99999 now and then."""
    return st.one_of(st.integers(low, high), st.sampled_from(edges), st.integers(0, 99999))


_OFFSET = st.one_of(
    st.sampled_from(["", "Z", "z", "UTC", " GMT", " EST"]),
    st.builds(
        "{}{:02d}:{:02d}".format, st.sampled_from("+-"), _mostly(0, 14, 14, 23, 24, 99), st.integers(0, 99)
    ),
    st.builds("{}{}".format, st.sampled_from("+-"), st.integers(0, 99999)),
)
ISO_LIKE = st.builds(
    "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    _mostly(1995, 2030, 0, 1, 1994, 9999, 10000),
    _mostly(1, 12, 0, 12, 13),
    _mostly(1, 31, 0, 31, 32),
    st.sampled_from(["T", " ", "  "]),
    _mostly(0, 23, 0, 23, 24),
    _mostly(0, 59, 0, 59, 60),
    _mostly(0, 59, 0, 59, 60),
    st.sampled_from(["", ".5", ".123456789"]),
    _OFFSET,
)
TIMESTAMP_LIKE = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", " ", "-"]),
    st.integers(0, 10**20),
    st.sampled_from(["", ".0", ".999", "e9"]),
)


def _is_sane(found: datetime | None, now: datetime) -> bool:
    return found is None or (found.tzinfo is not None and EARLIEST <= found <= now + MAX_AHEAD)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(ANY_TEXT, ISO_LIKE, TIMESTAMP_LIKE), tz=ZONES, fmt=FORMATS, now=NOWS)
def test_any_text_gives_none_or_an_aware_date_inside_the_window(
    text: str, tz: ZoneInfo, fmt: str | None, now: datetime
) -> None:
    """parse_date never raises: whatever a page prints, the answer is None or a date in [1995, now + 1 day]."""
    assert _is_sane(parse_date(text, tz=tz, fmt=fmt, now=now), now)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    year=st.integers(1996, 2024),
    month=st.integers(1, 12),
    day=st.integers(1, 28),
    hours=st.integers(-12, 14),
)
def test_every_real_offset_in_the_window_parses_to_the_same_instant(
    year: int, month: int, day: int, hours: int
) -> None:
    """The other side of the window: a plain ISO date with any real zone offset is read, not rejected."""
    text = f"{year:04d}-{month:02d}-{day:02d}T12:00:00{hours:+03d}:00"
    assert parse(text) == datetime(year, month, day, 12, tzinfo=UTC) - timedelta(hours=hours)


# ------------------------------------------------------------- ambiguous numeric dates, locales, zones


@pytest.mark.parametrize(
    ("dayfirst", "expected"),
    [(True, utc(2019, 10, 2)), (False, utc(2019, 2, 10)), (None, utc(2019, 2, 10))],
)
def test_ambiguous_numeric_date_follows_dayfirst(dayfirst: bool | None, expected: datetime) -> None:
    assert parse_date("02/10/2019", tz=UTC_ZONE, now=NOW, dayfirst=dayfirst) == expected


def test_ambiguous_reading_in_the_future_gives_way_to_the_other() -> None:
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    # Month-first would be 3 November 2026, months ahead: 11 March it is, whatever the preference.
    assert parse_date("11/03/2026", tz=UTC_ZONE, now=now, dayfirst=False) == utc(2026, 3, 11)
    assert parse_date("11/03/2026", tz=UTC_ZONE, now=now) == utc(2026, 3, 11)
    # Unambiguous dates are never flipped: 13/03 cannot be month-first, and the future stays rejected.
    assert parse_date("03/13/2026", tz=UTC_ZONE, now=now, dayfirst=True) == utc(2026, 3, 13)
    assert parse_date("12/25/2026", tz=UTC_ZONE, now=now) is None


@pytest.mark.parametrize(
    ("locale", "zone", "expected"),
    [
        ("en-US", None, False),
        ("en_US", "Europe/London", False),  # the locale beats the zone
        ("en-GB", None, True),
        ("fr_FR", None, True),
        ("de", None, True),
        ("en", "America/Chicago", False),  # English alone: the zone decides
        ("en", "Europe/Dublin", True),
        ("en", "UTC", None),
        (None, "Asia/Kolkata", True),
        (None, None, None),
    ],
)
def test_reads_day_first_by_locale_then_zone(
    locale: str | None, zone: str | None, expected: bool | None
) -> None:
    assert reads_day_first(locale, zone) is expected


@pytest.mark.parametrize(
    ("locale", "zone"),
    [("ja", "Asia/Tokyo"), ("ja-JP", "Asia/Tokyo"), ("zh-TW", "Asia/Taipei"), ("zh-Hant", "Asia/Taipei"),
     ("en_GB", "Europe/London"), ("de-AT", "Europe/Vienna"), ("en", None), ("en-US", None), ("fr", None),
     ("pt-BR", None), (None, None)],
)  # fmt: skip
def test_zone_for_locale_names_one_zone_countries_only(locale: str | None, zone: str | None) -> None:
    assert zone_for_locale(locale) == zone
    if zone is not None:
        ZoneInfo(zone)  # a real IANA name


def test_dates_in_text_finds_full_dates_with_their_times() -> None:
    text = (
        "By Ann Smith December 16, 2016, 4:19 PM and Updated: 16. Oktober 2019, 10:00 Uhr; "
        "2019年04月04日 09:00 and 02/10/2019 EST, but not March 2019, 2019 or 3 hours ago"
    )
    assert dates_in_text(text, limit=10) == [
        "December 16, 2016, 4:19 PM",
        "16. Oktober 2019, 10:00 Uhr",
        "2019年04月04日 09:00",
        "02/10/2019",
    ]
    assert dates_in_text(text, limit=1) == ["December 16, 2016, 4:19 PM"]
    assert parse("December 16, 2016, 4:19 PM", tz=NEW_YORK) == utc(2016, 12, 16, 21, 19)
