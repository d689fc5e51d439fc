"""Business calendars at exact instants: hours, holidays, closures, DST, errors."""

from __future__ import annotations

import time as perf
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncd.businesstime.calendars import Calendar, CalendarError

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


def new_york(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)  # type: ignore[misc]


def make(hours: dict[str, Any], tz: str = "Europe/London", **holidays: Any) -> Calendar:
    cfg: dict[str, Any] = {"timezone": tz, "hours": hours}
    if holidays:
        cfg["holidays"] = holidays
    return Calendar.from_config("support", cfg)


OFFICE = {"mon-fri": ["09:00-18:00"]}
SPLIT = {"mon-fri": ["09:00-12:30", "13:30-18:00"]}
ALL_DAY = {"mon-sun": ["00:00-24:00"]}


@pytest.fixture
def office() -> Calendar:
    return make(OFFICE)


# ------------------------------------------------------------------------ add


def test_friday_evening_plus_an_hour_is_monday_morning(office: Calendar) -> None:
    assert office.add(london(2026, 3, 6, 17, 30), 60) == london(2026, 3, 9, 9, 30)


def test_monday_holiday_is_skipped() -> None:
    calendar = make(OFFICE, dates=["2026-03-09"])
    assert calendar.add(london(2026, 3, 6, 17, 30), 60) == london(2026, 3, 10, 9, 30)


def test_public_holidays_come_from_the_holidays_library() -> None:
    # Easter 2026 in England: Good Friday 3 April, Easter Monday 6 April.
    calendar = make(OFFICE, country="GB", subdiv="ENG")
    assert calendar.is_holiday(date(2026, 4, 3))
    assert calendar.add(london(2026, 4, 2, 17, 30), 60) == london(2026, 4, 7, 9, 30)
    # Boxing Day 2026 is a Saturday, so Monday 28 December is the substitute day.
    assert calendar.working_intervals(date(2026, 12, 28)) == []


def test_lunch_break_is_skipped() -> None:
    calendar = make(SPLIT)
    assert calendar.add(london(2026, 3, 9, 12, 0), 60) == london(2026, 3, 9, 14, 0)
    assert calendar.add(london(2026, 3, 9, 12, 45), 30) == london(2026, 3, 9, 14, 0)


def test_result_stays_at_the_end_of_a_working_interval() -> None:
    calendar = make(SPLIT)
    assert calendar.add(london(2026, 3, 9, 12, 0), 30) == london(2026, 3, 9, 12, 30)
    assert calendar.add(london(2026, 3, 9, 17, 0), 60) == london(2026, 3, 9, 18, 0)


def test_add_from_closed_time_starts_at_the_next_opening(office: Calendar) -> None:
    assert office.add(london(2026, 3, 7, 10, 0), 30) == london(2026, 3, 9, 9, 30)
    assert office.add(london(2026, 3, 9, 7, 0), 30) == london(2026, 3, 9, 9, 30)


def test_add_zero_is_identity(office: Calendar) -> None:
    saturday = london(2026, 3, 7, 10, 0)
    assert office.add(saturday, 0) == saturday


def test_add_negative_moves_backwards(office: Calendar) -> None:
    assert office.add(london(2026, 3, 9, 9, 30), -60) == london(2026, 3, 6, 17, 30)
    assert office.add(london(2026, 3, 9, 9, 30), -30) == london(2026, 3, 9, 9, 0)
    assert office.add(london(2026, 3, 7, 12, 0), -30) == london(2026, 3, 6, 17, 30)


def test_add_keeps_seconds(office: Calendar) -> None:
    start = london(2026, 3, 6, 17, 59, 30)
    assert office.add(start, 1) == london(2026, 3, 9, 9, 0, 30)


def test_add_accepts_any_timezone_and_answers_in_the_calendars(office: Calendar) -> None:
    result = office.add(datetime(2026, 7, 3, 16, 30, tzinfo=UTC), 60)  # Fri 17:30 BST
    assert result == london(2026, 7, 6, 9, 30)
    assert result.tzinfo is LONDON


