"""Business calendars: when a support team works, and exact arithmetic on working time.

Opening hours are local wall times in the calendar's timezone, so "09:00-18:00" means 09:00
in London in winter and in summer. Each local date's hours are turned into exact UTC
intervals once (cached): a DST day open "00:00-24:00" is 23 or 25 hours long, a wall time
inside a spring-forward gap never exists, and a repeated fall-back hour counts twice.
Every method takes and returns aware instants and works to the microsecond; nothing here
reads the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import islice, pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from syncd.businesstime.durations import DurationError, parse_time_of_day, parse_weekdays
from syncd.errors import Skippable

Span = tuple[datetime, datetime]
"""A half-open interval [start, end) of instants."""
_Segment = tuple[datetime, datetime, timedelta]
"""Naive-UTC [start, end) with one UTC offset."""

_DAY = timedelta(days=1)
_PROBE = timedelta(hours=6)
_MINUTE = timedelta(minutes=1)
# UTC offsets lie within -12h..+14h: instants whose local date is D lie in this window.
_MARGIN = timedelta(hours=15)
# How many consecutive days without working time are searched before giving up.
_HORIZON_DAYS = 3 * 366
_MIDNIGHT = time(0)
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CalendarError(Skippable, ValueError):
    """A calendar that is misconfigured, or that has no working time where some is needed."""


@dataclass(frozen=True)
class Calendar:
    """Working hours per weekday in `tz`, minus holidays and closures.

    `weekly` maps a weekday (0 = Monday) to sorted, non-overlapping local (start, end)
    intervals; an end of 00:00 means 24:00. `holiday_dates` are extra whole-day closures;
    public holidays of `country`/`subdiv` come from the `holidays` library, computed per
    year on first use and cached. `closures` are aware [from, to) spans closed whatever the
    hours say.
    """

    name: str
    tz: ZoneInfo
    weekly: dict[int, tuple[tuple[time, time], ...]]
    holiday_dates: frozenset[date] = frozenset()
    closures: tuple[Span, ...] = ()
    country: str | None = None
    subdiv: str | None = None
    _days: dict[date, tuple[Span, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __hash__(self) -> int:
        return hash((self.name, str(self.tz)))

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> Calendar:
        """Build from the `calendars.<name>` YAML mapping (see docs/rules.md, "File layout").

        Every error names the key path and the bad value, e.g.
        `calendars.support.hours.mon-fri[1]: ...`.
        """
        path = f"calendars.{name}"
        _check_mapping(cfg, path, {"timezone", "hours", "holidays"})
        tz = _parse_timezone(cfg.get("timezone"), f"{path}.timezone")
        weekly = _parse_hours(cfg.get("hours"), f"{path}.hours")
        hol_path = f"{path}.holidays"
        hol = cfg.get("holidays") or {}
        _check_mapping(hol, hol_path, {"country", "subdiv", "dates", "closures"})
        country, subdiv = _parse_country(hol.get("country"), hol.get("subdiv"), hol_path)
        return cls(
            name=name,
            tz=tz,
            weekly=weekly,
            holiday_dates=_parse_dates(hol.get("dates"), f"{hol_path}.dates"),
            closures=_parse_closures(hol.get("closures"), tz, f"{hol_path}.closures"),
            country=country,
            subdiv=subdiv,
        )

    @classmethod
    def always_open(cls, name: str = "24x7", tz: ZoneInfo = ZoneInfo("UTC")) -> Calendar:
        """Open every minute of every day: business time equals wall time."""
        return cls(name=name, tz=tz, weekly={d: ((_MIDNIGHT, _MIDNIGHT),) for d in range(7)})

    # ----------------------------------------------------------------- queries

    def is_holiday(self, day: date) -> bool:
        """True when `day` is closed all day: an extra holiday date or a public holiday."""
        return day in self.holiday_dates or (
            self.country is not None
            and day in _public_holidays(self.country, self.subdiv, day.year)
        )

    def working_intervals(self, day: date) -> list[Span]:
        """The working time of local date `day` as aware [start, end) spans in `tz`."""
        return [(s.astimezone(self.tz), e.astimezone(self.tz)) for s, e in self._pieces(day)]

    def is_open(self, at: datetime) -> bool:
        u = _utc(at)
        return any(s <= u < e for s, e in self._pieces(self._local_date(u)))

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when open, else the next opening (CalendarError if none within about
        3 years)."""
        start, _ = next(self._forward(_utc(at)))
        return start.astimezone(self.tz)

    def next_boundary(self, at: datetime) -> datetime | None:
        """The first instant after `at` where the calendar opens or closes (so a scheduler
        can sleep until then), or None if that does not happen within about 3 years."""
        u = _utc(at)
        limit = u + _HORIZON_DAYS * _DAY
        cursor, opening = u, None
        with suppress(CalendarError):
            for start, end in self._forward(u):
                if start > cursor:
                    opening = start
                    break
                if end > limit:
                    return None
                cursor = end
        boundary = cursor if cursor > u else opening
        if boundary is None or boundary > limit:
            return None
        return boundary.astimezone(self.tz)

    def between(self, a: datetime, b: datetime) -> int:
        """Whole business minutes in [a, b), truncated; negative (-between(b, a)) if b < a."""
        ua, ub = _utc(a), _utc(b)
        if ub < ua:
            return -self.between(ub, ua)
        total = timedelta(0)
        day, last = self._local_date(ua), self._local_date(ub) + _DAY
        while day <= last:
            for s, e in self._pieces(day):
                total += max(timedelta(0), min(e, ub) - max(s, ua))
            day += _DAY
        return total // _MINUTE

    # ----------------------------------------------------------------- arithmetic

    def add(self, at: datetime, minutes: int) -> datetime:
        """The instant `minutes` business minutes after `at` (before it, if negative).

        Forward, it is the EARLIEST instant r with `between(at, r) == minutes`, so a result
        that reaches the end of a working interval stays there (17:00 + 60 on a day closing at
        18:00 is 18:00, not the next morning). Backward, it is the LATEST instant r with
        `between(r, at) == -minutes` (09:30 - 30 is 09:00). `add(at, 0)` is `at`.
        Raises CalendarError when no working time exists within about 3 years.
        """
        u = _utc(at)
        left = timedelta(minutes=abs(minutes))
        if minutes > 0:
            for s, e in self._forward(u):
                if left <= e - s:
                    return (s + left).astimezone(self.tz)
                left -= e - s
        elif minutes < 0:
            for s, e in self._backward(u):
                if left <= e - s:
                    return (e - left).astimezone(self.tz)
                left -= e - s
        return u.astimezone(self.tz)

    def add_days(self, at: datetime, days: int) -> datetime:
        """`days` working days after `at` (before it, if negative), at the same position in
        the working day: how support teams count "within 3 business days".

        A working day is a local date with working time; an instant's position is the business
        time since its working day's first opening. Forward, count from the latest working day
        that opened before `at`. While `at` is inside that day, the result is the earliest
        instant at the same position `days` working days later, clamped to that day's end.
        Once the day is over (`at` at or after its last closing: evenings, weekends, before
        the next opening) the result is the END of the `days`-th working day after it, so each
        day counts as one full working day.

        On Mon-Fri 09:00-18:00: Tue 15:00 + 3 = Fri 15:00; Fri 17:30 + 1 = Mon 17:30;
        Sat 10:00 + 1 = Mon 18:00; Tue 07:00 + 1 = Tue 09:00 + 1 = Tue 18:00;
        Tue 09:01 + 1 = Wed 09:01. Where every working day has the same hours this equals
        `add(at, days * day_length)`. Backward mirrors it, positions measured back from the
        day's last closing: Tue 15:00 - 3 = the previous Fri 15:00; Tue 09:00 - 1 = Mon 09:00.
        Positions are business time, so on a 24-hour calendar the wall time shifts across a
        DST change. `add_days(at, 0)` is `at`.
        """
        u = _utc(at)
        if days > 0:
            result = self._days_forward(u, days)
        elif days < 0:
            result = self._days_backward(u, -days)
        else:
            result = u
        return result.astimezone(self.tz)

    def _days_forward(self, u: datetime, days: int) -> datetime:
        start = self._local_date(u) + _DAY
        base = next(d for d in self._working_days(start, -1) if self._pieces(d)[0][0] < u)
        pieces = self._pieces(base)
        done = sum((min(e, u) - s for s, e in pieces if s < u), timedelta(0))
        target = self._pieces(_nth(self._working_days(base + _DAY, 1), days))
        if done >= _length(pieces):
            return target[-1][1]
        for s, e in target:
            if done <= e - s:
                return s + done
            done -= e - s
        return target[-1][1]

    def _days_backward(self, u: datetime, days: int) -> datetime:
        start = self._local_date(u)
        base = next(d for d in self._working_days(start, 1) if self._pieces(d)[-1][1] > u)
        pieces = self._pieces(base)
        left = sum((e - max(s, u) for s, e in pieces if e > u), timedelta(0))
        target = self._pieces(_nth(self._working_days(base - _DAY, -1), days))
        if left >= _length(pieces):
            return target[0][0]
        for s, e in reversed(target):
            if left <= e - s:
                return e - left
            left -= e - s
        return target[0][0]

    # ----------------------------------------------------------------- internals

    def _local_date(self, u: datetime) -> date:
        return u.astimezone(self.tz).date()

    def _forward(self, u: datetime) -> Iterator[Span]:
        """Working spans from `u` on, the first one clipped to start at `u`."""
        for day in self._working_days(self._local_date(u), 1):
            for s, e in self._pieces(day):
                if e > u:
                    yield max(s, u), e

    def _backward(self, u: datetime) -> Iterator[Span]:
        """Working spans before `u`, latest first, the first one clipped to end at `u`.

        Starts a day late: an instant in a fall-back hour that crosses midnight can follow
        the first minutes of the next local date."""
        for day in self._working_days(self._local_date(u) + _DAY, -1):
            for s, e in reversed(self._pieces(day)):
                if s < u:
                    yield s, min(e, u)

    def _working_days(self, day: date, step: int) -> Iterator[date]:
        """Dates with working time from `day` on, going `step` (+1/-1) days at a time."""
        idle, idle_since = 0, day
        while idle <= _HORIZON_DAYS:
            if self._pieces(day):
                idle = 0
                yield day
            else:
                idle, idle_since = idle + 1, idle_since if idle else day
            day += step * _DAY
        raise CalendarError(
            f"calendar {self.name!r} has no working time in the {_HORIZON_DAYS} days "
            f"{'from' if step > 0 else 'up to'} {idle_since.isoformat()}: check its hours, "
            f"holidays and closures"
        )

    def _pieces(self, day: date) -> tuple[Span, ...]:
        cached = self._days.get(day)
        if cached is None:
            cached = self._compute_pieces(day)
            self._days[day] = cached
        return cached

    def _compute_pieces(self, day: date) -> tuple[Span, ...]:
        """Exact UTC spans whose local wall time falls in the day's hours, minus closures."""
        hours = self.weekly.get(day.weekday(), ())
        if not hours or self.is_holiday(day):
            return ()
        segments, lo, hi = _day_frame(self.tz, day)
        pieces: list[tuple[datetime, datetime]] = []
        for start, end in hours:
            wall_start = datetime.combine(day, start)
            wall_end = datetime.combine(day + _DAY if end == _MIDNIGHT else day, end)
            for seg_start, seg_end, offset in segments:
                s = max(seg_start, wall_start - offset, lo)
                e = min(seg_end, wall_end - offset, hi)
                if s < e:
                    pieces.append((s.replace(tzinfo=UTC), e.replace(tzinfo=UTC)))
        closures = tuple((_utc(s), _utc(e)) for s, e in self.closures)
        return tuple(_subtract(_merge(sorted(pieces)), closures))


