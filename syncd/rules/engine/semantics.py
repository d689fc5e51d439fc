"""What a rule means, stated once: instant rules, timelines, steps, repeats, deferral, catch-up,
rendering and keys, for one record at one instant (`Plain`, `_Run`). This is the plain path:
every enabled rule of the record's kind, in rule-set order, the long way. The shortcuts of
fast/ give the same answers sooner; this module never imports them.

`RuleMemory` is what the engine remembers per (rule, record) between evaluations, because edge
semantics need the past: whether the record was inside `when` (instant rules fire on entry),
a timeline's anchor, the steps it fired, whether `until` cancelled it, when the record entered a
`since: {became: ...}` condition. Rules in their initial state have no entry: `memory` holds only
what must be persisted, and the daemon replaces the record's stored memory with it.

Semantics (docs/rules.md "Semantics" is the contract; where it is silent, these are the
decisions, to be copied there):
- Instant rules fire once per entry into `scope` and `when`. The entry instant is the
  observed_at of the version that entered, or, when an age test (`older_than`) made it enter
  later, the exact instant that test flipped; it is the key's anchor, so a re-entry has a new
  key and re-evaluating the same input has the same one. Intents are due `now`.
- Timeline anchor: a date/datetime field (a date is 00:00 in the rule calendar's timezone), or
  the entry instant into `since: {became: cond}` (as above). That anchor exists only while the
  condition holds; a new entry starts a new episode (the fired steps are forgotten).
- A changed field anchor moves every step not fired yet (new keys from the new anchor); steps
  already fired stay fired (a date moved by a week does not resend the welcome pack). A cleared
  anchor (null) schedules nothing; the plan resumes if the field is set again.
- `when` (with `scope`) not holding disarms the timeline: nothing is due, nothing is forgotten,
  so a ticket that leaves `open` for a while and comes back never repeats a step.
- `until` holding (while armed) cancels every step not fired, including steps that fell due
  but were not fired yet (the daemon re-reads a record before firing a timer, so the freshest
  version wins). Cancellation is remembered for that anchor; a new anchor re-arms.
- A due step fires when `now - due <= grace` (on time). Later than that it was missed (the
  daemon was down, or the timeline was armed after the instant) and `catch_up` decides: fire
  (default), skip, or fire_if_within: D (fire if `now - due <= D`). A skipped step is not
  remembered, so an anchor moved later can still schedule it. `grace` is a parameter: the
  daemon passes its poll interval plus slack; DEFAULT_GRACE is 5 minutes.
- `repeat: every P` fires at `after`, `after + P`, ...; missed occurrences collapse into the most
  recent one (no burst of 20 six-monthly reviews after a long outage or a late arming).
- Pattern steps (`every: [MON, WED, FRI]`, `from`, `to`, `at`) have one occurrence per matching
  local date in [anchor + from, anchor + to); `week` = whole weeks between the anchor's local
  date and the occurrence's (so `from: 1w` starts week 1), `occurrence` counts from 0. Each
  occurrence is a distinct message, so missed ones each follow `catch_up` (no collapsing).
- `at: "HH:MM"` puts a step on that local time of the date it falls on; without it a step keeps
  the anchor's time of day. Day, week and month offsets count local days on the calendar.
- `defer`: while `defer.when` holds, `from_step` and the steps after it use the anchor
  `to - from_step's offset` (so from_step lands on the `to` date); keys use that anchor and a
  fired step is never fired again whichever anchor it was fired under.
- `mode: shadow` intents carry shadow=True and consume the edge like live ones (going live
  later does not replay what shadow planned). `mode: canary` plans live on the records its
  `canary` picks (a percent of a stable hash, `canary_bucket`, or a `scope` condition) and in
  shadow on the rest; the intent's reason says which side (`canary: live|shadow`).
  `enabled: false` evaluates nothing and keeps the rule's memory.
- A template or evaluation error is reported in `errors` for that rule and record only; the
  step (or the instant rule's entry) is then not remembered as done, so the next evaluation
  emits it again with the same keys (the ledger absorbs the actions that did go out) until it
  renders, or the record leaves `when`.
- Blast-radius limits (`limits`, `max_actions_per_hour`) are the daemon's (it has the ledger):
  `Engine.limits(rule_id)`; `Engine.stopped(...)` tells whether a held intent's rule still acts
  on a record re-read when a person releases it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from hashlib import blake2b
from typing import Any, NamedTuple, Protocol

from syncd.businesstime.durations import Offset
from syncd.businesstime.spans import UTC_MATH, TimeMath, from_micros, micros
from syncd.model import Intent, Record, RecordRef, intent_key
from syncd.rules import conditions as cond
from syncd.rules import language
from syncd.rules.engine.compiled import _Action, _Rule, _Step
from syncd.rules.engine.memory import (
    _EPOCH,
    _NOTHING,
    _US,
    DEFAULT_GRACE,
    EMPTY,
    WAKE_STEP,
    Evaluation,
    RuleError,
    RuleMemory,
    Timer,
    _tuple,
)
from syncd.rules.engine.render import _record_id, _Renderer


class Shared(Protocol):
    """What a run reads of its engine: the rule set (named templates) and the ISO text of the
    last instant a run wrote (see `_Run.iso`)."""

    ruleset: Any
    last_iso: tuple[datetime, str]


class Plain:
    """A rule set evaluated the plain way: every enabled rule of the record's kind, in order."""

    def __init__(self, engine: Shared, rules: Sequence[_Rule]) -> None:
        self.engine = engine
        kinds = sorted({rule.kind for rule in rules})
        self.kinds = {k: tuple(r for r in rules if r.kind == k and r.enabled) for k in kinds}

    def evaluate(
        self,
        current: Record,
        previous: Record | None,
        memory: Mapping[str, RuleMemory],
        now: datetime,
        *,
        grace: timedelta = DEFAULT_GRACE,
    ) -> Evaluation:
        """Every enabled rule of the record's kind against one record at `now`."""
        rules = self.kinds.get(current.ref.kind)
        if rules is None:
            return Evaluation([], dict(memory), [], None)
        return _Run(self.engine, current, previous, now, grace, None).evaluate(rules, memory)


