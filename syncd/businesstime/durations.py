"""Offsets, periods, weekdays and times of day as admins write them in rules, and the exact
arithmetic that turns an anchor instant plus an offset into a due instant.

Wall units (`90m`, `24h`, `2d`, `6w`, `6 months`) need no calendar; business units
(`90 business_minutes`, `1 business_hour`, `3 business_days`) count only a calendar's working
time. Nothing here reads the clock: every instant is an argument.
"""

from __future__ import annotations

import calendar as _stdcal
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal

from syncd.errors import Skippable

if TYPE_CHECKING:
    from syncd.businesstime.calendars import Calendar

Unit = Literal[
    "minutes",
    "hours",
    "days",
    "weeks",
    "months",
    "business_minutes",
    "business_hours",
    "business_days",
]


class DurationError(Skippable, ValueError):
    """A duration, period, weekday or time-of-day text that cannot be understood."""


_UNIT_ALIASES: dict[str, Unit] = {
    "m": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
    "month": "months",
    "months": "months",
    "business_minute": "business_minutes",
    "business_minutes": "business_minutes",
    "business_hour": "business_hours",
    "business_hours": "business_hours",
    "business_day": "business_days",
    "business_days": "business_days",
}

_SHORT: dict[Unit, str] = {"minutes": "m", "hours": "h", "days": "d", "weeks": "w"}

# About 100 years in every unit: far beyond any real rule, and keeps datetime arithmetic safe.
_MAX_AMOUNT: dict[Unit, int] = {
    "minutes": 100 * 366 * 24 * 60,
    "hours": 100 * 366 * 24,
    "days": 100 * 366,
    "weeks": 100 * 366 // 7,
    "months": 100 * 12,
    "business_minutes": 100 * 366 * 24 * 60,
    "business_hours": 100 * 366 * 24,
    "business_days": 100 * 366,
}

_ACCEPTED = (
    "a signed whole number and one unit, e.g. '90m', '24h', '2d', '-2w', '+100d', '6 months', "
    "'90 business_minutes', '1 business_hour', '3 business_days'"
)
_OFFSET_RE = re.compile(r"(?P<sign>[+-]?)(?P<amount>[0-9]+)\s*(?P<unit>[A-Za-z][A-Za-z_ ]*)")
_NUMBER_RE = re.compile(r"[+-]?[0-9]+")
_FRACTION_RE = re.compile(r"[+-]?[0-9]*\.[0-9]+\s*[A-Za-z_ ]*")


@dataclass(frozen=True)
class Offset:
    """A signed amount of exactly one unit; `str()` gives the canonical text that parses back."""

    amount: int
    unit: Unit

    @property
    def is_business(self) -> bool:
        return self.unit.startswith("business_")

    @property
    def sign(self) -> int:
        """-1, 0 or 1."""
        return (self.amount > 0) - (self.amount < 0)

    def __str__(self) -> str:
        if self.unit in _SHORT:
            return f"{self.amount}{_SHORT[self.unit]}"
        name = self.unit[:-1] if abs(self.amount) == 1 else self.unit
        return f"{self.amount} {name}"


