"""Conditions (docs/rules.md, "Conditions"): the tree a YAML condition parses to.

Conditions are a tree: `FieldCondition(field, op, value)` | `AllOf(all)` | `AnyOf(any)` |
`Not(not_)`. A YAML mapping with several keys becomes `AllOf`; a bare scalar is `eq`, a bare
list is `in`; `{gte: 1, lt: 5}` becomes two `FieldCondition`s under `AllOf`. `value` by op:
eq/ne/contains/lacks: a scalar; in/not_in: a tuple; matches: `re.Pattern`; exists/changed:
bool; gt/gte/lt/lte: number, date or datetime (ISO strings are parsed); older_than/newer_than:
`Offset`; became: a `Condition` over the same field (true on the first observed version that
matches after one that did not). A value `"{{ vars.NAME }}"` reaches these models already
replaced by the var's value (the loader runs `vars.substitute_vars` on the YAML first).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, PlainValidator, WithJsonSchema

from syncd.businesstime import durations
from syncd.rules.language.base import (
    LocatedError,
    Node,
    Path_,
    compiled_regex,
    late_ref,
    parsed,
)
from syncd.rules.language.diagnostics import did_you_mean

Scalar: TypeAlias = str | int | float | bool | date | datetime | None
Op = Literal[
    "eq", "ne", "in", "not_in", "contains", "lacks", "matches", "exists",
    "gt", "gte", "lt", "lte", "older_than", "newer_than", "changed", "became",
]
OPS: tuple[str, ...] = Op.__args__  # type: ignore[attr-defined]


class FieldCondition(Node):
    """One operator applied to one field (dotted path into nested fields)."""

    field: str
    op: Op
    value: Any


class AllOf(Node):
    all: tuple[Condition, ...]


class AnyOf(Node):
    any: tuple[Condition, ...]


class Not(Node):
    not_: Condition = Field(alias="not")


Condition: TypeAlias = FieldCondition | AllOf | AnyOf | Not
for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()


class _ConditionParser:
    """Turns the YAML condition shape into the tree, collecting every problem on the way."""

    def __init__(self) -> None:
        self.problems: list[tuple[Path_, str, bool]] = []

    def fail(self, path: Path_, message: str, at_key: bool = False) -> None:
        self.problems.append((path, message, at_key))

    def condition(self, raw: Any, path: Path_) -> Condition | None:
        if not isinstance(raw, dict) or not raw:
            self.fail(path, f"a condition is a non-empty mapping of field: test, got {raw!r}")
            return None
        parts = [self.entry(str(key), value, (*path, key)) for key, value in raw.items()]
        return None if None in parts else _all(parts)  # type: ignore[arg-type]

    def entry(self, key: str, value: Any, path: Path_) -> Condition | None:
        if key == "not":
            inner = self.condition(value, path)
            return Not(not_=inner) if inner is not None else None
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                self.fail(path, f"'{key}' takes a non-empty list of conditions")
                return None
            items = [self.condition(item, (*path, i)) for i, item in enumerate(value)]
            if None in items:
                return None
            return AllOf(all=tuple(items)) if key == "all" else AnyOf(any=tuple(items))
        return self.predicate(key, value, path, nested=False)

    def predicate(self, field: str, raw: Any, path: Path_, nested: bool) -> Condition | None:
        """`raw` tests `field`: a scalar (eq), a list (in) or a mapping of operators."""
        if isinstance(raw, list):
            return self.test(field, "in", raw, path)
        if not isinstance(raw, dict):
            return self.test(field, "eq", raw, path)
        if not raw:
            self.fail(path, f"empty test for '{field}'")
            return None
        parts = []
        for op, value in raw.items():
            if op not in OPS or (nested and op in ("became", "changed")):
                allowed = [o for o in OPS if not nested or o not in ("became", "changed")]
                self.fail((*path, op), f"unknown operator {op!r}{did_you_mean(str(op), allowed)}",
                          at_key=True)
                parts.append(None)
            else:
                parts.append(self.test(field, op, value, (*path, op)))
        return None if None in parts else _all(parts)  # type: ignore[arg-type]

    def test(self, field: str, op: str, value: Any, path: Path_) -> FieldCondition | None:
        try:
            parsed = self.operand(field, op, value, path)
        except ValueError as exc:
            self.fail(path, str(exc))
            return None
        return None if parsed is _INVALID else FieldCondition(field=field, op=op, value=parsed)

    def operand(self, field: str, op: str, value: Any, path: Path_) -> Any:
        if op in ("eq", "ne", "contains", "lacks"):
            return _scalar(op, value)
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise ValueError(f"'{op}' takes a non-empty list")
            return tuple(_scalar(op, v) for v in value)
        if op == "matches":
            return compiled_regex(value)
        if op in ("exists", "changed"):
            if not isinstance(value, bool):
                raise ValueError(f"'{op}' takes true or false, got {value!r}")
            return value
        if op in ("gt", "gte", "lt", "lte"):
            return _comparable(op, value)
        if op in ("older_than", "newer_than"):
            return parsed(durations.parse_offset)(value)
        inner = self.predicate(field, value, path, nested=True)  # became
        return _INVALID if inner is None else inner


_INVALID = object()


def _all(parts: list[Condition]) -> Condition:
    return parts[0] if len(parts) == 1 else AllOf(all=tuple(parts))


def _scalar(op: str, value: Any) -> Scalar:
    if isinstance(value, (list, dict)):
        raise ValueError(f"'{op}' takes a single value, got {value!r}")
    return value


def _comparable(op: str, value: Any) -> int | float | date | datetime:
    if isinstance(value, (int, float, date)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"'{op}' compares with a number, date or datetime, got {value!r}")


def parse_condition(raw: Any) -> Condition:
    """The condition tree for a YAML condition; raises LocatedError listing every problem."""
    if isinstance(raw, (FieldCondition, AllOf, AnyOf, Not)):
        return raw
    parser = _ConditionParser()
    result = parser.condition(raw, ())
    if parser.problems or result is None:
        raise LocatedError(parser.problems)
    return result


ConditionField = Annotated[
    Condition, PlainValidator(parse_condition), WithJsonSchema(late_ref("Condition"))
]