# --------------------------------------------------------------------- time helpers


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"calendar arithmetic needs a timezone-aware instant, got {at!r}")
    return at.astimezone(UTC)


def _length(pieces: tuple[Span, ...]) -> timedelta:
    return sum((e - s for s, e in pieces), timedelta(0))


def _nth(days: Iterator[date], n: int) -> date:
    """The n-th (1-based) item."""
    return next(islice(days, n - 1, None))


def _offset(tz: tzinfo, naive_utc: datetime) -> timedelta:
    return naive_utc.replace(tzinfo=UTC).astimezone(tz).utcoffset() or timedelta(0)


@lru_cache(maxsize=1024)
def _public_holidays(country: str, subdiv: str | None, year: int) -> frozenset[date]:
    """One year of public holidays, computed on first use and shared by all calendars."""
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=year).keys())


@lru_cache(maxsize=16384)
def _day_frame(tz: tzinfo, day: date) -> tuple[tuple[_Segment, ...], datetime, datetime]:
    """The constant-offset segments around local date `day` and the naive-UTC stretch
    [lo, hi) of instants that belong to it. Pieces are clipped to that stretch, so dates never
    interleave even where a fall-back crosses midnight. Shared by calendars with one tz."""
    midnight = datetime.combine(day, _MIDNIGHT)
    segments = tuple(_offset_segments(tz, midnight - _MARGIN, midnight + _DAY + _MARGIN))
    return segments, _first_reaching(segments, midnight), _first_reaching(segments, midnight + _DAY)


