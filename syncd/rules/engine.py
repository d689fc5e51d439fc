"""The pure rule engine: (rules, one record's versions, its rule memory, now) -> intents, the
new memory, timers and the exact next wake-up instant. No I/O, no clock, no threads.

    engine = Engine(ruleset)                        # compile once per (re)load
    result = engine.evaluate(current, previous, memory, now, grace=poll_slack)
    # store, in ONE transaction: result.intents (unique key), memory_to_json(result.memory)
    # as the record's rule memory, result.timers as the record's timers; log result.errors;
    # sleep until result.next_wake at the latest.

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

Speed (bench/engine.py: 100,000 tickets x 100 rules; every shortcut is exact, the unit tests
compare each with the long way):
- rules are indexed on the equality tests of `scope`/`when` over up to three fields at once
  (`_KindIndex`), so a record only meets the rules it can match, plus those with memory for it;
- each `when`/`until` is one generated Python function (`conditions.compile_test`); the usual
  gates (no age test, the kind's calendar) are tested by `evaluate` itself, without the
  equality tests the record's index key already vouches for (`_Rule.rest`);
- templates in the usual subset are generated Python (`templates.renderer`), fixed params are
  precomputed, the others planned per param (`_plan`);
- a ladder of plain steps (`_Rule.simple`) computes its due instants in integer microseconds
  with one span-table lookup (`TimeMath.shift_all_micros`); when even its last step is missed
  beyond grace and catch-up, one comparison with `Engine.cut` (the latest such anchor at this
  `now`) settles it;
- per record: one context (`_Run` is the Context), memory as named tuples, intents and the
  Evaluation built without a setattr per field, ISO texts and key anchors remembered for the
  instant a poll shares.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from hashlib import blake2b
from typing import Any, NamedTuple

from syncd.businesstime.calendars import Calendar
from syncd.businesstime.durations import Offset
from syncd.businesstime.spans import UTC_MATH, TimeMath, from_micros, micros
from syncd.model import Intent, Record, RecordRef, intent_key
from syncd.rules import conditions as cond
from syncd.rules import language as schema
from syncd.rules.language import RuleSet, templates
from syncd.vendors.registry import KINDS

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
_MISSING = object()
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


def _maker(cls: type) -> Callable[..., Any]:
    """`cls(*all_fields)` for a plain frozen dataclass (model.Intent), without the generated
    __init__'s setattr call per field: the instance's __dict__ is set at once. The class itself
    whenever that would not be the same (slots, __post_init__, fields outside __init__)."""
    fields = dataclasses.fields(cls)
    plain = (
        "__slots__" not in cls.__dict__
        and not hasattr(cls, "__post_init__")
        and all(f.init and f.name.isidentifier() for f in fields)
    )
    if not plain:
        return cls
    names = [f.name for f in fields]
    source = (
        f"def make({', '.join(names)}):\n"
        f"    made = _new(_cls)\n"
        f"    _set(made, '__dict__', {{{', '.join(f'{n!r}: {n}' for n in names)}}})\n"
        f"    return made\n"
    )
    scope: dict[str, Any] = {"_new": object.__new__, "_set": _set, "_cls": cls}
    exec(source, scope)
    return scope["make"]  # type: ignore[no-any-return]


_intent = _maker(Intent)  # Intent(key, rule_id, record, action, params, due_at, step, ...)


# ----------------------------------------------------------------------------- compiled rules


@dataclass(frozen=True)
class _Action:
    index: int
    kind: str
    params: dict[str, Any]  # templates still as `Text`
    templated: bool  # any text to render
    fixed: dict[str, Any] | None  # the final params when nothing depends on the record
    plan: tuple[tuple[str, int, Any], ...] | None  # (name, how, what) per param; None: generic
    link: bool  # params[schema.LINK] names the record written to: checked once rendered
    window: Calendar | None = None  # deliver: {within: ...}: due only in its open hours


# how a param of `_Action.plan` is made (see `_plan`)
_CONST, _TEXT, _TEXTS, _TREE, _SHIFT = range(5)


@dataclass(frozen=True)
class _Step:
    id: str
    after: Offset | None
    at: time | None
    repeat: Offset | None
    every: frozenset[int] | None
    start: Offset | None  # pattern range [start, end)
    end: Offset | None
    catch_up: schema.CatchUp
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

    def __init__(self, rule: schema.Rule, position: int, math: TimeMath,
                 calendars: Mapping[str, Calendar] | None = None) -> None:  # fmt: skip
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
                             if canary and canary.scope is not None else None)  # fmt: skip
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
        # set by Engine: `evaluate` tests `when` itself, on the record's own context (no age
        # test, the calendar the kind's rules share), for an instant rule (inline_gate) or a
        # timeline anchored on a field (inline_since); `rest` (set by _KindIndex) is the gate
        # left to test when the record's index key selected the rule (None: nothing left)
        self.inline_gate = self.inline_since = False
        self.rest: cond.Test | None = self.gate_test
        self.actions = tuple(_actions(rule.do or [], calendars))
        self.timeline = rule.steps is not None
        self.since_field = rule.since if isinstance(rule.since, str) else None
        self.since = (
            _all(self.scope, cond.compile_condition(rule.since.became))
            if isinstance(rule.since, schema.BecameAnchor)
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
                  calendars)
            for n, step in enumerate(rule.steps or [])
        )
        self.defer_lead = self.steps[deferred_from].lead if deferred_from is not None else None
        self.step_plan = tuple((s, s.plain, f"{s.id}#0") for s in self.steps)
        # the common ladder: plain steps at `after` (no `at`, no deferral): all their due
        # instants come from one `TimeMath.shift_all_micros` call
        simple = all(s.plain and s.at is None for s in self.steps) and self.defer_when is None
        self.simple = tuple((s, f"{s.id}#0") for s in self.steps) if simple else None
        self.offsets = tuple(s.after for s in self.steps) if simple else ()
        self.tokens = frozenset(token for _, token in self.simple or ())
        self.give_up_us = _give_up(self.steps) if simple else None
        # (now, grace, anchor): see Engine.cut
        self.cut: tuple[datetime | None, timedelta | None, datetime | None] = (None, None, None)

    def index_constraint(self) -> Mapping[str, frozenset[Any]]:
        """Field -> values outside which the rule cannot act on a record it has no memory of."""
        gate = self.gate.equalities()
        if self.since is None:
            return gate
        since = self.since.equalities()  # since-became is tracked even while `when` is false
        return {f: gate[f] | since[f] for f in gate.keys() & since.keys()}


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


def _index_of(steps: Sequence[schema.Step], step_id: str) -> int:
    return next(n for n, step in enumerate(steps) if step.id == step_id)


def _actions(
    actions: Sequence[schema.Action], calendars: Mapping[str, Calendar]
) -> Iterator[_Action]:
    for index, action in enumerate(actions):
        window = calendars.get(action.deliver.within) if action.deliver else None
        params = action.params()
        templated = _has_text(params)
        fixed = None
        if not templated and not _ANCHORED & params.keys() and not params.get("template"):
            fixed = {k: _constant(v) for k, v in params.items()}
        plan = None if params.get("template") else tuple(_plan(k, v) for k, v in params.items())
        yield _Action(index, action.kind, params, templated, fixed, plan,
                      action.link is not None, window)  # fmt: skip


def _plan(name: str, value: Any) -> tuple[str, int, Any]:
    """How `_Renderer.params` makes one param: what `_param(name, rendered...)` gives, with
    everything that does not depend on the record computed here, once."""
    if isinstance(value, Offset) and name in _ANCHORED:
        return name, _SHIFT, value
    if isinstance(value, templates.Text) and templates.is_template(value):
        return name, _TEXT, (value, templates.renderer(value))
    if not _has_text(value):
        return name, _CONST, _param(name, value, None, UTC_MATH)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return (
            name,
            _TEXTS,
            tuple((v, templates.renderer(v)) if _has_text(v) else str(v) for v in value),
        )
    return name, _TREE, value


def _constant(value: Any) -> Any:
    """A param that needs no rendering, JSON-safe (as `_param` would make it)."""
    if isinstance(value, Offset):
        return str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, Mapping):
        return {k: _constant(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_constant(v) for v in value]
    return cond.json_safe(str(value) if isinstance(value, templates.Text) else value)


def _has_text(value: Any) -> bool:
    if isinstance(value, templates.Text):
        return templates.is_template(value)
    if isinstance(value, Mapping):
        return any(_has_text(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_text(v) for v in value)
    return False


def _step(step: schema.Step, rule_catch_up: schema.CatchUp, deferrable: bool,
          calendars: Mapping[str, Calendar]) -> _Step:  # fmt: skip
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
        actions=tuple(_actions(step.do, calendars)),
        deferrable=deferrable,
        lead=step.after if step.every is None else step.from_,
        late_us=late_us,
    )


class _KindIndex:
    """The rules of one record kind, indexed by the values their equality tests require.

    `equalities()` says which values a field must hold for a rule to act on a record it has no
    memory of (`status: [new, open]`, `group_id: 3`). The fields most rules constrain (up to
    `_INDEXED`) form a key: a record's values there (or `_OTHER` for a value no rule names)
    select, once per distinct key, the rules whose constraints they all meet. A record with a
    list or unhashable value there, or with memory of other rules, takes the general path: each
    rule bucketed under its most selective field."""

    def __init__(self, rules: Sequence[_Rule]) -> None:
        self.rules = tuple(rules)
        self.by_id = {r.id: r for r in rules}
        constraints = {r.id: r.index_constraint() for r in rules}
        distinct: dict[str, set[Any]] = {}
        for found in constraints.values():
            for path, values in found.items():
                distinct.setdefault(path, set()).update(values)
        self.buckets: dict[str, dict[Any, list[_Rule]]] = {}
        free: list[_Rule] = []
        for rule in rules:
            found = constraints[rule.id]
            if not found:
                free.append(rule)
                continue
            # the most selective test: many values across rules, few for this rule
            path = max(found, key=lambda p: (len(distinct[p]) / max(1, len(found[p])), p))
            for value in found[path]:
                self.buckets.setdefault(path, {}).setdefault(value, []).append(rule)
        self.free = tuple(free)
        self.indexed = {
            path: tuple(r for b in v.values() for r in b) for path, v in self.buckets.items()
        }
        # the key: the fields that constrain the most rules
        counted = sorted(distinct, key=lambda p: (-sum(p in c for c in constraints.values()), p))
        self.paths = tuple(counted[:_INDEXED])
        # per key field: the rules a value admits (those naming it, and those not constrained
        # there); under _OTHER, only the latter
        self.admit: list[dict[Any, frozenset[_Rule]]] = []
        for path in self.paths:
            free_here = frozenset(r for r in rules if path not in constraints[r.id])
            admit: dict[Any, frozenset[_Rule]] = {_OTHER: free_here}
            for value in distinct[path]:
                named = (r for r in rules if value in constraints[r.id].get(path, ()))
                admit[value] = free_here.union(named)
            self.admit.append(admit)
        self.combos: dict[tuple[Any, ...], _Ready] = {}
        self.key = _key_function(self.paths, [frozenset(distinct[p]) for p in self.paths])
        for rule in rules:
            rule.rest = _rest(rule, self.paths)

    def candidates(
        self, fields: Mapping[str, Any], memory: Mapping[str, RuleMemory]
    ) -> Sequence[_Rule]:
        """The rules that may act on this record, in rule-set order."""
        if self.paths:
            try:
                combo = self.key(fields)
            except TypeError:  # an unhashable value
                combo = None
            if combo is not None:  # else a list (tags: any element may match): general path
                ready = self.combos.get(combo)
                if ready is None:
                    ready = self.combo(combo)
                rules, ids = ready
                if not memory or ids.issuperset(memory):
                    return rules
        found: dict[str, _Rule] = {r.id: r for r in self.free}
        for path, bucket in self.buckets.items():
            value = cond.resolve(fields, path)
            if isinstance(value, list | tuple | set | frozenset):
                hits: list[_Rule] = [r for v in value if _hashable(v) for r in bucket.get(v, ())]
            elif _hashable(value):
                hits = bucket.get(value, [])
            else:
                hits = list(self.indexed[path])
            for rule in hits:
                found[rule.id] = rule
        for rule_id in memory:
            rule = self.by_id.get(rule_id)
            if rule is not None:
                found[rule_id] = rule
        if len(found) == len(self.rules):
            return self.rules
        return sorted(found.values(), key=_position)

    def combo(self, key: tuple[Any, ...]) -> _Ready:
        """The rules whose constraints on the key's fields admit the key's values."""
        admitted = [admit[value] for admit, value in zip(self.admit, key, strict=True)]
        ready = _ready(frozenset.intersection(*admitted) if admitted else self.rules)
        if len(self.combos) < _COMBOS:
            self.combos[key] = ready
        return ready


def _rest(rule: _Rule, paths: Sequence[str]) -> cond.Test | None:
    """The rule's gate without the equality tests an index key over `paths` vouches for: a
    record whose key selected the rule has, on each of those fields, a plain value that every
    such test on the field admits (`eq`, `in`: the rule's constraint is their intersection).
    None when nothing is left to test."""
    if rule.since is not None:  # its constraints include the `since` condition's
        return rule.gate_test
    tests = _conjuncts(rule.gate)
    left = [
        test
        for test in tests
        if not (type(test) in (cond.Eq, cond.In) and test.path in paths and test.equalities())  # type: ignore[attr-defined]
    ]
    if len(left) == len(tests):
        return rule.gate_test
    if not left:
        return None
    return cond.compile_test(left[0] if len(left) == 1 else cond.All(left))


def _conjuncts(condition: cond.Condition) -> list[cond.Condition]:
    """The tests an `All` (nested ones flattened) requires together; ALWAYS requires none."""
    if condition is cond.ALWAYS:
        return []
    if type(condition) is cond.All:
        return [t for child in condition.children for t in _conjuncts(child)]
    return [condition]


def _key_function(paths: Sequence[str], known: Sequence[frozenset[Any]]) -> Any:
    """fields -> the index key: per path the record's value, or _OTHER for a value no rule
    names; None when a value is a list, tuple or set. Generated: one call per record."""
    scope: dict[str, Any] = {"_LISTS": _LISTS, "_OTHER": _OTHER, "_resolve": cond.resolve}
    reads, checks, parts = [], [], []
    for n, (path, values) in enumerate(zip(paths, known, strict=True)):
        scope[f"_known{n}"] = values
        read = f"F.get({path!r})" if "." not in path else f"_resolve(F, {path!r})"
        reads.append(f"    v{n} = {read}\n")
        checks.append(f"type(v{n}) in _LISTS")
        parts.append(f"v{n} if v{n} in _known{n} else _OTHER, ")
    source = (
        "def key(F):\n"
        + "".join(reads)
        + f"    if {' or '.join(checks) or 'False'}:\n"
        + "        return None\n"
        + f"    return ({''.join(parts)})\n"
    )
    exec(compile(source, "<index key>", "exec"), scope)
    return scope["key"]


_INDEXED = 3  # fields in an index key
_COMBOS = 16384  # distinct keys remembered per record kind
_OTHER = object()  # a key value no rule names


_LISTS = frozenset({list, tuple, set, frozenset})
_SCALARS = frozenset({str, int, float, bool, type(None)})  # hashable
_Ready = tuple[tuple[_Rule, ...], frozenset[str]]


def _ready(rules: Iterable[_Rule]) -> _Ready:
    ordered = tuple(sorted(rules, key=_position))
    return ordered, frozenset(r.id for r in ordered)


def _position(rule: _Rule) -> int:
    return rule.position


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


# ----------------------------------------------------------------------------- the engine


class Engine:
    """A rule set compiled for evaluation; build one per (re)load and share it."""

    def __init__(self, ruleset: RuleSet) -> None:
        """`ruleset`: a loader.RuleSet (rules, calendars, named templates)."""
        self.ruleset = ruleset
        calendars = getattr(ruleset, "calendars", {}) or {}
        maths = {name: TimeMath(calendar) for name, calendar in calendars.items()}
        rules = [
            _Rule(rule, n, maths.get(rule.calendar or "", UTC_MATH), calendars)
            for n, rule in enumerate(ruleset.rules)
        ]
        self.rules = {rule.id: rule for rule in rules}
        kinds = sorted({rule.kind for rule in rules})
        self.kinds = {k: _KindIndex([r for r in rules if r.kind == k and r.enabled]) for k in kinds}
        self.last_iso: tuple[datetime, str] = (_EPOCH, _EPOCH.isoformat())  # see `_Run.iso`
        # the calendar every rule of a kind uses, when they share one (the common case): an
        # evaluation then needs a single context
        self.maths: dict[str, TimeMath | None] = {}
        for kind, index in self.kinds.items():
            used = {id(r.math): r.math for r in index.rules}
            self.maths[kind] = next(iter(used.values())) if len(used) == 1 else None
            for rule in index.rules:  # evaluate tests these rules' `when` itself
                plain = not rule.gate_ages and rule.math is (self.maths[kind] or UTC_MATH)
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


def canary_bucket(rule_id: str, ref: RecordRef) -> int:
    """The record's place, 0-9999, in the rule's canary order: a hash of the rule id and the
    record, so the share is stable across restarts and a wider percent keeps the records it
    had (each rule picks its own records)."""
    digest = blake2b(f"{rule_id}\x1f{ref.kind}\x1f{ref.id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000


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
    (a Context on the calendar all the kind's rules share, if they do: the common case).
    Careful with names: conditions call Context's `value`, `instant`, `at`, `before`..."""

    __slots__ = (
        "_armed",
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

    def __init__(
        self,
        engine: Engine,
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
        self._armed: RuleMemory | None = None  # the last memory field_timeline made
        self.intents: list[Intent] = []
        self.timers: list[Timer] = []
        self.errors: list[RuleError] = []

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
        if rule.canary:
            live = (canary_bucket(rule_id, ref) < rule.canary_share if rule.canary_share
                    else bool(rule.canary_scope(ctx)))  # type: ignore[misc]  # fmt: skip
            shadow = not live
            reason = {**reason, "canary": "live" if live else "shadow"}
        render: _Renderer | None = None
        ok = True
        for action in actions:
            if action.fixed is not None:
                params = dict(action.fixed)  # nested values are shared: params are read-only
            else:
                if render is None:
                    render = _Renderer(self, rule, ctx, due)
                try:
                    params = render.params(action, anchor)
                except Exception as exc:  # template code is admin code: report, never crash
                    self.fail(rule, step, f"action {action.index + 1} ({action.kind}): {exc}")
                    ok = False
                    continue
            if action.link:  # the other record's id: a wrong one must never reach a vendor
                rendered = params[schema.LINK]
                linked = _record_id(rendered)
                if linked is None:
                    self.fail(rule, step, f"action {action.index + 1} ({action.kind}): "
                              f"{schema.LINK} renders to {rendered!r}, not a ticket id (a "
                              "positive whole number)")  # fmt: skip
                    ok = False
                    continue
                params[schema.LINK] = linked
            key = intent_key(rule_id, ref, step, anchor, occurrence, action.index)
            intents.append(
                _intent(
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
            elif rule.simple is not None:
                fired = self.simple_steps(rule, ctx, anchor, fired)
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

    def field_timeline(self, rule: _Rule, mem: RuleMemory) -> RuleMemory:
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
                fired = self.steps(rule, self, anchor, fired)
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
        self, rule: _Rule, ctx: cond.Context, anchor: datetime, fired: frozenset[str]
    ) -> frozenset[str]:
        """`steps` for the common ladder (`_Rule.simple`), in integer microseconds."""
        if rule.tokens <= fired:
            return fired  # every step fired for this anchor
        if rule.give_up_us is not None:
            cut = rule.cut
            if cut[0] != self.now or cut[1] != self.grace:
                cut = self.engine.cut(rule, self.now, self.grace)
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


# ----------------------------------------------------------------------------- rendering


_ANCHORED = frozenset({"due", "start"})  # create_task.due, create_event.start


class _Renderer:
    """Renders one rule's actions for one record, building the template context once."""

    __slots__ = ("_context", "ctx", "rule", "run", "step")

    def __init__(self, run: _Run, rule: _Rule, ctx: cond.Context, step: _Due | None) -> None:
        self.run = run
        self.rule = rule
        self.ctx = ctx
        self.step = step
        self._context: dict[str, Any] | None = None

    def context(self) -> dict[str, Any]:
        if self._context is None:
            fields = self.run.fields
            context: dict[str, Any] = {
                self.rule.record_var: fields,
                "record": fields,
                "previous": self.run.previous or {},
                "rule": {"id": self.rule.id, "description": self.rule.description},
                "now": self.run.now,
                templates.TIMEZONE: self.rule.math.tz,
            }
            if self.step is not None:
                context["step"] = {"id": self.step.step.id}
                context["occurrence"] = self.step.occurrence
                if self.step.day is not None:
                    context["week"] = self.step.week
                    context["date"] = self.step.day
            variables = self.rule.vars
            context["vars"] = (
                {k: templates.render_tree(v, context) for k, v in variables.items()}
                if variables
                else {}
            )
            self._context = context
        return self._context

    def params(self, action: _Action, base: datetime) -> dict[str, Any]:
        """The action's params rendered, offsets resolved against `base`, JSON-safe."""
        if action.fixed is not None:
            return dict(action.fixed)  # nested values are shared: treat params as read-only
        if action.plan is None:
            return self.generic(action, base)
        out: dict[str, Any] = {}
        context = self._context
        for name, how, what in action.plan:
            if how == _CONST:
                out[name] = what  # nested values are shared, as in `fixed`
            elif how == _SHIFT:
                out[name] = _param(name, what, base, self.rule.math)
            else:
                if context is None:
                    context = self.context()
                if how == _TEXT:
                    out[name] = _render(what, context)
                elif how == _TEXTS:
                    out[name] = [p if type(p) is str else _render(p, context) for p in what]
                else:
                    rendered = templates.render_tree(what, context)
                    out[name] = _param(name, rendered, base, self.rule.math)
        return out

    def generic(self, action: _Action, base: datetime) -> dict[str, Any]:
        """`params` the long way: render the whole tree, fill a named template, convert."""
        params = action.params
        if action.templated:
            params = templates.render_tree(params, self.context())
        if action.kind == "notify" and params.get("template"):
            params = self.named(params)
        return {k: _param(k, v, base, self.rule.math) for k, v in params.items()}

    def named(self, params: dict[str, Any]) -> dict[str, Any]:
        """Fill subject and body from the named template (an explicit subject wins)."""
        finder = getattr(self.run.engine.ruleset, "template", None)
        named = finder(self.rule.id, params["template"]) if finder else None
        if named is None:
            raise templates.TemplateProblem(f"no template named {params['template']!r}")
        filled = dict(params)
        if named.subject is not None and not params.get("subject"):
            filled["subject"] = templates.render(named.subject, self.context())
        filled["body"] = templates.render(named.body, self.context())
        return filled


_RECORD_ID = re.compile(r"[1-9][0-9]*")


def _record_id(rendered: Any) -> str | None:
    """A linked record's id as its canonical text; None for anything else (blank, 'None', 0,
    '12a', '#12'), which is a rule error rather than a write to a wrong record."""
    text = str(rendered).strip()
    return text if _RECORD_ID.fullmatch(text) else None


def _render(template: tuple[str, templates.Renderer | None], context: dict[str, Any]) -> str:
    """`templates.render(text, context)`, through the text's generated renderer if it has one
    (which raises wherever it might differ from Jinja: then Jinja renders, or reports)."""
    text, fast = template
    if fast is not None:
        try:
            return fast(context)
        except Exception:  # outside the fast subset
            pass
    return templates.render(text, context)


def _param(name: str, value: Any, base: datetime | None, math: TimeMath) -> Any:
    """One rendered param as the intent carries it: an anchored offset (`due`, `start`) as the
    local ISO instant from `base`, other offsets and patterns as their text, JSON-safe."""
    if isinstance(value, Offset):
        if name in _ANCHORED:  # an instant relative to the anchor
            assert base is not None
            return math.shift(base, value).astimezone(math.tz).isoformat()
        return str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, templates.Text):
        return str(value)
    return cond.json_safe(value)