def test_add_many_years_is_exact(office: Calendar) -> None:
    start = london(2026, 1, 5, 9, 0)
    minutes = 5 * 52 * 5 * 9 * 60
    end = office.add(start, minutes)
    assert office.between(start, end) == minutes
    assert office.add(end, -minutes) == start


def test_naive_instant_is_refused(office: Calendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        office.add(datetime(2026, 3, 6, 9), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        office.between(datetime(2026, 3, 6, 9), london(2026, 3, 6, 10))


# ------------------------------------------------------------------------ DST


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        ("Europe/London", date(2026, 3, 29), 23),
        ("Europe/London", date(2026, 10, 25), 25),
        ("America/New_York", date(2026, 3, 8), 23),
        ("America/New_York", date(2026, 11, 1), 25),
        ("Europe/London", date(2026, 3, 30), 24),
    ],
)
def test_full_day_counts_real_hours_on_dst_days(tz: str, day: date, hours: int) -> None:
    calendar = make(ALL_DAY, tz=tz)
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    assert calendar.between(start, end) == hours * 60
    [(open_at, close_at)] = calendar.working_intervals(day)
    assert (open_at, close_at) == (start, end)
    assert close_at.astimezone(UTC) - open_at.astimezone(UTC) == timedelta(hours=hours)


def test_add_across_spring_forward_counts_real_time() -> None:
    calendar = make(ALL_DAY)
    result = calendar.add(london(2026, 3, 28, 12, 0), 24 * 60)
    assert result.astimezone(UTC) == datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    assert result == london(2026, 3, 29, 13, 0)


def test_add_across_fall_back_counts_real_time() -> None:
    calendar = make(ALL_DAY, tz="America/New_York")
    result = calendar.add(new_york(2026, 11, 1, 0, 0), 24 * 60)
    assert result == new_york(2026, 11, 1, 23, 0)
    assert result.astimezone(UTC) == datetime(2026, 11, 2, 4, 0, tzinfo=UTC)


def test_office_hours_follow_local_time_across_dst() -> None:
    london_office = make(OFFICE)
    # Fri 27 March 17:00 GMT; the Monday after is in BST.
    result = london_office.add(london(2026, 3, 27, 17, 0), 120)
    assert result.astimezone(UTC) == datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    ny_office = make({"mon-fri": ["09:00-17:00"]}, tz="America/New_York")
    result = ny_office.add(new_york(2026, 3, 6, 16, 0), 120)
    assert result == new_york(2026, 3, 9, 10, 0)
    assert result.astimezone(UTC) == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)


def test_hours_inside_the_skipped_hour_do_not_exist() -> None:
    # New York skips 02:00-03:00 on 2026-03-08.
    calendar = make({"sun": ["01:00-04:00"]}, tz="America/New_York")
    assert calendar.working_intervals(date(2026, 3, 8)) == [
        (new_york(2026, 3, 8, 1, 0), new_york(2026, 3, 8, 4, 0))
    ]
    assert calendar.between(new_york(2026, 3, 8, 0), new_york(2026, 3, 9, 0)) == 120


def test_repeated_hour_is_open_twice() -> None:
    # New York repeats 01:00-02:00 on 2026-11-01; 01:30-01:45 occurs twice.
    calendar = make({"sun": ["01:30-01:45"]}, tz="America/New_York")
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert [
        (s.astimezone(UTC), e.astimezone(UTC))
        for s, e in calendar.working_intervals(date(2026, 11, 1))
    ] == [(first, first + timedelta(minutes=15)), (second, second + timedelta(minutes=15))]
    assert calendar.is_open(second + timedelta(minutes=5))
    assert not calendar.is_open(first + timedelta(minutes=30))
    assert calendar.add(first, 20) == (second + timedelta(minutes=5)).astimezone(NEW_YORK)


# ------------------------------------------------------------------------ is_open etc.


