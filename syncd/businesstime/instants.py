"""Instants from what vendors and rules write: datetimes, dates, ISO text. Conditions,
the rule lint and the daemon read field values through this one parse, so that they agree on
what a naive time or a bare date means."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from typing import Any


def as_instant(value: Any, tz: tzinfo = UTC, naive: tzinfo = UTC) -> datetime | None:
    """An aware datetime from a datetime, a date (00:00 in `tz`) or an ISO string; else None.

    A naive datetime is taken in `naive`: UTC for vendor data, the calendar's zone for rules.
    """
    if isinstance(value, str):  # vendor data: ISO text, the common case first
        if not value[:1].isdigit():
            return None
        if len(value) == 10:
            parsed = parse_date(value)
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


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
