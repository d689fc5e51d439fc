"""A rules file (docs/rules.md, "Files" and "Calendars"): its calendars, defaults, vars and
rules."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import Field

from syncd.rules.language.base import Node, Value, string_schema
from syncd.rules.language.rule import Rule

LocalDateTime = Annotated[
    datetime,
    string_schema("Local date and time, e.g. 2026-12-31T13:00", examples=["2026-12-31T13:00"]),
]


class Closure(Node):
    """A partial closure in local time."""

    from_: LocalDateTime = Field(alias="from")
    to: LocalDateTime


class Holidays(Node):
    """Public holidays through the `holidays` library, plus explicit closures."""

    country: str | None = Field(None, description="ISO country code, e.g. GB")
    subdiv: str | None = Field(None, description="Subdivision, e.g. ENG")
    dates: list[date] = Field(default_factory=list, description="Extra whole-day closures")
    closures: list[Closure] = Field(default_factory=list)


class CalendarSpec(Node):
    """Working time for business durations."""

    timezone: str = Field(description="IANA timezone, e.g. Europe/London")
    hours: dict[str, list[str] | str] = Field(
        description="Days (mon, mon-fri, mon,wed) -> ['HH:MM-HH:MM', ...]; unlisted days closed"
    )
    holidays: Holidays | None = None


class Defaults(Node):
    """Per-file defaults."""

    calendar: str | None = Field(None, description="Calendar when a rule names none")


class RulesFile(Node):
    """A syncd rules file."""

    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    vars: dict[str, Value] = Field(
        default_factory=dict,
        description="Vars of every rule in this file, as if written in each rule's vars; a "
        "rule's own var of the same name wins",
    )
    rules: list[Rule] = Field(default_factory=list)
