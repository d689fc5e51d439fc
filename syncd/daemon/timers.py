"""Fire due timers: re-read each record from its vendor first (a ticket answered a minute ago
must not escalate), then re-evaluate it in one transaction per record, which plans what is due
and settles its due timers (fired, or cancelled with the reason they planned nothing). The
records due together are re-read together, per vendor (`fetch_many`: Zendesk's
`tickets/show_many` reads 100 tickets in one call)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from syncd.connectors.http import VendorError
from syncd.daemon.contain import apply_contained
from syncd.daemon.runtime import Runtime, log
from syncd.model import Record, RecordRef
from syncd.rules.engine import Engine
from syncd.store.timers import StoredTimer

Freshen = Callable[[Runtime, Sequence[RecordRef]], Mapping[RecordRef, Record | None]]
BATCH = 100


def fetch(rt: Runtime, refs: Sequence[RecordRef]) -> Mapping[RecordRef, Record | None]:
    """The records (of one system) as the vendor has them now (None: gone); the stored ones if
    it is not configured."""
    connector = rt.connector_for(refs[0].kind)
    if connector is None:
        with rt.store.read() as tx:
            return {ref: tx.records.get(ref) for ref in refs}
    return connector.fetch_many(refs)


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
    fired = 0
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
                fresh = freshen(rt, refs)
            except VendorError as exc:
                log.warning("timer_refetch_failed", records=[str(r) for r in refs],
                            error=str(exc))  # fmt: skip
                rt.fail(f"{refs[0].family}: re-read before firing: {exc}")
                failed.update(refs)
                continue
            for ref in refs:
                if stopping():
                    break
                fired += sum(t.record == ref for t in due)
                _fire(rt, engine, [t for t in due if t.record == ref], fresh.get(ref), at)
    if fired:
        log.info("timers_fired", count=fired)
    return fired


def _fire(rt: Runtime, engine: Engine, timers: Sequence[StoredTimer], fresh: Record | None,
          at: datetime) -> None:  # fmt: skip
    """Re-evaluate the timers' record as re-read (`fresh`; None: gone), which settles them."""
    ref = timers[0].record
    with rt.store.transaction() as tx:
        stored = tx.records.get(ref)
        if stored is None:  # nothing to evaluate: the timers have had their turn
            for timer in timers:
                tx.timers.mark_fired(timer.key, at)
            return
        record = fresh or Record(ref, stored.fields, at, deleted=True)
        apply_contained(rt, tx, engine, record, at, rt.grace)  # settles them