def _offset_segments(tz: tzinfo, lo: datetime, hi: datetime) -> list[_Segment]:
    """Split naive-UTC [lo, hi) into (start, end, utc_offset) pieces of constant offset.

    Probes every 6 hours: no zone changes its offset twice within 6 hours."""
    segments: list[_Segment] = []
    start, offset, probe = lo, _offset(tz, lo), lo
    while probe < hi:
        step = min(probe + _PROBE, hi)
        if _offset(tz, step) == offset:
            probe = step
            continue
        change = _first_change(tz, probe, step, offset)
        segments.append((start, change, offset))
        start, offset, probe = change, _offset(tz, change), change
    segments.append((start, hi, offset))
    return segments


def _first_change(tz: tzinfo, lo: datetime, hi: datetime, offset: timedelta) -> datetime:
    """First whole second in (lo, hi] whose offset differs from `offset` (tzdata
    transitions fall on whole seconds)."""
    below, above = 0, int((hi - lo).total_seconds())
    while above - below > 1:
        mid = (below + above) // 2
        if _offset(tz, lo + timedelta(seconds=mid)) == offset:
            below = mid
        else:
            above = mid
    return lo + timedelta(seconds=above)


def _first_reaching(segments: Sequence[_Segment], wall: datetime) -> datetime:
    """The first naive-UTC instant whose local wall time is at or after `wall`: for a wall
    time inside a DST gap, the instant the clocks jump."""
    for start, end, offset in segments:
        candidate = max(start, wall - offset)
        if candidate < end:
            return candidate
    return segments[-1][1]