def parse_offset(text: str | int) -> Offset:
    """Parse an offset such as `90m`, `-2w`, `6 months` or `3 business_days`.

    A bare number is refused even when it is 0: `0` could mean minutes or days, and YAML turns
    `after: 0` into an int, so the admin must write `0d`.
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise DurationError(f"invalid offset {text!r}: expected {_ACCEPTED}")
    stripped = str(text).strip()
    if _NUMBER_RE.fullmatch(stripped):
        raise DurationError(
            f"invalid offset {text!r}: a unit is required; write e.g. '{stripped}d' or "
            f"'{stripped}h' ({_ACCEPTED})"
        )
    match = _OFFSET_RE.fullmatch(stripped)
    if match is None:
        if _FRACTION_RE.fullmatch(stripped):
            raise DurationError(
                f"invalid offset {text!r}: fractions are not accepted, use a smaller unit "
                f"(e.g. '90m' instead of '1.5h')"
            )
        raise DurationError(f"invalid offset {text!r}: expected {_ACCEPTED}")
    unit = _unit_of(match["unit"], text)
    amount = int(match["amount"]) * (-1 if match["sign"] == "-" else 1)
    if abs(amount) > _MAX_AMOUNT[unit]:
        raise DurationError(
            f"invalid offset {text!r}: out of range (at most {_MAX_AMOUNT[unit]} {unit})"
        )
    return Offset(amount, unit)


def _unit_of(raw: str, text: str) -> Unit:
    """Single letters are case-sensitive (`M` could be months); words are not."""
    key = raw.strip()
    if len(key) > 1:
        key = re.sub(r"[\s_]+", "_", key.lower())
    unit = _UNIT_ALIASES.get(key)
    if unit is None:
        raise DurationError(
            f"invalid offset {text!r}: unknown unit {raw.strip()!r}; accepted units: m, h, d, w, "
            f"months, business_minutes, business_hours, business_days (singular or plural)"
        )
    return unit


def parse_period(text: str) -> Offset:
    """Parse a repeat period such as `every 6 months` or `every 2w` (`every` is optional).

    Periods must be positive: a zero or negative period would repeat forever at one instant or
    run backwards.
    """
    if not isinstance(text, str):
        raise DurationError(f"invalid period {text!r}: expected text such as 'every 6 months'")
    body = re.sub(r"^\s*every\s+", "", text, flags=re.IGNORECASE)
    try:
        offset = parse_offset(body)
    except DurationError as exc:
        raise DurationError(
            f"invalid period {text!r}: expected 'every' and a positive duration, "
            f"e.g. 'every 6 months', 'every 2w' ({exc})"
        ) from None
    if offset.amount <= 0:
        raise DurationError(f"invalid period {text!r}: the period must be positive")
    return offset


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


def parse_weekdays(value: str | list[str]) -> frozenset[int]:
    """Parse weekdays (0 = Monday) from `[MON, WED, FRI]`, `mon-fri` or `"mon,wed"`.

    Names are case-insensitive, three letters or in full. A range runs forward through the
    week, so `fri-mon` is Friday to Monday.
    """
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise DurationError(
            f"invalid weekdays {value!r}: expected day names like [MON, WED], 'mon-fri' "
            f"or 'mon,wed'"
        )
    days: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise DurationError(f"invalid weekdays {value!r}: {item!r} is not a day name")
        for part in item.split(","):
            days |= _weekday_range(part, value)
    return frozenset(days)


def _weekday_range(part: str, value: object) -> set[int]:
    ends = [_weekday(name, value) for name in part.split("-")]
    if len(ends) == 1:
        return {ends[0]}
    if len(ends) != 2:
        raise DurationError(f"invalid weekdays {value!r}: bad range {part.strip()!r}")
    first, last = ends
    return {(first + i) % 7 for i in range((last - first) % 7 + 1)}


def _weekday(name: str, value: object) -> int:
    key = name.strip().lower()
    for names in (_WEEKDAYS, _FULL_WEEKDAYS):
        if key in names:
            return names.index(key)
    raise DurationError(
        f"invalid weekdays {value!r}: unknown day {name.strip()!r} "
        f"(use mon, tue, wed, thu, fri, sat, sun)"
    )


_TIME_RE = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


def parse_time_of_day(value: str | time) -> time:
    """Parse a local time of day `HH:MM` (24-hour clock, `00:00` to `23:59`)."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 10:30 as the sexagesimal number 630.
        raise DurationError(
            f"invalid time of day {value!r}: looks like an unquoted time read as a number; "
            f'quote it, e.g. "09:00"'
        )
    match = _TIME_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise DurationError(f"invalid time of day {value!r}: expected HH:MM, e.g. '09:00'")
    return time(int(match[1]), int(match[2]))


def apply_offset(anchor: datetime, offset: Offset, calendar: Calendar | None = None) -> datetime:
    """The instant `offset` after (or before, if negative) the aware instant `anchor`.

    - `m`, `h`: absolute time, so `24h` across a DST change is 24 real hours.
    - `d`, `w`, `months`: calendar days in the anchor's own timezone, keeping its wall time,
      so `+1d` from 09:00 the day before a DST change is 09:00 again. Months clamp the day to
      the month's end (Jan 31 + 1 month = Feb 28/29). A wall time that does not exist (the
      spring-forward gap) moves forward by the gap's length; an ambiguous one (fall-back)
      takes its first occurrence. Pass the anchor in the timezone whose days should count.
    - business units: through `calendar` (`Calendar.add`, `Calendar.add_days`).

    The result is expressed in the anchor's timezone.
    """
    if anchor.tzinfo is None:
        raise ValueError(f"apply_offset needs a timezone-aware anchor, got {anchor!r}")
    tz = anchor.tzinfo
    if offset.is_business:
        return _apply_business(anchor, offset, calendar).astimezone(tz)
    try:
        if offset.unit in ("minutes", "hours"):
            delta = timedelta(**{offset.unit: offset.amount})
            return (anchor.astimezone(UTC) + delta).astimezone(tz)
        local = anchor.replace(tzinfo=None, fold=0)
        if offset.unit == "months":
            shifted = _add_months(local, offset.amount)
        else:
            shifted = local + timedelta(**{offset.unit: offset.amount})
        return _resolve_wall(shifted, tz)
    except (OverflowError, ValueError):  # beyond year 1..9999
        raise DurationError(
            f"offset '{offset}' from {anchor.isoformat()} is out of range"
        ) from None


def local_instant(day: date, time_of_day: time, tz: tzinfo) -> datetime:
    """The instant showing `time_of_day` on local date `day` in `tz`: how a date anchor
    (00:00) or a step's `at: "09:00"` becomes an instant. Same DST rules as `apply_offset`."""
    return _resolve_wall(datetime.combine(day, time_of_day), tz)


def _apply_business(anchor: datetime, offset: Offset, calendar: Calendar | None) -> datetime:
    if calendar is None:
        raise DurationError(f"offset '{offset}' counts business time and needs a calendar")
    if offset.unit == "business_days":
        return calendar.add_days(anchor, offset.amount)
    minutes = offset.amount * (60 if offset.unit == "business_hours" else 1)
    return calendar.add(anchor, minutes)


def _add_months(local: datetime, months: int) -> datetime:
    index = local.year * 12 + local.month - 1 + months
    year, month = divmod(index, 12)
    last_day = _stdcal.monthrange(year, month + 1)[1]
    return local.replace(year=year, month=month + 1, day=min(local.day, last_day))


def _resolve_wall(local: datetime, tz: tzinfo) -> datetime:
    """Attach `tz` to a naive wall time; normalising through UTC moves a time in a DST gap
    forward by the gap (fold=0 uses the offset from before the change)."""
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)
