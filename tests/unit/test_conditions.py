"""Conditions: every operator, null semantics, dotted paths, transitions, age and explanations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.calendars import Calendar
from syncd.durations import Offset, apply_offset
from syncd.rules.conditions import (
    Context,
    TimeMath,
    compile_condition,
    entered,
    next_change,
    resolve,
)

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # a Monday
SUPPORT = Calendar.from_config(
    "support",
    {
        "timezone": "Europe/London",
        "hours": {"mon-fri": ["09:00-12:30", "13:30-18:00"], "sat": ["10:00-14:00"]},
        "holidays": {"country": "GB", "subdiv": "ENG", "dates": ["2026-12-24"]},
    },
)
OFFICE = Calendar.from_config(
    "office", {"timezone": "Europe/London", "hours": {"mon-fri": ["09:00-18:00"]}}
)
TICKET = {
    "status": "open",
    "priority": "high",
    "tags": ["vip", "billing"],
    "subject": "Server DOWN in Leeds",
    "assignee_id": None,
    "custom": {"kind": "Training", "seats": 12},
    "Amount": 12_500.0,
    "CloseDate": "2026-03-31",
    "created_at": "2026-03-06T17:30:00+00:00",
    "ids": [4, 5],
}


def holds(
    condition: Any,
    fields: dict[str, Any] = TICKET,
    previous: Any = None,
    now: datetime = NOW,
    calendar: Calendar | None = SUPPORT,
) -> bool:
    return compile_condition(condition).test(Context(fields, previous, now, calendar))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"status": "open"}, True),
        ({"status": "new"}, False),
        ({"priority": ["urgent", "high"]}, True),
        ({"priority": {"not_in": ["urgent", "high"]}}, False),
        ({"status": {"ne": "closed"}}, True),
        ({"tags": {"contains": "vip"}}, True),
        ({"tags": {"lacks": "vip"}}, False),
        ({"tags": {"lacks": "syncd-triaged"}}, True),
        ({"tags": ["spam", "billing"]}, True),  # a list field: any element in the list
        ({"tags": {"not_in": ["spam"]}}, True),
        ({"subject": {"contains": "Leeds"}}, True),
        ({"subject": {"matches": "(?i)server down"}}, True),
        ({"subject": {"matches": "^down"}}, False),
        ({"tags": {"matches": "^bill"}}, True),
        ({"custom.seats": {"matches": "^1[0-9]$"}}, True),  # numbers match as text
        ({"custom.kind": {"in": ["Training", "Other"]}}, True),
        ({"custom.kind": "training"}, False),  # case-sensitive
        ({"ids.1": 5}, True),
        ({"Amount": {"gte": 10000}}, True),
        ({"Amount": {"gt": 10000, "lt": 12000}}, False),
        ({"custom.seats": {"lte": 12}}, True),
        ({"CloseDate": {"gte": "2026-03-31"}}, True),  # ISO text against a date
        ({"CloseDate": {"lt": date(2026, 3, 31)}}, False),
        ({"created_at": {"lt": "2026-03-06T18:00:00"}}, True),  # naive rule time: London
        ({"created_at": {"gt": date(2026, 3, 6)}}, True),
        ({"CloseDate": "2026-03-31"}, True),
        ({"status": {"gt": 3}}, False),  # mixed kinds: false, never an exception
        ({"Amount": {"gt": date(2026, 1, 1)}}, False),
    ],
)
def test_operators(condition: dict[str, Any], expected: bool) -> None:
    assert holds(condition) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"assignee_id": None}, True),
        ({"assignee_id": {"eq": None}}, True),
        ({"nowhere": {"exists": False}}, True),
        ({"assignee_id": {"exists": True}}, False),
        ({"nowhere": {"ne": "x"}}, True),
        ({"nowhere": {"not_in": ["x"]}}, True),
        ({"nowhere": {"lacks": "vip"}}, True),
        ({"nowhere": {"contains": "vip"}}, False),
        ({"nowhere": {"matches": ".*"}}, False),
        ({"nowhere": {"gt": 0}}, False),
        ({"nowhere": {"lt": 0}}, False),
        ({"nowhere": {"older_than": "1h"}}, False),
        ({"nowhere": {"newer_than": "1h"}}, False),
        ({"custom.missing.deeper": {"exists": False}}, True),
        ({"status.deeper": {"exists": False}}, True),
    ],
)
def test_null_and_missing_fields(condition: dict[str, Any], expected: bool) -> None:
    assert holds(condition) is expected


def test_logic_all_any_not_and_implicit_and() -> None:
    assert holds({"status": "open", "any": [{"priority": "low"}, {"tags": {"contains": "vip"}}]})
    assert not holds({"status": "open", "not": {"tags": {"contains": "vip"}}})
    assert holds({"all": [{"status": "open"}, {"not": {"priority": "low"}}]})
    assert not holds({"any": [{"status": "new"}, {"priority": "low"}]})


@pytest.mark.parametrize(
    ("test", "now", "expected"),
    [
        ({"older_than": "2h"}, datetime(2026, 3, 6, 19, 30, tzinfo=UTC), True),  # inclusive
        ({"older_than": "2h"}, datetime(2026, 3, 6, 19, 29, tzinfo=UTC), False),
        ({"newer_than": "2h"}, datetime(2026, 3, 6, 19, 29, tzinfo=UTC), True),
        ({"older_than": "1 business_hour"}, datetime(2026, 3, 9, 9, 29, tzinfo=UTC), False),
        ({"older_than": "1 business_hour"}, datetime(2026, 3, 9, 9, 30, tzinfo=UTC), True),
        ({"older_than": "3 business_days"}, datetime(2026, 3, 11, 17, 29, tzinfo=UTC), False),
        ({"older_than": "3 business_days"}, datetime(2026, 3, 11, 17, 30, tzinfo=UTC), True),
    ],
)
def test_age_wall_and_business(test: dict[str, str], now: datetime, expected: bool) -> None:
    assert holds({"created_at": test}, now=now, calendar=OFFICE) is expected


def test_business_age_needs_no_exception_on_dates() -> None:
    fields = {"CloseDate": date(2026, 3, 6)}  # a date is 00:00 London
    assert holds({"CloseDate": {"older_than": "1d"}}, fields, now=datetime(2026, 3, 7, tzinfo=UTC))


def test_changed_and_became_need_a_previous_version() -> None:
    before = {**TICKET, "status": "new", "tags": ["vip"]}
    assert holds({"status": {"changed": True}}, previous=before)
    assert not holds({"priority": {"changed": True}}, previous=before)
    assert holds({"tags": {"changed": True}}, previous=before)
    assert not holds({"status": {"changed": True}})  # first sight: no transition
    assert holds({"status": {"changed": False}})
    assert holds({"status": {"became": "open"}}, previous=before)
    assert holds({"status": {"became": ["open", "pending"]}}, previous=before)
    assert not holds({"status": {"became": "open"}}, previous=TICKET)
    assert not holds({"status": {"became": "open"}})
    assert holds({"Amount": {"became": {"gte": 10000}}}, previous={"Amount": 9000})
    assert not holds({"Amount": {"became": {"gte": 10000}}}, previous={"Amount": 10000})


def test_explanation_names_the_deciding_values() -> None:
    condition = compile_condition(
        {
            "status": "open",
            "any": [{"priority": "low"}, {"tags": {"contains": "vip"}}],
            "group_id": {"changed": True},
        }
    )
    ctx = Context(TICKET | {"group_id": 7}, TICKET | {"group_id": 3}, NOW, SUPPORT)
    assert condition.explain(ctx) == (
        True,
        {"status": "open", "tags": ["vip", "billing"], "group_id": 7, "group_id (previous)": 3},
    )
    failing = compile_condition({"status": "open", "priority": "low", "Amount": {"lt": 5}})
    assert failing.explain(ctx) == (False, {"priority": "high", "Amount": 12500.0})


def test_next_change_and_entered_find_exact_instants() -> None:
    condition = compile_condition(
        {"status": "open", "created_at": {"older_than": "1 business_hour"}}
    )
    friday = datetime(2026, 3, 6, 17, 45, tzinfo=UTC)
    monday = datetime(2026, 3, 9, 9, 30, tzinfo=UTC)
    ctx = Context(TICKET, None, friday, OFFICE)
    assert next_change(condition, ctx) == monday
    later = Context(TICKET, None, monday + timedelta(hours=3), OFFICE)
    assert next_change(condition, later) is None
    assert entered(condition, later, since=friday) == monday
    assert entered(condition, later, since=monday + timedelta(hours=1)) == monday + timedelta(
        hours=1
    )
    window = compile_condition({"created_at": {"newer_than": "2h"}})
    assert next_change(window, ctx) == datetime(2026, 3, 6, 19, 30, tzinfo=UTC)


def test_equalities_feed_the_engine_index() -> None:
    condition = compile_condition(
        {
            "status": ["new", "open"],
            "all": [{"status": "open"}],
            "priority": {"ne": "low"},
            "any": [{"group_id": 1}],
        }
    )
    assert condition.equalities() == {"status": frozenset({"open"})}


def test_invalid_conditions_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        compile_condition({"status": {"equals": "x"}})
    with pytest.raises(ValueError, match="regular expression"):
        compile_condition({"subject": {"matches": "("}})


def test_resolve_prefers_a_literal_dotted_key() -> None:
    assert resolve({"a.b": 1, "a": {"b": 2}}, "a.b") == 1
    assert resolve({"a": [{"b": 3}]}, "a.0.b") == 3
    assert resolve({"a": [1]}, "a.7") is None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    start=st.integers(min_value=0, max_value=500 * 24 * 60),
    amount=st.integers(min_value=-5000, max_value=5000),
    unit=st.sampled_from(
        [
            "business_minutes",
            "business_hours",
            "minutes",
            "days",
            "weeks",
            "months",
            "business_days",
        ]
    ),
)
def test_time_math_equals_apply_offset(start: int, amount: int, unit: str) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=start, seconds=start % 59)
    if unit in ("business_hours", "days", "weeks", "months", "business_days"):
        amount //= 40
    offset = Offset(amount, unit)  # type: ignore[arg-type]
    math = TimeMath(SUPPORT)
    assert math.shift(at, offset) == apply_offset(at.astimezone(SUPPORT.tz), offset, SUPPORT)