def test_is_open_boundaries() -> None:
    calendar = make(SPLIT)
    assert calendar.is_open(london(2026, 3, 9, 9, 0))
    assert not calendar.is_open(london(2026, 3, 9, 8, 59, 59))
    assert calendar.is_open(london(2026, 3, 9, 12, 29, 59))
    assert not calendar.is_open(london(2026, 3, 9, 12, 30))
    assert not calendar.is_open(london(2026, 3, 9, 18, 0))
    assert not calendar.is_open(london(2026, 3, 7, 10, 0))


def test_instant_inside_a_closure_is_closed() -> None:
    calendar = make(OFFICE, closures=[{"from": "2026-12-31T13:00", "to": "2027-01-01T00:00"}])
    assert calendar.is_open(london(2026, 12, 31, 12, 59))
    assert not calendar.is_open(london(2026, 12, 31, 13, 0))
    assert not calendar.is_open(london(2026, 12, 31, 17, 0))
    assert calendar.working_intervals(date(2026, 12, 31)) == [
        (london(2026, 12, 31, 9, 0), london(2026, 12, 31, 13, 0))
    ]
    assert calendar.add(london(2026, 12, 31, 12, 0), 90) == london(2027, 1, 1, 9, 30)


def test_closures_spanning_days_and_with_offsets() -> None:
    calendar = make(
        OFFICE,
        closures=[{"from": "2026-03-10T12:00+00:00", "to": datetime(2026, 3, 12, 10, 0)}],
    )
    assert calendar.working_intervals(date(2026, 3, 11)) == []
    assert calendar.add(london(2026, 3, 10, 11, 0), 120) == london(2026, 3, 12, 11, 0)


def test_next_open(office: Calendar) -> None:
    assert office.next_open(london(2026, 3, 9, 10, 0)) == london(2026, 3, 9, 10, 0)
    assert office.next_open(london(2026, 3, 7, 10, 0)) == london(2026, 3, 9, 9, 0)
    assert office.next_open(london(2026, 3, 9, 18, 0)) == london(2026, 3, 10, 9, 0)
    assert make(SPLIT).next_open(london(2026, 3, 9, 12, 40)) == london(2026, 3, 9, 13, 30)


def test_next_boundary(office: Calendar) -> None:
    assert office.next_boundary(london(2026, 3, 9, 10, 0)) == london(2026, 3, 9, 18, 0)
    assert office.next_boundary(london(2026, 3, 9, 9, 0)) == london(2026, 3, 9, 18, 0)
    assert office.next_boundary(london(2026, 3, 9, 18, 0)) == london(2026, 3, 10, 9, 0)
    assert office.next_boundary(london(2026, 3, 7, 0, 0)) == london(2026, 3, 9, 9, 0)


def test_next_boundary_joins_days_open_around_midnight() -> None:
    calendar = make({"mon-tue": ["00:00-24:00"], "wed": ["00:00-12:00"]})
    assert calendar.next_boundary(london(2026, 3, 9, 10, 0)) == london(2026, 3, 11, 12, 0)
    assert Calendar.always_open().next_boundary(london(2026, 3, 9, 10, 0)) is None


def test_between(office: Calendar) -> None:
    friday, monday = london(2026, 3, 6, 17, 30), london(2026, 3, 9, 9, 30)
    assert office.between(friday, monday) == 60
    assert office.between(monday, friday) == -60
    assert office.between(friday, friday) == 0
    assert office.between(london(2026, 3, 7, 1), london(2026, 3, 8, 23)) == 0
    assert office.between(london(2026, 3, 9, 9, 0), london(2026, 3, 9, 9, 0, 59)) == 0
    assert office.between(london(2026, 3, 9, 9, 0), london(2026, 3, 16, 9, 0)) == 5 * 9 * 60


