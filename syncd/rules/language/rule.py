"""A rule (docs/rules.md, "A rule"): an instant or a timeline rule, its rollout and limits.

Cross-field invariants that the engine relies on (`do` xor `steps`, step ids unique,
`defer.from_step` names a step, timeline keys only on timeline rules) are enforced here; checks
needing other files or record-kind knowledge live in `lint.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PositiveInt, model_validator

from syncd.model import LIMIT_KINDS
from syncd.rules.language.actions import Action, Actions
from syncd.rules.language.base import LocatedError, Node, Path_, Value
from syncd.rules.language.conditions import ConditionField
from syncd.rules.language.diagnostics import did_you_mean
from syncd.rules.language.timeline import (
    Anchor,
    CatchUp,
    CatchUpField,
    Defer,
    Step,
    default_step_id,
)
from syncd.vendors.registry import RECORD_KINDS

RULE_ID = r"^[a-z0-9][a-z0-9_-]*$"
LimitCounts = dict[Literal[LIMIT_KINDS], PositiveInt]  # type: ignore[valid-type]


class Limits(Node):
    """Blast-radius limits of one rule: past them its intents are held for a person. Each kind
    named replaces the `[limits]` default for rules; kinds not named keep it."""

    per_cycle: LimitCounts = Field(default_factory=dict,
                                   description="Intents per executor pass, by kind")
    per_hour: LimitCounts = Field(default_factory=dict,
                                  description="Intents sent in any hour, by kind")


class Canary(Node):
    """Which records a `mode: canary` rule acts on live; on the others it plans in shadow."""

    percent: float | None = Field(None, gt=0, lt=100,
                                  description="A stable, hash-chosen share of the records")
    scope: ConditionField | None = Field(None, description="The records it acts on live")

    @model_validator(mode="after")
    def _one(self) -> Canary:
        if (self.percent is None) == (self.scope is None):
            raise ValueError("a canary needs exactly one of 'percent' and 'scope'")
        return self


class Rule(Node):
    """An instant rule (`do`) or a timeline rule (`since` + `steps`)."""

    id: str = Field(pattern=RULE_ID, description="Unique across all files; part of intent keys")
    description: str = ""
    on: Literal[RECORD_KINDS] = Field(description="Record kind")  # type: ignore[valid-type]
    enabled: bool = True
    mode: Literal["live", "shadow", "canary"] = Field(
        "live", description="shadow: plan and audit only; canary: live on `canary` records only"
    )
    canary: Canary | None = Field(None, description="mode: canary: the records it acts on live")
    scope: ConditionField | None = Field(None, description="Records outside it are ignored")
    limits: Limits | None = Field(None, description="Blast-radius limits: past them, held")
    max_actions_per_hour: PositiveInt | None = Field(
        None, description="Shorthand for limits: {per_hour: {any: N}}"
    )
    on_failure: Literal["stop", "continue"] = Field(
        "stop", description="stop: a do: list's later actions wait for, and fail with, an "
        "earlier one for the record; continue: each action on its own")
    calendar: str | None = Field(None, description="Calendar for business durations")
    vars: dict[str, Value] = Field(
        default_factory=dict,
        description="Rule parameters: vars.name in templates; a condition value that is exactly "
        "'{{ vars.name }}' is the var's value (not for a var that is itself a template)",
    )
    when: ConditionField | None = Field(None, description="Fires on entry; timeline runs while")
    do: Actions | None = None
    since: Anchor | None = Field(None, description="Anchor field, or {became: condition}")
    until: ConditionField | None = Field(None, description="Cancels steps not yet due")
    steps: Annotated[list[Step], Field(min_length=1)] | None = None
    defer: Defer | None = None
    catch_up: CatchUpField = Field(default_factory=CatchUp)

    TIMELINE_KEYS: ClassVar[tuple[str, ...]] = ("since", "until", "defer")

    @property
    def is_timeline(self) -> bool:
        return self.steps is not None

    def own_limits(self) -> tuple[dict[str, int], dict[str, int]]:
        """The rule's (per cycle, per hour) limits by kind, `max_actions_per_hour` included as
        `any` per hour (`limits` wins when it names `any` too)."""
        cycle = dict(self.limits.per_cycle) if self.limits else {}
        hour = dict(self.limits.per_hour) if self.limits else {}
        if self.max_actions_per_hour is not None:
            hour.setdefault("any", self.max_actions_per_hour)
        return cycle, hour

    def actions(self) -> Iterator[tuple[Step | None, int, Action]]:
        """Every action with its step (None for an instant rule) and index."""
        for step in self.steps or [None]:
            for index, action in enumerate(step.do if step else self.do or []):
                yield step, index, action

    @model_validator(mode="before")
    @classmethod
    def _default_step_ids(cls, raw: Any) -> Any:
        steps = raw.get("steps") if isinstance(raw, dict) else None
        if isinstance(steps, list):
            raw = {**raw, "steps": [default_step_id(s, n) for n, s in enumerate(steps, 1)]}
        return raw

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        present = {key for key in ("do", "steps", *self.TIMELINE_KEYS) if getattr(self, key)}
        step_ids = [step.id for step in self.steps or []]
        problems = shape_problems(present, step_ids, self.defer.from_step if self.defer else None)
        if (self.mode == "canary") != (self.canary is not None):
            problems.append((("canary",), "'canary' goes with 'mode: canary'", True)
                             if self.canary else ((), "mode: canary needs 'canary: {percent: N}' "
                                                      "or 'canary: {scope: ...}'", False))
        if problems:
            raise LocatedError(problems)
        return self


def shape_problems(
    present: set[str], step_ids: list[str], from_step: str | None
) -> list[tuple[Path_, str, bool]]:
    """Problems with which keys a rule combines; shared with lint, which applies it to the raw
    YAML so these show even when a rule has other errors."""
    problems: list[tuple[Path_, str, bool]] = []
    if ("do" in present) == ("steps" in present):
        problems.append(((), "a rule needs exactly one of 'do' (instant) and 'steps' (timeline)",
                         False))
    if "steps" in present and "since" not in present:
        problems.append(((), "a timeline rule needs 'since' (its anchor)", False))
    if "steps" not in present:
        problems += [((key,), f"'{key}' belongs to a timeline rule (with 'steps')", True)
                     for key in Rule.TIMELINE_KEYS if key in present]
    for i, step_id in enumerate(step_ids):
        if step_id in step_ids[:i]:
            problems.append((("steps", i, "id"), f"duplicate step id {step_id!r}", False))
    if from_step is not None and from_step not in step_ids:
        problems.append((("defer", "from_step"), f"defer.from_step {from_step!r} names no step"
                         f"{did_you_mean(from_step, step_ids)}", False))
    return problems
