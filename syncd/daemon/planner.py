"""One record version in, everything the engine decides about it written, in the caller's
transaction: snapshot + history, intents, timers (the due ones fired, or cancelled with the
reason they planned nothing), rule memory.

Poller and timers both come through here, so a replayed page or a re-fired timer re-derives the
same keys and the ledger's unique key absorbs the repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from syncd.businesstime.instants import as_instant
from syncd.daemon.baseline import to_hold
from syncd.daemon.runtime import log
from syncd.model import Intent, Record, RecordRef
from syncd.rules.engine import (
    WAKE_STEP,
    Engine,
    Evaluation,
    RuleError,
    RuleMemory,
    memory_from_json,
)
from syncd.store.db import Tx
from syncd.store.records import Upserted
from syncd.store.timers import StoredTimer, TimerSpec, Wanted
from syncd.vendors.registry import KINDS


def changed_at(record: Record) -> datetime | None:
    """When the vendor says the record last changed (None if it does not say)."""
    kind = KINDS.get(record.ref.kind)
    for name in kind.changed_at if kind is not None else ():
        found = as_instant(record.fields.get(name))
        if found is not None:
            return found
    return None


def older(record: Record, stored: Record | None) -> bool:
    """Whether `record` is an older version than the one stored: a poll's page read before a
    webhook's (or a timer's) re-read and committed after it. It must not replace the newer."""
    if stored is None or stored.deleted or record.deleted:
        return False
    new, old = changed_at(record), changed_at(stored)
    return new is not None and old is not None and new < old


@dataclass
class Applied:
    """What applying one record did."""

    planned: list[str] = field(default_factory=list)  # new intent keys
    errors: list[RuleError] = field(default_factory=list)
    holding: list[Intent] = field(default_factory=list)  # planned, to skip as the baseline


def merged(record: Record, stored: Record | None) -> Record:
    """`record` with the stored values of fields its source does not carry.

    Polls leave out what only a single-record read returns (Zendesk's `agent_touched` comes
    from `fetch`); without this, every poll would erase what the last fetch learned."""
    if stored is None or stored.deleted or record.deleted:
        return record
    missing = {k: v for k, v in stored.fields.items() if k not in record.fields}
    if not missing:
        return record
    return Record(record.ref, {**missing, **record.fields}, record.observed_at, record.deleted)


def _rule_ids(engine: Engine, kind: str) -> list[str]:
    return [rule_id for rule_id, rule in engine.rules.items() if rule.kind == kind]


def _memory(tx: Tx, engine: Engine, ref: RecordRef) -> dict[str, dict[str, Any] | None]:
    """The record's stored memory for every rule of its kind (None: initial state)."""
    ids = _rule_ids(engine, ref.kind)
    found = tx.memory.of_record(ids, ref)
    return {rule_id: found.get(rule_id) for rule_id in ids}


@dataclass
class Stored:
    """What the store holds of one record before it is applied."""

    record: Record | None
    memory: dict[str, dict[str, Any] | None]
    timers: list[StoredTimer]


class Known:
    """The stored state of a page's records, read in a few statements instead of several per
    record. Each record's entry is used once: a record met twice in the page is read again the
    second time, after the first has been applied."""

    def __init__(self, tx: Tx, engine: Engine, refs: Sequence[RecordRef]) -> None:
        self._entries: dict[RecordRef, Stored] = {}
        for kind in dict.fromkeys(ref.kind for ref in refs):
            ids = [ref.id for ref in refs if ref.kind == kind]
            rules = _rule_ids(engine, kind)
            stored = tx.records.get_many(kind, ids)
            memory = tx.memory.of_records(rules, kind, ids)
            pending = tx.timers.for_records(kind, ids)
            for i in ids:
                mine = memory.get(i, {})
                self._entries[RecordRef(kind, i)] = Stored(
                    stored.get(i), {r: mine.get(r) for r in rules}, pending.get(i, [])
                )

    def take(self, ref: RecordRef) -> Stored | None:
        return self._entries.pop(ref, None)

    def record(self, ref: RecordRef) -> Record | None:
        """The stored version of a record of the page (deleted ones too), not taking it."""
        found = self._entries.get(ref)
        return found.record if found is not None else None

    def timers(self, ref: RecordRef) -> list[StoredTimer]:
        """The pending timers of a record of the page, not taking it."""
        found = self._entries.get(ref)
        return found.timers if found is not None else []


def _stored(tx: Tx, engine: Engine, ref: RecordRef, known: Known | None) -> Stored:
    found = known.take(ref) if known is not None else None
    if found is not None:
        return found
    return Stored(tx.records.get(ref), _memory(tx, engine, ref), tx.timers.for_record(ref))


def _evaluate(engine: Engine, current: Record, previous: Record | None,
              stored: dict[str, dict[str, Any] | None], now: datetime,
              grace: timedelta) -> Evaluation:
    memory = memory_from_json({k: v for k, v in stored.items() if v is not None})
    return engine.evaluate(current, previous, memory, now, grace=grace)


