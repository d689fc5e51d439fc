"""Durable timers: replace with audited cancellation, due, next_due, fired once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from syncd.model import RecordRef
from syncd.store.db import Store, open_store
from syncd.store.timers import TimerSpec, TimerState, Wanted

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TICKET = RecordRef("zendesk.ticket", "7")
LADDER = "no-action-ladder"
STEP1 = TimerSpec("ladder/1h", "step-1", NOW + HOUR)
STEP2 = TimerSpec("ladder/24h", "step-2", NOW + 24 * HOUR)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = open_store(store_url)
    yield store
    store.close()


def _replace(store: Store, *specs: TimerSpec, now: datetime = NOW) -> None:
    with store.transaction() as tx:
        tx.timers.replace(LADDER, TICKET, specs, now)


def _pending(store: Store) -> dict[str, datetime]:
    with store.read() as tx:
        return {timer.key: timer.due_at for timer in tx.timers.for_record(TICKET)}


def _events(store: Store) -> list[tuple[str, str]]:
    with store.read() as tx:
        return [(e.event, e.detail["timer"]) for e in tx.audit.for_record(TICKET)]


def test_replace_schedules_and_is_idempotent(store: Store) -> None:
    _replace(store, STEP1, STEP2)
    _replace(store, STEP2, STEP1)
    assert _pending(store) == {"ladder/1h": NOW + HOUR, "ladder/24h": NOW + 24 * HOUR}
    assert _events(store) == [("timer_scheduled", "ladder/1h"), ("timer_scheduled", "ladder/24h")]


def test_replace_cancels_missing_timers_with_audit(store: Store) -> None:
    """`until` became true: the ladder's remaining steps go, and the audit says so."""
    _replace(store, STEP1, STEP2)
    with store.transaction() as tx:
        tx.timers.replace(LADDER, TICKET, [STEP1], NOW + timedelta(minutes=5), "`until` held")
    assert _pending(store) == {"ladder/1h": NOW + HOUR}
    with store.read() as tx:
        cancelled = tx.audit.for_record(TICKET)[-1]
    assert (cancelled.event, cancelled.rule_id) == ("timer_cancelled", LADDER)
    assert cancelled.detail == {
        "timer": "ladder/24h",
        "step": "step-2",
        "due_at": STEP2.due_at.isoformat(),
        "reason": "`until` held",
    }
    assert cancelled.at == NOW + timedelta(minutes=5)


def test_a_due_timer_is_fired_or_cancelled_once_with_its_reason(store: Store) -> None:
    _replace(store, STEP1, STEP2)
    with store.transaction() as tx:
        assert tx.timers.cancel(STEP1.key, NOW + HOUR, "`when` no longer held")
        assert not tx.timers.cancel(STEP1.key, NOW + HOUR, "again")
        assert not tx.timers.mark_fired(STEP1.key, NOW + HOUR)  # a cancelled timer never fires
        last = tx.audit.for_record(TICKET)[-1]
    assert (last.event, last.detail["reason"]) == ("timer_cancelled", "`when` no longer held")
    assert _pending(store) == {"ladder/24h": NOW + 24 * HOUR}


def test_replace_moves_a_rescheduled_timer_and_rearms_a_cancelled_one(store: Store) -> None:
    _replace(store, STEP1, STEP2)
    _replace(store, STEP1)
    moved = TimerSpec(STEP1.key, STEP1.step, NOW + 2 * HOUR)
    _replace(store, moved, STEP2)
    assert _pending(store) == {"ladder/1h": NOW + 2 * HOUR, "ladder/24h": NOW + 24 * HOUR}
    assert [event for event, _ in _events(store)][-2:] == ["timer_rescheduled", "timer_scheduled"]


def test_replace_is_per_rule_and_record(store: Store) -> None:
    other = RecordRef("zendesk.ticket", "8")
    _replace(store, STEP1)
    with store.transaction() as tx:
        tx.timers.replace("other-rule", TICKET, [TimerSpec("other/1", "step-1", NOW)], NOW)
        tx.timers.replace(LADDER, other, [TimerSpec("ladder-8/1", "step-1", NOW)], NOW)
        tx.timers.replace("other-rule", TICKET, [], NOW)
    assert _pending(store) == {"ladder/1h": NOW + HOUR}


