"""Rules compiled once per (re)load: conditions as tests, steps and actions as plain data, and
`CompiledRule`, the read-only view of a rule the daemon reads (`Engine.rules`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from types import MappingProxyType
from typing import Any

from syncd.businesstime.calendars import Calendar
from syncd.businesstime.durations import Offset
from syncd.businesstime.spans import TimeMath
from syncd.rules import conditions as cond
from syncd.rules import language
from syncd.rules.engine.memory import _NEVER, _US
from syncd.rules.language import templates
from syncd.vendors.registry import KINDS


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """What the daemon reads of a compiled rule (through `Engine.rules`), and nothing more."""

    id: str
    kind: str  # the record kind it acts on (`on:`)
    timeline: bool  # it has steps (its intents fall due on timers), else an instant rule
    vars: Mapping[str, Any]  # the rule's `vars` (roles its actions name)
    math: TimeMath  # its calendar's time arithmetic (dates its actions resolve)
    # each `do:` list's action kinds in order, by step id ("": an instant rule's list)
    actions: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, rule: _Rule) -> CompiledRule:
        lists = {"": rule.actions} if not rule.timeline else {s.id: s.actions for s in rule.steps}
        actions = {step: tuple(a.kind for a in found) for step, found in lists.items()}
        return cls(rule.id, rule.kind, rule.timeline, MappingProxyType(rule.vars), rule.math,
                   MappingProxyType(actions))


@dataclass(frozen=True)
class _Action:
    index: int
    kind: str
    params: dict[str, Any]  # templates still as `Text`
    templated: bool  # any text to render
    link: bool  # params[language.LINK] names the record written to: checked once rendered
    window: Calendar | None = None  # deliver: {within: ...}: due only in its open hours


@dataclass(frozen=True)
class _Step:
    id: str
    after: Offset | None
    at: time | None
    repeat: Offset | None
    every: frozenset[int] | None
    start: Offset | None  # pattern range [start, end)
    end: Offset | None
    catch_up: language.CatchUp
    actions: tuple[_Action, ...]
    deferrable: bool  # defer.from_step or after it
    lead: Offset | None  # this step's own offset (after, or from for a pattern)
    late_us: int | None  # missed by more than grace: fire while this late (None: always)

    @property
    def plain(self) -> bool:
        """Due once, at `after` (no repeat, no weekday pattern)."""
        return self.every is None and self.repeat is None


class _Rule:
    """A rule compiled for the hot loop: no pydantic attribute access per record."""

    def __init__(self, rule: language.Rule, position: int, math: TimeMath,
                 calendars: Mapping[str, Calendar] | None = None) -> None:
        calendars = calendars or {}
        self.id = rule.id
        self.position = position
        self.kind = rule.on
        self.description = rule.description
        self.enabled = rule.enabled
        self.shadow = rule.mode == "shadow"
        canary = rule.canary if rule.mode == "canary" else None
        self.canary = canary is not None
        self.canary_share = round(canary.percent * 100) if canary and canary.percent else None
        self.canary_scope = (cond.compile_test(cond.compile_condition(canary.scope))
                             if canary and canary.scope is not None else None)
        self.limits = rule.own_limits()
        self.on_failure = rule.on_failure
        self.math = math
        self.vars = dict(rule.vars)
        self.record_var = KINDS[rule.on].var if rule.on in KINDS else "record"
        self.scope = cond.compile_condition(rule.scope)
        self.when = cond.compile_condition(rule.when)
        self.gate = _all(self.scope, self.when)
        self.gate_test = cond.compile_test(self.gate)
        self.gate_held = self.gate.held()  # its explanation, asked when it holds
        self.gate_ages = _has_age(self.gate)
        self.actions = self.compile_actions(rule.do or [], calendars)
        self.timeline = rule.steps is not None
        self.since_field = rule.since if isinstance(rule.since, str) else None
        self.since = (
            _all(self.scope, cond.compile_condition(rule.since.became))
            if isinstance(rule.since, language.BecameAnchor)
            else None
        )
        self.since_test = cond.compile_test(self.since) if self.since else None
        self.since_ages = self.since is not None and _has_age(self.since)
        until = cond.compile_condition(rule.until) if rule.until is not None else None
        self.until_condition = until
        self.until = cond.compile_test(until) if until is not None else None
        self.defer_when = (
            cond.compile_test(cond.compile_condition(rule.defer.when)) if rule.defer else None
        )
        self.defer_to = rule.defer.to if rule.defer else ""
        deferred_from = _index_of(rule.steps or [], rule.defer.from_step) if rule.defer else None
        self.steps = tuple(
            _step(step, rule.catch_up, deferred_from is not None and n >= deferred_from,
                  self.compile_actions(step.do, calendars))
            for n, step in enumerate(rule.steps or [])
        )
        self.defer_lead = self.steps[deferred_from].lead if deferred_from is not None else None
        self.step_plan = tuple((s, s.plain, f"{s.id}#0") for s in self.steps)

    def compile_actions(
        self, actions: Sequence[language.Action], calendars: Mapping[str, Calendar]
    ) -> tuple[_Action, ...]:
        return tuple(_actions(actions, calendars))


def _all(*parts: cond.Condition) -> cond.Condition:
    kept = [p for p in parts if p is not cond.ALWAYS]
    if not kept:
        return cond.ALWAYS
    return kept[0] if len(kept) == 1 else cond.All(kept)


def _has_age(condition: cond.Condition) -> bool:
    if isinstance(condition, cond.Age):
        return True
    children = getattr(condition, "children", ())
    inner = [getattr(condition, name, None) for name in ("child", "inner")]
    return any(_has_age(c) for c in (*children, *inner) if c is not None)


def _index_of(steps: Sequence[language.Step], step_id: str) -> int:
    return next(n for n, step in enumerate(steps) if step.id == step_id)


def _actions(
    actions: Sequence[language.Action], calendars: Mapping[str, Calendar]
) -> Iterator[_Action]:
    for index, action in enumerate(actions):
        window = calendars.get(action.deliver.within) if action.deliver else None
        params = action.params()
        yield _Action(index, action.kind, params, _has_text(params), action.link is not None,
                      window)


def _has_text(value: Any) -> bool:
    if isinstance(value, templates.Text):
        return templates.is_template(value)
    if isinstance(value, Mapping):
        return any(_has_text(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_text(v) for v in value)
    return False


def _step(step: language.Step, rule_catch_up: language.CatchUp, deferrable: bool,
          actions: tuple[_Action, ...]) -> _Step:
    catch_up = step.catch_up or rule_catch_up
    late_us: int | None = None  # fire
    if catch_up.policy == "skip" or (
        catch_up.policy == "fire_if_within" and catch_up.within is None
    ):
        late_us = _NEVER
    elif catch_up.policy == "fire_if_within":
        late_us = catch_up.within // _US  # type: ignore[operator]
    return _Step(
        id=step.id,
        after=step.after,
        at=step.at,
        repeat=step.repeat,
        every=step.every,
        start=step.from_,
        end=step.to,
        catch_up=catch_up,
        actions=actions,
        deferrable=deferrable,
        lead=step.after if step.every is None else step.from_,
        late_us=late_us,
    )
