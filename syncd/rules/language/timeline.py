"""Timeline rules (docs/rules.md, "Timeline rules"): steps, their timing, anchors, deferral
and catch-up after downtime."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import pydantic
from pydantic import Discriminator, Field, WithJsonSchema, model_validator

from syncd.businesstime import durations
from syncd.rules.language.actions import Actions
from syncd.rules.language.base import Node, OffsetField, Period, TimeOfDay, Weekdays, parsed
from syncd.rules.language.conditions import ConditionField

_FIXED_UNITS = ("minutes", "hours", "days", "weeks")


class CatchUp(Node):
    """What to do with a due instant that passed while the daemon was down."""

    policy: Literal["fire", "skip", "fire_if_within"] = "fire"
    within: timedelta | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return {"policy": raw}
        if isinstance(raw, dict) and set(raw) == {"fire_if_within"}:
            window = parsed(durations.parse_offset)(raw["fire_if_within"])
            if window.unit not in _FIXED_UNITS or window.amount <= 0:
                raise ValueError(f"fire_if_within takes a positive wall duration such as 2h, "
                                 f"got {window}")
            return {"policy": "fire_if_within", "within": timedelta(**{window.unit: window.amount})}
        return raw


CatchUpField = Annotated[
    CatchUp,
    WithJsonSchema(
        {
            "description": "fire (default) | skip | {fire_if_within: 2h}",
            "anyOf": [
                {"enum": ["fire", "skip"]},
                {
                    "type": "object",
                    "properties": {"fire_if_within": {"type": "string"}},
                    "required": ["fire_if_within"],
                    "additionalProperties": False,
                },
            ],
        }
    ),
]


TIMING_KEYS = ("after", "every", "from", "to", "at", "repeat")


class Timing(Node):
    """When a step is due: at `after` (optionally repeating), or on weekdays `every` between
    `from` and `to`."""

    after: OffsetField | None = None
    every: Weekdays | None = None
    from_: OffsetField | None = Field(None, alias="from", description="Range start (inclusive)")
    to: OffsetField | None = Field(None, description="Range end (exclusive)")
    at: TimeOfDay | None = Field(None, description="Local time of day on the calendar")
    repeat: Period | None = Field(None, description="every <period>, forever")

    @property
    def is_pattern(self) -> bool:
        return self.every is not None

    @model_validator(mode="after")
    def _timing(self) -> Timing:
        if self.every is None:
            if self.after is None:
                raise ValueError("a step needs 'after' (or 'every' with 'from' and 'to')")
            if self.from_ is not None or self.to is not None:
                raise ValueError("'from' and 'to' belong to an 'every' step")
        else:
            if self.after is not None or self.repeat is not None:
                raise ValueError("an 'every' step takes 'from' and 'to', not 'after' or 'repeat'")
            if self.from_ is None or self.to is None:
                raise ValueError("an 'every' step needs 'from' and 'to'")
        return self


class Step(Timing):
    """One step of a timeline: its timing, its actions, an optional catch-up override."""

    id: str = Field("", description="Step id; default step-<n> (1-based). Part of intent keys")
    do: Actions
    catch_up: CatchUpField | None = Field(None, description="Overrides the rule's catch_up")


def default_step_id(raw: Any, number: int) -> Any:
    """A raw step with its default id `step-<n>` (1-based) when it has none."""
    return {"id": f"step-{number}", **raw} if isinstance(raw, dict) and "id" not in raw else raw


class BecameAnchor(Node):
    """The instant the record started to match a condition."""

    became: ConditionField


def _anchor_kind(value: Any) -> str:
    return "field" if isinstance(value, str) else "became"


Anchor = Annotated[
    Annotated[str, pydantic.Tag("field")] | Annotated[BecameAnchor, pydantic.Tag("became")],
    Discriminator(_anchor_kind),
]


class Defer(Node):
    """While `when` holds, `from_step` and later steps are re-anchored on the `to` field."""

    when: ConditionField
    from_step: str
    to: str = Field(description="Date/datetime field that from_step lands on")
