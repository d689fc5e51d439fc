"""Properties of business-time arithmetic on random calendars (hypothesis, derandomized).

Calendars use real timezones (with DST, half-hour offsets and a midnight DST change), random
split hours, extra holiday dates, public holidays and partial closures; instants cluster
around DST changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.businesstime.calendars import Calendar

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TIMEZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # DST changes at midnight
    "UTC",
]
DST_DAYS = [
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 4, 5, tzinfo=UTC),
    datetime(2026, 9, 6, tzinfo=UTC),
    datetime(2026, 10, 4, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
]
MICROSECOND = timedelta(microseconds=1)


def _hhmm(quarter: int) -> str:
    return "24:00" if quarter == 96 else f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"


@st.composite
def day_hours(draw: st.DrawFn, lo: int = 0, hi: int = 96) -> list[str]:
    """0-3 sorted, non-overlapping intervals on a quarter-hour grid."""
    points = sorted(draw(st.lists(st.integers(lo, hi), unique=True, max_size=6)))
    return [f"{_hhmm(a)}-{_hhmm(b)}" for a, b in zip(points[::2], points[1::2], strict=False)]


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    hours = {name: draw(day_hours()) for name in names}
    if not any(hours.values()):
        hours["wed"] = ["09:00-17:00"]
    holidays: dict[str, Any] = {
        "dates": draw(st.lists(st.dates(date(2025, 12, 1), date(2027, 2, 1)), max_size=8)),
    }
    closures = []
    for _ in range(draw(st.integers(0, 2))):
        start = draw(st.datetimes(datetime(2025, 12, 1), datetime(2027, 2, 1)))
        length = timedelta(minutes=draw(st.integers(1, 3 * 24 * 60)))
        closures.append({"from": start.isoformat(), "to": (start + length).isoformat()})
    holidays["closures"] = closures
    country = draw(st.sampled_from([None, ("GB", "ENG"), ("US", "NY"), ("AU", "NSW")]))
    if country:
        holidays["country"], holidays["subdiv"] = country
    return Calendar.from_config(
        "random",
        {"timezone": draw(st.sampled_from(TIMEZONES)), "hours": hours, "holidays": holidays},
    )


@st.composite
def uniform_calendars(draw: st.DrawFn) -> Calendar:
    """Every working day has the same hours, away from the night-time DST changes."""
    hours = draw(day_hours(lo=16, hi=92).filter(bool))
    days = draw(st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])))
    tz = draw(st.sampled_from(["Europe/London", "America/New_York", "Asia/Kolkata", "UTC"]))
    dates = draw(st.lists(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=5))
    return Calendar.from_config(
        "uniform",
        {
            "timezone": tz,
            "hours": {",".join(sorted(set(days)) or ["wed"]): hours},
            "holidays": {"dates": dates},
        },
    )


near_dst = st.builds(
    lambda day, minutes: day + timedelta(minutes=minutes),
    st.sampled_from(DST_DAYS),
    st.integers(-3 * 24 * 60, 3 * 24 * 60),
)
anywhere = st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC))
instants = st.one_of(near_dst, anywhere)
minutes = st.one_of(st.integers(0, 600), st.integers(0, 20_000))


def _is_interval_end(calendar: Calendar, at: datetime) -> bool:
    day = at.astimezone(calendar.tz).date()
    return any(
        end == at
        for d in (day - timedelta(days=1), day)
        for _, end in calendar.working_intervals(d)
    )


def _wall_oracle(calendar: Calendar, at: datetime) -> bool:
    """is_open computed independently, from the local wall clock."""
    local = at.astimezone(calendar.tz)
    if calendar.is_holiday(local.date()) or any(s <= at < e for s, e in calendar.closures):
        return False
    now = local.time().replace(tzinfo=None)
    return any(
        start <= now and (end == time(0) or now < end)
        for start, end in calendar.weekly.get(local.weekday(), ())
    )


@SETTINGS
@given(calendars(), instants, minutes)
def test_measuring_an_added_duration_gives_it_back(calendar: Calendar, t: datetime, m: int) -> None:
    result = calendar.add(t, m)
    assert calendar.between(t, result) == m
    # From closed time, the clock starts at the next opening.
    assert calendar.between(calendar.next_open(t), result) == m
    if m > 0:
        assert calendar.add(calendar.next_open(t), m) == result


@SETTINGS
@given(calendars(), instants, minutes)
def test_subtracting_then_measuring_gives_it_back(calendar: Calendar, t: datetime, m: int) -> None:
    result = calendar.add(t, -m)
    assert result <= t
    assert calendar.between(result, t) == m
    assert calendar.between(t, result) == -m
    if m > 0:
        assert calendar.is_open(result)  # latest such instant: inside or at an opening


@SETTINGS
@given(calendars(), instants, st.integers(1, 20_000))
def test_results_never_fall_outside_working_time(calendar: Calendar, t: datetime, m: int) -> None:
    result = calendar.add(t, m)
    assert result > t
    # Open, or exactly the end of a working interval, and the moment before was working time.
    assert calendar.is_open(result) or _is_interval_end(calendar, result)
    assert calendar.is_open(result - MICROSECOND)


@SETTINGS
@given(calendars(), instants, instants, minutes)
def test_add_is_monotonic_in_the_start(
    calendar: Calendar, t1: datetime, t2: datetime, m: int
) -> None:
    t1, t2 = sorted((t1, t2))
    assert calendar.add(t1, m) <= calendar.add(t2, m)
    assert calendar.add(t1, -m) <= calendar.add(t2, -m)


@SETTINGS
@given(calendars(), instants, minutes, minutes)
def test_add_is_monotonic_in_the_duration(
    calendar: Calendar, t: datetime, m1: int, m2: int
) -> None:
    m1, m2 = sorted((m1, m2))
    assert calendar.add(t, m1) <= calendar.add(t, m2)
    assert calendar.add(t, -m2) <= calendar.add(t, -m1)


@SETTINGS
@given(calendars(), instants, instants, st.integers(-15, 15))
def test_add_days_is_monotonic_in_the_start(
    calendar: Calendar, t1: datetime, t2: datetime, n: int
) -> None:
    t1, t2 = sorted((t1, t2))
    assert calendar.add_days(t1, n) <= calendar.add_days(t2, n)


@SETTINGS
@given(calendars(), instants, st.integers(-15, 15), st.integers(-15, 15))
def test_add_days_is_monotonic_in_the_count(
    calendar: Calendar, t: datetime, n1: int, n2: int
) -> None:
    n1, n2 = sorted((n1, n2))
    assert calendar.add_days(t, n1) <= calendar.add_days(t, n2)


@SETTINGS
@given(calendars(), instants, st.integers(1, 15))
def test_add_days_lands_in_working_time(calendar: Calendar, t: datetime, n: int) -> None:
    later = calendar.add_days(t, n)
    assert later > t
    assert calendar.is_open(later) or _is_interval_end(calendar, later)
    assert calendar.is_open(later - MICROSECOND)
    earlier = calendar.add_days(t, -n)
    assert earlier < t
    assert calendar.is_open(earlier)


@SETTINGS
@given(uniform_calendars(), instants, st.integers(1, 10))
def test_add_days_equals_whole_days_of_minutes_on_uniform_calendars(
    calendar: Calendar, t: datetime, n: int
) -> None:
    length = next(v for v in calendar.weekly.values())
    day_minutes = sum(
        (e.hour * 60 + e.minute or 24 * 60) - (s.hour * 60 + s.minute) for s, e in length
    )
    assert calendar.add_days(t, n) == calendar.add(t, n * day_minutes)
    assert calendar.add_days(t, -n) == calendar.add(t, -n * day_minutes)


@SETTINGS
@given(calendars(), instants)
def test_is_open_matches_the_local_wall_clock(calendar: Calendar, t: datetime) -> None:
    assert calendar.is_open(t) == _wall_oracle(calendar, t)
    opening = calendar.next_open(t)
    assert calendar.is_open(opening)
    assert calendar.between(t, opening) == 0
    assert opening == t or not calendar.is_open(t)


@SETTINGS
@given(calendars(), st.sampled_from(DST_DAYS), st.integers(0, 14))
def test_is_open_matches_the_wall_clock_all_around_a_dst_change(
    calendar: Calendar, day: datetime, shift: int
) -> None:
    for quarter in range(-4 * 24, 4 * 48):
        t = day + timedelta(minutes=15 * quarter + shift)
        assert calendar.is_open(t) == _wall_oracle(calendar, t), t


@SETTINGS
@given(calendars(), instants, st.integers(0, 3))
def test_add_reaches_interval_ends_and_starts_exactly(
    calendar: Calendar, t: datetime, days_ahead: int
) -> None:
    t = t.replace(second=0, microsecond=0)
    day = t.astimezone(calendar.tz).date() + timedelta(days=days_ahead)
    for start, end in calendar.working_intervals(day):
        if start > t:
            assert calendar.add(t, calendar.between(t, end)) == end
            assert calendar.add(end, -calendar.between(start, end)) == start
            assert calendar.add(start, -calendar.between(t, start)) == calendar.next_open(t)


@SETTINGS
@given(calendars(), instants)
def test_next_boundary_is_the_next_change(calendar: Calendar, t: datetime) -> None:
    boundary = calendar.next_boundary(t)
    if boundary is None:
        return
    assert boundary > t
    assert calendar.is_open(boundary) != calendar.is_open(t)
    assert calendar.is_open(boundary - MICROSECOND) == calendar.is_open(t)
    if calendar.is_open(t):
        assert calendar.between(t, boundary) == (boundary - t) // timedelta(minutes=1)
    else:
        assert calendar.between(t, boundary) == 0


@SETTINGS
@given(calendars(), instants, instants, instants)
def test_between_adds_up_on_whole_minutes(
    calendar: Calendar, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = (x.replace(second=0, microsecond=0) for x in (a, b, c))
    assert calendar.between(a, c) == calendar.between(a, b) + calendar.between(b, c)
    assert calendar.between(a, b) == -calendar.between(b, a)


@SETTINGS
@given(calendars(), st.dates(date(2026, 1, 1), date(2026, 12, 31)))
def test_working_intervals_are_ordered_and_inside_the_local_day(
    calendar: Calendar, day: date
) -> None:
    intervals = calendar.working_intervals(day)
    for (_, end), (start, _) in pairwise(intervals):
        assert end < start
    for start, end in intervals:
        assert start < end
        assert start.astimezone(calendar.tz).date() == day
        assert (end - MICROSECOND).astimezone(calendar.tz).date() == day
        assert calendar.is_open(start)
        assert calendar.is_open(end - MICROSECOND)
