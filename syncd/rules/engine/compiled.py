"""A rule set compiled for the hot loop: rules, steps, actions, and the index of each record
kind's rules."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from syncd.calendars import Calendar
from syncd.durations import Offset
from syncd.rules import conditions as cond
from syncd.rules import schema, templates
from syncd.rules.engine.memory import _NEVER, _US, RuleMemory
from syncd.rules.engine.render import _ANCHORED, _CONST, _SHIFT, _TEXT, _TEXTS, _TREE, _param
from syncd.rules.kinds import KINDS

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

    def __init__(self, rule: schema.Rule, position: int, math: cond.TimeMath,
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
        return name, _CONST, _param(name, value, None, cond.UTC_MATH)
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
