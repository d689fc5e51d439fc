"""One record version in, everything the engine decides about it written, in the caller's
transaction: snapshot + history, intents, timers (the due ones fired, or cancelled with the
reason they planned nothing), rule memory.

Poller and timers both come through here, so a replayed page or a re-fired timer re-derives the
same keys and the ledger's unique key absorbs the repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from syncd.daemon.baseline import hold_back
from syncd.daemon.runtime import log
from syncd.model import Record, RecordRef
from syncd.rules.conditions import as_instant
from syncd.rules.engine import (
    WAKE_STEP,
    Engine,
    Evaluation,
    RuleError,
    RuleMemory,
    memory_from_json,
)
from syncd.store.db import Tx
from syncd.store.timers import Timer, TimerSpec

# the vendor's last-change instant of a record, by source: Zendesk, SharePoint, Salesforce
CHANGED_AT = ("updated_at", "modified_at", "SystemModstamp", "LastModifiedDate")


def changed_at(record: Record) -> datetime | None:
    """When the vendor says the record last changed (None if it does not say)."""
    for name in CHANGED_AT:
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
    held: int = 0  # planned ones skipped as the source's baseline


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


def _memory(tx: Tx, engine: Engine, ref: RecordRef) -> dict[str, dict[str, Any] | None]:
    """The record's stored memory for every rule of its kind (None: initial state)."""
    ids = [rule_id for rule_id, rule in engine.rules.items() if rule.kind == ref.kind]
    found = tx.memory.of_record(ids, ref)
    return {rule_id: found.get(rule_id) for rule_id in ids}


def _evaluate(engine: Engine, current: Record, previous: Record | None,
              stored: dict[str, dict[str, Any] | None], now: datetime,
              grace: timedelta) -> Evaluation:  # fmt: skip
    memory = memory_from_json({k: v for k, v in stored.items() if v is not None})
    return engine.evaluate(current, previous, memory, now, grace=grace)


def due_by_time(tx: Tx, engine: Engine, record: Record, now: datetime, grace: timedelta) -> bool:
    """Whether evaluating `record` now would act because time passed (a due timer, a timeline
    step): then it must be re-read from its vendor first, not taken from a (lagging) poll."""
    if any(t.due_at <= now for t in tx.timers.for_record(record.ref)):
        return True
    if not any(r.timeline for r in engine.rules.values() if r.kind == record.ref.kind):
        return False
    stored = tx.records.get(record.ref)
    result = _evaluate(engine, merged(record, stored), stored, _memory(tx, engine, record.ref),
                       now, grace)  # fmt: skip
    return any(intent.step for intent in result.intents)


def apply_record(
    tx: Tx,
    engine: Engine,
    record: Record,
    now: datetime,
    grace: timedelta,
    baseline: bool = False,
    past_due: bool = False,
) -> Applied:
    """Store `record` and write what the engine makes of it (see the module docstring); with
    `baseline`, the intents of instant rules are planned skipped, and with `past_due` too the
    timeline steps due by now (baseline.py)."""
    stored_version = tx.records.get(record.ref)
    if older(record, stored_version):
        return Applied()
    current = merged(record, stored_version)
    upserted = tx.records.upsert(current)
    stored = _memory(tx, engine, record.ref)
    result = _evaluate(engine, current, upserted.previous, stored, now, grace)
    pending = tx.timers.for_record(record.ref)
    _settle_due_timers(tx, pending, result, now)
    # An instant rule that failed on this record (a template its data breaks) plans nothing
    # and keeps its memory, so that the quarantine's retry (contain.py) fires it whole, once.
    retried = {e.rule_id for e in result.errors
               if e.rule_id in engine.rules and not engine.rules[e.rule_id].timeline}  # fmt: skip
    intents = [i for i in result.intents if i.rule_id not in retried]
    applied = Applied(tx.ledger.plan(intents, now), list(result.errors))
    if baseline:
        applied.held = hold_back(tx, intents, applied.planned, now, past_due)
    for rule_id, before in stored.items():
        if rule_id in retried:
            continue
        after = result.memory[rule_id].to_json() if rule_id in result.memory else {}
        if after != (before or {}):
            tx.memory.put(rule_id, record.ref, after, now)
    _replace_timers(tx, record.ref, pending, result, now)
    for error in applied.errors:
        log.warning("rule_error", rule=error.rule_id, record=str(error.record),
                    step=error.step, error=error.message)  # fmt: skip
    return applied


def _settle_due_timers(tx: Tx, pending: list[Timer], result: Evaluation, now: datetime) -> None:
    """The record's due timers were waiting for this evaluation: a timer whose step it
    planned has fired; one that planned nothing is cancelled with the reason, so `syncd audit`
    can say why an escalation did not happen (an agent answered: `until` held)."""
    steps = {(intent.rule_id, intent.step) for intent in result.intents}
    for timer in pending:
        if timer.due_at > now:
            continue
        if timer.step == WAKE_STEP or (timer.rule_id, timer.step) in steps:
            tx.timers.mark_fired(timer.key, now)
        else:
            tx.timers.cancel(timer.key, now, _why_nothing(result.memory.get(timer.rule_id)))


def _why_nothing(memory: RuleMemory | None, seen: str = "the record was re-read") -> str:
    """Why a rule's timer goes without firing, from the rule's memory after the evaluation."""
    if memory is not None and memory.cancelled:
        return f"`until` held when {seen}"
    if memory is None or not memory.in_when:
        return f"`when` no longer held when {seen}"
    return f"not due when {seen}: the anchor moved, or catch_up skipped the step"


def _replace_timers(tx: Tx, ref: RecordRef, pending: list[Timer], result: Evaluation,
                    now: datetime) -> None:  # fmt: skip
    """Every rule's pending timers for the record (as read before this evaluation settled the
    due ones) become exactly what the engine wants."""
    wanted: dict[str, dict[str, TimerSpec]] = {}
    for timer in result.timers:  # two wake-ups at one instant share a key: keep one
        wanted.setdefault(timer.rule_id, {})[timer.key] = TimerSpec(
            timer.key, timer.step, timer.due_at
        )
    owners = set(wanted) | {t.rule_id for t in pending}
    for rule_id in sorted(owners):
        why = _why_nothing(result.memory.get(rule_id), "the record changed")
        tx.timers.replace(rule_id, ref, wanted.get(rule_id, {}).values(), now, why)
