"""The rule set evaluated with every shortcut: the plain path's answers, sooner.

`Shortcuts.evaluate` finds the record's rules through its kind's index (`index.py`), tests
the usual gates itself (no age test, the calendar the kind's rules share: `FastRule.rest` is
what the record's index key leaves to test), and runs the rules on a `FastRun`: inlined
ladders (`ladders.py`), render plans and intents built at once (`plans.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from syncd.businesstime.spans import UTC_MATH, TimeMath
from syncd.model import Record
from syncd.rules.engine.fast.index import _KindIndex
from syncd.rules.engine.fast.ladders import LadderRun
from syncd.rules.engine.fast.plans import _PlannedRenderer
from syncd.rules.engine.fast.plans import make_intent as _make_intent
from syncd.rules.engine.fast.rule import FastRule
from syncd.rules.engine.memory import DEFAULT_GRACE, EMPTY, Evaluation, RuleMemory
from syncd.rules.engine.render import _Renderer
from syncd.rules.engine.semantics import Shared


class FastRun(LadderRun):
    """One evaluation with every shortcut."""

    __slots__ = ()
    renderer: type[_Renderer] = _PlannedRenderer
    make_intent: Any = staticmethod(_make_intent)


class Shortcuts:
    """A rule set's shortcuts: per record kind, the index of its rules and the calendar they
    share (if they do: an evaluation then needs a single context)."""

    def __init__(self, engine: Shared, rules: Sequence[FastRule]) -> None:
        self.engine = engine
        kinds = sorted({rule.kind for rule in rules})
        self.kinds = {k: _KindIndex([r for r in rules if r.kind == k and r.enabled]) for k in kinds}
        self.maths: dict[str, TimeMath | None] = {}
        for kind, index in self.kinds.items():
            used = {id(r.math): r.math for r in index.rules}
            self.maths[kind] = next(iter(used.values())) if len(used) == 1 else None
            for rule in index.rules:  # evaluate tests these rules' `when` itself
                plain = not rule.gate_ages and rule.math is (self.maths[kind] or UTC_MATH)
                rule.inline_gate = plain and not rule.timeline
                rule.inline_since = plain and rule.timeline and rule.since is None

    def evaluate(
        self,
        current: Record,
        previous: Record | None,
        memory: Mapping[str, RuleMemory],
        now: datetime,
        *,
        grace: timedelta = DEFAULT_GRACE,
    ) -> Evaluation:
        """`Plain.evaluate`, by the shortcuts."""
        kind = current.ref.kind
        index = self.kinds.get(kind)
        if index is None:
            return Evaluation([], dict(memory), [], None)
        # `index.candidates`, its usual case inlined: the record's index key (its values are
        # then known to meet each candidate's equality tests: `FastRule.rest` is what is left)
        keyed = False
        try:
            key = index.key(current.fields)
        except TypeError:  # an unhashable value: the general path
            key = None
        if key is not None:
            ready = index.combos.get(key) or index.combo(key)
            if not memory or ready[1].issuperset(memory):
                rules: Sequence[FastRule] = ready[0]
                keyed = True
        if not keyed:
            rules = index.candidates(current.fields, memory)
        if not rules:  # no rule can act on the record (often): nothing to evaluate
            return Evaluation([], dict(memory) if memory else {}, [], None)
        run = FastRun(self.engine, current, previous, now, grace, self.maths[kind])
        run._armed = None  # (LadderRun's own state, set here: no __init__ call per record)
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
        timers = run.timers  # run.result(new_memory), inlined
        wake = min([t.due_at for t in timers]) if timers else None
        return Evaluation(run.intents, new_memory, timers, wake, run.errors)
