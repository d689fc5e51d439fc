"""Condition trees compiled once per rule set and evaluated against one record version.

`schema.parse_condition` turns the YAML form of docs/rules.md ("Conditions") into a tree of
`FieldCondition(field, op, value)`, `AllOf`, `AnyOf` and `Not`; `compile_condition` turns that
tree (or the raw YAML mapping) into small node objects, so the hot loop does no parsing, no
regex compilation and no pydantic attribute access. `Condition.test` answers a bare bool,
`Condition.explain` also returns the field values that decided it (for the intent's `reason` and
`syncd audit`), and `Condition.thresholds` lists the instants at which an age test changes its
answer by time alone: `next_change` and `entered` use them to find the exact instant a
condition starts or stops holding, so the engine wakes up exactly then and keys an entry by
the instant it really happened.

Decisions where the spec (docs/rules.md, "Conditions") is silent:
- a missing field and a null value are the same (`None`); `eq: null` and `exists: false` match
  it; `ne` and `not_in` are the exact negations of `eq` and `in`; `lacks` is true on null (an
  absent list lacks everything); every other operator is false on null, never an exception;
- on a list-valued field (tags) `in` is true when any element is in the list and `not_in` when
  none is; `contains`/`lacks` on a string test substrings; `matches` on a list is true when any
  element matches; non-string scalars are matched as their text;
- comparisons compare numbers with numbers, dates with dates and instants with instants (an
  ISO string, a date or a datetime on either side: a date is its 00:00 in the rule's calendar
  timezone; a naive datetime in a rule is local time on that calendar, in a record UTC);
  anything else is false;
- `older_than: D` holds from `value + D` on (inclusive), `newer_than: D` strictly before it; `D`
  is a wall or business offset applied with the rule's calendar (as durations.apply_offset);
- `changed` and `became` need a previous observed version: a record seen for the first time has
  no transition, so both are false for it (`changed: false` is true).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from syncd.durations import Offset, apply_offset
from syncd.rules import schema

if TYPE_CHECKING:
    from syncd.calendars import Calendar

_MISSING = object()
Explanation = dict[str, Any]
Test = Callable[["Context"], bool]
_LISTS = frozenset({list, tuple, set, frozenset})


# ----------------------------------------------------------------------------- context


class TimeMath:
    """`durations.apply_offset` on one calendar, with the same results, fast enough for the
    engine's hot loop (apply_offset costs 5-25 us a call; 100,000 ladders need 300,000 calls).

    - wall minutes and hours are plain UTC arithmetic;
    - business minutes and hours bisect a table of the calendar's working spans with their
      cumulative working time (built for 2 years of dates around first use and grown on
      demand; exact to the microsecond, same "earliest/latest instant" convention as
      `Calendar.add`);
    - days, weeks, months and business days go through apply_offset, memoised per instant.
    Every result is a UTC instant.
    """

    __slots__ = ("_memo", "_table", "calendar", "tz")

    def __init__(self, calendar: Calendar | None = None) -> None:
        self.calendar = calendar
        self.tz: tzinfo = calendar.tz if calendar is not None else UTC
        self._memo: dict[tuple[datetime, Offset], datetime] = {}
        self._table: _SpanTable | None = None

    def shift(self, at: datetime, offset: Offset) -> datetime:
        """`apply_offset(at, offset, calendar)` as a UTC instant."""
        if at.tzinfo is not UTC:
            at = at.astimezone(UTC)
        unit, amount = offset.unit, offset.amount
        if unit == "minutes" or unit == "hours":
            return at + timedelta(minutes=amount * 60 if unit == "hours" else amount)
        if amount == 0:
            return at
        if self.calendar is not None and (unit == "business_minutes" or unit == "business_hours"):
            minutes = amount * 60 if unit == "business_hours" else amount
            table = self._table
            found = table.add(at, minutes) if table is not None else None
            if found is None and (
                table is None or not table.first_us <= micros(at) < table.last_us
            ):
                table = self._table = _SpanTable(self.calendar, at, table)  # grow to cover `at`
                found = table.add(at, minutes)
            if found is not None:
                return found
        key = (at, offset)
        try:
            return self._memo[key]
        except KeyError:
            if len(self._memo) > _MEMO_LIMIT:
                self._memo.clear()
            local = at.astimezone(self.tz)
            found = self._memo[key] = apply_offset(local, offset, self.calendar).astimezone(UTC)
            return found

    def shift_micros(self, at: datetime, at_us: int, offset: Offset) -> int:
        """`shift(at, offset)` as integer microseconds since the epoch (`at_us` is `at`'s).

        Wall minutes and hours, and business ones inside the span table, stay integers: a
        ladder's steps are compared with `now` without building a datetime for each.
        """
        unit = offset.unit
        if unit == "minutes":
            return at_us + offset.amount * _MINUTE_US
        if unit == "hours":
            return at_us + offset.amount * _HOUR_US
        table = self._table
        if table is not None and offset.amount and unit in _BUSINESS_MINUTES:
            minutes = offset.amount * 60 if unit == "business_hours" else offset.amount
            found = table.add_micros(at_us, minutes)
            if found is not None:
                return found
        return micros(self.shift(at, offset))


UTC_MATH = TimeMath(None)
_MEMO_LIMIT = 200_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MINUTE_US = 60_000_000
_HOUR_US = 60 * _MINUTE_US
_BUSINESS_MINUTES = frozenset({"business_minutes", "business_hours"})
_TABLE_DAYS = 366


class _SpanTable:
    """A calendar's working spans over ~2 years as integer microseconds since the epoch, with
    the working time before each span, so a business add is two bisections. The position of
    the last instant asked for is kept: a ladder's steps all count from one anchor."""

    __slots__ = (
        "_last",
        "cum_end",
        "cum_start",
        "ends",
        "first",
        "first_us",
        "last",
        "last_us",
        "starts",
    )

    def __init__(self, calendar: Calendar, around: datetime, old: _SpanTable | None) -> None:
        day = around.astimezone(calendar.tz).date()
        first, last = day - timedelta(days=_TABLE_DAYS), day + timedelta(days=_TABLE_DAYS)
        if old is not None:  # grow, never shrink: records span years
            first, last = min(first, old.first), max(last, old.last)
        self.first, self.last = first, last
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.cum_start: list[int] = []
        self.cum_end: list[int] = []
        total = 0
        for n in range((last - first).days):
            for start, end in calendar.working_intervals(first + timedelta(days=n)):
                s, e = micros(start), micros(end)
                self.starts.append(s)
                self.ends.append(e)
                self.cum_start.append(total)
                total += e - s
                self.cum_end.append(total)
        self.first_us = self.starts[0] if self.starts else 0
        self.last_us = self.ends[-1] if self.starts else 0
        self._last: tuple[int, int] | None = None

    def position(self, u: int) -> int | None:
        """Working time from the table's start to the instant `u` (microseconds since the
        epoch); None outside the table."""
        last = self._last
        if last is not None and last[0] == u:
            return last[1]
        if not self.first_us <= u < self.last_us:
            return None
        i = bisect_right(self.starts, u) - 1
        found = self.cum_start[i] + min(u, self.ends[i]) - self.starts[i]
        self._last = (u, found)
        return found

    def add(self, at: datetime, minutes: int) -> datetime | None:
        """`at` plus business minutes; None when `at` or the answer lies outside the table."""
        found = self.add_micros(micros(at), minutes)
        return None if found is None else from_micros(found)

    def add_micros(self, u: int, minutes: int) -> int | None:
        """`add` on microseconds since the epoch."""
        position = self.position(u)
        if position is None:
            return None
        target = position + minutes * _MINUTE_US
        if minutes > 0:
            j = bisect_left(self.cum_end, target)  # earliest: the end of a span stays there
            if j >= len(self.starts):
                return None
        else:
            j = bisect_right(self.cum_start, target) - 1  # latest: a span's start, not the end
            if j < 0:
                return None
        return self.starts[j] + target - self.cum_start[j]


def micros(at: datetime) -> int:
    """An aware instant as integer microseconds since the epoch (exact, unlike timestamp())."""
    return (at - _EPOCH) // _US


def from_micros(u: int) -> datetime:
    """The UTC instant `u` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=u)


class Context:
    """One record version as conditions see it: current and previous fields, now, calendar.

    Path lookups and instant parses are memoised per context, because the ~100 rules of a rule
    set read the same few fields of the same record. `calendar` is a Calendar, None (UTC, wall
    offsets only) or a ready `TimeMath` shared across records.
    """

    __slots__ = ("_before", "_instants", "_paths", "fields", "math", "now", "previous", "tz")

    def __init__(
        self,
        fields: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        now: datetime,
        calendar: Calendar | TimeMath | None = None,
    ) -> None:
        self.fields = fields
        self.previous = previous
        self.now = now
        self.math = calendar if isinstance(calendar, TimeMath) else _math_for(calendar)
        self.tz: tzinfo = self.math.tz
        self._paths: dict[str, Any] = {}
        self._instants: dict[str, datetime | None] = {}
        self._before: Context | None = None

    def _sibling(self, math: TimeMath, now: datetime) -> Context:
        other = Context(self.fields, self.previous, now, math)
        other._paths = self._paths
        if math is self.math:
            other._instants = self._instants
        return other

    def with_math(self, math: TimeMath) -> Context:
        """The same record under another rule's calendar (path lookups stay shared)."""
        return self if math is self.math else self._sibling(math, self.now)

    def at(self, now: datetime) -> Context:
        """The same record seen at another instant, to find when an age test flips."""
        return self._sibling(self.math, now)

    def before(self) -> Context | None:
        """The previous version as a context of its own, for `became`; None without one."""
        if self.previous is None:
            return None
        if self._before is None:
            self._before = Context(self.previous, None, self.now, self.math)
        return self._before

    def value(self, path: str) -> Any:
        try:
            return self._paths[path]
        except KeyError:
            found = self._paths[path] = resolve(self.fields, path)
            return found

    def instant(self, path: str) -> datetime | None:
        """The field as an aware instant (date: 00:00 in the calendar's timezone), or None."""
        try:
            return self._instants[path]
        except KeyError:
            found = self._instants[path] = as_instant(self.value(path), self.tz)
            return found


def _math_for(calendar: Calendar | None) -> TimeMath:
    return UTC_MATH if calendar is None else TimeMath(calendar)


def resolve(fields: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path (`custom.kind`, `Account.Name`, `fields.0`); None when absent."""
    value = fields.get(path, _MISSING)
    if value is not _MISSING:
        return value
    if "." not in path:
        return None
    current: Any = fields
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, Sequence) and not isinstance(current, str) and part.isdigit():
            index = int(part)
            current = current[index] if index < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current


def as_instant(value: Any, tz: tzinfo = UTC, naive: tzinfo = UTC) -> datetime | None:
    """An aware datetime from a datetime, a date (00:00 in `tz`) or an ISO string; else None.

    A naive datetime is taken in `naive`: UTC for vendor data, the calendar's zone for rules.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=naive)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tz)
    if isinstance(value, str) and value[:1].isdigit():
        if len(value) == 10:
            parsed = _parse_date(value)
            return None if parsed is None else datetime.combine(parsed, time(0), tz)
        try:
            return as_instant(datetime.fromisoformat(value), tz, naive)
        except ValueError:
            return None
    return None


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def json_safe(value: Any) -> Any:
    """A value as the audit stores it: datetimes and dates as ISO text, containers recursed."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


# ----------------------------------------------------------------------------- nodes


class Condition:
    """A compiled condition: `test` for the hot loop, `explain` for audit, `thresholds` for time."""

    __slots__ = ()

    def test(self, ctx: Context) -> bool:
        raise NotImplementedError

    def fast(self) -> Test:
        """`test` as one closure for the hot loop: no method dispatch, no generators."""
        return self.test

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        """The answer plus the field values that decided it."""
        raise NotImplementedError

    def held(self) -> Callable[[Context], Explanation]:
        """`explain(ctx)[1]` as one closure, for contexts in which the condition holds (the
        engine explains a rule's `when` only when it acts)."""
        return lambda ctx: self.explain(ctx)[1]

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        """Append every instant at which an age test in this tree changes its answer.

        Between two such instants the answer is constant, which is what lets the engine find
        the exact instant a condition started or stops holding (`next_change`, `entered`).
        """

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        """Field -> hashable values, one of which the field must hold for the condition to hold.

        Lets the engine skip rules that cannot match a record without evaluating them.
        """
        return {}


class Always(Condition):
    __slots__ = ()

    def test(self, ctx: Context) -> bool:
        return True

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        return True, {}

    def held(self) -> Callable[[Context], Explanation]:
        return lambda ctx: {}


ALWAYS = Always()


class FieldTest(Condition):
    """One operator on one field's value; subclasses implement `check(value, ctx)`."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def check(self, value: Any, ctx: Context) -> bool:
        raise NotImplementedError

    def test(self, ctx: Context) -> bool:
        return self.check(ctx.value(self.path), ctx)

    def fast(self) -> Test:
        check, path = self.check, self.path
        if "." in path:
            return lambda ctx: check(ctx.value(path), ctx)
        return lambda ctx: check(ctx.fields.get(path), ctx)

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        return self.test(ctx), {self.path: json_safe(ctx.value(self.path))}

    def held(self) -> Callable[[Context], Explanation]:
        if not _plain_explanation(self):
            return super().held()
        path = self.path
        return lambda ctx: {path: json_safe(ctx.value(path))}


def _plain_explanation(condition: Condition) -> bool:
    """Whether the condition explains itself as {its path: its value}."""
    return isinstance(condition, FieldTest) and type(condition).explain is FieldTest.explain


class Eq(FieldTest):
    __slots__ = ("expected", "temporal")

    def __init__(self, path: str, expected: Any) -> None:
        super().__init__(path)
        self.expected = _freeze(expected)
        self.temporal = isinstance(expected, date)

    def check(self, value: Any, ctx: Context) -> bool:
        if _freeze(value) == self.expected:
            return True
        if self.temporal and value is not None:
            left = as_instant(value, ctx.tz)
            return left is not None and left == as_instant(self.expected, ctx.tz, ctx.tz)
        return False

    def fast(self) -> Test:
        path, expected = self.path, self.expected
        if self.temporal or isinstance(expected, tuple) or "." in path:
            return super().fast()
        return lambda ctx: bool(ctx.fields.get(path) == expected)

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        if self.temporal or self.expected.__hash__ is None:
            return {}
        return {self.path: frozenset({self.expected})}


class Ne(Eq):
    __slots__ = ()

    def check(self, value: Any, ctx: Context) -> bool:
        return not super().check(value, ctx)

    def fast(self) -> Test:
        equal = super().fast()
        return lambda ctx: not equal(ctx)

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        return {}


class In(FieldTest):
    __slots__ = ("members", "temporal")

    def __init__(self, path: str, options: Iterable[Any]) -> None:
        super().__init__(path)
        options = [_freeze(o) for o in options]
        self.members = frozenset(o for o in options if o.__hash__ is not None)
        self.temporal = tuple(Eq(path, o) for o in options if isinstance(o, date))

    def check(self, value: Any, ctx: Context) -> bool:
        if _is_list(value):
            return any(self._one(v, ctx) for v in value)
        return self._one(value, ctx)

    def _one(self, value: Any, ctx: Context) -> bool:
        try:
            if value in self.members:
                return True
        except TypeError:  # an unhashable value (a mapping) is never a member
            return False
        return any(eq.check(value, ctx) for eq in self.temporal)

    def fast(self) -> Test:
        path, members, check = self.path, self.members, self.check
        if self.temporal or "." in path:
            return super().fast()

        def test(ctx: Context) -> bool:
            value = ctx.fields.get(path)
            if type(value) in _LISTS:
                return check(value, ctx)
            try:
                return value in members
            except TypeError:
                return False

        return test

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        return {} if self.temporal else {self.path: self.members}


class NotIn(In):
    __slots__ = ()

    def check(self, value: Any, ctx: Context) -> bool:
        return not super().check(value, ctx)

    def fast(self) -> Test:
        inside = super().fast()
        return lambda ctx: not inside(ctx)

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        return {}


class Contains(FieldTest):
    """List or mapping membership, substring on text; false on null."""

    __slots__ = ("wanted",)

    def __init__(self, path: str, wanted: Any) -> None:
        super().__init__(path)
        self.wanted = wanted

    def present(self, value: Any) -> bool | None:
        """Whether `wanted` is in `value`; None when `value` cannot hold anything."""
        if isinstance(value, str):
            return isinstance(self.wanted, str) and self.wanted in value
        if _is_list(value) or isinstance(value, Mapping):
            try:
                return self.wanted in value
            except TypeError:
                return False
        return None

    def check(self, value: Any, ctx: Context) -> bool:
        return self.present(value) is True


class Lacks(Contains):
    """The negation of `contains`, true on null (an absent list lacks everything)."""

    __slots__ = ()

    def check(self, value: Any, ctx: Context) -> bool:
        return self.present(value) is not True


class Matches(FieldTest):
    __slots__ = ("search",)

    def __init__(self, path: str, pattern: Any) -> None:
        super().__init__(path)
        self.search = pattern.search

    def check(self, value: Any, ctx: Context) -> bool:
        if value is None:
            return False
        if _is_list(value):
            return any(v is not None and self.search(str(v)) is not None for v in value)
        return self.search(value if isinstance(value, str) else str(value)) is not None


class Exists(FieldTest):
    __slots__ = ("wanted",)

    def __init__(self, path: str, wanted: bool) -> None:
        super().__init__(path)
        self.wanted = wanted

    def check(self, value: Any, ctx: Context) -> bool:
        return (value is not None) is self.wanted


class Compare(FieldTest):
    """gt/gte/lt/lte over numbers, dates or instants; mixed kinds and null are false."""

    __slots__ = ("bound", "kind", "op")

    def __init__(self, path: str, op: str, bound: Any) -> None:
        super().__init__(path)
        self.op = op
        self.bound = bound
        if _is_number(bound):
            self.kind = "number"
        elif type(bound) is date:
            self.kind = "date"
        elif isinstance(bound, datetime):
            self.kind = "instant"
        else:
            raise ValueError(f"{op} compares with a number, a date or a datetime, not {bound!r}")

    def check(self, value: Any, ctx: Context) -> bool:
        if value is None:
            return False
        if self.kind == "number":
            return _is_number(value) and _ordered(self.op, value, self.bound)
        if self.kind == "date" and not isinstance(value, datetime):
            day = value if isinstance(value, date) else None
            if isinstance(value, str) and len(value) == 10:
                day = _parse_date(value)
            if day is not None:
                return _ordered(self.op, day, self.bound)
        left = ctx.instant(self.path)
        right = as_instant(self.bound, ctx.tz, ctx.tz)
        return left is not None and right is not None and _ordered(self.op, left, right)


def _ordered(op: str, left: Any, right: Any) -> bool:
    if op == "gt":
        return bool(left > right)
    if op == "gte":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


class Age(FieldTest):
    """older_than / newer_than: the field's instant plus an offset, compared with now."""

    __slots__ = ("offset", "older")

    def __init__(self, path: str, op: str, offset: Offset) -> None:
        super().__init__(path)
        self.older = op == "older_than"
        self.offset = offset

    def threshold(self, ctx: Context) -> datetime | None:
        start = ctx.instant(self.path)
        return None if start is None else ctx.math.shift(start, self.offset)

    def check(self, value: Any, ctx: Context) -> bool:
        limit = self.threshold(ctx)
        return limit is not None and (ctx.now >= limit) is self.older

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        limit = self.threshold(ctx)
        if limit is not None:
            out.append(limit)


class Changed(FieldTest):
    """The value differs from the previous observed version's (false without one)."""

    __slots__ = ("wanted",)

    def __init__(self, path: str, wanted: bool) -> None:
        super().__init__(path)
        self.wanted = wanted

    def test(self, ctx: Context) -> bool:
        changed = ctx.previous is not None and _freeze(ctx.value(self.path)) != _freeze(
            resolve(ctx.previous, self.path)
        )
        return changed is self.wanted

    def fast(self) -> Test:
        return self.test  # needs the previous version: no `check(value)` form

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        return self.test(ctx), _with_previous(self.path, ctx)


class Became(Condition):
    """The previous observed version did not satisfy `inner`, this one does."""

    __slots__ = ("inner", "path")

    def __init__(self, path: str, inner: Condition) -> None:
        self.path = path
        self.inner = inner

    def test(self, ctx: Context) -> bool:
        before = ctx.before()
        return before is not None and self.inner.test(ctx) and not self.inner.test(before)

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        return self.test(ctx), _with_previous(self.path, ctx)

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        self.inner.thresholds(ctx, out)


def _with_previous(path: str, ctx: Context) -> Explanation:
    before = None if ctx.previous is None else resolve(ctx.previous, path)
    return {path: json_safe(ctx.value(path)), f"{path} (previous)": json_safe(before)}


class All(Condition):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Condition]) -> None:
        self.children = tuple(children)

    def test(self, ctx: Context) -> bool:
        return all(child.test(ctx) for child in self.children)

    def fast(self) -> Test:
        tests = tuple(child.fast() for child in self.children)
        if len(tests) == 2:
            first, second = tests
            return lambda ctx: first(ctx) and second(ctx)

        def test(ctx: Context) -> bool:
            for one in tests:  # noqa: SIM110 - a generator costs more in the hot loop
                if not one(ctx):
                    return False
            return True

        return test

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        results = [child.explain(ctx) for child in self.children]
        ok = all(r for r, _ in results)
        return ok, _merge(e for r, e in results if ok or not r)

    def held(self) -> Callable[[Context], Explanation]:
        if all(_plain_explanation(child) for child in self.children):
            paths = tuple(child.path for child in self.children)  # type: ignore[attr-defined]

            def plain(ctx: Context) -> Explanation:
                value = ctx.value
                return {path: json_safe(value(path)) for path in paths}

            return plain
        parts = tuple(child.held() for child in self.children)  # all hold: all explain
        return lambda ctx: _merge(part(ctx) for part in parts)

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        for child in self.children:
            child.thresholds(ctx, out)

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        merged: dict[str, frozenset[Any]] = {}
        for child in self.children:
            for path, values in child.equalities().items():
                merged[path] = merged[path] & values if path in merged else values
        return merged


class AnyOf(Condition):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Condition]) -> None:
        self.children = tuple(children)

    def test(self, ctx: Context) -> bool:
        return any(child.test(ctx) for child in self.children)

    def fast(self) -> Test:
        tests = tuple(child.fast() for child in self.children)

        def test(ctx: Context) -> bool:
            for one in tests:  # noqa: SIM110 - a generator costs more in the hot loop
                if one(ctx):
                    return True
            return False

        return test

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        results = [child.explain(ctx) for child in self.children]
        ok = any(r for r, _ in results)
        return ok, _merge(e for r, e in results if r or not ok)

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        for child in self.children:
            child.thresholds(ctx, out)


