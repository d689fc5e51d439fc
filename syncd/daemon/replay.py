"""Replay: what a candidate rule set would have done over the history the store recorded, next
to what the running rules do over the same history (no vendor is called).

Both rule sets meet the same reconstructed past, so a difference comes from the rules alone,
not from what the store could not see. Each record's versions are rebuilt from its snapshot by
undoing `field_history` newest first; every version is evaluated at the instant syncd observed
it, with the rule memory carried from the version before, and the timers the engine asks for
are fired at their instants in between (as the daemon would, on the record as last seen).
History before the window warms the memory up (a ticket already `new` before it does not
fire at its start); only intents due inside the window are compared.

Only the rules that differ are evaluated: a rule whose definition, calendar and named
templates are the same in both sets plans the same intents, and the engine is pure per record.
The naive way (every rule of both sets over every version) is `bench/replay.py`'s baseline.

Limits (README "Replay a rule change"): changes inside one poll interval are one version;
what the store does not keep (fields no source reads, history of records deleted from the
store, a record's deletion instant) cannot be replayed; re-reads before timers and read-backs
after writes are not replayed (the last version seen stands); cross-record actions
(`dispatch`) are compared as intents, not as their choices.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

from syncd.model import Intent, Record, RecordRef
from syncd.rules.engine import DEFAULT_GRACE, Engine, RuleMemory
from syncd.rules.language import Rule, RuleSet
from syncd.rules.language.ruleset import TEMPLATE_DIR
from syncd.store.db import Tx

EXAMPLES = 5
MAX_WAKES = 10_000  # timers of one version (a runaway repeat cannot loop forever)


@dataclass(frozen=True)
class Version:
    """One version of a record, as syncd observed it."""

    fields: dict[str, Any]
    at: datetime


@dataclass
class Difference:
    """One rule's intents that differ, in one of three ways."""

    added: list[tuple[Intent, dict[str, Any]]] = field(default_factory=list)  # (intent, values)
    removed: list[tuple[Intent, dict[str, Any]]] = field(default_factory=list)
    moved: list[tuple[Intent, Intent]] = field(default_factory=list)  # (running, candidate)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.moved)


@dataclass
class Replayed:
    differences: dict[str, Difference]
    rules_replayed: list[str]
    records: int
    versions: int


# -- which rules differ ------------------------------------------------------------------------


def _signature(ruleset: RuleSet, rule: Rule) -> tuple[Any, ...]:
    """What decides a rule's intents: its definition, its calendar, the templates it sees."""
    directory = Path(ruleset.sources[rule.id].file).parent / TEMPLATE_DIR if rule.id in \
        ruleset.sources else None
    named = ruleset.templates.get(directory, {}) if directory else {}
    return (rule, ruleset.calendars.get(rule.calendar or ""),
            sorted((n, t.subject, t.body) for n, t in named.items()))


def differing(running: RuleSet, candidate: RuleSet) -> list[str]:
    """Rule ids added, removed or changed between the two sets, in file order."""
    old = {rule.id: rule for rule in running.rules}
    new = {rule.id: rule for rule in candidate.rules}
    ids = [r.id for r in candidate.rules] + [r.id for r in running.rules if r.id not in new]
    same = {rule_id for rule_id in old.keys() & new.keys()
            if _signature(running, old[rule_id]) == _signature(candidate, new[rule_id])}
    return [rule_id for rule_id in ids if rule_id not in same]


def only(ruleset: RuleSet, ids: Sequence[str]) -> RuleSet:
    return replace(ruleset, rules=tuple(r for r in ruleset.rules if r.id in set(ids)))


# -- the recorded past ---------------------------------------------------------------------------