# ----------------------------------------------------------------------------- one evaluation


class _Due(NamedTuple):
    """One step occurrence with its due instant."""

    step: _Step
    occurrence: int
    due: datetime
    anchor: datetime  # the key's anchor (UTC): the timeline's, or the deferral's
    day: date | None = None  # pattern steps: the occurrence's local date
    week: int | None = None

    @property
    def token(self) -> str:
        return f"{self.step.id}#{self.occurrence}"


class _Run(cond.Context):
    """The state of one `Engine.evaluate` call, and the record as its rules' conditions see it
    (a Context on the calendar it is given, UTC when none; a rule on another calendar sees the
    record through a context of its own, `ctx`). The shortcuts' run (fast/) is a subclass.
    Careful with names: conditions call Context's `value`, `instant`, `at`, `before`..."""

    __slots__ = (
        "_grace_us",
        "_last",
        "_now_us",
        "contexts",
        "deleted",
        "engine",
        "errors",
        "grace",
        "intents",
        "observed",
        "ref",
        "timers",
    )
    renderer: type[_Renderer] = _Renderer  # renders an action's params
    make_intent: Callable[..., Intent] = Intent  # Intent(key, rule_id, record, action, ...)

    def __init__(
        self,
        engine: Shared,
        current: Record,
        previous: Record | None,
        now: datetime,
        grace: timedelta,
        math: TimeMath | None,
    ) -> None:
        # Context.__init__, inlined
        self.fields = current.fields
        self.previous = previous.fields if previous is not None and not previous.deleted else None
        self.now = now
        self.math = math = math or UTC_MATH
        self.tz = math.tz
        self._paths: dict[str, Any] = {}
        self._instants: dict[str, datetime | None] = {}
        self._before = None
        self.engine = engine
        self.ref = current.ref
        self.grace = grace
        self.observed = current.observed_at
        self.deleted = current.deleted
        self.contexts: dict[int, cond.Context] | None = None
        self._last: tuple[TimeMath, cond.Context] | None = None
        self._now_us: int | None = None
        self.intents: list[Intent] = []
        self.timers: list[Timer] = []
        self.errors: list[RuleError] = []

    def evaluate(self, rules: Sequence[_Rule], memory: Mapping[str, RuleMemory]) -> Evaluation:
        """Each rule in turn (`rules` in rule-set order) on the record: its intents, timers,
        errors and complete new memory."""
        new_memory = dict(memory) if memory else {}
        for rule in rules:
            before = memory.get(rule.id, EMPTY) if memory else EMPTY
            try:
                if rule.timeline:
                    after = self.timeline(rule, before)
                else:
                    after = self.instant_rule(rule, before)
            except Exception as exc:  # one rule's failure never stops the others
                self.fail(rule, "", f"{type(exc).__name__}: {exc}")
                after = before
            if after is before:
                continue
            if after is EMPTY or after == EMPTY:
                new_memory.pop(rule.id, None)
            else:
                new_memory[rule.id] = after
        return self.result(new_memory)

    def result(self, memory: dict[str, RuleMemory]) -> Evaluation:
        timers = self.timers
        wake = min([t.due_at for t in timers]) if timers else None
        return Evaluation(self.intents, memory, timers, wake, self.errors)

    def ctx(self, rule: _Rule) -> cond.Context:
        """The record as seen under the rule's calendar (one context per calendar)."""
        if rule.math is self.math:
            return self
        last = self._last
        if last is not None and last[0] is rule.math:
            return last[1]
        if self.contexts is None:
            self.contexts = {}
        found = self.contexts.get(id(rule.math))
        if found is None:
            found = self.contexts[id(rule.math)] = self.with_math(rule.math)
        self._last = (rule.math, found)
        return found

    def now_us(self) -> int:
        """`now` in microseconds since the epoch (and `_grace_us`, the grace in microseconds)."""
        if self._now_us is None:
            self._now_us = (self.now - _EPOCH) // _US
            self._grace_us = self.grace // _US
        return self._now_us

    def iso(self, at: datetime) -> str:
        """`at.isoformat()`, remembered for the last UTC instant: a record's rules share one,
        and the records of one poll share their observed_at (the usual entry instant)."""
        last = self.engine.last_iso
        if at.tzinfo is not UTC:
            return at.isoformat()
        if last[0] != at:
            last = self.engine.last_iso = (at, at.isoformat())
        return last[1]

    def fail(self, rule: _Rule, step: str, message: str) -> None:
        self.errors.append(RuleError(rule.id, self.ref, step, message))

    def wake(self, rule: _Rule, condition: cond.Condition, ctx: cond.Context) -> None:
        """A timer at the instant an age test changes the condition's answer, if any."""
        at = cond.next_change(condition, ctx)
        if at is not None:
            self.timers.append(Timer(rule.id, self.ref, WAKE_STEP, at, at))

    def entry(self, condition: cond.Condition, ctx: cond.Context, ages: bool) -> datetime:
        """The instant the record entered `condition` (true now): see the module docstring.
        `ages`: the condition has age tests (else it can only have entered with this version).
        """
        since = self.observed if self.observed.tzinfo is UTC else self.observed.astimezone(UTC)
        return cond.entered(condition, ctx, since) if ages else since

    # ------------------------------------------------------------------ instant rules

    def instant_rule(self, rule: _Rule, mem: RuleMemory, tested: bool = False) -> RuleMemory:
        """`tested`: the caller found the record inside `when` (no age test, this context)."""
        ctx = self if rule.math is self.math else self.ctx(rule)
        if not tested:
            active = not self.deleted and rule.gate_test(ctx)
            if rule.gate_ages:
                self.wake(rule, rule.gate, ctx)
            if not active:
                return EMPTY
        if mem.in_when and not mem.retry:
            return mem
        if mem.retry and mem.entered_at is not None:
            entered_at = mem.entered_at  # the same entry again: the same keys
        else:
            entered_at = self.entry(rule.gate, ctx, rule.gate_ages)
        reason = {"when": rule.gate_held(ctx), "entered_at": self.iso(entered_at)}
        ok = self.act(rule, ctx, None, rule.actions, entered_at, self.now, reason)
        return _tuple(RuleMemory, (True, entered_at, None, _NOTHING, False, False, None, not ok))

    def act(
        self,
        rule: _Rule,
        ctx: cond.Context,
        due: _Due | None,
        actions: tuple[_Action, ...],
        anchor: datetime,
        due_at: datetime,
        reason: Mapping[str, Any],
    ) -> bool:
        """Append the intents of `actions` (an instant rule's, or one step occurrence's); False
        (and an error per action) when some templates do not render."""
        step, occurrence = ("", 0) if due is None else (due.step.id, due.occurrence)
        rule_id, ref, shadow, intents = rule.id, self.ref, rule.shadow, self.intents
        make = self.make_intent
        if rule.canary:
            live = (canary_bucket(rule_id, ref) < rule.canary_share if rule.canary_share
                    else bool(rule.canary_scope(ctx)))  # type: ignore[misc]
            shadow = not live
            reason = {**reason, "canary": "live" if live else "shadow"}
        render: _Renderer | None = None
        ok = True
        for action in actions:
            if render is None:
                render = self.renderer(self, rule, due)
            try:
                params = render.params(action, anchor)
            except Exception as exc:  # template code is admin code: report, never crash
                self.fail(rule, step, f"action {action.index + 1} ({action.kind}): {exc}")
                ok = False
                continue
            if action.link:  # the other record's id: a wrong one must never reach a vendor
                rendered = params[language.LINK]
                linked = _record_id(rendered)
                if linked is None:
                    self.fail(rule, step, f"action {action.index + 1} ({action.kind}): "
                              f"{language.LINK} renders to {rendered!r}, not a ticket id (a "
                              "positive whole number)")
                    ok = False
                    continue
                params[language.LINK] = linked
            key = intent_key(rule_id, ref, step, anchor, occurrence, action.index)
            intents.append(
                make(
                    key,
                    rule_id,
                    ref,
                    action.kind,
                    params,
                    action.window.next_open(due_at) if action.window else due_at,
                    step,
                    occurrence,
                    shadow,
                    reason,
                )
            )
        return ok

    # ------------------------------------------------------------------ timeline rules

    def timeline(self, rule: _Rule, mem: RuleMemory, tested: bool = False) -> RuleMemory:
        """`tested`: the caller found the record inside `when` (no age test, this context)."""
        ctx = self if rule.math is self.math else self.ctx(rule)
        active = tested or (not self.deleted and rule.gate_test(ctx))
        if rule.gate_ages:
            self.wake(rule, rule.gate, ctx)
        since_in, since_at = mem.since_in, mem.since_at
        if rule.since is not None:
            holds = not self.deleted and rule.since_test(ctx)  # type: ignore[misc]
            if holds and not since_in:
                since_at = self.entry(rule.since, ctx, rule.since_ages)
            since_in = holds
            if rule.since_ages:
                self.wake(rule, rule.since, ctx)
            anchor = since_at if since_in else None
        elif active:
            anchor = ctx.instant(rule.since_field)  # type: ignore[arg-type]
            if anchor is not None:
                if anchor.tzinfo is not UTC:
                    anchor = anchor.astimezone(UTC)
            elif ctx.value(rule.since_field) is not None:  # type: ignore[arg-type]
                raw = ctx.value(rule.since_field)  # type: ignore[arg-type]
                self.fail(rule, "", f"since: {rule.since_field} holds {raw!r}, not a date")
        else:
            anchor = None
        if not active or anchor is None:  # disarmed, or nothing to count from: keep the past
            if mem is EMPTY and not since_in:
                return EMPTY
            if (active, since_in, since_at) == (mem.in_when, mem.since_in, mem.since_at):
                return mem
            return RuleMemory(
                active, None, mem.anchor, mem.fired, mem.cancelled, since_in, since_at
            )
        fired, cancelled = mem.fired, mem.cancelled
        if anchor != mem.anchor:
            cancelled = False
            if rule.since is not None:
                fired = frozenset()  # a new entry into the `since` condition: a new episode
        if not cancelled:
            if rule.until is not None and rule.until(ctx):
                cancelled = True
            else:
                fired = self.steps(rule, ctx, anchor, fired)
        if (
            mem.in_when
            and anchor == mem.anchor
            and fired is mem.fired
            and cancelled is mem.cancelled
            and since_in is mem.since_in
            and since_at == mem.since_at
        ):
            return mem
        return _tuple(RuleMemory, (True, None, anchor, fired, cancelled, since_in, since_at, False))

    def steps(
        self, rule: _Rule, ctx: cond.Context, anchor: datetime, fired: frozenset[str]
    ) -> frozenset[str]:
        """Fire what is due, schedule what is not; returns the new fired tokens."""
        deferred = self.deferred_anchor(rule, ctx, anchor) if rule.defer_when else _NOT_DEFERRED
        reason: dict[str, Any] | None = None
        newly: list[str] = []
        now, math = self.now, rule.math
        now_us, grace_us = self.now_us(), self._grace_us
        base_us: tuple[datetime, int] | None = None
        for step, plain, first in rule.step_plan:
            base = anchor
            if step.deferrable and deferred is not _NOT_DEFERRED:
                if deferred is None:
                    continue  # deferred to a date not set yet: wait for it
                base = deferred
            if plain:  # the common case, inlined: one due instant, in integer microseconds
                if first in fired:
                    continue
                if base_us is None or base_us[0] is not base:
                    base_us = (base, micros(base))
                due_us = math.shift_micros(base, base_us[1], step.after)  # type: ignore[arg-type]
                if step.at is not None:
                    due_us = micros(self.at_time(rule, step, from_micros(due_us)))
                if due_us > now_us:
                    at = from_micros(due_us)
                    self.timers.append(Timer(rule.id, self.ref, step.id, at, base))
                    continue
                late_us = now_us - due_us
                if late_us > grace_us and step.late_us is not None and late_us > step.late_us:
                    continue  # missed, and catch_up says not this late
                if reason is None:
                    reason = {"when": rule.gate_held(ctx), "anchor": self.iso(anchor)}
                at = from_micros(due_us)
                if self.fire(rule, ctx, _Due(step, 0, at, base), reason, base is not anchor):
                    newly.append(first)
                continue
            for due in self.occurrences(rule, step, base, fired):
                if due.due > now:
                    self.timers.append(
                        Timer(rule.id, self.ref, step.id, due.due, due.anchor, due.occurrence)
                    )
                elif self.catch_up(step, due.due):
                    if reason is None:
                        reason = {"when": rule.gate_held(ctx), "anchor": self.iso(anchor)}
                    if self.fire(rule, ctx, due, reason, deferred=base is not anchor):
                        newly.append(due.token)
        if not newly:
            return fired
        return _prune_repeats(fired | set(newly), {s.id for s in rule.steps if s.repeat})

    def deferred_anchor(self, rule: _Rule, ctx: cond.Context, anchor: datetime) -> Any:
        """The anchor of deferred steps: _NOT_DEFERRED, None (target not set) or an instant."""
        if rule.defer_when is None or not rule.defer_when(ctx):
            return _NOT_DEFERRED
        target = ctx.instant(rule.defer_to)
        if target is None:
            return None
        lead = rule.defer_lead
        if lead is None or lead.amount == 0:
            return target.astimezone(UTC)
        return rule.math.shift(target, Offset(-lead.amount, lead.unit))

    def catch_up(self, step: _Step, due: datetime) -> bool:
        late = self.now - due
        if late <= self.grace:
            return True
        return step.late_us is None or late // _US <= step.late_us

    def fire(
        self,
        rule: _Rule,
        ctx: cond.Context,
        due: _Due,
        reason: dict[str, Any],
        deferred: bool = False,
    ) -> bool:
        late = self.now - due.due
        detail = {**reason, "due_at": due.due.isoformat()}
        if deferred:
            detail["deferred_anchor"] = due.anchor.isoformat()
        if late > self.grace:
            detail["caught_up_after_s"] = int(late.total_seconds())
        return self.act(rule, ctx, due, due.step.actions, due.anchor, due.due, detail)

    def occurrences(
        self, rule: _Rule, step: _Step, anchor: datetime, fired: frozenset[str]
    ) -> Iterator[_Due]:
        """The step's occurrences still to fire: due ones first, then the next future ones."""
        if step.every is not None:
            yield from (d for d in self.pattern(rule, step, anchor) if d.token not in fired)
        elif step.repeat is not None:
            yield from self.repeats(rule, step, anchor, fired)
        else:
            raise AssertionError("plain steps are scheduled inline by `steps`")

    def at_time(self, rule: _Rule, step: _Step, instant: datetime) -> datetime:
        """`instant` moved to the step's `at:` local time of its local date (if it has one)."""
        if step.at is None:
            return instant
        return _local(instant.astimezone(rule.math.tz).date(), step.at, rule.math.tz)

    def repeats(
        self, rule: _Rule, step: _Step, anchor: datetime, fired: frozenset[str]
    ) -> Iterator[_Due]:
        """The most recent due occurrence not fired yet (missed ones collapse) and the next."""
        assert step.after is not None and step.repeat is not None
        first = rule.math.shift(anchor, step.after)
        period = step.repeat

        def due(n: int) -> datetime:
            shifted = first if n == 0 else rule.math.shift(first, _times(period, n))
            return self.at_time(rule, step, shifted)

        done = max(
            (int(t.partition("#")[2]) for t in fired if t.partition("#")[0] == step.id), default=-1
        )
        n = done + 1
        if due(n) <= self.now:
            n = _last_at_or_before(due, n, self.now)
            yield _Due(step, n, due(n), anchor)
            n += 1
        yield _Due(step, n, due(n), anchor)

    def pattern(self, rule: _Rule, step: _Step, anchor: datetime) -> Iterator[_Due]:
        assert step.start is not None and step.end is not None and step.every is not None
        tz = rule.math.tz
        local = anchor.astimezone(tz)
        first = rule.math.shift(anchor, step.start).astimezone(tz).date()
        stop = rule.math.shift(anchor, step.end).astimezone(tz).date()
        clock = step.at or local.time()
        occurrence = 0
        day = first
        while day < stop:
            if day.weekday() in step.every:
                week = (day - local.date()).days // 7
                yield _Due(step, occurrence, _local(day, clock, tz), anchor, day, week)
                occurrence += 1
            day += _ONE_DAY


