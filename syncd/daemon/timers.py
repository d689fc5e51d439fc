"""Fire due timers: re-read each record from its vendor first (a ticket answered a minute ago
must not escalate), then re-evaluate it in one transaction per record, which plans what is due
and marks its due timers fired."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from syncd.connectors.http import VendorError
from syncd.daemon.planner import apply_record
from syncd.daemon.runtime import Runtime, log
from syncd.model import Record, RecordRef

Freshen = Callable[[Runtime, RecordRef], Record | None]
BATCH = 100


def fetch(rt: Runtime, ref: RecordRef) -> Record | None:
    """The record as the vendor has it now (None: gone); the stored one if no connector."""
    connector = rt.connector_for(ref.kind)
    if connector is None:
        with rt.store.read() as tx:
            return tx.records.get(ref)
    return connector.fetch(ref)


def fire_due(
    rt: Runtime,
    now: datetime | None = None,
    freshen: Freshen = fetch,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Fire every timer due at `now` (default: the clock's now); returns how many fired.

    A record that cannot be re-read keeps its timers pending (retried on the next run)."""
    engine = rt.engine
    fired = 0
    failed: set[RecordRef] = set()
    while not stopping():
        at = now or rt.clock.now()
        with rt.store.read() as tx:
            due = [t for t in tx.timers.due(at, BATCH + len(failed)) if t.record not in failed]
        if not due:
            break
        ref = due[0].record
        try:
            fresh = freshen(rt, ref)
        except VendorError as exc:
            log.warning("timer_refetch_failed", record=str(ref), error=str(exc))
            rt.fail(f"{ref}: re-read before firing: {exc}")
            failed.add(ref)
            continue
        fired += sum(t.record == ref for t in due)
        with rt.store.transaction() as tx:
            stored = tx.records.get(ref)
            if stored is None:  # nothing to evaluate: the timers have had their turn
                for timer in (t for t in due if t.record == ref):
                    tx.timers.mark_fired(timer.key, at)
                continue
            record = fresh or Record(ref, stored.fields, at, deleted=True)
            applied = apply_record(tx, engine, record, at, rt.grace)  # marks them fired
            if applied.errors:
                rt.fail(f"{ref}: {len(applied.errors)} rule error(s)")
    if fired:
        log.info("timers_fired", count=fired)
    return fired