def test_working_intervals_split_day_and_weekend() -> None:
    calendar = make(SPLIT)
    assert calendar.working_intervals(date(2026, 3, 9)) == [
        (london(2026, 3, 9, 9, 0), london(2026, 3, 9, 12, 30)),
        (london(2026, 3, 9, 13, 30), london(2026, 3, 9, 18, 0)),
    ]
    assert calendar.working_intervals(date(2026, 3, 8)) == []


def test_always_open() -> None:
    calendar = Calendar.always_open()
    assert calendar.name == "24x7"
    start = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    assert calendar.add(start, 90) == start + timedelta(minutes=90)
    assert calendar.add_days(start, 2) == start + timedelta(days=2)
    assert Calendar.always_open("ops", LONDON).tz is LONDON


def test_calendar_equality_and_hash() -> None:
    assert make(OFFICE) == make(OFFICE)
    assert make(OFFICE) != make(SPLIT)
    assert len({make(OFFICE), make(OFFICE)}) == 1


# ------------------------------------------------------------------------ add_days


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (london(2026, 3, 3, 15, 0), 3, london(2026, 3, 6, 15, 0)),  # Tue -> Fri
        (london(2026, 3, 6, 17, 30), 1, london(2026, 3, 9, 17, 30)),  # Fri -> Mon
        (london(2026, 3, 7, 10, 0), 1, london(2026, 3, 9, 18, 0)),  # Sat -> end of Mon
        (london(2026, 3, 3, 7, 0), 1, london(2026, 3, 3, 18, 0)),  # before opening
        (london(2026, 3, 3, 9, 0), 1, london(2026, 3, 3, 18, 0)),  # at opening
        (london(2026, 3, 3, 9, 1), 1, london(2026, 3, 4, 9, 1)),
        (london(2026, 3, 2, 20, 0), 1, london(2026, 3, 3, 18, 0)),  # Mon evening
        (london(2026, 3, 3, 18, 0), 2, london(2026, 3, 5, 18, 0)),  # at closing
        (london(2026, 3, 3, 15, 0), 5, london(2026, 3, 10, 15, 0)),
        (london(2026, 3, 3, 15, 0), 0, london(2026, 3, 3, 15, 0)),
        (london(2026, 3, 3, 15, 0), -3, london(2026, 2, 26, 15, 0)),  # Tue -> Thu before
        (london(2026, 3, 9, 9, 30), -1, london(2026, 3, 6, 9, 30)),  # Mon -> Fri
        (london(2026, 3, 3, 9, 0), -1, london(2026, 3, 2, 9, 0)),  # at opening
        (london(2026, 3, 3, 18, 0), -1, london(2026, 3, 3, 9, 0)),  # at closing
        (london(2026, 3, 8, 12, 0), -1, london(2026, 3, 6, 9, 0)),  # Sunday
    ],
)
def test_add_days_on_an_office_calendar(
    office: Calendar, start: datetime, days: int, expected: datetime
) -> None:
    assert office.add_days(start, days) == expected


def test_add_days_skips_holidays() -> None:
    calendar = make(OFFICE, country="GB", subdiv="ENG")
    # Thu 2 April 2026 + 1: Good Friday and Easter Monday are holidays.
    assert calendar.add_days(london(2026, 4, 2, 11, 0), 1) == london(2026, 4, 7, 11, 0)


def test_add_days_keeps_the_business_position_on_split_days() -> None:
    calendar = make(SPLIT)
    assert calendar.add_days(london(2026, 3, 3, 15, 0), 1) == london(2026, 3, 4, 15, 0)
    # In the lunch gap the position is "end of the morning".
    assert calendar.add_days(london(2026, 3, 3, 12, 45), 1) == london(2026, 3, 4, 12, 30)


def test_add_days_clamps_to_a_shorter_day() -> None:
    calendar = make({"mon-thu": ["09:00-18:00"], "fri": ["09:00-13:00"]})
    assert calendar.add_days(london(2026, 3, 5, 15, 0), 1) == london(2026, 3, 6, 13, 0)
    assert calendar.add_days(london(2026, 3, 5, 10, 0), 1) == london(2026, 3, 6, 10, 0)
    # A finished short day maps to the end of the next full day.
    assert calendar.add_days(london(2026, 3, 6, 13, 0), 1) == london(2026, 3, 9, 18, 0)