def due_by_time(tx: Tx, engine: Engine, record: Record, now: datetime, grace: timedelta,
                known: Known | None = None) -> bool:
    """Whether evaluating `record` now would act because time passed (a due timer, a timeline
    step): then it must be re-read from its vendor first, not taken from a (lagging) poll."""
    stored = _stored(tx, engine, record.ref, known)
    if any(t.due_at <= now for t in stored.timers):
        return True
    if not any(r.timeline for r in engine.rules.values() if r.kind == record.ref.kind):
        return False
    result = _evaluate(engine, merged(record, stored.record), stored.record, stored.memory,
                       now, grace)
    return any(intent.step for intent in result.intents)


def apply_record(
    tx: Tx,
    engine: Engine,
    record: Record,
    now: datetime,
    grace: timedelta,
    baseline: bool = False,
    past_due: bool = False,
    known: Known | None = None,
) -> Applied:
    """Store `record` and write what the engine makes of it (see the module docstring); with
    `baseline`, the intents of instant rules are to be skipped (`Applied.holding`, the caller
    skips a page's at once), and with `past_due` too the timeline steps due by now
    (baseline.py). `known`: the page's stored state, read at once."""
    found = _stored(tx, engine, record.ref, known)
    if older(record, found.record):
        return Applied()
    current = merged(record, found.record)
    upserted = tx.records.upsert(current)
    return _apply_upserted(tx, engine, current, upserted, found, now, grace, baseline, past_due)


def apply_page(
    tx: Tx,
    engine: Engine,
    records: Sequence[Record],
    now: datetime,
    grace: timedelta,
    baseline: Collection[str] = (),
    past_due: bool = False,
    known: Known | None = None,
) -> list[Applied]:
    """`apply_record` of each of a polled page's records (each at most once), their
    snapshots and history stored together (`Records.upsert_many`: a few statements for the
    page instead of several per record). `baseline`: the record kinds whose first sync (or
    catch-up) this page is part of."""
    found = [_stored(tx, engine, record.ref, known) for record in records]
    newer = [i for i, record in enumerate(records) if not older(record, found[i].record)]
    current = {i: merged(records[i], found[i].record) for i in newer}
    upserted = dict(zip(newer, tx.records.upsert_many([current[i] for i in newer]), strict=True))
    return [
        _apply_upserted(tx, engine, current[i], upserted[i], found[i], now, grace,
                        record.ref.kind in baseline, past_due)
        if i in current else Applied()
        for i, record in enumerate(records)
    ]


def _apply_upserted(
    tx: Tx,
    engine: Engine,
    record: Record,
    upserted: Upserted,
    found: Stored,
    now: datetime,
    grace: timedelta,
    baseline: bool,
    past_due: bool,
) -> Applied:
    """The rest of `apply_record` once the record (as merged) is stored."""
    stored, pending = found.memory, found.timers
    result = _evaluate(engine, record, upserted.previous, stored, now, grace)
    _settle_due_timers(tx, pending, result, now)
    # An instant rule that failed on this record (a template its data breaks) plans nothing
    # and keeps its memory, so that the quarantine's retry (contain.py) fires it whole, once.
    retried = {e.rule_id for e in result.errors
               if e.rule_id in engine.rules and not engine.rules[e.rule_id].timeline}
    intents = [i for i in result.intents if i.rule_id not in retried]
    applied = Applied(tx.ledger.plan(intents, now), list(result.errors))
    if baseline:
        applied.holding = to_hold(intents, applied.planned, past_due)
    for rule_id, after in _changed_memory(stored, result, retried):
        tx.memory.put(rule_id, record.ref, after, now)
    tx.timers.replace_many(_wanted_timers(record.ref, pending, result), now)
    for error in applied.errors:
        log.warning("rule_error", rule=error.rule_id, record=str(error.record),
                    step=error.step, error=error.message)
    return applied


# An intent another already planned does the work of: its key (`apply_unchanged`), or None.
Covered = Callable[[Intent], str | None]


@dataclass
class Unchanged:
    """What `apply_unchanged` did."""

    planned: list[str] = field(default_factory=list)  # new intent keys
    left: list[RecordRef] = field(default_factory=list)  # not evaluated cleanly: apply_record


