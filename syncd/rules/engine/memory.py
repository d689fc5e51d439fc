"""What the engine remembers per (rule, record), the timers it asks for, and the answer of one
evaluation (Evaluation, RuleError)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from syncd.model import Intent, RecordRef, intent_key

DEFAULT_GRACE = timedelta(minutes=5)
WAKE_STEP = "~wake"  # the step name of timers that re-check a condition whose age test flips
_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NEVER = -(2**62)  # `_Step.late_us` of a step that never catches up


# ----------------------------------------------------------------------------- public types


class RuleMemory(NamedTuple):
    """What the engine remembers about one (rule, record); persisted as `to_json()`.

    Immutable; a named tuple because the engine builds one per armed timeline per evaluation.
    """

    in_when: bool = False  # scope and when held at the last evaluation
    entered_at: datetime | None = None  # instant rule: the key instant of the current entry
    anchor: datetime | None = None  # timeline: the last resolved anchor (UTC)
    fired: frozenset[str] = frozenset()  # timeline: "step#occurrence" tokens fired
    cancelled: bool = False  # timeline: `until` held for this anchor
    since_in: bool = False  # since-became: the condition held at the last evaluation
    since_at: datetime | None = None  # since-became: when the record last entered it
    retry: bool = False  # instant rule: an action failed to render; re-emit this entry

    def to_json(self) -> dict[str, Any]:
        """Only what differs from the initial state: small rows for the store."""
        out: dict[str, Any] = {}
        for name, value, initial in zip(_MEMORY_FIELDS, self, EMPTY, strict=True):
            if value == initial:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, frozenset):
                value = sorted(value)
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleMemory:
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in _MEMORY_FIELDS:
                continue  # written by a newer engine: ignore rather than fail a cycle
            if name in ("entered_at", "anchor", "since_at") and value is not None:
                value = datetime.fromisoformat(value)
            elif name == "fired":
                value = frozenset(value)
            values[name] = value
        return cls(**values)


EMPTY = RuleMemory()
_NOTHING: frozenset[str] = EMPTY.fired
_tuple = tuple.__new__  # _tuple(RuleMemory, (all eight fields)): no Python-level __new__ call
_MEMORY_FIELDS = RuleMemory._fields


def memory_to_json(memory: Mapping[str, RuleMemory]) -> dict[str, dict[str, Any]]:
    """A record's rule memory as one JSON object: {rule id: memory}."""
    return {rule_id: mem.to_json() for rule_id, mem in sorted(memory.items())}


def memory_from_json(data: Mapping[str, Mapping[str, Any]] | None) -> dict[str, RuleMemory]:
    return {rule_id: RuleMemory.from_json(mem) for rule_id, mem in (data or {}).items()}


class Timer(NamedTuple):
    """A future instant at which this record must be evaluated again.

    `step` is the step that falls due (WAKE_STEP when a condition's age test flips then).
    `key` identifies the step occurrence like its first intent's key, computed on demand.
    A named tuple: the engine makes one per pending step, and tuples are cheap to build.
    """

    rule_id: str
    record: RecordRef
    step: str
    due_at: datetime
    anchor: datetime | None = None
    occurrence: int = 0

    @property
    def key(self) -> str:
        return intent_key(self.rule_id, self.record, self.step, self.anchor, self.occurrence)


@dataclass(frozen=True)
class RuleError:
    """A problem evaluating one rule for one record (a template that fails to render...)."""

    rule_id: str
    record: RecordRef
    step: str
    message: str

    def __str__(self) -> str:
        where = f" step {self.step}" if self.step else ""
        return f"rule {self.rule_id}{where} on {self.record}: {self.message}"


@dataclass(frozen=True, init=False)
class Evaluation:
    intents: list[Intent]
    memory: dict[str, RuleMemory]  # the record's complete new memory (initial states omitted)
    timers: list[Timer]
    next_wake: datetime | None  # the earliest timer, None when nothing is scheduled
    errors: list[RuleError] = field(default_factory=list)

    def __init__(
        self,
        intents: list[Intent],
        memory: dict[str, RuleMemory],
        timers: list[Timer],
        next_wake: datetime | None,
        errors: list[RuleError] | None = None,
    ) -> None:
        """The dataclass's __init__, setting the instance's fields at once: there is one
        Evaluation per record, and a frozen dataclass pays a setattr call per field."""
        _set(
            self,
            "__dict__",
            {
                "intents": intents,
                "memory": memory,
                "timers": timers,
                "next_wake": next_wake,
                "errors": [] if errors is None else errors,
            },
        )


_set = object.__setattr__
