"""The engine's entry: `Engine` (a rule set compiled once, evaluated per record, by the plain
path or with the shortcuts) and `evaluate`. It alone imports both semantics.py and fast/."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from syncd.businesstime.spans import UTC_MATH, TimeMath
from syncd.model import Record
from syncd.rules.engine.compiled import CompiledRule, _Rule
from syncd.rules.engine.fast import FastRule, Shortcuts
from syncd.rules.engine.memory import _EPOCH, DEFAULT_GRACE, Evaluation, RuleMemory
from syncd.rules.engine.semantics import Plain, _Run
from syncd.rules.language import RuleSet


class Engine:
    """A rule set compiled for evaluation; build one per (re)load and share it.

    `shortcuts` chooses the path: True (the daemon's), the plain path's answers by the
    shortcuts of fast/; False, the plain path alone (semantics.py), for proofs and doubts."""

    def __init__(self, ruleset: RuleSet, shortcuts: bool = True) -> None:
        """`ruleset`: the loaded rules, calendars and named templates."""
        self.ruleset = ruleset
        self.shortcuts = shortcuts
        calendars = ruleset.calendars
        maths = {name: TimeMath(calendar) for name, calendar in calendars.items()}
        make = FastRule if shortcuts else _Rule
        rules = [
            make(rule, n, maths.get(rule.calendar or "", UTC_MATH), calendars)
            for n, rule in enumerate(ruleset.rules)
        ]
        self.compiled = {rule.id: rule for rule in rules}  # the engine's own (and its tests')
        # what the daemon reads: a read-only view of each rule
        self.rules: Mapping[str, CompiledRule] = MappingProxyType(
            {rule.id: CompiledRule.of(rule) for rule in rules}
        )
        self.last_iso: tuple[datetime, str] = (_EPOCH, _EPOCH.isoformat())  # see `_Run.iso`
        path = Shortcuts(self, rules) if shortcuts else Plain(self, rules)  # type: ignore[arg-type]
        # evaluate(current, previous, memory, now, *, grace=DEFAULT_GRACE) -> Evaluation:
        # every rule of the record's kind against one record at `now`; the path's own
        # method, bound here (no call in between: it runs once per record)
        self.evaluate: Callable[..., Evaluation] = path.evaluate

    def limits(self, rule_id: str) -> tuple[dict[str, int], dict[str, int]]:
        """The rule's own (per cycle, per hour) blast-radius limits by kind (`language.Limits`)."""
        rule = self.compiled.get(rule_id)
        return rule.limits if rule else ({}, {})

    def why_not(self, rule_id: str, record: Record, now: datetime) -> dict[str, Any] | None:
        """The values for which the rule does not act on `record` at `now` (None: it does):
        `scope` and `when` (and a `since: {became}` condition) must hold and `until` must not."""
        rule = self.compiled.get(rule_id)
        if rule is None:
            return {"rule": "not in this rule set"}
        if not rule.enabled:
            return {"enabled": False}
        if record.deleted:
            return {"deleted": True}
        ctx = _Run(self, record, None, now, DEFAULT_GRACE, rule.math)
        for condition in (rule.gate, rule.since):
            if condition is not None:
                holds, why = condition.explain(ctx)
                if not holds:
                    return dict(why)
        if rule.until_condition is not None:
            holds, why = rule.until_condition.explain(ctx)
            if holds:
                return {"until": dict(why)}
        return None

    def stopped(self, rule_id: str, record: Record, now: datetime) -> str | None:
        """`why_not` in words, e.g. `status=open` or `` `until` holds: agent_touched=True ``."""
        why = self.why_not(rule_id, record, now)
        if why is None:
            return None
        if "until" in why and isinstance(why["until"], Mapping):
            return f"`until` holds: {_values(why['until'])}"
        return _values(why)

    def stops_on_failure(self, rule_id: str) -> bool:
        """Whether the rule's `do:` list stops at its first failed action (`on_failure`)."""
        rule = self.compiled.get(rule_id)
        return rule is None or rule.on_failure == "stop"


def _values(explanation: Any) -> str:
    """`status=open, priority=low` from a condition's explanation (nested for any/all/not)."""
    if isinstance(explanation, Mapping):
        return ", ".join(f"{k}={_values(v)}" if not isinstance(v, Mapping) else _values(v)
                         for k, v in explanation.items())
    if isinstance(explanation, list | tuple):
        return ", ".join(_values(v) for v in explanation)
    return str(explanation)


_ENGINES: dict[int, tuple[Any, Engine]] = {}


def evaluate(
    ruleset: Any,
    current: Record,
    previous: Record | None,
    memory: Mapping[str, RuleMemory],
    now: datetime,
    *,
    grace: timedelta = DEFAULT_GRACE,
) -> Evaluation:
    """`Engine(ruleset).evaluate(...)`, compiling each rule set once (a few are cached)."""
    if isinstance(ruleset, Engine):
        engine = ruleset
    else:
        cached = _ENGINES.get(id(ruleset))
        if cached is None or cached[0] is not ruleset:
            if len(_ENGINES) >= 4:
                _ENGINES.clear()
            cached = _ENGINES[id(ruleset)] = (ruleset, Engine(ruleset))
        engine = cached[1]
    return engine.evaluate(current, previous, memory, now, grace=grace)
