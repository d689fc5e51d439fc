"""The intents ledger: unique keys, guarded transitions, retries, dead letter, audit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from syncd.model import Intent, RecordRef, intent_key
from syncd.store.db import Store, open_store
from syncd.store.ledger import IntentState

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TICKET = RecordRef("zendesk.ticket", "7")


def _intent(
    n: int = 0, *, due: datetime = NOW, rule: str = "triage", shadow: bool = False
) -> Intent:
    return Intent(
        key=intent_key(rule, TICKET, "", NOW, action_index=n),
        rule_id=rule,
        record=TICKET,
        action="tag",
        params={"tags": [f"t{n}"]},
        due_at=due,
        shadow=shadow,
        reason={"status": "new"},
    )


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = open_store(store_url, max_attempts=3)
    yield store
    store.close()


def _planned(store: Store, *intents: Intent) -> list[str]:
    with store.transaction() as tx:
        return tx.ledger.plan(intents, NOW)


def _state(store: Store, key: str) -> IntentState:
    with store.read() as tx:
        entry = tx.ledger.get(key)
    assert entry is not None
    return entry.state


def _events(store: Store, key: str) -> list[str]:
    with store.read() as tx:
        return [entry.event for entry in tx.audit.for_intent(key)]


def test_plan_returns_only_new_keys_and_the_unique_key_absorbs_repeats(store: Store) -> None:
    a, b = _intent(0), _intent(1)
    assert _planned(store, a, b, a) == [a.key, b.key]
    assert _planned(store, b, a) == []  # a replayed page
    assert _planned(store, _intent(2), a) == [_intent(2).key]
    with store.read() as tx:
        assert len(tx.ledger.list()) == 3
        planned = tx.audit.for_intent(a.key)
    assert [e.event for e in planned] == ["planned"]
    assert planned[0].detail["reason"] == {"status": "new"}
    assert planned[0].record == TICKET and planned[0].rule_id == "triage"


def test_planned_intent_round_trips(store: Store) -> None:
    intent = _intent(0)
    _planned(store, intent)
    with store.read() as tx:
        entry = tx.ledger.get(intent.key)
    assert entry is not None
    assert entry.intent == intent
    assert (entry.state, entry.attempts, entry.next_attempt_at) == (IntentState.PLANNED, 0, NOW)


def test_claim_due_returns_only_what_is_due(store: Store) -> None:
    now_, later = _intent(0), _intent(1, due=NOW + MINUTE)
    _planned(store, later, now_)
    with store.read() as tx:
        assert [e.intent.key for e in tx.ledger.claim_due(NOW)] == [now_.key]
        assert [e.intent.key for e in tx.ledger.claim_due(NOW + MINUTE)] == [now_.key, later.key]
        assert len(tx.ledger.claim_due(NOW + MINUTE, limit=1)) == 1
        assert tx.ledger.next_attempt_at() == NOW


def test_happy_path_and_the_guard_against_a_second_send(store: Store) -> None:
    key = _intent().key
    _planned(store, _intent())
    with store.transaction() as tx:
        assert tx.ledger.mark_sent(key, NOW)
    with store.transaction() as tx:
        assert not tx.ledger.mark_sent(key, NOW)  # someone already sent it
        assert tx.ledger.claim_due(NOW) == []
    with store.transaction() as tx:
        assert tx.ledger.mark_done(key, {"ticket": {"tags": ["t0"]}}, NOW + MINUTE)
        assert not tx.ledger.mark_done(key, {}, NOW + MINUTE)
    with store.read() as tx:
        entry = tx.ledger.get(key)
    assert entry is not None and entry.state == IntentState.DONE
    assert entry.vendor_answer == {"ticket": {"tags": ["t0"]}} and entry.sent_at == NOW
    assert _events(store, key) == ["planned", "sent", "done"]


def test_an_intent_is_not_sent_before_it_is_due(store: Store) -> None:
    intent = _intent(due=NOW + MINUTE)
    _planned(store, intent)
    with store.transaction() as tx:
        assert not tx.ledger.mark_sent(intent.key, NOW)
        assert tx.ledger.mark_sent(intent.key, NOW + MINUTE)


def test_racing_executors_send_exactly_once(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(4)]
    with stores[0].transaction() as tx:
        tx.ledger.plan([_intent()], NOW)
    wins: list[bool] = []
    start = threading.Barrier(len(stores))

    def executor(store: Store) -> None:
        with store.read() as tx:
            claimed = [entry.intent.key for entry in tx.ledger.claim_due(NOW)]
        start.wait()
        for key in claimed:
            with store.transaction() as tx:
                wins.append(tx.ledger.mark_sent(key, NOW))

    threads = [threading.Thread(target=executor, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(wins) == [False, False, False, True]
    assert _events(stores[0], _intent().key) == ["planned", "sent"]
    for store in stores:
        store.close()


def test_failures_wait_for_their_retry_and_dead_letter_after_max_attempts(store: Store) -> None:
    key = _intent().key
    _planned(store, _intent())
    at = NOW
    for attempt in (1, 2):
        with store.transaction() as tx:
            assert tx.ledger.mark_sent(key, at)
            assert tx.ledger.mark_failed(key, f"503 #{attempt}", at, retry_at=at + MINUTE)
            assert tx.ledger.claim_due(at) == []  # backing off
            assert not tx.ledger.mark_sent(key, at)
        at += MINUTE
        with store.read() as tx:
            entry = tx.ledger.get(key)
            assert entry is not None
            assert (entry.state, entry.attempts) == (IntentState.FAILED, attempt)
            assert [e.intent.key for e in tx.ledger.claim_due(at)] == [key]
    with store.transaction() as tx:
        assert tx.ledger.mark_sent(key, at)
        assert tx.ledger.mark_failed(key, "503 #3", at, retry_at=at + MINUTE)
    with store.read() as tx:
        entry = tx.ledger.get(key)
        assert entry is not None and entry.state == IntentState.DEAD
        assert (entry.attempts, entry.last_error) == (3, "503 #3")
        assert [e.intent.key for e in tx.ledger.list(state="dead")] == [key]
        assert tx.ledger.claim_due(at + timedelta(days=1)) == []
    with store.transaction() as tx:
        assert tx.ledger.retry(key, at + timedelta(hours=1))
        assert not tx.ledger.retry(key, at + timedelta(hours=1))
    with store.read() as tx:
        entry = tx.ledger.get(key)
        assert entry is not None and (entry.state, entry.attempts) == (IntentState.PLANNED, 0)
        assert [e.intent.key for e in tx.ledger.claim_due(at + timedelta(hours=1))] == [key]
    assert _events(store, key) == [
        "planned",
        *["sent", "failed"] * 2,
        "sent",
        "dead",
        "retried",
    ]


def test_an_error_that_will_not_change_goes_straight_to_dead_letter(store: Store) -> None:
    key = _intent().key
    _planned(store, _intent())
    with store.transaction() as tx:
        # e.g. a field a template reads is missing: fails before any vendor call
        assert tx.ledger.mark_failed(key, "record has no field requester_email", NOW, None)
    with store.read() as tx:
        entry = tx.ledger.get(key)
        detail = tx.audit.for_intent(key)[-1].detail
    assert entry is not None and (entry.state, entry.attempts) == (IntentState.DEAD, 1)
    assert detail["error"] == "record has no field requester_email"


def test_sent_intents_are_listed_for_verification_after_a_restart(store: Store) -> None:
    a, b = _intent(0), _intent(1)
    _planned(store, a, b)
    with store.transaction() as tx:
        tx.ledger.mark_sent(a.key, NOW)
    store.close()
    store = open_store(str(store.engine.url), max_attempts=3)
    with store.transaction() as tx:
        unverified = tx.ledger.sent_unverified()
        assert [entry.intent.key for entry in unverified] == [a.key]
        # verify found the effect absent: count the attempt and send again
        assert tx.ledger.mark_failed(a.key, "outcome unknown; effect absent", NOW, NOW)
        assert tx.ledger.mark_sent(a.key, NOW)
        assert tx.ledger.mark_done(a.key, {"verified": False}, NOW)
        assert tx.ledger.sent_unverified() == []


def test_skip_and_shadow(store: Store) -> None:
    live, shadow = _intent(0), _intent(1, rule="canary", shadow=True)
    _planned(store, live, shadow)
    with store.transaction() as tx:
        assert not tx.ledger.mark_sent(shadow.key, NOW)  # never executed, whatever the caller
        assert [e.intent.key for e in tx.ledger.claim_due(NOW)] == [live.key, shadow.key]
        assert tx.ledger.skip(shadow.key, "shadow mode", NOW)
        assert tx.ledger.skip(live.key, "catch_up: skip", NOW)
        assert not tx.ledger.skip(live.key, "again", NOW)
        assert tx.ledger.claim_due(NOW) == []
    assert _state(store, shadow.key) == IntentState.SKIPPED
    with store.read() as tx:
        assert tx.audit.for_intent(shadow.key)[-1].detail["reason"] == "shadow mode"


def test_defer_holds_an_intent_without_counting_an_attempt(store: Store) -> None:
    key = _intent().key
    _planned(store, _intent())
    later = NOW + timedelta(minutes=20)
    with store.transaction() as tx:
        assert tx.ledger.defer(key, later, "max_actions_per_hour", NOW)
        assert tx.ledger.claim_due(NOW + MINUTE) == []
        assert not tx.ledger.mark_sent(key, NOW + MINUTE)
        assert tx.ledger.next_attempt_at() == later
        assert tx.ledger.mark_sent(key, later)
        entry = tx.ledger.get(key)
    assert entry is not None and entry.attempts == 0
    assert _events(store, key) == ["planned", "deferred", "sent"]


def test_sent_since_lists_the_intents_sent_in_the_window(store: Store) -> None:
    intents = [_intent(n) for n in range(3)] + [_intent(9, rule="other")]
    _planned(store, *intents)
    with store.transaction() as tx:
        tx.ledger.mark_sent(intents[0].key, NOW)
        tx.ledger.mark_sent(intents[1].key, NOW + timedelta(minutes=30))
        tx.ledger.mark_sent(intents[3].key, NOW + timedelta(minutes=30))
    with store.read() as tx:
        def sent(minutes: int) -> list[str]:
            since = NOW + timedelta(minutes=minutes) - timedelta(hours=1)
            return sorted(i.key for i in tx.ledger.sent_since(since, ["triage", "other"]))
        assert sent(30) == sorted([intents[0].key, intents[1].key, intents[3].key])
        assert sent(60) == sorted([intents[1].key, intents[3].key])
        assert sent(91) == []
        assert [i.key for i in tx.ledger.sent_since(NOW, ["other"])] == [intents[3].key]


def test_held_intents_wait_for_a_person_to_release_or_drop_them(store: Store) -> None:
    first, second, sent = _intent(0), _intent(1), _intent(2)
    _planned(store, first, second, sent)
    with store.transaction() as tx:
        assert tx.ledger.mark_sent(sent.key, NOW)
        assert not tx.ledger.hold(sent.key, "rule triage: 1 any per hour", NOW)  # sent: too late
        assert tx.ledger.hold(first.key, "rule triage: 1 any per hour", NOW)
        assert tx.ledger.hold(second.key, "rule triage: 1 any per hour", NOW)
        assert tx.ledger.claim_due(NOW + timedelta(days=1)) == []
        assert tx.ledger.next_attempt_at() is None  # nothing wakes the daemon for them
        assert tx.ledger.held_by_rule() == {"triage": 2}
        assert tx.ledger.release(first.key, "ann", NOW)
        assert not tx.ledger.release(first.key, "ann", NOW)
        assert tx.ledger.drop(second.key, "bob", NOW)
        assert [e.intent.key for e in tx.ledger.claim_due(NOW)] == [first.key]
    assert _events(store, first.key) == ["planned", "held", "released"]
    assert _state(store, second.key) == IntentState.SKIPPED
    with store.read() as tx:
        assert tx.audit.for_intent(first.key)[1].detail["limit"] == "rule triage: 1 any per hour"
        assert tx.audit.for_intent(first.key)[2].detail["by"] == "ann"
        assert tx.audit.for_intent(second.key)[-1].detail["reason"] == "dropped by bob"


def test_count_by_state_and_list_filters(store: Store) -> None:
    other = RecordRef("zendesk.ticket", "8")
    elsewhere = Intent("triage/x", "triage", other, "tag", {}, NOW)
    _planned(store, _intent(0), _intent(1), elsewhere)
    with store.transaction() as tx:
        tx.ledger.mark_sent(_intent(0).key, NOW)
        counts = tx.ledger.count_by_state()
        assert counts[IntentState.PLANNED] == 2 and counts[IntentState.SENT] == 1
        assert counts[IntentState.DEAD] == 0 and set(counts) == set(IntentState)
        assert [e.intent.key for e in tx.ledger.list(record=other)] == ["triage/x"]
        assert len(tx.ledger.list(state=IntentState.PLANNED, record=TICKET)) == 1
        assert len(tx.ledger.list(rule_id="triage", limit=2)) == 2