def test_add_days_equals_add_of_whole_days_on_uniform_calendars(office: Calendar) -> None:
    for start in (london(2026, 3, 3, 11, 17), london(2026, 3, 7, 3, 0), london(2026, 3, 9, 9)):
        assert office.add_days(start, 4) == office.add(start, 4 * 9 * 60)


# ------------------------------------------------------------------------ no working time


def test_calendar_without_hours_raises_instead_of_looping() -> None:
    calendar = make({})
    started = perf.perf_counter()
    with pytest.raises(CalendarError, match="no working time in the 1098 days from 2026-03-06"):
        calendar.add(london(2026, 3, 6, 9), 1)
    with pytest.raises(CalendarError, match="no working time"):
        calendar.add(london(2026, 3, 6, 9), -1)
    with pytest.raises(CalendarError, match="no working time"):
        calendar.next_open(london(2026, 3, 6, 9))
    with pytest.raises(CalendarError, match="no working time"):
        calendar.add_days(london(2026, 3, 6, 9), 1)
    assert calendar.next_boundary(london(2026, 3, 6, 9)) is None
    assert calendar.between(london(2026, 3, 6), london(2030, 3, 6)) == 0
    assert perf.perf_counter() - started < 5


def test_long_closure_raises() -> None:
    calendar = make(OFFICE, closures=[{"from": "2026-01-01T00:00", "to": "2031-01-01T00:00"}])
    with pytest.raises(CalendarError, match="'support' has no working time"):
        calendar.add(london(2026, 3, 6, 9), 60)


def test_add_is_fast_enough_for_a_large_backlog(office: Calendar) -> None:
    start = london(2026, 3, 2, 9, 0)
    started = perf.perf_counter()
    for i in range(20_000):
        office.add(start + timedelta(minutes=7 * i), 3 * 9 * 60)
    assert perf.perf_counter() - started < 10  # ~15 us each when idle


# ------------------------------------------------------------------------ config errors


