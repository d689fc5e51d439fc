"""Business-time arithmetic fast enough for the rule engine's hot loop: `TimeMath` gives
`durations.apply_offset`'s answers on one calendar, on datetimes or on integer microseconds
since the epoch (`micros`, `from_micros`), with business minutes and hours looked up in a
table of the calendar's working spans instead of walked day by day.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from syncd.businesstime.durations import Offset, apply_offset

if TYPE_CHECKING:
    from syncd.businesstime.calendars import Calendar


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
