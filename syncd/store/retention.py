"""Retention: the state database does not grow forever. Rows older than `[store] keep_days`
go, in small batches (each its own short transaction, so the daemon's writes are never held
up for long), from a job of their own, off the poll and work jobs:

- field history (what `syncd audit` shows as a record's changes);
- settled intents (done, skipped) last changed before the cutoff, unless their record still
  has a pending timer of the same rule (a plan still running keeps its history);
- audit rows, except those of intents still open (planned, sent, failed, dead: the executor
  reads a sent intent's prepared operations from them);
- fired and cancelled timers.

Never pruned: records and their rule memory (what the engine needs to stay exactly-once: a
rule remembers that it fired for an entry, so a pruned intent is never planned again), open
intents, pending timers, cursors, the last accepted rule set, silences. After the cutoff
`syncd audit` shows a record's snapshot, its rule states and pending timers, and only the
history, intents and audit rows younger than `keep_days`.

Rows are appended in time order, so each batch walks the oldest ids first and stops early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table, and_, delete, exists, not_, select
from sqlalchemy.sql.elements import ColumnElement

from syncd.store.db import Store
from syncd.store.ledger import IntentState
from syncd.store.tables import audit, field_history, intents, timers
from syncd.store.timers import TimerState

BATCH = 500
SETTLED = (IntentState.DONE.value, IntentState.SKIPPED.value)
OPEN = (IntentState.PLANNED.value, IntentState.SENT.value, IntentState.FAILED.value,
        IntentState.DEAD.value)
ENDED_TIMERS = (TimerState.FIRED.value, TimerState.CANCELLED.value)


@dataclass
class Pruned:
    """Rows deleted, by table."""

    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def prune(store: Store, cutoff: datetime, batch: int = BATCH,
          stopping: Callable[[], bool] = lambda: False) -> Pruned:
    """Delete what is older than `cutoff` and no longer needed, `batch` rows a transaction."""
    pending_timer = exists().where(
        timers.c.state == TimerState.PENDING.value,
        timers.c.rule_id == intents.c.rule_id,
        timers.c.record_kind == intents.c.record_kind,
        timers.c.record_id == intents.c.record_id,
    )
    open_intent = exists().where(intents.c.key == audit.c.intent_key,
                                 intents.c.state.in_(OPEN))
    plans: list[tuple[Table, ColumnElement[bool]]] = [
        (field_history, field_history.c.at < cutoff),
        (intents, and_(intents.c.state.in_(SETTLED), intents.c.updated_at < cutoff,
                       not_(pending_timer))),
        (audit, and_(audit.c.at < cutoff, not_(open_intent))),
        (timers, and_(timers.c.state.in_(ENDED_TIMERS), timers.c.updated_at < cutoff)),
    ]
    pruned = Pruned()
    for table, old in plans:
        count = 0
        while True:
            with store.transaction() as tx:
                ids = select(table.c.id).where(old).order_by(table.c.id).limit(batch)
                deleted = tx.conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount
            count += deleted
            if deleted < batch or stopping():
                break
        pruned.rows[table.name] = count
    return pruned
