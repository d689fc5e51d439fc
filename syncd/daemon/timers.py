"""Fire due timers: re-read each record from its vendor first (a ticket answered a minute ago
must not escalate), then re-evaluate it, which plans what is due and settles its due timers
(fired, or cancelled with the reason they planned nothing). The records due together are
re-read together, per vendor (`fetch_many`: Zendesk's `tickets/show_many` reads 100 tickets in
one call), and evaluated in one transaction (each in its own savepoint, contain.py). The
fields that cost a call per record (Zendesk's audits, for `agent_touched`) are read only for
the records whose due timers belong to a rule naming them.

A queue step (every action of the step serves a queue: `dispatch`) is the exception: every
ticket waiting in a queue holds its own repeat, and the dispatch reads the whole queue from the
store, which every poll refreshes. So the records whose only due timers are queue steps' are
not re-read: they are evaluated as stored, together, in a few statements (`apply_unchanged`),
and of the intents their steps plan only one per queue served is planned in a fire_due call;
the others' timers are recorded fired, with the intent that serves their queue."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache

from syncd.connectors.http import VendorError
from syncd.daemon.actions import QUEUE_READERS, served_queue
from syncd.daemon.contain import apply_contained
from syncd.daemon.planner import Covered, Known, apply_unchanged
from syncd.daemon.runtime import Runtime, log
from syncd.model import Intent, Record, RecordRef
from syncd.rules.engine import Engine
from syncd.store import silences
from syncd.store.db import Tx
from syncd.store.timers import StoredTimer

Freshen = Callable[[Runtime, Sequence[RecordRef], bool], Mapping[RecordRef, Record | None]]
BATCH = 100
QUEUE_BATCH = 500  # records evaluated as stored in one transaction


def fetch(rt: Runtime, refs: Sequence[RecordRef],
          extras: bool = True) -> Mapping[RecordRef, Record | None]:
    """The records (of one system) as the vendor has them now (None: gone), with the fields
    that cost a call per record if `extras`; the stored ones if it is not configured."""
    connector = rt.connector_for(refs[0].kind)
    if connector is None:
        with rt.store.read() as tx:
            return {ref: tx.records.get(ref) for ref in refs}
    return connector.fetch_many(refs, extras=extras)


@lru_cache(maxsize=8)  # worked out once per rule set and vendor: a reload makes a new engine
def _naming(engine: Engine, fields: frozenset[str]) -> frozenset[str]:
    """The rules whose definition names one of `fields` anywhere (conditions, templates,
    parameters); every rule when a named template does. Erring towards reading them."""
    if not fields:
        return frozenset()
    ruleset = engine.ruleset
    texts = [f"{t.subject or ''}{t.body}" for d in ruleset.templates.values() for t in d.values()]
    if any(name in text for text in texts for name in fields):
        return frozenset(engine.rules)
    return frozenset(rule.id for rule in ruleset.rules
                     if any(name in repr(rule) for name in fields))


def _needs_extras(rt: Runtime, readers: frozenset[str], refs: Sequence[RecordRef],
                  at: datetime) -> set[RecordRef]:
    """The records (of one system) one of whose timers due at `at` (in this batch or not)
    belongs to one of the rules `readers`."""
    if not readers:
        return set()
    found: set[RecordRef] = set()
    with rt.store.read() as tx:
        for kind in dict.fromkeys(ref.kind for ref in refs):
            pending = tx.timers.for_records(kind, [ref.id for ref in refs if ref.kind == kind])
            found |= {RecordRef(kind, i) for i, timers in pending.items()
                      if any(t.due_at <= at and t.rule_id in readers for t in timers)}
    return found


def fire_due(
    rt: Runtime,
    now: datetime | None = None,
    freshen: Freshen = fetch,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Fire every timer due at `now` (default: the clock's now); returns how many fired.

    Records whose vendor cannot re-read them keep their timers pending (retried on the next
    run); the other vendors' go on."""
    engine = rt.engine
    fired = _serve_queues(rt, now, stopping)
    failed: set[RecordRef] = set()
    while not stopping():
        at = now or rt.clock.now()
        with rt.store.read() as tx:
            due = [t for t in tx.timers.due(at, BATCH + len(failed)) if t.record not in failed]
        if not due:
            break
        by_family: dict[str, list[RecordRef]] = {}
        for ref in dict.fromkeys(t.record for t in due):
            by_family.setdefault(ref.family, []).append(ref)
        for refs in by_family.values():
            try:
                connector = rt.connector_for(refs[0].kind)
                readers = _naming(engine, connector.extra_fields if connector else frozenset())
                full = _needs_extras(rt, readers, refs, at)
                fresh: dict[RecordRef, Record | None] = {}
                for extras in (True, False):
                    chosen = [ref for ref in refs if (ref in full) == extras]
                    if chosen:
                        fresh.update(freshen(rt, chosen, extras))
            except VendorError as exc:
                log.warning("timer_refetch_failed", records=[str(r) for r in refs],
                            error=str(exc))
                rt.fail(f"{refs[0].family}: re-read before firing: {exc}")
                failed.update(refs)
                continue
            if stopping():
                break
            with rt.store.transaction() as tx:
                known = Known(tx, engine, refs)
                for ref in refs:
                    timers = [t for t in due if t.record == ref]
                    fired += len(timers)
                    _fire(rt, tx, engine, known, timers, fresh.get(ref), at)
    if fired:
        log.info("timers_fired", count=fired)
    return fired


