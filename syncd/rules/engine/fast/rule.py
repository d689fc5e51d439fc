"""A compiled rule with what its shortcuts need, worked out once per (re)load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from syncd.businesstime.calendars import Calendar
from syncd.businesstime.spans import TimeMath
from syncd.rules import conditions as cond
from syncd.rules import language
from syncd.rules.engine.compiled import _Action, _Rule
from syncd.rules.engine.fast.ladders import _give_up
from syncd.rules.engine.fast.plans import planned


class FastRule(_Rule):
    """`_Rule` and its shortcuts' data: inlined gates, the simple ladder, render plans."""

    def __init__(self, rule: language.Rule, position: int, math: TimeMath,
                 calendars: Mapping[str, Calendar] | None = None) -> None:
        super().__init__(rule, position, math, calendars)
        # set by Shortcuts: `evaluate` tests `when` itself, on the record's own context (no age
        # test, the calendar the kind's rules share), for an instant rule (inline_gate) or a
        # timeline anchored on a field (inline_since); `rest` (set by _KindIndex) is the gate
        # left to test when the record's index key selected the rule (None: nothing left)
        self.inline_gate = self.inline_since = False
        self.rest: cond.Test | None = self.gate_test
        # the common ladder: plain steps at `after` (no `at`, no deferral): all their due
        # instants come from one `TimeMath.shift_all_micros` call
        simple = all(s.plain and s.at is None for s in self.steps) and self.defer_when is None
        self.simple = tuple((s, f"{s.id}#0") for s in self.steps) if simple else None
        self.offsets = tuple(s.after for s in self.steps) if simple else ()
        self.tokens = frozenset(token for _, token in self.simple or ())
        self.give_up_us = _give_up(self.steps) if simple else None
        # (now, grace, anchor): see ladders.missed_cut
        self.cut: tuple[datetime | None, timedelta | None, datetime | None] = (None, None, None)

    def compile_actions(
        self, actions: Sequence[language.Action], calendars: Mapping[str, Calendar]
    ) -> tuple[_Action, ...]:
        """The actions with their render plans (`plans.planned`)."""
        return tuple(planned(action) for action in super().compile_actions(actions, calendars))
