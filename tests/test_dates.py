"""dates.parse_date: every printed form we support, the zone rules, and what must be rejected."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from feedmaker.dates import parse_date

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


def test_results_are_tz_aware_utc() -> None:
    found = parse("2016-12-09T09:13:00+09:00")
    assert found is not None
    assert found.utcoffset() is not None
    assert found.tzinfo == UTC


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
