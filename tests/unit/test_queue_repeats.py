"""Which of the dispatch intents a queue's repeats ask for are planned (daemon/timers.py):
one per queue served, live and shadow apart, and never one that a silence will skip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.daemon.timers import one_per_queue
from syncd.model import Intent, RecordRef
from syncd.store.silences import Silence

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
QUEUE = {"queue": "Dispatch", "to": "IT Pros", "capacity": 3}


def ask(ticket: int, action: str = "dispatch", shadow: bool = False,
        queue: str = "Dispatch") -> Intent:
    return Intent(f"k{ticket}", "serve", RecordRef("zendesk.ticket", str(ticket)), action,
                  {**QUEUE, "queue": queue}, NOW, "dispatch", 1, shadow)


def silence(record: str | None) -> Silence:
    return Silence("s1", "serve", record, NOW - timedelta(hours=1), NOW + timedelta(hours=1),
                   "checking the printer queue", "ops")


def test_the_first_intent_serves_its_queue_for_the_others() -> None:
    covered = one_per_queue([], NOW)
    assert [covered(ask(n)) for n in (1, 2, 3)] == [None, "k1", "k1"]
    assert covered(ask(4, queue="Development")) is None  # another queue: its own dispatch
    assert covered(ask(5, shadow=True)) is None  # a shadow intent serves nothing live
    assert covered(ask(6, shadow=True)) == "k5"
    assert covered(ask(7, action="notify")) is None  # not a queue reader


def test_an_intent_silenced_on_its_ticket_does_not_stand_for_the_others() -> None:
    covered = one_per_queue([silence("zendesk.ticket:1")], NOW)
    assert [covered(ask(n)) for n in (1, 2, 3)] == [None, None, "k2"]
    everywhere = one_per_queue([silence(None)], NOW)  # every intent of the rule is skipped
    assert [everywhere(ask(n)) for n in (1, 2)] == [None, "k1"]
