"""One bad record never stops the rest. Every record the daemon evaluates goes through
`apply_contained`: inside a savepoint of the page's transaction, so a record whose storing or
evaluation raises is rolled back alone and quarantined (store/quarantine.py) while the page's
other records and its cursor are committed. A polled page goes through `apply_page_contained`:
its records applied together in one savepoint (their writes batched), and only if that raises
one by one as above. A record some rule could not evaluate (a template
that fails on its data) is stored with what the other rules planned, and quarantined too, so
the failing rule is tried again after a backoff. `retry_quarantined` re-reads the due ones from
their vendor and evaluates them again; a clean evaluation releases them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from syncd.connectors.base import Connector
from syncd.connectors.http import VendorError
from syncd.daemon.planner import Applied, Known, apply_page, apply_record
from syncd.daemon.runtime import Runtime, log
from syncd.model import Record, RecordRef
from syncd.redact import redact
from syncd.rules.engine import Engine
from syncd.store.db import Tx

REASON_MAX = 500


def apply_contained(
    rt: Runtime,
    tx: Tx,
    engine: Engine,
    record: Record,
    now: datetime,
    grace: timedelta,
    baseline: bool = False,
    past_due: bool = False,
    known: Known | None = None,
) -> Applied | None:
    """`apply_record` for one record of a batch; None when it raised (then it is quarantined)."""
    try:
        with tx.savepoint():
            applied = apply_record(tx, engine, record, now, grace, baseline=baseline,
                                   past_due=past_due, known=known)
    except Exception as exc:  # any failure of this record is this record's alone
        log.exception("record_quarantined", record=str(record.ref), error=type(exc).__name__)
        _hold(rt, tx, record, f"{type(exc).__name__}: {exc}", now)
        return None
    return _settled(rt, tx, record, applied, now)


def apply_page_contained(
    rt: Runtime,
    tx: Tx,
    engine: Engine,
    records: Sequence[Record],
    now: datetime,
    grace: timedelta,
    baseline: Collection[str] = (),
    past_due: bool = False,
) -> list[Applied | None]:
    """`apply_contained` of a polled page's records, in order. Applied together first
    (`apply_page`: one savepoint, the records' writes batched); if that raises, it is rolled
    back and every record applied in a savepoint of its own, so that the one that raised is
    quarantined alone. A record met again later in the page is applied after the rest."""
    if not records:
        return []
    first: dict[RecordRef, int] = {}  # each record's first place in the page
    for i, record in enumerate(records):
        first.setdefault(record.ref, i)
    firsts = list(first.values())
    batch = [records[i] for i in firsts]
    found: list[Applied | None] = [None] * len(records)
    try:
        with tx.savepoint():
            together = apply_page(tx, engine, batch, now, grace, baseline, past_due,
                                  Known(tx, engine, [r.ref for r in batch]))
    except Exception as exc:  # one record's: found by applying them one by one
        log.warning("page_applied_one_by_one", records=len(records), error=type(exc).__name__)
        known = Known(tx, engine, [r.ref for r in records])
        return [apply_contained(rt, tx, engine, record, now, grace,
                                record.ref.kind in baseline, past_due, known)
                for record in records]
    held = tx.quarantine.count() > 0  # none held (the rule): no release to try
    for i, applied in zip(firsts, together, strict=True):
        found[i] = _settled(rt, tx, records[i], applied, now, release=held)
    for i in sorted(set(range(len(records))) - set(firsts)):
        found[i] = apply_contained(rt, tx, engine, records[i], now, grace,
                                   records[i].ref.kind in baseline, past_due)
    return found


def _settled(rt: Runtime, tx: Tx, record: Record, applied: Applied, now: datetime,
             release: bool = True) -> Applied:
    """A record some rule failed on is held (again); one evaluated cleanly is released."""
    if applied.errors:
        reason = "; ".join(f"rule {e.rule_id}: {e.message}" for e in applied.errors)
        _hold(rt, tx, record, reason, now)
    elif release:
        tx.quarantine.release(record.ref, now)
    return applied


def _hold(rt: Runtime, tx: Tx, record: Record, reason: str, now: datetime) -> None:
    reason = redact(reason)[:REASON_MAX]
    try:
        with tx.savepoint():
            held = tx.quarantine.hold(record.ref, reason, now)
    except Exception:  # not even its name can be stored: say so, and go on
        log.exception("record_unstorable", record=repr(record.ref.id), reason=reason)
        rt.fail(f"{record.ref.kind}:{record.ref.id!r}: skipped, cannot be stored: {reason}")
        return
    log.warning("record_held", record=str(record.ref), reason=reason, attempts=held.attempts,
                retry_at=held.next_attempt_at.isoformat())
    rt.fail(f"{record.ref}: quarantined: {reason}")


def retry_quarantined(rt: Runtime, connector: Connector, kinds: frozenset[str]) -> int:
    """Evaluate again the quarantined records of `kinds` whose backoff has passed, as their
    vendor has them now; returns how many were released."""
    now = rt.clock.now()
    with rt.store.read() as tx:
        due = tx.quarantine.due(sorted(kinds), now)
    if not due:
        return 0
    try:
        fresh = connector.fetch_many(due)
    except VendorError as exc:
        log.warning("quarantine_refetch_failed", records=len(due), error=str(exc))
        return 0
    released = 0
    with rt.store.transaction() as tx:
        for ref in due:
            record = fresh.get(ref)
            if record is None:  # gone at the vendor: nothing left to evaluate
                stored = tx.records.get(ref)
                record = Record(ref, stored.fields if stored else {}, now, deleted=True)
            applied = apply_contained(rt, tx, rt.engine, record, now, rt.grace)
            if applied is not None and not applied.errors:
                released += 1
    if released:
        log.info("quarantine_released", count=released)
    return released
