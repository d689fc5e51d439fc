"""Retention: what is older than keep_days goes, in batches; what a pending timer, an open
intent or the executor still needs stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from syncd.model import Intent, Record, RecordRef, intent_key
from syncd.store.db import Store, open_store
from syncd.store.retention import prune
from syncd.store.tables import audit, field_history, intents, timers
from syncd.store.timers import TimerSpec

OLD = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
NEW = OLD + timedelta(days=500)
CUTOFF = NEW - timedelta(days=400)


def ticket(n: int) -> RecordRef:
    return RecordRef("zendesk.ticket", str(n))


def intent(rule: str, ref: RecordRef, at: datetime) -> Intent:
    return Intent(key=intent_key(rule, ref, "", at), rule_id=rule, record=ref, action="tag",
                  params={"tags": ["x"]}, due_at=at, reason={})


def count(store: Store, table: Any, *where: Any) -> int:
    with store.read() as tx:
        return int(tx.conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def setup(tmp_path: Path) -> tuple[Store, dict[str, Intent]]:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}", max_attempts=1)
    made = {
        "old_done": intent("tag-it", ticket(1), OLD),
        "old_dead": intent("mail-it", ticket(1), OLD),
        "old_sent": intent("file-it", ticket(2), OLD),
        "old_plan_done": intent("plan", ticket(3), OLD),  # its plan still has a pending step
        "new_done": intent("tag-it", ticket(4), NEW),
    }
    for n in (1, 2, 3, 4):
        at = NEW if n == 4 else OLD
        with store.transaction() as tx:
            tx.records.upsert(Record(ticket(n), {"status": "new"}, at))
        with store.transaction() as tx:
            tx.records.upsert(Record(ticket(n), {"status": "open"}, at))
    for name, i in made.items():
        at = i.due_at
        with store.transaction() as tx:
            tx.ledger.plan([i], at)
        with store.transaction() as tx:
            if name == "old_sent":
                assert tx.ledger.mark_sent(i.key, at)
                tx.audit.append("prepared", at, record=i.record, intent_key=i.key,
                                detail={"ops": []})
            elif name == "old_dead":
                assert tx.ledger.mark_sent(i.key, at)
                assert tx.ledger.mark_failed(i.key, "550", at, None)
            else:
                assert tx.ledger.mark_sent(i.key, at)
                assert tx.ledger.mark_done(i.key, {}, at)
    with store.transaction() as tx:
        tx.timers.replace("plan", ticket(3), [TimerSpec("plan/100d", "day-100",
                                                        NEW + timedelta(days=1))], OLD)
        tx.timers.replace("old-plan", ticket(1), [TimerSpec("old/1", "s1", OLD)], OLD)
    with store.transaction() as tx:
        assert tx.timers.mark_fired("old/1", OLD)
    return store, made


def test_old_rows_go_and_what_is_still_needed_stays(tmp_path: Path) -> None:
    store, made = setup(tmp_path)
    pruned = prune(store, CUTOFF, batch=2)  # small batches: the loop goes on until done
    assert pruned.rows["field_history"] == 6 and pruned.rows["timers"] == 1  # 2 per ticket
    assert count(store, field_history) == 2  # ticket 4, 500 days later
    with store.read() as tx:
        left = {e.intent.key: e.state.value for e in tx.ledger.list()}
        assert tx.timers.for_record(ticket(3))  # the pending step
        prepared = [r for r in tx.audit.for_intent(made["old_sent"].key) if r.event == "prepared"]
    assert set(left) == {made[k].key for k in ("old_dead", "old_sent", "old_plan_done",
                                              "new_done")}
    assert left[made["old_dead"].key] == "dead" and left[made["old_sent"].key] == "sent"
    assert prepared  # the executor settles a sent intent from these
    assert count(store, audit, audit.c.intent_key == made["old_done"].key) == 0
    assert count(store, intents) == 4 and count(store, timers) == 1
    with store.read() as tx:
        assert tx.records.get(ticket(1)) is not None  # records and memory are never pruned
    assert prune(store, CUTOFF).total == 0  # nothing left to do
    store.close()
