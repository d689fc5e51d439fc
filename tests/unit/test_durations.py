"""Offsets, periods, weekdays, times of day, and wall/business offset arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.businesstime.calendars import Calendar
from syncd.businesstime.durations import (
    DurationError,
    Offset,
    apply_offset,
    local_instant,
    parse_offset,
    parse_period,
    parse_time_of_day,
    parse_weekdays,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("90m", 90, "minutes"),
        ("24h", 24, "hours"),
        ("2d", 2, "days"),
        ("6w", 6, "weeks"),
        ("-2w", -2, "weeks"),
        ("+100d", 100, "days"),
        ("0d", 0, "days"),
        ("6 months", 6, "months"),
        ("1 month", 1, "months"),
        ("1 business_hour", 1, "business_hours"),
        ("90 business_minutes", 90, "business_minutes"),
        ("3 business_days", 3, "business_days"),
        ("1 business_day", 1, "business_days"),
        ("2 business days", 2, "business_days"),
        ("  5 hours ", 5, "hours"),
        ("1 Week", 1, "weeks"),
        ("15 min", 15, "minutes"),
        ("-1 MONTH", -1, "months"),
        ("3business_days", 3, "business_days"),
    ],
)
def test_parse_offset_accepts(text: str, amount: int, unit: str) -> None:
    assert parse_offset(text) == Offset(amount, unit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0", "a unit is required; write e.g. '0d' or '0h'"),
        (0, "a unit is required; write e.g. '0d' or '0h'"),
        (15, "a unit is required; write e.g. '15d' or '15h'"),
        (" -5 ", "a unit is required; write e.g. '-5d' or '-5h'"),
        (True, "expected a signed whole number and one unit"),
        (None, "expected a signed whole number and one unit"),
        (1.5, "expected a signed whole number and one unit"),
        ("1.5h", "fractions are not accepted"),
        (".5d", "fractions are not accepted"),
        ("5 fortnights", "unknown unit 'fortnights'"),
        ("5M", "unknown unit 'M'"),
        ("24H", "unknown unit 'H'"),
        ("2 business", "unknown unit 'business'"),
        ("abc", "expected a signed whole number and one unit"),
        ("", "expected a signed whole number and one unit"),
        ("2d3h", "expected a signed whole number and one unit"),
        ("- 2w", "expected a signed whole number and one unit"),
        ("--2w", "expected a signed whole number and one unit"),
        ("1e3m", "expected a signed whole number and one unit"),
        ("99999d", "out of range"),
    ],
)
def test_parse_offset_rejects(text: object, fragment: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_offset(text)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert repr(text) in str(info.value)


def test_duration_error_is_a_value_error() -> None:
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (Offset(90, "minutes"), "90m"),
        (Offset(-2, "weeks"), "-2w"),
        (Offset(0, "days"), "0d"),
        (Offset(1, "months"), "1 month"),
        (Offset(-6, "months"), "-6 months"),
        (Offset(1, "business_hours"), "1 business_hour"),
        (Offset(-1, "business_days"), "-1 business_day"),
        (Offset(90, "business_minutes"), "90 business_minutes"),
    ],
)
def test_offset_canonical_text(offset: Offset, text: str) -> None:
    assert str(offset) == text


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.integers(min_value=-1000, max_value=1000),
    st.sampled_from(
        [
            "minutes",
            "hours",
            "days",
            "weeks",
            "months",
            "business_minutes",
            "business_hours",
            "business_days",
        ]
    ),
)
def test_canonical_text_parses_back(amount: int, unit: str) -> None:
    offset = Offset(amount, unit)  # type: ignore[arg-type]
    assert parse_offset(str(offset)) == offset


def test_offset_properties() -> None:
    assert parse_offset("-2w").sign == -1
    assert parse_offset("0d").sign == 0
    assert parse_offset("+3h").sign == 1
    assert parse_offset("3 business_days").is_business
    assert not parse_offset("3d").is_business


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("every 6 months", Offset(6, "months")),
        ("every 2w", Offset(2, "weeks")),
        ("EVERY 1 business_day", Offset(1, "business_days")),
        ("2w", Offset(2, "weeks")),
    ],
)
def test_parse_period_accepts(text: str, expected: Offset) -> None:
    assert parse_period(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("every -2w", "must be positive"),
        ("every 0d", "must be positive"),
        ("every", "expected 'every' and a positive duration"),
        ("every week", "expected 'every' and a positive duration"),
        (6, "expected text such as 'every 6 months'"),
    ],
)
def test_parse_period_rejects(text: object, fragment: str) -> None:
    with pytest.raises(DurationError, match="invalid period") as info:
        parse_period(text)  # type: ignore[arg-type]
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["MON", "WED", "FRI"], {0, 2, 4}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("mon,wed", {0, 2}),
        ("Sat-Sun", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        (["monday", "tue-wed"], {0, 1, 2}),
        (" sun ", {6}),
    ],
)
def test_parse_weekdays(value: str | list[str], expected: set[int]) -> None:
    assert parse_weekdays(value) == frozenset(expected)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("funday", "unknown day 'funday'"),
        ([], "expected day names"),
        ("mon-wed-fri", "bad range 'mon-wed-fri'"),
        ([1], "1 is not a day name"),
        ("", "unknown day ''"),
    ],
)
def test_parse_weekdays_rejects(value: object, fragment: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_weekdays(value)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_parse_time_of_day() -> None:
    assert parse_time_of_day("09:00") == time(9, 0)
    assert parse_time_of_day(" 9:05 ") == time(9, 5)
    assert parse_time_of_day("23:59") == time(23, 59)
    assert parse_time_of_day(time(7, 30)) == time(7, 30)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("24:00", "expected HH:MM"),
        ("9", "expected HH:MM"),
        ("09:60", "expected HH:MM"),
        ("9am", "expected HH:MM"),
        (630, "quote it"),
    ],
)
def test_parse_time_of_day_rejects(value: object, fragment: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_time_of_day(value)  # type: ignore[arg-type]
    assert fragment in str(info.value)


# ------------------------------------------------------------------------ apply_offset


def at(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[misc]


def test_hours_are_absolute_across_spring_forward() -> None:
    # London: clocks go 01:00 GMT -> 02:00 BST on Sunday 2026-03-29.
    anchor = at(LONDON, 2026, 3, 28, 9)
    result = apply_offset(anchor, parse_offset("24h"), None)
    assert result == at(LONDON, 2026, 3, 29, 10)
    assert result.astimezone(UTC) - anchor.astimezone(UTC) == timedelta(hours=24)


def test_days_keep_local_wall_time_across_dst() -> None:
    assert apply_offset(at(LONDON, 2026, 3, 28, 9), parse_offset("1d")) == at(
        LONDON, 2026, 3, 29, 9
    )
    assert apply_offset(at(NEW_YORK, 2026, 10, 31, 9), parse_offset("1d")) == at(
        NEW_YORK, 2026, 11, 1, 9
    )
    assert apply_offset(at(NEW_YORK, 2026, 3, 1, 9), parse_offset("2w")) == at(
        NEW_YORK, 2026, 3, 15, 9
    )


def test_negative_and_zero_offsets() -> None:
    anchor = at(LONDON, 2026, 4, 20, 0)
    assert apply_offset(anchor, parse_offset("-2w")) == at(LONDON, 2026, 4, 6, 0)
    assert apply_offset(anchor, parse_offset("0d")) == anchor
    assert apply_offset(anchor, parse_offset("-90m")) == at(LONDON, 2026, 4, 19, 22, 30)


def test_wall_time_in_dst_gap_moves_forward_by_the_gap() -> None:
    # 01:30 on 2026-03-29 does not exist in London: it becomes 02:30 BST.
    result = apply_offset(at(LONDON, 2026, 3, 28, 1, 30), parse_offset("1d"))
    assert result.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert (result.hour, result.minute) == (2, 30)


def test_ambiguous_wall_time_takes_first_occurrence() -> None:
    # 01:30 on 2026-11-01 happens twice in New York: EDT (05:30Z) first.
    result = apply_offset(at(NEW_YORK, 2026, 10, 31, 1, 30), parse_offset("1d"))
    assert result.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("anchor", "text", "expected"),
    [
        ((2026, 1, 31, 9), "1 month", (2026, 2, 28, 9)),
        ((2028, 1, 31, 9), "1 month", (2028, 2, 29, 9)),
        ((2026, 3, 31, 9), "-1 month", (2026, 2, 28, 9)),
        ((2026, 8, 31, 9), "6 months", (2027, 2, 28, 9)),
        ((2026, 12, 15, 9), "1 month", (2027, 1, 15, 9)),
        ((2026, 1, 15, 9), "-13 months", (2024, 12, 15, 9)),
        ((2026, 1, 15, 9), "120 months", (2036, 1, 15, 9)),
    ],
)
def test_months_clamp_to_month_end(
    anchor: tuple[int, ...], text: str, expected: tuple[int, ...]
) -> None:
    assert apply_offset(at(LONDON, *anchor), parse_offset(text)) == at(LONDON, *expected)


def test_result_keeps_the_anchor_timezone() -> None:
    calendar = Calendar.from_config(
        "support", {"timezone": "Europe/London", "hours": {"mon-fri": ["09:00-18:00"]}}
    )
    anchor = datetime(2026, 3, 6, 17, 30, tzinfo=UTC)  # Friday
    result = apply_offset(anchor, parse_offset("1 business_hour"), calendar)
    assert result.tzinfo is UTC
    assert result == datetime(2026, 3, 9, 9, 30, tzinfo=UTC)
    assert apply_offset(anchor, parse_offset("2h")).tzinfo is UTC


def test_business_units_go_through_the_calendar() -> None:
    calendar = Calendar.from_config(
        "support", {"timezone": "Europe/London", "hours": {"mon-fri": ["09:00-18:00"]}}
    )
    friday = at(LONDON, 2026, 3, 6, 17, 30)
    assert apply_offset(friday, parse_offset("60 business_minutes"), calendar) == at(
        LONDON, 2026, 3, 9, 9, 30
    )
    assert apply_offset(friday, parse_offset("2 business_hours"), calendar) == at(
        LONDON, 2026, 3, 9, 10, 30
    )
    assert apply_offset(friday, parse_offset("1 business_day"), calendar) == at(
        LONDON, 2026, 3, 9, 17, 30
    )
    assert apply_offset(friday, parse_offset("-1 business_hour"), calendar) == at(
        LONDON, 2026, 3, 6, 16, 30
    )


def test_business_units_need_a_calendar() -> None:
    with pytest.raises(DurationError, match="'3 business_days' counts business time"):
        apply_offset(at(LONDON, 2026, 3, 6, 9), parse_offset("3 business_days"), None)


def test_naive_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_offset(datetime(2026, 3, 6, 9), parse_offset("1d"))


def test_out_of_range_result_is_a_duration_error() -> None:
    with pytest.raises(DurationError, match="out of range"):
        apply_offset(datetime(9999, 12, 1, tzinfo=UTC), parse_offset("2 months"))


def test_local_instant_for_date_anchors() -> None:
    assert local_instant(date(2026, 3, 2), time(0), LONDON) == at(LONDON, 2026, 3, 2, 0)
    assert local_instant(date(2026, 7, 2), time(9), NEW_YORK).astimezone(UTC) == datetime(
        2026, 7, 2, 13, 0, tzinfo=UTC
    )
    # 02:30 does not exist in New York on 2026-03-08: it moves forward by the gap.
    assert local_instant(date(2026, 3, 8), time(2, 30), NEW_YORK) == at(NEW_YORK, 2026, 3, 8, 3, 30)
    # 01:30 happens twice on 2026-11-01: the first (EDT) one is taken.
    assert local_instant(date(2026, 11, 1), time(1, 30), NEW_YORK).astimezone(UTC) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
