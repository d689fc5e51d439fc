"""The engine's entry: `Engine` (a rule set compiled once, evaluated per record) and `evaluate`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from syncd.model import Record
from syncd.rules import conditions as cond
from syncd.rules.engine.compiled import _KindIndex, _Rule
from syncd.rules.engine.memory import (
    _EPOCH,
    _US,
    DEFAULT_GRACE,
    EMPTY,
    Evaluation,
    RuleMemory,
)
from syncd.rules.engine.semantics import _Run

# ----------------------------------------------------------------------------- the engine


class Engine:
    """A rule set compiled for evaluation; build one per (re)load and share it."""

    def __init__(self, ruleset: Any) -> None:
        """`ruleset`: a loader.RuleSet (rules, calendars, named templates)."""
        self.ruleset = ruleset
        calendars = getattr(ruleset, "calendars", {}) or {}
        maths = {name: cond.TimeMath(calendar) for name, calendar in calendars.items()}
        rules = [
            _Rule(rule, n, maths.get(rule.calendar or "", cond.UTC_MATH), calendars)
            for n, rule in enumerate(ruleset.rules)
        ]
        self.rules = {rule.id: rule for rule in rules}
        kinds = sorted({rule.kind for rule in rules})
        self.kinds = {k: _KindIndex([r for r in rules if r.kind == k and r.enabled]) for k in kinds}
        self.last_iso: tuple[datetime, str] = (_EPOCH, _EPOCH.isoformat())  # see `_Run.iso`
        # the calendar every rule of a kind uses, when they share one (the common case): an
        # evaluation then needs a single context
        self.maths: dict[str, cond.TimeMath | None] = {}
        for kind, index in self.kinds.items():
            used = {id(r.math): r.math for r in index.rules}
            self.maths[kind] = next(iter(used.values())) if len(used) == 1 else None
            for rule in index.rules:  # evaluate tests these rules' `when` itself
                plain = not rule.gate_ages and rule.math is (self.maths[kind] or cond.UTC_MATH)
                rule.inline_gate = plain and not rule.timeline
                rule.inline_since = plain and rule.timeline and rule.since is None

    def cut(
        self, rule: _Rule, now: datetime, grace: timedelta
    ) -> tuple[datetime, timedelta, datetime | None]:
        """For a simple plan whose last step is due last (`_Rule.give_up_us`): the latest
        anchor from which every step is, at `now`, missed beyond grace and catch-up (its last
        step due before now - max(grace, give-up)). Remembered on the rule for one (now,
        grace): every record of a cycle meets the same."""
        limit = max(grace // _US, rule.give_up_us)  # type: ignore[type-var]
        before = (now - _EPOCH) // _US - limit - 1
        anchor = rule.math.latest_before(rule.offsets[-1], before)  # type: ignore[arg-type]
        found = rule.cut = (now, grace, anchor)
        return found

    def limits(self, rule_id: str) -> tuple[dict[str, int], dict[str, int]]:
        """The rule's own (per cycle, per hour) blast-radius limits by kind (`schema.Limits`)."""
        rule = self.rules.get(rule_id)
        return rule.limits if rule else ({}, {})

    def why_not(self, rule_id: str, record: Record, now: datetime) -> dict[str, Any] | None:
        """The values for which the rule does not act on `record` at `now` (None: it does):
        `scope` and `when` (and a `since: {became}` condition) must hold and `until` must not."""
        rule = self.rules.get(rule_id)
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
        rule = self.rules.get(rule_id)
        return rule is None or rule.on_failure == "stop"

    def evaluate(
        self,
        current: Record,
        previous: Record | None,
        memory: Mapping[str, RuleMemory],
        now: datetime,
        *,
        grace: timedelta = DEFAULT_GRACE,
    ) -> Evaluation:
        """Evaluate every rule of the record's kind against one record at `now`."""
        kind = current.ref.kind
        index = self.kinds.get(kind)
        if index is None:
            return Evaluation([], dict(memory), [], None)
        # `index.candidates`, its usual case inlined: the record's index key (its values are
        # then known to meet each candidate's equality tests: `_Rule.rest` is what is left)
        keyed = False
        try:
            key = index.key(current.fields)
        except TypeError:  # an unhashable value: the general path
            key = None
        if key is not None:
            ready = index.combos.get(key) or index.combo(key)
            if not memory or ready[1].issuperset(memory):
                rules: Sequence[_Rule] = ready[0]
                keyed = True
        if not keyed:
            rules = index.candidates(current.fields, memory)
        if not rules:  # no rule can act on the record (often): nothing to evaluate
            return Evaluation([], dict(memory) if memory else {}, [], None)
        run = _Run(self, current, previous, now, grace, self.maths[kind])
        new_memory = dict(memory) if memory else {}
        deleted = current.deleted
        for rule in rules:
            before = memory.get(rule.id, EMPTY) if memory else EMPTY
            try:
                if rule.inline_gate or rule.inline_since:  # `when` tested here, inlined
                    if deleted:
                        holds = False
                    elif keyed:
                        holds = rule.rest is None or rule.rest(run)
                    else:
                        holds = rule.gate_test(run)
                    if not holds:
                        if before is EMPTY:
                            continue  # outside `when`, nothing remembered: nothing to do
                        after = EMPTY if rule.inline_gate else run.timeline(rule, before)
                    elif rule.inline_gate:
                        after = run.instant_rule(rule, before, tested=True)
                    else:
                        after = run.field_timeline(rule, before)
                elif rule.timeline:
                    after = run.timeline(rule, before)
                else:
                    after = run.instant_rule(rule, before)
            except Exception as exc:  # one rule's failure never stops the others
                run.fail(rule, "", f"{type(exc).__name__}: {exc}")
                after = before
            if after is before:
                continue
            if after is EMPTY or after == EMPTY:
                new_memory.pop(rule.id, None)
            else:
                new_memory[rule.id] = after
        timers = run.timers
        wake = min([t.due_at for t in timers]) if timers else None
        return Evaluation(run.intents, new_memory, timers, wake, run.errors)


def _values(explanation: Any) -> str:
    """`status=open, priority=low` from a condition's explanation (nested for any/all/not)."""
    if isinstance(explanation, Mapping):
        return ", ".join(f"{k}={_values(v)}" if not isinstance(v, Mapping) else _values(v)
                         for k, v in explanation.items())  # fmt: skip
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