def test_from_config_builds_the_documented_example() -> None:
    calendar = Calendar.from_config(
        "support",
        {
            "timezone": "Europe/London",
            "hours": {"mon-fri": ["09:00-12:30", "13:30-18:00"], "sat": ["10:00-14:00"]},
            "holidays": {
                "country": "GB",
                "subdiv": "ENG",
                "dates": [date(2026, 12, 24)],
                "closures": [{"from": "2026-12-31T13:00", "to": "2027-01-01T00:00"}],
            },
        },
    )
    assert calendar.name == "support"
    assert calendar.tz == LONDON
    assert calendar.weekly[0] == ((time(9), time(12, 30)), (time(13, 30), time(18)))
    assert calendar.weekly[5] == ((time(10), time(14)),)
    assert 6 not in calendar.weekly
    assert calendar.holiday_dates == frozenset({date(2026, 12, 24)})
    assert calendar.closures == (
        (datetime(2026, 12, 31, 13, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    )
    assert (calendar.country, calendar.subdiv) == ("GB", "ENG")


def test_midnight_end_is_accepted() -> None:
    calendar = make({"mon, wed": "18:00-24:00"})
    assert calendar.weekly == {0: ((time(18), time(0)),), 2: ((time(18), time(0)),)}
    assert calendar.working_intervals(date(2026, 3, 9)) == [
        (london(2026, 3, 9, 18, 0), london(2026, 3, 10, 0, 0))
    ]


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            {"timezone": "Europe/Londn", "hours": OFFICE},
            "calendars.support.timezone: unknown timezone 'Europe/Londn'",
        ),
        ({"hours": OFFICE}, "calendars.support.timezone: required"),
        ({"timezone": 5, "hours": OFFICE}, "calendars.support.timezone: unknown timezone 5"),
        ({"timezone": "UTC"}, "calendars.support.hours: required"),
        (
            {"timezone": "UTC", "hours": OFFICE, "hols": {}},
            "calendars.support: unknown key 'hols'",
        ),
        (
            {"timezone": "UTC", "hours": {"mon-fry": ["09:00-18:00"]}},
            "calendars.support.hours.mon-fry: bad day key 'mon-fry'",
        ),
        (
            {"timezone": "UTC", "hours": {"mon-fri": ["18:00-09:00"]}},
            "calendars.support.hours.mon-fri[0]: bad interval '18:00-09:00': end must be "
            "after start",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["18:00-00:00"]}},
            "write 24:00 for midnight",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-12:00", "11:00-14:00"]}},
            "calendars.support.hours.mon: intervals '09:00-12:00' and '11:00-14:00' overlap",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-12:00", "nine to five"]}},
            "calendars.support.hours.mon[1]: bad interval 'nine to five'",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-25:00"]}},
            "calendars.support.hours.mon[0]: bad interval '09:00-25:00'",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": 9}},
            "calendars.support.hours.mon: expected a list",
        ),
        (
            {"timezone": "UTC", "hours": {"mon-fri": ["09:00-18:00"], "fri": ["09:00-13:00"]}},
            "calendars.support.hours.fri: fri is already given by 'mon-fri'",
        ),
        (
            {"timezone": "UTC", "hours": OFFICE, "holidays": {"country": "XX"}},
            "calendars.support.holidays.country: unknown holiday country 'XX'",
        ),
        (
            {"timezone": "UTC", "hours": OFFICE, "holidays": {"country": "GB", "subdiv": "ZZ"}},
            "calendars.support.holidays.subdiv: unknown subdivision 'ZZ' for GB",
        ),
        (
            {"timezone": "UTC", "hours": OFFICE, "holidays": {"subdiv": "ENG"}},
            "calendars.support.holidays.subdiv: needs holidays.country",
        ),
        (
            {"timezone": "UTC", "hours": OFFICE, "holidays": {"dates": ["2026-02-30"]}},
            "calendars.support.holidays.dates[0]: bad date '2026-02-30'",
        ),
        (
            {"timezone": "UTC", "hours": OFFICE, "holidays": {"dates": "2026-12-24"}},
            "calendars.support.holidays.dates: expected a list",
        ),
        (
            {"timezone": "UTC", "hours": OFFICE, "holidays": {"closures": [{"from": "x"}]}},
            "calendars.support.holidays.closures[0].from: bad date-time 'x'",
        ),
        (
            {
                "timezone": "UTC",
                "hours": OFFICE,
                "holidays": {"closures": [{"from": "2026-12-31T13:00"}]},
            },
            "calendars.support.holidays.closures[0].to: bad date-time None",
        ),
        (
            {
                "timezone": "UTC",
                "hours": OFFICE,
                "holidays": {"closures": [{"from": "2026-12-31T13:00", "to": "2026-12-31T12:00"}]},
            },
            "calendars.support.holidays.closures[0]: 'to' ('2026-12-31T12:00') must be after",
        ),
        (
            {
                "timezone": "UTC",
                "hours": OFFICE,
                "holidays": {"closures": [{"from": "2026-12-31", "until": "2027-01-01"}]},
            },
            "calendars.support.holidays.closures[0]: unknown key 'until'",
        ),
        ("9 to 5", "calendars.support: expected a mapping"),
    ],
)
def test_from_config_errors_name_the_key_path(cfg: Any, message: str) -> None:
    with pytest.raises(CalendarError) as info:
        Calendar.from_config("support", cfg)
    assert message in str(info.value)


def test_calendar_error_is_a_value_error() -> None:
    assert issubclass(CalendarError, ValueError)


def test_country_and_subdivision_are_case_insensitive() -> None:
    calendar = make(OFFICE, country="gb", subdiv="eng")
    assert (calendar.country, calendar.subdiv) == ("GB", "ENG")