class Not(Condition):
    __slots__ = ("child",)

    def __init__(self, child: Condition) -> None:
        self.child = child

    def test(self, ctx: Context) -> bool:
        return not self.child.test(ctx)

    def fast(self) -> Test:
        inner = self.child.fast()
        return lambda ctx: not inner(ctx)

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        ok, found = self.child.explain(ctx)
        return not ok, found

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        self.child.thresholds(ctx, out)


def _merge(parts: Iterable[Explanation]) -> Explanation:
    merged: Explanation = {}
    for part in parts:
        merged.update(part)
    return merged


# ----------------------------------------------------------------------------- compiler


def compile_condition(tree: Any) -> Condition:
    """Compile a schema condition tree, or a raw YAML condition mapping; None is always true.

    Raises `schema.LocatedError` (a ValueError) for a raw mapping that does not parse.
    """
    if tree is None:
        return ALWAYS
    if not isinstance(tree, schema.FieldCondition | schema.AllOf | schema.AnyOf | schema.Not):
        tree = schema.parse_condition(tree)
    return _compile(tree)


def _compile(node: schema.Condition) -> Condition:
    if isinstance(node, schema.AllOf):
        return All([_compile(child) for child in node.all])
    if isinstance(node, schema.AnyOf):
        return AnyOf([_compile(child) for child in node.any])
    if isinstance(node, schema.Not):
        return Not(_compile(node.not_))
    return _field(node)