def apply_unchanged(tx: Tx, engine: Engine, known: Known, refs: Sequence[RecordRef],
                    now: datetime, grace: timedelta, covered: Covered) -> Unchanged:
    """Evaluate records as stored (only time has passed, nothing was re-read) and write what
    the engine makes of them as `apply_record` would, in a few statements for all of them:
    due timers settled, intents planned, memory and timers replaced. An intent `covered` by
    one already planned is not planned: its timer is fired all the same (the engine's memory
    says so, and a later evaluation does not fire it again), audited with the covering key.
    A record whose evaluation fails is written nothing and `left` to `apply_record`."""
    done = Unchanged()
    fired: dict[str, str] = {}
    cancelled: dict[str, str] = {}
    intents: list[Intent] = []
    memory: list[tuple[str, RecordRef, dict[str, Any]]] = []
    timers: list[Wanted] = []
    for ref in refs:
        found = known.take(ref)
        if found is None or found.record is None:  # never stored: the timers have had their turn
            fired.update((t.key, "") for t in (found.timers if found else []) if t.due_at <= now)
            continue
        try:
            result = _evaluate(engine, found.record, found.record, found.memory, now, grace)
        except Exception as exc:  # this record's alone: apply_record quarantines it
            log.warning("rule_evaluation_failed", record=str(ref), error=repr(exc))
            result = None
        if result is None or result.errors:
            done.left.append(ref)
            continue
        by_step: dict[tuple[str, str], str] = {}
        for intent in result.intents:
            by = covered(intent)
            if by is None:
                intents.append(intent)
            else:
                by_step.setdefault((intent.rule_id, intent.step), by)
        settled, stopped = _due_outcomes(found.timers, result, now, "it was evaluated as stored")
        fired.update((t.key, f"its work is done by intent {by_step[(t.rule_id, t.step)]}"
                      if (t.rule_id, t.step) in by_step else "") for t in settled)
        cancelled.update(stopped)
        memory.extend((rule_id, ref, after)
                      for rule_id, after in _changed_memory(found.memory, result))
        timers.extend(_wanted_timers(ref, found.timers, result))
    tx.timers.fire_many(fired, now)
    tx.timers.cancel_many(cancelled, now)
    done.planned = tx.ledger.plan(intents, now)
    tx.memory.put_many(memory, now)
    tx.timers.replace_many(timers, now)
    return done


def _settle_due_timers(
    tx: Tx, pending: list[StoredTimer], result: Evaluation, now: datetime
) -> None:
    """The record's due timers were waiting for this evaluation: a timer whose step it
    planned has fired; one that planned nothing is cancelled with the reason, so `syncd audit`
    can say why an escalation did not happen (an agent answered: `until` held)."""
    fired, cancelled = _due_outcomes(pending, result, now)
    tx.timers.fire_many({t.key: "" for t in fired}, now)
    tx.timers.cancel_many(cancelled, now)


def _due_outcomes(pending: list[StoredTimer], result: Evaluation, now: datetime,
                  seen: str = "the record was re-read"
                  ) -> tuple[list[StoredTimer], dict[str, str]]:
    """The due timers among `pending` that fired (their step planned), and those cancelled
    (key -> why nothing was planned, `seen` saying when)."""
    steps = {(intent.rule_id, intent.step) for intent in result.intents}
    fired: list[StoredTimer] = []
    cancelled: dict[str, str] = {}
    for timer in pending:
        if timer.due_at > now:
            continue
        if timer.step == WAKE_STEP or (timer.rule_id, timer.step) in steps:
            fired.append(timer)
        else:
            cancelled[timer.key] = _why_nothing(result.memory.get(timer.rule_id), seen)
    return fired, cancelled


def _changed_memory(stored: dict[str, dict[str, Any] | None], result: Evaluation,
                    kept: set[str] | frozenset[str] = frozenset()
                    ) -> list[tuple[str, dict[str, Any]]]:
    """(rule, memory) for each rule whose memory of the record the evaluation changed (the
    rules `kept` keep theirs)."""
    changed = []
    for rule_id, before in stored.items():
        if rule_id in kept:
            continue
        after = result.memory[rule_id].to_json() if rule_id in result.memory else {}
        if after != (before or {}):
            changed.append((rule_id, after))
    return changed


def _why_nothing(memory: RuleMemory | None, seen: str = "the record was re-read") -> str:
    """Why a rule's timer goes without firing, from the rule's memory after the evaluation."""
    if memory is not None and memory.cancelled:
        return f"`until` held when {seen}"
    if memory is None or not memory.in_when:
        return f"`when` no longer held when {seen}"
    return f"not due when {seen}: the anchor moved, or catch_up skipped the step"


def _wanted_timers(ref: RecordRef, pending: list[StoredTimer],
                   result: Evaluation) -> list[Wanted]:
    """Every rule's pending timers for the record (as read before this evaluation settled the
    due ones), to become exactly what the engine wants."""
    wanted: dict[str, dict[str, TimerSpec]] = {}
    for timer in result.timers:  # two wake-ups at one instant share a key: keep one
        wanted.setdefault(timer.rule_id, {})[timer.key] = TimerSpec(
            timer.key, timer.step, timer.due_at
        )
    owners = set(wanted) | {t.rule_id for t in pending}
    return [Wanted(rule_id, ref, tuple(wanted.get(rule_id, {}).values()),
                   _why_nothing(result.memory.get(rule_id), "the record changed"))
            for rule_id in sorted(owners)]
