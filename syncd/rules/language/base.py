"""What every part of the rule language shares: the model base, located errors, scalar types.

- Models are the *parsed* language, not the raw YAML: offsets are `durations.Offset`, regexes
  are compiled `re.Pattern`s, weekdays and times of day are parsed, every text an action writes
  is a `Text` (a `str` subclass marking "this is a Jinja2 template", syntax-checked here). The
  engine never parses strings again, and `params()` of an action keeps `Text` so the engine
  renders exactly the template fields (`templates.render_tree`), never a regex or a field name.
- Parse errors that happen below a field (inside a condition, an action wrapper) raise
  `LocatedError`, a `ValueError` carrying sub-paths, so the loader can point at the exact YAML
  node and report every problem of a condition at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, WithJsonSchema

from syncd.businesstime import durations
from syncd.businesstime.durations import DurationError, Offset
from syncd.errors import Skippable
from syncd.rules.language.templates import Text

Path_ = tuple[str | int, ...]
VAR_REFERENCE = re.compile(r"\{\{\s*vars\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")  # vars.py
DEFS = "#/$defs/"


class LocatedError(Skippable, ValueError):
    """Problems found below the field being validated: `(sub-path, message, at_key)` each.

    `at_key` points the diagnostic at the mapping key itself (an unknown key) rather than at its
    value.
    """

    def __init__(self, problems: list[tuple[Path_, str, bool]]) -> None:
        super().__init__("; ".join(message for _, message, _ in problems))
        self.problems = problems


def parsed(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a `durations` parser so its error becomes a ValueError pydantic locates."""

    def validate(value: Any) -> Any:
        try:
            return parse(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None

    return validate


def string_schema(description: str, **extra: Any) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "description": description, **extra})


OffsetField = Annotated[
    Offset,
    PlainValidator(parsed(durations.parse_offset)),
    string_schema(
        "Signed offset, one unit: 90m, 24h, 2d, 6w, -2w, +100d, 6 months, 1 business_hour, "
        "90 business_minutes, 3 business_days",
        examples=["1h", "3 business_days", "-2w"],
    ),
]
TimeOfDay = Annotated[
    time,
    PlainValidator(parsed(durations.parse_time_of_day)),
    string_schema("Local time of day HH:MM", pattern=r"^\d{1,2}:\d{2}$"),
]
Period = Annotated[
    Offset,
    PlainValidator(parsed(durations.parse_period)),
    string_schema("Repeat period: 'every 6 months', 'every 1w'", examples=["every 6 months"]),
]
Weekdays = Annotated[
    frozenset[int],
    PlainValidator(parsed(durations.parse_weekdays)),
    WithJsonSchema(
        {
            "description": "Weekdays: [MON, WED, FRI], 'mon-fri' (Monday is 0 once parsed)",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        }
    ),
]


def compiled_regex(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression string, got {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


Regex = Annotated[
    re.Pattern[str], PlainValidator(compiled_regex), string_schema("Python regular expression")
]

_LATE_REF = "x-syncd-ref"


def late_ref(name: str) -> dict[str, Any]:
    """A reference to a hand-written definition, resolved by `json_schema()` (pydantic insists
    on resolving every `$ref` it meets against its own definitions)."""
    return {_LATE_REF: name}


def resolve_late_refs(node: Any) -> Any:
    if isinstance(node, dict):
        if _LATE_REF in node:
            rest = {k: v for k, v in node.items() if k != _LATE_REF}
            return {"$ref": DEFS + node[_LATE_REF], **rest}
        return {k: resolve_late_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_late_refs(v) for v in node]
    return node


class Node(BaseModel):
    """Base of every model: immutable, unknown keys refused, YAML aliases (`from`) accepted."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=True
    )


def _value(raw: Any) -> Any:
    """A value to set or a rule var: strings are templates (one clear error, no union noise)."""
    if isinstance(raw, str):
        return Text._validate(raw)
    if raw is None or isinstance(raw, (bool, int, float, date)):
        return raw
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        return [Text._validate(v) for v in raw]
    raise ValueError(f"expected a text, number, boolean, date or list of texts, got {raw!r}")


Value = Annotated[
    Any,
    PlainValidator(_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": ["string", "number", "boolean", "null"]},
                {"type": "array", "items": {"type": "string"}},
            ]
        }
    ),
]