def _flat(fields: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        if value is None:
            continue
        *parents, last = path.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[last] = value
    return out


def versions(fields: Mapping[str, Any], observed_at: datetime, changes: Sequence[Any],
             first_at: datetime | None = None) -> list[Version]:
    """The record's versions, oldest first, rebuilt from its snapshot by undoing its history:
    `changes` are its field_history rows after version 1 (any order), `first_at` the instant
    of its first version. Without changes: the snapshot alone."""
    ordered = sorted(changes, key=lambda r: r.version)
    by_version = [(v, list(rows)) for v, rows in groupby(ordered, key=lambda r: r.version)]
    if not by_version:
        return [Version(dict(fields), observed_at)]
    flat = _flat(fields)
    found: list[Version] = []
    for _, rows in reversed(by_version):
        found.append(Version(_nested(flat), rows[0].at))
        for row in rows:
            flat[row.field] = row.old
    found.append(Version(_nested(flat), first_at or found[-1].at))
    found.reverse()
    return found


def recorded(tx: Tx, kinds: Sequence[str]) -> Iterator[tuple[RecordRef, bool, list[Version]]]:
    """Every stored record of `kinds` with its versions, read in ordered scans. A record's
    first version (every field, in field_history) is the snapshot with the later ones undone:
    only the instant of its first history row is read."""
    for kind in kinds:
        later = tx.records.later_changes(kind)
        changed = {rid: list(rows) for rid, rows in groupby(later, key=lambda r: r.record_id)}
        first = tx.records.first_seen(kind)
        for snap in tx.records.snapshots(kind):
            seen = versions(snap.fields, snap.observed_at, changed.get(snap.id, ()),
                            first.get(snap.id))
            yield RecordRef(kind, snap.id), snap.deleted, seen


# -- evaluation ------------------------------------------------------------------------------


Planned = dict[str, tuple[Intent, Version]]  # key -> (intent, the version it was planned on)


def evaluate_history(engine: Engine, ref: RecordRef, deleted: bool, seen: Sequence[Version],
                     since: datetime, until: datetime,
                     grace: timedelta = DEFAULT_GRACE) -> Planned:
    """The intents due in [since, until] the engine plans over the record's versions."""
    found: Planned = {}
    memory: Mapping[str, RuleMemory] = {}
    previous: Record | None = None
    for n, version in enumerate(seen):
        if version.at > until:
            break
        last = n == len(seen) - 1
        current = Record(ref, version.fields, version.at, deleted and last)
        ends = until if last else min(until, seen[n + 1].at)
        now: datetime | None = version.at
        wakes = 0
        while now is not None and wakes < MAX_WAKES:
            result = engine.evaluate(current, previous, memory, now, grace=grace)
            memory = result.memory
            for intent in result.intents:
                if since <= intent.due_at <= until:
                    found.setdefault(intent.key, (intent, version))
            previous, wakes = current, wakes + 1
            wake = result.next_wake
            now = wake if wake is not None and now < wake < ends else None
    return found


def _values(engine: Engine, intent: Intent, seen: Sequence[Version], ref: RecordRef,
            until: datetime) -> dict[str, Any]:
    """Why the candidate did not plan a running rule's intent: the values its conditions saw
    on the version current at the intent's instant or, if they held then, on the first later
    version on which they stopped holding (a step the candidate puts later, after an agent
    solved the ticket)."""
    current = _at(seen, intent.due_at)
    for version in (v for v in seen if v is current or current.at < v.at <= until):
        at = max(version.at, intent.due_at)
        why = engine.why_not(intent.rule_id, Record(ref, version.fields, version.at), at)
        if why is not None:
            return why
    return {"step": f"{intent.step or 'the action'} not planned at this instant"}


def replay(tx: Tx, running: RuleSet, candidate: RuleSet, since: datetime, until: datetime,
           grace: timedelta = DEFAULT_GRACE) -> Replayed:
    ids = differing(running, candidate)
    old, new = Engine(only(running, ids)), Engine(only(candidate, ids))
    kinds = sorted({r.kind for r in (*old.rules.values(), *new.rules.values())})
    differences: dict[str, Difference] = {}
    count = versions_seen = 0
    for ref, deleted, seen in recorded(tx, kinds) if ids else ():
        count += 1
        versions_seen += len(seen)
        before = evaluate_history(old, ref, deleted, seen, since, until, grace)
        after = evaluate_history(new, ref, deleted, seen, since, until, grace)
        for key in before.keys() | after.keys():
            was, now = before.get(key), after.get(key)
            if was and now:
                if was[0].due_at != now[0].due_at:
                    differences.setdefault(was[0].rule_id, Difference()).moved.append(
                        (was[0], now[0]))
                continue
            if now:
                diff = differences.setdefault(now[0].rule_id, Difference())
                diff.added.append((now[0], dict(now[0].reason.get("when") or now[0].reason)))
            elif was:
                diff = differences.setdefault(was[0].rule_id, Difference())
                diff.removed.append((was[0], _values(new, was[0], seen, ref, until)))
    for diff in differences.values():
        for items in (diff.added, diff.removed, diff.moved):
            items.sort(key=lambda pair: (pair[0].due_at, pair[0].record.id, pair[0].key))
    order = {rule_id: n for n, rule_id in enumerate(ids)}
    return Replayed(dict(sorted(differences.items(), key=lambda kv: order.get(kv[0], 0))),
                    ids, count, versions_seen)


def _at(seen: Sequence[Version], instant: datetime) -> Version:
    """The version that was current at `instant`."""
    current = seen[0]
    for version in seen:
        if version.at > instant:
            break
        current = version
    return current
