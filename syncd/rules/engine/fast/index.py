"""The index of one record kind's rules: a record meets only the rules it can match.

The rules are indexed on the equality tests of `scope`/`when` over up to three fields at once
(`_KindIndex`), so a record only meets the rules it can match, plus those with memory for it.
A record whose index key selected a rule has, on those fields, values its equality tests admit:
`_rest` is the gate left to test (`FastRule.rest`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from syncd.rules import conditions as cond
from syncd.rules.engine.memory import RuleMemory

if TYPE_CHECKING:
    from syncd.rules.engine.fast.rule import FastRule


class _KindIndex:
    """The rules of one record kind, indexed by the values their equality tests require.

    `equalities()` says which values a field must hold for a rule to act on a record it has no
    memory of (`status: [new, open]`, `group_id: 3`). The fields most rules constrain (up to
    `_INDEXED`) form a key: a record's values there (or `_OTHER` for a value no rule names)
    select, once per distinct key, the rules whose constraints they all meet. A record with a
    list or unhashable value there, or with memory of other rules, takes the general path: each
    rule bucketed under its most selective field."""

    def __init__(self, rules: Sequence[FastRule]) -> None:
        self.rules = tuple(rules)
        self.by_id = {r.id: r for r in rules}
        constraints = {r.id: _constraint(r) for r in rules}
        distinct: dict[str, set[Any]] = {}
        for found in constraints.values():
            for path, values in found.items():
                distinct.setdefault(path, set()).update(values)
        self.buckets: dict[str, dict[Any, list[FastRule]]] = {}
        free: list[FastRule] = []
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
        self.admit: list[dict[Any, frozenset[FastRule]]] = []
        for path in self.paths:
            free_here = frozenset(r for r in rules if path not in constraints[r.id])
            admit: dict[Any, frozenset[FastRule]] = {_OTHER: free_here}
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
    ) -> Sequence[FastRule]:
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
        found: dict[str, FastRule] = {r.id: r for r in self.free}
        for path, bucket in self.buckets.items():
            value = cond.resolve(fields, path)
            if isinstance(value, list | tuple | set | frozenset):
                hits: list[FastRule] = [r for v in value if _hashable(v) for r in bucket.get(v, ())]
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


def _rest(rule: FastRule, paths: Sequence[str]) -> cond.Test | None:
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
_Ready = tuple[tuple["FastRule", ...], frozenset[str]]


def _ready(rules: Iterable[FastRule]) -> _Ready:
    ordered = tuple(sorted(rules, key=_position))
    return ordered, frozenset(r.id for r in ordered)


def _position(rule: FastRule) -> int:
    return rule.position


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _constraint(rule: FastRule) -> Mapping[str, frozenset[Any]]:
    """Field -> values outside which the rule cannot act on a record it has no memory of."""
    gate = rule.gate.equalities()
    if rule.since is None:
        return gate
    since = rule.since.equalities()  # since-became is tracked even while `when` is false
    return {f: gate[f] | since[f] for f in gate.keys() & since.keys()}
