"""Condition trees compiled once per rule set and evaluated against one record version.

`schema.parse_condition` turns the YAML form of docs/rules.md ("Conditions") into a tree of
`FieldCondition(field, op, value)`, `AllOf`, `AnyOf` and `Not`; `compile_condition` turns that
tree (or the raw YAML mapping) into small node objects, so the hot loop does no parsing, no
regex compilation and no pydantic attribute access. `Condition.test` answers a bare bool,
`Condition.explain` also returns the field values that decided it (for the intent's `reason` and
`syncd audit`), and `Condition.thresholds` lists the instants at which an age test changes its
answer by time alone: `next_change` and `entered` use them to find the exact instant a
condition starts or stops holding, so the engine wakes up exactly then and keys an entry by
the instant it really happened. For the hot loop, `compile_test` turns a whole tree into one
generated function (`Condition.source`: the usual tests inlined, the rest through `fast()`
closures, which answer as `test`) and `Condition.held` does the same for the explanation.

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
from functools import partial
from typing import TYPE_CHECKING, Any

import regex

from syncd.durations import Offset, apply_offset
from syncd.rules import language as schema

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

    def shift_all_micros(self, at: datetime, at_us: int, offsets: Sequence[Offset]) -> list[int]:
        """`[shift_micros(at, at_us, o) for o in offsets]`, finding `at` in the span table once
        (a ladder's steps all count from one anchor)."""
        out = []
        table, position = self._table, None
        for offset in offsets:
            unit, amount = offset.unit, offset.amount
            if unit == "minutes":
                out.append(at_us + amount * _MINUTE_US)
                continue
            if unit == "hours":
                out.append(at_us + amount * _HOUR_US)
                continue
            if table is not None and amount > 0 and unit in _BUSINESS_MINUTES:
                if position is None:  # `_SpanTable.position`, inlined
                    last = table._last
                    if last is not None and last[0] == at_us:
                        position = last[1]
                    elif table.first_us <= at_us < table.last_us:
                        i = bisect_right(table.starts, at_us) - 1
                        position = table.cum_start[i] + min(at_us, table.ends[i]) - table.starts[i]
                        table._last = (at_us, position)
                if position is not None:  # `_SpanTable.add_at`, inlined for the usual case
                    minutes = amount * 60 if unit == "business_hours" else amount
                    target = position + minutes * _MINUTE_US
                    j = bisect_left(table.cum_end, target)
                    if j < len(table.starts):
                        out.append(table.starts[j] + target - table.cum_start[j])
                        continue
            out.append(micros(self.shift(at, offset)))  # builds or grows the table if need be
            table, position = self._table, None
        return out

    def latest_before(self, offset: Offset, before_us: int) -> datetime | None:
        """The latest instant `a` with `shift(a, offset) <= before_us`; every earlier instant
        shifts to no later (`shift` never decreases as `a` grows). None when not known here:
        units other than (business) minutes and hours, a zero or negative business offset.

        A business shift is the earliest instant at position(a) + m in working time, so it is
        <= T exactly when position(a) <= position(T) - m: the answer is the latest instant at
        that position (the start of the next span when it falls on a span's end).
        """
        unit, amount = offset.unit, offset.amount
        if unit == "minutes" or unit == "hours":
            return from_micros(before_us - amount * (_HOUR_US if unit == "hours" else _MINUTE_US))
        if unit not in _BUSINESS_MINUTES or amount <= 0 or self.calendar is None:
            return None
        table = self._table
        if table is None or not table.first_us <= before_us < table.last_us:
            table = self._table = _SpanTable(self.calendar, from_micros(before_us), table)
        position = table.position(before_us)
        if position is None:
            return None
        target = position - (amount * 60 if unit == "business_hours" else amount) * _MINUTE_US
        i = bisect_right(table.cum_start, target) - 1
        if i < 0:
            return None  # before the table: not known here
        return from_micros(table.starts[i] + target - table.cum_start[i])

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
        return None if position is None else self.add_at(position, minutes)

    def add_at(self, position: int, minutes: int) -> int | None:
        """The instant (microseconds) `minutes` of working time after table position
        `position`; None when it lies outside the table."""
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
    return _EPOCH + timedelta(0, u // 1_000_000, u % 1_000_000)  # (seconds=, microseconds=)


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
        found = self._paths.get(path, _MISSING)  # a miss is common: no KeyError to raise
        if found is _MISSING:
            found = self._paths[path] = resolve(self.fields, path)
        return found

    def instant(self, path: str) -> datetime | None:
        """The field as an aware instant (date: 00:00 in the calendar's timezone), or None."""
        found = self._instants.get(path, _MISSING)
        if found is _MISSING:
            value = self.value(path) if "." in path else self.fields.get(path)  # as resolve()
            found = self._instants[path] = as_instant(value, self.tz)
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
    if isinstance(value, str):  # vendor data: ISO text, the common case first
        if not value[:1].isdigit():
            return None
        if len(value) == 10:
            parsed = _parse_date(value)
            return None if parsed is None else datetime.combine(parsed, time(0), tz)
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
        return value if value.tzinfo is not None else value.replace(tzinfo=naive)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=naive)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tz)
    return None


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def json_safe(value: Any) -> Any:
    """A value as the audit stores it: datetimes and dates as ISO text, containers recursed."""
    kind = type(value)
    if kind in _JSON_PLAIN:
        return value
    if kind is list:  # a list of text (tags): the common container
        return [v if type(v) is str else json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


_JSON_PLAIN = frozenset({str, int, float, bool, type(None)})


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

    def source(self, gen: _Generator) -> str:
        """A Python expression, true exactly when the condition holds, for `compile_test`.

        Nodes without a source of their own call their `fast()` closure."""
        return f"{gen.const(self.fast())}(ctx)"

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

    def source(self, gen: _Generator) -> str:
        return "True"


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
        return _plain_held((self.path,))


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
            return FieldTest.fast(self)  # self.check: Eq's, or Ne's (already negated)
        return lambda ctx: bool(ctx.fields.get(path) == expected)

    def source(self, gen: _Generator) -> str:
        if self.temporal or isinstance(self.expected, tuple):
            return gen.call(self)
        equal = f"({gen.value(self.path)} == {gen.const(self.expected)})"
        return f"(not {equal})" if isinstance(self, Ne) else equal

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        if self.temporal or self.expected.__hash__ is None:
            return {}
        return {self.path: frozenset({self.expected})}


class Ne(Eq):
    __slots__ = ()

    def check(self, value: Any, ctx: Context) -> bool:
        return not super().check(value, ctx)

    def fast(self) -> Test:
        if self.temporal or isinstance(self.expected, tuple) or "." in self.path:
            return FieldTest.fast(self)  # Ne.check is the negation already
        equal = Eq.fast(self)
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
        path, members = self.path, self.members
        if self.temporal or "." in path:
            return FieldTest.fast(self)  # self.check: In's, or NotIn's (already negated)
        check = partial(In.check, self)  # In's own, also in a NotIn (which negates the answer)

        def test(ctx: Context) -> bool:
            value = ctx.fields.get(path)
            if type(value) in _LISTS:
                return check(value, ctx)
            try:
                return value in members
            except TypeError:
                return False

        return test

    def source(self, gen: _Generator) -> str:
        if self.temporal:
            return gen.call(self)
        v, members = gen.var(), gen.const(self.members)
        scalar = f"type({v} := {gen.value(self.path)}) in _SCALARS"
        inside = f"({v} in {members} if {scalar} else {gen.check(In.check, self, v)})"
        return f"(not {inside})" if isinstance(self, NotIn) else inside

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        return {} if self.temporal else {self.path: self.members}


class NotIn(In):
    __slots__ = ()

    def check(self, value: Any, ctx: Context) -> bool:
        return not super().check(value, ctx)

    def fast(self) -> Test:
        if self.temporal or "." in self.path:
            return FieldTest.fast(self)  # NotIn.check is the negation already
        inside = In.fast(self)
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

    def source(self, gen: _Generator) -> str:
        v, wanted = gen.var(), gen.const(self.wanted)
        inside = "not in" if isinstance(self, Lacks) else "in"
        listed = f"type({v} := {gen.value(self.path)}) is list"
        return f"({wanted} {inside} {v} if {listed} else {gen.check(type(self).check, self, v)})"


class Lacks(Contains):
    """The negation of `contains`, true on null (an absent list lacks everything)."""

    __slots__ = ()

    def check(self, value: Any, ctx: Context) -> bool:
        return self.present(value) is not True


MATCH_SECONDS = 0.1  # per search of one value: customers write the text a `matches:` reads


def bounded_search(pattern: Any) -> Callable[[str], Any]:
    """`pattern.search`, run by the `regex` package (Python's `re` syntax: its version 0) with
    a time limit: a pattern that backtracks catastrophically on a customer's text (`(a+)+$`
    on 30 `a`s and a `b`, `.*x.*y` on a megabyte) fails that one evaluation, never the cycle."""
    compiled = regex.compile(pattern.pattern, regex.VERSION0)

    def search(text: str) -> Any:
        try:
            return compiled.search(text, timeout=MATCH_SECONDS)
        except TimeoutError:
            raise ValueError(f"`matches: {pattern.pattern}` took over {MATCH_SECONDS} s on a "
                             f"value of {len(text):,} characters") from None

    return search


class Matches(FieldTest):
    __slots__ = ("search",)

    def __init__(self, path: str, pattern: Any) -> None:
        super().__init__(path)
        self.search = bounded_search(pattern)

    def check(self, value: Any, ctx: Context) -> bool:
        if value is None:
            return False
        if _is_list(value):
            return any(v is not None and self.search(str(v)) is not None for v in value)
        return self.search(value if isinstance(value, str) else str(value)) is not None

    def source(self, gen: _Generator) -> str:
        v, search = gen.var(), gen.const(self.search)
        text = f"type({v} := {gen.value(self.path)}) is str"
        return f"({search}({v}) is not None if {text} else {gen.check(Matches.check, self, v)})"


class Exists(FieldTest):
    __slots__ = ("wanted",)

    def __init__(self, path: str, wanted: bool) -> None:
        super().__init__(path)
        self.wanted = wanted

    def check(self, value: Any, ctx: Context) -> bool:
        return (value is not None) is self.wanted

    def source(self, gen: _Generator) -> str:
        if not isinstance(self.wanted, bool):
            return gen.call(self)
        return f"({gen.value(self.path)} is {'not ' if self.wanted else ''}None)"


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

    def source(self, gen: _Generator) -> str:
        if self.kind != "number":
            return gen.call(self)
        v, bound = gen.var(), gen.const(self.bound)
        number = f"type({v} := {gen.value(self.path)}) in _NUMBERS"
        fallback = gen.check(Compare.check, self, v)
        return f"({v} {_OPERATORS[self.op]} {bound} if {number} else {fallback})"


_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


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
            return _plain_held(tuple(child.path for child in self.children))  # type: ignore[attr-defined]
        parts = tuple(child.held() for child in self.children)  # all hold: all explain
        return lambda ctx: _merge(part(ctx) for part in parts)

    def source(self, gen: _Generator) -> str:
        return "(" + " and ".join(child.source(gen) for child in self.children) + ")"

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

    def source(self, gen: _Generator) -> str:
        return "(" + " or ".join(child.source(gen) for child in self.children) + ")"

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

    def source(self, gen: _Generator) -> str:
        return f"(not {self.child.source(gen)})"

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        self.child.thresholds(ctx, out)


def _merge(parts: Iterable[Explanation]) -> Explanation:
    merged: Explanation = {}
    for part in parts:
        merged.update(part)
    return merged


# ----------------------------------------------------------------------------- code generation

_SCALARS = frozenset({str, int, float, bool, type(None)})  # hashable, `in` cannot raise
_NUMBERS = frozenset({int, float})


class _Generator:
    """Collects the constants and local names of one generated function."""

    built = 0

    def __init__(self) -> None:
        self.names: dict[str, Any] = {"_SCALARS": _SCALARS, "_NUMBERS": _NUMBERS}
        self.count = 0

    def const(self, value: Any) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name

    def var(self) -> str:
        self.count += 1
        return f"_v{self.count}"

    def value(self, path: str) -> str:
        """The field's value, as `resolve` finds it: a plain key straight from the fields, a
        two-part path (`custom.kind`) through a plain dict inline, deeper ones by `resolve`."""
        if "." not in path:
            return f"F.get({path!r})"
        if path.count(".") > 1:
            return f"{self.const(resolve)}(F, {path!r})"
        head, tail = path.split(".")
        v, w, missing, walk = self.var(), self.var(), self.const(_MISSING), self.const(resolve)
        inner = (
            f"({w}.get({tail!r}) if type({w} := F.get({head!r})) is dict else {walk}(F, {path!r}))"
        )
        return f"({v} if ({v} := F.get({path!r}, {missing})) is not {missing} else {inner})"

    def call(self, node: Condition) -> str:
        """The node's own `fast()` closure called on the context."""
        return f"{self.const(node.fast())}(ctx)"

    def check(self, check: Callable[..., bool], node: Condition, value: str) -> str:
        """`check(node, value, ctx)`: a FieldTest's own check on a value already looked up."""
        return f"{self.const(check)}({self.const(node)}, {value}, ctx)"

    def build(self, name: str, body: str, fallback: Callable[..., Any]) -> Any:
        """def name(ctx): F = ctx.fields; return body -- and on any exception, the answer (or
        the exception) of `fallback`, the closures the source was generated from."""
        self.names["_fallback"] = fallback
        source = (
            f"def {name}(ctx):\n"
            f"    F = ctx.fields\n"
            f"    try:\n"
            f"        return {body}\n"
            f"    except Exception:\n"
            f"        return _fallback(ctx)\n"
        )
        _Generator.built += 1  # a file name of its own: profilers tell the functions apart
        exec(compile(source, f"<condition {name} #{_Generator.built}>", "exec"), self.names)
        return self.names[name]


def compile_test(condition: Condition) -> Test:
    """`condition.test` as one generated Python function: the usual tests (equality, lists,
    tags, regexes, numbers, exists) inlined over the record's fields, anything else through its
    `fast()` closure. Same answers as `test`; should the inlined code raise, the closures answer
    (so errors too are the closures' own)."""
    if condition is ALWAYS:
        return condition.fast()
    gen = _Generator()
    body = f"True if {condition.source(gen)} else False"
    return gen.build("test", body, condition.fast())  # type: ignore[no-any-return]


def _plain_held(paths: tuple[str, ...]) -> Callable[[Context], Explanation]:
    """{path: json_safe(value)} for each path, generated (scalars need no json_safe call)."""
    gen = _Generator()
    json = gen.const(json_safe)
    items = []
    for path in dict.fromkeys(paths):
        v = gen.var()
        items.append(
            f"{path!r}: ({v} if type({v} := {gen.value(path)}) in _SCALARS else {json}({v}))"
        )
    slow = lambda ctx: {path: json_safe(ctx.value(path)) for path in paths}  # noqa: E731
    return gen.build("held", "{" + ", ".join(items) + "}", slow)  # type: ignore[no-any-return]


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