_NOT_DEFERRED = object()
_ONE_DAY = timedelta(days=1)


def _prune_repeats(tokens: set[str] | frozenset[str], repeats: set[str]) -> frozenset[str]:
    """Keep only the latest fired occurrence of each repeating step (memory stays small)."""
    latest: dict[str, int] = {}
    kept = set()
    for token in tokens:
        step, _, occurrence = token.partition("#")
        if step in repeats:
            latest[step] = max(latest.get(step, -1), int(occurrence))
        else:
            kept.add(token)
    return frozenset(kept | {f"{step}#{n}" for step, n in latest.items()})


def _times(period: Offset, n: int) -> Offset:
    return Offset(period.amount * n, period.unit)


def _last_at_or_before(due: Any, n: int, now: datetime) -> int:
    """The largest m >= n with due(m) <= now, given due(n) <= now and due increasing."""
    step = 1
    while due(n + step) <= now:
        n, step = n + step, step * 2
    low, high = n, n + step  # due(low) <= now < due(high)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if due(mid) <= now else (low, mid)
    return low


def _local(day: date, clock: time, tz: tzinfo) -> datetime:
    """A local wall time as a UTC instant; a time in a DST gap moves forward by the gap."""
    return datetime.combine(day, clock).replace(tzinfo=tz).astimezone(UTC)



def canary_bucket(rule_id: str, ref: RecordRef) -> int:
    """The record's place, 0-9999, in the rule's canary order: a hash of the rule id and the
    record, so the share is stable across restarts and a wider percent keeps the records it
    had (each rule picks its own records)."""
    digest = blake2b(f"{rule_id}\x1f{ref.kind}\x1f{ref.id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000