def test_duplicate_keys_in_one_replace_are_a_bug(store: Store) -> None:
    with pytest.raises(ValueError, match="duplicate timer key"), store.transaction() as tx:
        tx.timers.replace(LADDER, TICKET, [STEP1, STEP1], NOW)


def test_due_next_due_and_fired_once(store: Store) -> None:
    with store.read() as tx:
        assert tx.timers.next_due() is None
    _replace(store, STEP2, STEP1)
    with store.transaction() as tx:
        assert tx.timers.next_due() == NOW + HOUR
        assert tx.timers.due(NOW) == []
        due = tx.timers.due(NOW + 30 * HOUR)
        assert [t.key for t in due] == ["ladder/1h", "ladder/24h"]
        assert (due[0].rule_id, due[0].record, due[0].state) == (LADDER, TICKET, TimerState.PENDING)
        assert tx.timers.mark_fired("ladder/1h", NOW + HOUR)
        assert not tx.timers.mark_fired("ladder/1h", NOW + HOUR)
        assert tx.timers.next_due() == NOW + 24 * HOUR
    # Re-planning the same input never re-arms a fired timer.
    _replace(store, STEP1, STEP2, now=NOW + 2 * HOUR)
    assert _pending(store) == {"ladder/24h": NOW + 24 * HOUR}
    assert ("timer_fired", "ladder/1h") in _events(store)


def test_a_removed_rule_cancels_its_pending_timers(store: Store) -> None:
    _replace(store, STEP1, STEP2)
    with store.transaction() as tx:
        tx.timers.mark_fired(STEP1.key, NOW + HOUR)
        assert tx.timers.cancel_rule(LADDER, NOW + 2 * HOUR) == 1
        assert tx.timers.cancel_rule(LADDER, NOW + 2 * HOUR) == 0
    assert _pending(store) == {}
    assert _events(store)[-1] == ("timer_cancelled", "ladder/24h")
    with store.read() as tx:
        reason = tx.audit.for_record(TICKET)[-1].detail["reason"]
    assert reason == "the rule was removed by a reload"


def test_many_owners_replaced_and_fired_at_once_as_one_by_one(store: Store) -> None:
    """A queue's repeats settle and re-arm thousands of (rule, record) owners together: the
    same timers and audit rows as one owner at a time, the occurrence fired with its reason."""
    tickets = [RecordRef("zendesk.ticket", str(n)) for n in range(1, 1202)]
    first = {t: TimerSpec(f"q/{t.id}/0", "serve", NOW) for t in tickets}
    nxt = {t: TimerSpec(f"q/{t.id}/1", "serve", NOW + HOUR) for t in tickets}
    with store.transaction() as tx:
        tx.timers.replace_many([Wanted("queue", t, (first[t],)) for t in tickets], NOW)
    with store.transaction() as tx:
        fired = tx.timers.fire_many({first[t].key: f"served by {t.id}" for t in tickets}, NOW)
        assert fired == len(tickets)
        assert tx.timers.fire_many({first[tickets[0]].key: ""}, NOW) == 0  # fired once
        tx.timers.replace_many([Wanted("queue", t, (first[t], nxt[t])) for t in tickets], NOW)
    with store.read() as tx:
        pending = tx.timers.for_records("zendesk.ticket", [t.id for t in tickets])
        events = tx.audit.for_record(tickets[-1])
    assert {i: [p.key for p in found] for i, found in pending.items()} == {
        t.id: [nxt[t].key] for t in tickets}
    assert [(e.event, e.detail["timer"], e.detail.get("reason")) for e in events] == [
        ("timer_scheduled", "q/1201/0", None),
        ("timer_fired", "q/1201/0", "served by 1201"),
        ("timer_scheduled", "q/1201/1", None),
    ]
