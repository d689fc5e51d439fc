"""Inlined ladders: the common ladder's steps in integer microseconds, and the missed-ladder cut.

A ladder of plain steps (`FastRule.simple`: at `after`, no `at`, no deferral) computes its due
instants in integer microseconds with one span-table lookup (`TimeMath.shift_all_micros`);
when even its last step is missed beyond grace and catch-up, one comparison with the rule's
cut (`missed_cut`: the latest such anchor at this `now`) settles it. A timeline anchored on a
field whose `when` the caller tested takes `field_timeline`: `timeline` with fewer questions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from syncd.businesstime.spans import from_micros
from syncd.rules import conditions as cond
from syncd.rules.engine.compiled import _Step
from syncd.rules.engine.memory import _EPOCH, _US, RuleMemory, Timer, _tuple
from syncd.rules.engine.semantics import _Due, _Run

if TYPE_CHECKING:
    from syncd.rules.engine.fast.rule import FastRule

_MISSING = object()


class LadderRun(_Run):
    """`_Run` with the ladder shortcuts."""

    __slots__ = ("_armed",)  # the last memory field_timeline made (None before it makes one)
    _armed: RuleMemory | None

    def steps(  # type: ignore[override]
        self, rule: FastRule, ctx: cond.Context, anchor: datetime, fired: frozenset[str]
    ) -> frozenset[str]:
        if rule.simple is not None:
            return self.simple_steps(rule, ctx, anchor, fired)
        return _Run.steps(self, rule, ctx, anchor, fired)

    def field_timeline(self, rule: FastRule, mem: RuleMemory) -> RuleMemory:
        """`timeline` for a rule anchored on a field whose `when` holds (tested by the caller
        on this context): the same steps, fewer questions."""
        anchor = self._instants.get(rule.since_field, _MISSING)  # type: ignore[arg-type]
        if anchor is _MISSING:  # (Context.instant's memo, looked up inline)
            anchor = self.instant(rule.since_field)  # type: ignore[arg-type]
        if anchor is None:  # nothing to count from (or not a date): the general path says
            return self.timeline(rule, mem, tested=True)
        if anchor.tzinfo is not UTC:
            anchor = anchor.astimezone(UTC)
        fired, cancelled = mem.fired, mem.cancelled
        same = anchor == mem.anchor
        if not same:
            cancelled = False
        if not cancelled:
            if rule.until is not None and rule.until(self):
                cancelled = True
            elif rule.simple is None:
                fired = _Run.steps(self, rule, self, anchor, fired)
            else:
                cut = rule.cut  # simple_steps' cut test, inlined: its usual answer is "nothing"
                if cut[2] is None or cut[0] != self.now or cut[1] != self.grace or anchor > cut[2]:
                    fired = self.simple_steps(rule, self, anchor, fired)
        if mem.in_when and same and fired is mem.fired and cancelled is mem.cancelled:
            return mem
        since_in, since_at = mem.since_in, mem.since_at
        last = self._armed  # the record's other ladders on this anchor: often the same state
        if (
            last is not None
            and last[2] is anchor
            and last[3] is fired
            and last[4] is cancelled
            and last[5] is since_in
            and last[6] is since_at
        ):
            return last
        made = _tuple(RuleMemory, (True, None, anchor, fired, cancelled, since_in, since_at, False))
        self._armed = made
        return made

    def simple_steps(
        self, rule: FastRule, ctx: cond.Context, anchor: datetime, fired: frozenset[str]
    ) -> frozenset[str]:
        """`steps` for the common ladder (`FastRule.simple`), in integer microseconds."""
        if rule.tokens <= fired:
            return fired  # every step fired for this anchor
        if rule.give_up_us is not None:
            cut = rule.cut
            if cut[0] != self.now or cut[1] != self.grace:
                cut = missed_cut(rule, self.now, self.grace)
            if cut[2] is not None and anchor <= cut[2]:
                return fired  # every step was missed beyond catching up: nothing to do
        now_us = self._now_us if self._now_us is not None else self.now_us()
        grace_us = self._grace_us
        math = rule.math
        dues = math.shift_all_micros(anchor, (anchor - _EPOCH) // _US, rule.offsets)
        reason: dict[str, Any] | None = None
        newly: list[str] | None = None
        for (step, token), due_us in zip(rule.simple, dues, strict=True):  # type: ignore[arg-type]
            if token in fired:
                continue
            if due_us > now_us:
                at = from_micros(due_us)
                self.timers.append(_tuple(Timer, (rule.id, self.ref, step.id, at, anchor, 0)))
                continue
            late_us = now_us - due_us
            if late_us > grace_us and step.late_us is not None and late_us > step.late_us:
                continue  # missed, and catch_up says not this late
            if reason is None:
                reason = {"when": rule.gate_held(ctx), "anchor": self.iso(anchor)}
            if self.fire(rule, ctx, _Due(step, 0, from_micros(due_us), anchor), reason):
                newly = [token] if newly is None else [*newly, token]
        if newly is None:
            return fired
        return fired.union(newly)  # no repeating step in a simple plan: nothing to prune


def missed_cut(
    rule: FastRule, now: datetime, grace: timedelta
) -> tuple[datetime, timedelta, datetime | None]:
    """For a simple plan whose last step is due last (`FastRule.give_up_us`): the latest
    anchor from which every step is, at `now`, missed beyond grace and catch-up (its last
    step due before now - max(grace, give-up)). Remembered on the rule for one (now,
    grace): every record of a cycle meets the same."""
    limit = max(grace // _US, rule.give_up_us)  # type: ignore[type-var]
    before = (now - _EPOCH) // _US - limit - 1
    anchor = rule.math.latest_before(rule.offsets[-1], before)  # type: ignore[arg-type]
    found = rule.cut = (now, grace, anchor)
    return found


def _give_up(steps: Sequence[_Step]) -> int | None:
    """For a simple plan whose last step is due last whatever the anchor (offsets of one kind,
    minutes or business minutes, never decreasing): the lateness of that last step beyond
    which no step fires (each is missed by at least as much and its catch_up gives up); None
    when some step always catches up, or when the order of due instants is not known."""
    units = {"minutes": 1, "hours": 60, "business_minutes": 1, "business_hours": 60}
    offsets = [s.after for s in steps]
    if not offsets or any(o is None or o.unit not in units for o in offsets):
        return None
    if len({o.unit.startswith("business") for o in offsets}) != 1:  # type: ignore[union-attr]
        return None
    minutes = [o.amount * units[o.unit] for o in offsets]  # type: ignore[union-attr]
    if any(m < 0 for m in minutes) or minutes != sorted(minutes):
        return None
    limits = [s.late_us for s in steps]
    return None if any(limit is None for limit in limits) else max(limits)  # type: ignore[type-var]