def queue_steps(rt: Runtime) -> frozenset[tuple[str, str]]:
    """(rule, step) of the steps every action of which serves a queue, in rules that do not
    name a field only a re-read learns (`agent_touched`: their records are re-read)."""
    costly = frozenset().union(*(c.extra_fields for c in rt.connectors.values()))
    return _queue_steps(rt.engine, costly)


@lru_cache(maxsize=2)
def _queue_steps(engine: Engine, costly: frozenset[str]) -> frozenset[tuple[str, str]]:
    naming = _naming(engine, costly)
    return frozenset((rule.id, step) for rule in engine.rules.values()
                     if rule.timeline and rule.id not in naming
                     for step, kinds in rule.actions.items()
                     if kinds and all(kind in QUEUE_READERS for kind in kinds))


def one_per_queue(active: Sequence[silences.Silence], at: datetime) -> Covered:
    """The first intent (live or shadow) asking for a queue to be served does it for the
    others of the fire_due call: their keys -> its key. An intent silenced on its own record
    serves nothing (the executor skips it): planned, it does not stand for the others."""
    serving: dict[tuple[object, ...], str] = {}

    def covered(intent: Intent) -> str | None:
        if intent.action not in QUEUE_READERS:
            return None
        served = (intent.shadow, intent.action, served_queue(intent))
        if served in serving:
            return serving[served]
        if not any(s.record is not None and s.holds(intent.rule_id, intent.record, at)
                   for s in active):
            serving[served] = intent.key
        return None

    return covered


def _serve_queues(rt: Runtime, now: datetime | None, stopping: Callable[[], bool]) -> int:
    """Settle the due timers of queue steps, QUEUE_BATCH records a transaction, evaluated as
    stored (module docstring); returns how many fired. A record with another due timer is
    left to be re-read and fired with it."""
    steps = queue_steps(rt)
    if not steps:
        return 0
    fired, served, planned = 0, 0, 0
    left: set[RecordRef] = set()
    covered: Covered | None = None
    while not stopping():
        at = now or rt.clock.now()
        with rt.store.read() as tx:
            due = [t for t in tx.timers.due(at, QUEUE_BATCH + len(left), steps)
                   if t.record not in left]
            if due and covered is None:
                covered = one_per_queue(silences.active(tx, at), at)
        if not due or covered is None:
            break
        waiting = list(dict.fromkeys(t.record for t in due))
        with rt.store.transaction() as tx:
            known = Known(tx, rt.engine, waiting)
            only = [ref for ref in waiting if all(
                (t.rule_id, t.step) in steps for t in known.timers(ref) if t.due_at <= at)]
            done = apply_unchanged(tx, rt.engine, known, only, at, rt.grace, covered)
        settled = set(only) - set(done.left)
        left |= set(waiting) - settled
        fired += sum(1 for t in due if t.record in settled)
        served += len(settled)
        planned += len(done.planned)
    if served:
        log.info("queues_served", records=served, planned=planned)
    return fired


def _fire(rt: Runtime, tx: Tx, engine: Engine, known: Known, timers: Sequence[StoredTimer],
          fresh: Record | None, at: datetime) -> None:
    """Re-evaluate the timers' record as re-read (`fresh`; None: gone), which settles them."""
    ref = timers[0].record
    stored = known.record(ref)
    if stored is None:  # nothing to evaluate: the timers have had their turn
        for timer in timers:
            tx.timers.mark_fired(timer.key, at)
        return
    record = fresh or Record(ref, stored.fields, at, deleted=True)
    apply_contained(rt, tx, engine, record, at, rt.grace, known=known)  # settles them