def _field(node: schema.FieldCondition) -> Condition:
    path, op, value = node.field, node.op, node.value
    if op in ("gt", "gte", "lt", "lte"):
        return Compare(path, op, value)
    if op in ("older_than", "newer_than"):
        return Age(path, op, value)
    if op == "became":
        return Became(path, _compile(value))
    simple: dict[str, type[FieldTest]] = {
        "eq": Eq,
        "ne": Ne,
        "in": In,
        "not_in": NotIn,
        "contains": Contains,
        "lacks": Lacks,
        "matches": Matches,
        "exists": Exists,
        "changed": Changed,
    }
    return simple[op](path, value)  # type: ignore[call-arg]


# ----------------------------------------------------------------------------- time


def next_change(condition: Condition, ctx: Context) -> datetime | None:
    """The first instant after `ctx.now` at which the answer changes by time alone, or None."""
    found: list[datetime] = []
    condition.thresholds(ctx, found)
    later = sorted(t for t in found if t > ctx.now)
    if not later:
        return None
    current = condition.test(ctx)
    return next((t for t in later if condition.test(ctx.at(t)) is not current), None)


def entered(condition: Condition, ctx: Context, since: datetime) -> datetime:
    """When the condition, true now, started to hold, given that it held at or since `since`
    unless an age test flipped after it (the record version's observed_at)."""
    found: list[datetime] = []
    condition.thresholds(ctx, found)
    for t in sorted((t for t in found if since < t <= ctx.now), reverse=True):
        if not condition.test(ctx.at(t - _US)):
            return t
    return since