def _wall_to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """A local wall time as an aware UTC instant: the first occurrence of an ambiguous time,
    and the jump instant for a time that DST skips (so closures never invert)."""
    segments = _offset_segments(tz, wall - _MARGIN, wall + _MARGIN)
    return _first_reaching(segments, wall).replace(tzinfo=UTC)


def _merge(pieces: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for s, e in pieces:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def _subtract(pieces: list[Span], closures: tuple[Span, ...]) -> list[Span]:
    for c_start, c_end in closures:
        kept: list[Span] = []
        for s, e in pieces:
            if c_end <= s or c_start >= e:
                kept.append((s, e))
                continue
            if s < c_start:
                kept.append((s, c_start))
            if c_end < e:
                kept.append((c_end, e))
        pieces = kept
    return pieces


# --------------------------------------------------------------------- config parsing


def _check_mapping(value: object, path: str, allowed: set[str]) -> None:
    if not isinstance(value, Mapping):
        raise CalendarError(f"{path}: expected a mapping, got {value!r}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise CalendarError(
            f"{path}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _parse_timezone(value: object, path: str) -> ZoneInfo:
    if value is None:
        raise CalendarError(f"{path}: required (an IANA timezone name, e.g. Europe/London)")
    try:
        if not isinstance(value, str):
            raise TypeError
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CalendarError(
            f"{path}: unknown timezone {value!r} (expected an IANA name, e.g. Europe/London)"
        ) from None


def _parse_hours(value: object, path: str) -> dict[int, tuple[tuple[time, time], ...]]:
    if value is None:
        raise CalendarError(f'{path}: required (e.g. mon-fri: ["09:00-18:00"])')
    if not isinstance(value, Mapping):
        raise CalendarError(f"{path}: expected a mapping of days to intervals, got {value!r}")
    weekly: dict[int, tuple[tuple[time, time], ...]] = {}
    given_by: dict[int, str] = {}
    for key, intervals in value.items():
        key_path = f"{path}.{key}"
        days = _parse_day_key(key, key_path)
        parsed = _parse_intervals(intervals, key_path)
        for day in sorted(days):
            if day in given_by:
                raise CalendarError(
                    f"{key_path}: {_DAY_NAMES[day]} is already given by {given_by[day]!r}"
                )
            given_by[day] = str(key)
            if parsed:
                weekly[day] = parsed
    return dict(sorted(weekly.items()))


def _parse_day_key(key: object, path: str) -> frozenset[int]:
    try:
        if not isinstance(key, str):
            raise DurationError(f"{key!r} is not a day name")
        return parse_weekdays(key)
    except DurationError as exc:
        raise CalendarError(
            f"{path}: bad day key {key!r} (use mon..sun, a range like mon-fri or a list like "
            f"mon,wed): {exc}"
        ) from None


_INTERVAL_RE = re.compile(r"\s*([0-9:]+)\s*-\s*([0-9:]+)\s*")


def _parse_intervals(value: object, path: str) -> tuple[tuple[time, time], ...]:
    """`["09:00-12:30", "13:30-18:00"]` (or one string; empty or null for closed)."""
    items = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(items, list):
        raise CalendarError(f'{path}: expected a list like ["09:00-18:00"], got {value!r}')
    parsed = sorted(
        (_parse_interval(item, f"{path}[{i}]") for i, item in enumerate(items)),
        key=lambda iv: iv[0],
    )
    for (_, prev_end, prev_text), (start, _, text) in pairwise(parsed):
        if start < prev_end:
            raise CalendarError(f"{path}: intervals {prev_text!r} and {text!r} overlap")
    return tuple((_minutes_to_time(s), _minutes_to_time(e)) for s, e, _ in parsed)


def _parse_interval(value: object, path: str) -> tuple[int, int, str]:
    """An "HH:MM-HH:MM" interval as (start, end) minutes of the day; end may be 24:00."""
    match = _INTERVAL_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise CalendarError(f'{path}: bad interval {value!r} (expected "HH:MM-HH:MM")')
    try:
        start = _time_to_minutes(parse_time_of_day(match[1]))
        end = 24 * 60 if match[2] == "24:00" else _time_to_minutes(parse_time_of_day(match[2]))
    except DurationError as exc:
        raise CalendarError(f"{path}: bad interval {value!r}: {exc}") from None
    if end <= start:
        hint = " (write 24:00 for midnight at the end of the day)" if end == 0 else ""
        raise CalendarError(f"{path}: bad interval {value!r}: end must be after start{hint}")
    return start, end, str(value)


def _time_to_minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _minutes_to_time(minutes: int) -> time:
    """24:00 becomes 00:00, which as an end means the end of the day."""
    return time((minutes // 60) % 24, minutes % 60)


def _parse_country(country: object, subdiv: object, path: str) -> tuple[str | None, str | None]:
    if country is None:
        if subdiv is not None:
            raise CalendarError(f"{path}.subdiv: needs holidays.country to be set")
        return None, None
    supported = holidays.list_supported_countries()
    code = country.upper() if isinstance(country, str) else None
    if code not in supported:
        raise CalendarError(
            f"{path}.country: unknown holiday country {country!r} (an ISO 3166-1 alpha-2 code "
            f"supported by the holidays library, e.g. GB, US, DE)"
        )
    if subdiv is None:
        return code, None
    known = supported[code]
    for candidate in (subdiv, str(subdiv).upper()):
        if candidate in known:
            return code, candidate
    raise CalendarError(
        f"{path}.subdiv: unknown subdivision {subdiv!r} for {code} "
        f"(known: {', '.join(known) or 'none'})"
    )


def _parse_dates(value: object, path: str) -> frozenset[date]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise CalendarError(f"{path}: expected a list of dates like [2026-12-24], got {value!r}")
    return frozenset(_parse_date(item, f"{path}[{i}]") for i, item in enumerate(value))


def _parse_date(value: object, path: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        if not isinstance(value, str):
            raise TypeError
        return date.fromisoformat(value.strip())
    except (TypeError, ValueError):
        raise CalendarError(f"{path}: bad date {value!r} (expected YYYY-MM-DD)") from None


def _parse_closures(value: object, tz: ZoneInfo, path: str) -> tuple[Span, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CalendarError(f"{path}: expected a list of {{from, to}} mappings, got {value!r}")
    closures = []
    for i, item in enumerate(value):
        item_path = f"{path}[{i}]"
        _check_mapping(item, item_path, {"from", "to"})
        start = _parse_instant(item.get("from"), tz, f"{item_path}.from")
        end = _parse_instant(item.get("to"), tz, f"{item_path}.to")
        if end <= start:
            raise CalendarError(f"{item_path}: 'to' ({item['to']!r}) must be after 'from'")
        closures.append((start, end))
    return tuple(sorted(closures))


def _parse_instant(value: object, tz: ZoneInfo, path: str) -> datetime:
    """A local date-time such as "2026-12-31T13:00" (an explicit offset is honoured)."""
    try:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip())
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime.combine(value, _MIDNIGHT)
        if not isinstance(value, datetime):
            raise TypeError
    except (TypeError, ValueError):
        raise CalendarError(
            f"{path}: bad date-time {value!r} (expected local time like 2026-12-31T13:00)"
        ) from None
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return _wall_to_utc(value, tz)
