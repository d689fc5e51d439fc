"""Conditions: every operator, null semantics, dotted paths, transitions, age and explanations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.businesstime.calendars import Calendar
from syncd.businesstime.durations import Offset, apply_offset
from syncd.businesstime.spans import TimeMath, from_micros, micros
from syncd.rules.conditions import (
    Context,
    compile_condition,
    compile_test,
    entered,
    next_change,
    resolve,
)

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # a Monday
_US = timedelta(microseconds=1)
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


# ----------------------------------------------------------------------------- compiled tests

PATHS = ["status", "tags", "custom.kind", "custom.seats", "ids.1", "a.b.c", "subject", "n"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 20),
    st.floats(-3, 20, allow_nan=False),
    st.sampled_from(["open", "vip", "Training", "Server down", "12", "2026-03-06", ""]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["kind", "seats", "b", "c", "1"]), inner, max_size=3),
    ),
    max_leaves=6,
)
OPERANDS = {
    "eq": SCALARS,
    "ne": SCALARS,
    "in": st.lists(SCALARS, min_size=1, max_size=3),
    "not_in": st.lists(SCALARS, min_size=1, max_size=3),
    "contains": st.sampled_from(["vip", "Train", 12]),
    "lacks": st.sampled_from(["vip", "Train", 12]),
    "matches": st.sampled_from(["^1", "(?i)down", "vip|open"]),
    "exists": st.booleans(),
    "gte": st.integers(-2, 15),
    "lt": st.floats(-2, 15, allow_nan=False),
    "gt": st.sampled_from(["2026-03-01", "2026-03-06T12:00:00"]),
    "changed": st.booleans(),
}
TESTS = st.one_of(
    *[
        st.builds(lambda p, v, op=op: {p: {op: v}}, st.sampled_from(PATHS), operand)
        for op, operand in OPERANDS.items()
    ]
)
TREES = st.recursive(
    TESTS,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"any": c}),
        inner.map(lambda c: {"not": c}),
    ),
    max_leaves=5,
)
RECORDS = st.fixed_dictionaries({}, optional={p.split(".")[0]: VALUES for p in PATHS})


def _outcome(run: Any) -> Any:
    try:
        return run()
    except Exception as exc:  # both paths must fail alike
        return type(exc)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(tree=TREES, fields=RECORDS, previous=st.one_of(st.none(), RECORDS))
def test_compiled_tests_answer_like_test(
    tree: dict[str, Any], fields: dict[str, Any], previous: dict[str, Any] | None
) -> None:
    condition = compile_condition(tree)
    compiled = compile_test(condition)
    expected = _outcome(lambda: condition.test(Context(fields, previous, NOW, SUPPORT)))
    assert _outcome(lambda: compiled(Context(fields, previous, NOW, SUPPORT))) == expected
    assert _outcome(lambda: condition.fast()(Context(fields, previous, NOW, SUPPORT))) == expected
    if expected is True:  # what the engine records as an intent's reason
        ctx = Context(fields, previous, NOW, SUPPORT)
        assert condition.held()(ctx) == condition.explain(ctx)[1]


def test_compiled_tests_on_the_operator_table() -> None:
    for mark in test_operators.pytestmark + test_null_and_missing_fields.pytestmark:  # type: ignore[attr-defined]
        for tree, expected in mark.args[1]:
            compiled = compile_test(compile_condition(tree))
            assert compiled(Context(TICKET, None, NOW, SUPPORT)) is expected, tree


def test_changed_works_in_compiled_rules() -> None:
    """`changed` has no check(value): the compiled forms must still evaluate it."""
    condition = compile_condition({"assignee_id": {"changed": True, "exists": True}})
    before = {**TICKET, "assignee_id": 7}
    after = {**TICKET, "assignee_id": 8}
    for test in (condition.fast(), compile_test(condition)):
        assert test(Context(after, before, NOW, SUPPORT))
        assert not test(Context(after, after, NOW, SUPPORT))
        assert not test(Context(after, None, NOW, SUPPORT))  # first sight: no transition


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    start=st.integers(min_value=0, max_value=500 * 24 * 60),
    amounts=st.lists(st.integers(min_value=-3000, max_value=3000), min_size=1, max_size=4),
    unit=st.sampled_from(["business_minutes", "business_hours", "minutes", "hours", "days"]),
)
def test_time_math_in_microseconds_equals_shift(start: int, amounts: list[int], unit: str) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=start, seconds=start % 59)
    if unit in ("business_hours", "hours", "days"):
        amounts = [a // 40 for a in amounts]
    offsets = [Offset(a, unit) for a in amounts]  # type: ignore[arg-type]
    math = TimeMath(SUPPORT)
    at_us = micros(at)
    expected = [micros(math.shift(at, o)) for o in offsets]
    assert [math.shift_micros(at, at_us, o) for o in offsets] == expected
    assert TimeMath(SUPPORT).shift_all_micros(at, at_us, offsets) == expected  # table unbuilt
    assert math.shift_all_micros(at, at_us, offsets) == expected
    assert from_micros(at_us) == at


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    before=st.integers(min_value=0, max_value=400 * 24 * 60 * 60),
    amount=st.sampled_from([1, 30, 60, 480, 960, 5000]),
    unit=st.sampled_from(["business_minutes", "business_hours", "minutes", "hours"]),
    probe=st.integers(min_value=-5 * 24 * 3600, max_value=5 * 24 * 3600),
)
def test_latest_before_is_exact(before: int, amount: int, unit: str, probe: int) -> None:
    """shift(a) <= T exactly for the anchors a up to latest_before(T)."""
    if unit == "business_hours":
        amount = max(1, amount // 60)
    offset = Offset(amount, unit)  # type: ignore[arg-type]
    math = TimeMath(SUPPORT)
    target = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=before)
    cut = math.latest_before(offset, micros(target))
    assert cut is not None
    for anchor in (cut, cut + _US, cut - _US, cut + timedelta(seconds=probe)):
        due = apply_offset(anchor.astimezone(SUPPORT.tz), offset, SUPPORT)
        assert (due <= target) is (anchor <= cut), (anchor, due)
