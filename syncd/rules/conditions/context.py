"""One record version as conditions see it (`Context`: fields, previous version, now, the
rule's business time), and the value helpers the nodes and the generated code share: dotted
paths (`resolve`) and values as the audit stores them (`json_safe`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from syncd.businesstime.instants import as_instant
from syncd.businesstime.spans import UTC_MATH, TimeMath

if TYPE_CHECKING:
    from syncd.businesstime.calendars import Calendar

_MISSING = object()
Explanation = dict[str, Any]
Test = Callable[["Context"], bool]


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
