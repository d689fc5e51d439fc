"""The `dispatch` action against the sandbox: who is in the queue, and a dispatch with nothing
to hand out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from e2e_world import ANN, BOB, NOW, STAFF, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.daemon.runtime import open_runtime
from syncd.daemon.timers import fire_due
from syncd.sandbox.server import SandboxServer
from syncd.store.ledger import IntentState

RULES = """
rules:
  - id: serve-queue
    on: zendesk.ticket
    when: {subject: {matches: "^Serve"}}
    do: [{dispatch: {queue: Queue, to: Support, capacity: 3}}]
"""


def queue(*tickets: dict[str, Any]) -> dict[str, Any]:
    """The seed's people, a `Queue` group, and `tickets` (each waiting in Queue unless said)."""
    base = seed(0, NOW)
    created = (NOW - timedelta(minutes=5)).isoformat()
    base["zendesk"]["groups"].append({"name": "Queue", "members": [STAFF[ANN]]})
    base["zendesk"]["tickets"] = [
        {"group": "Queue", "requester": "carl@customer.example", "created_at": created,
         "updated_at": created, **ticket}
        for ticket in tickets
    ]
    return base


def dispatch_outcome(world: World) -> tuple[str, Any]:
    """The dispatch intent's state and the detail of its last audited transition."""
    with world.store().read() as tx:
        (entry,) = tx.ledger.list(rule_id="serve-queue")
        last = tx.audit.for_intent(entry.intent.key)[-1]
    return str(entry.state), last.detail.get("reason") or last.detail.get("error")


def test_a_request_waiting_for_the_customer_is_not_handed_out(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # seed 004 process 20: sent back to the dispatcher, Pending until the customer answers
    world = World(sandbox, tmp_path, RULES)
    sandbox.control("POST", "/_sandbox/seed", queue(
        {"id": 1, "subject": "Serve the queue", "group": "Support", "assignee": STAFF[BOB]},
        {"id": 2, "subject": "Waiting for the customer", "status": "pending", "priority": "urgent"},
        {"id": 3, "subject": "On hold", "status": "hold", "priority": "urgent"},
        {"id": 4, "subject": "Solved", "status": "solved", "priority": "urgent"},
        {"id": 5, "subject": "Printer", "status": "open", "priority": "low"},
    ))
    report = world.cycle()
    assert report.ok, report.failures
    assert [world.ticket(n)["assignee_id"] for n in (2, 3, 4)] == [None, None, None]
    assert world.ticket(5)["assignee_id"] in (ANN, BOB)


def test_a_dispatch_with_nothing_to_hand_out_is_a_quiet_no_op(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, RULES)
    sandbox.control("POST", "/_sandbox/seed", queue(
        {"id": 1, "subject": "Serve the queue", "group": "Support", "assignee": STAFF[BOB]},
        {"id": 2, "subject": "Waiting for the customer", "status": "pending"},
    ))
    report = world.cycle()
    assert report.ok, report.failures
    assert dispatch_outcome(world) == (IntentState.SKIPPED, "nothing to dispatch: no queued ticket")
    assert world.writes() == []


def test_a_dispatch_with_no_free_agent_is_a_quiet_no_op(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, RULES)
    busy = [{"id": n, "subject": f"Busy {n}", "group": "Support", "assignee": STAFF[who]}
            for n, who in ((2, ANN), (3, ANN), (4, ANN), (5, BOB), (6, BOB))]
    sandbox.control("POST", "/_sandbox/seed", queue(
        {"id": 1, "subject": "Serve the queue", "group": "Support", "assignee": STAFF[BOB]},
        *busy,
        {"id": 7, "subject": "Printer", "status": "new"},
    ))
    report = world.cycle()
    assert report.ok, report.failures
    assert dispatch_outcome(world) == (
        IntentState.SKIPPED,
        "nothing to dispatch: 1 queued ticket(s), no agent of Support free",
    )
    assert world.ticket(7)["assignee_id"] is None


def test_two_dispatches_in_one_pass_hand_a_ticket_out_once(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(
        sandbox,
        tmp_path,
        RULES.replace("capacity: 3}", 'capacity: 3, notify_requester: "An agent has your ticket"}'),
    )
    sandbox.control("POST", "/_sandbox/seed", queue(
        {"id": 1, "subject": "Serve the queue", "group": "Support", "assignee": STAFF[BOB]},
        {"id": 2, "subject": "Serve it again", "group": "Support", "assignee": STAFF[BOB]},
        {"id": 3, "subject": "Printer", "status": "new"},
    ))
    report = world.cycle()
    assert report.ok, report.failures
    assert world.ticket(3)["assignee_id"] in (ANN, BOB)
    assert world.comments(3).count("An agent has your ticket") == 1


def test_a_dispatch_hands_its_tickets_out_in_one_update_many_job_each_once(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, RULES.replace("capacity: 3", "capacity: 5"))
    sandbox.control("POST", "/_sandbox/seed", queue(
        {"id": 1, "subject": "Serve the queue", "group": "Support", "assignee": STAFF[BOB]},
        *({"id": n, "subject": f"Printer {n}", "status": "open"} for n in (2, 3, 4, 5)),
    ))
    assert world.cycle().ok
    assert [w["path"] for w in world.writes()] == ["/api/v2/tickets/update_many.json"]
    assert {world.ticket(n)["assignee_id"] for n in (2, 3, 4, 5)} <= {ANN, BOB}
    assert all(world.ticket(n)["group_id"] == world.ticket(1)["group_id"] for n in (2, 3, 4, 5))
    assert dispatch_outcome(world)[0] == IntentState.DONE
    assert world.cycle().ok  # nothing left to do: nothing sent again
    assert len(world.writes()) == 1


REPEATING = """
rules:
  - id: serve-queue
    on: zendesk.ticket
    when: {group_name: Queue, status: [new, open], assignee_id: {exists: false}}
    since: {became: {assignee_id: {exists: false}}}
    steps:
      - id: serve
        after: 0m
        repeat: every 15m
        do: [{dispatch: {queue: Queue, to: Queue, capacity: 1}}]
"""


def test_a_queue_served_again_every_15_minutes_reads_none_of_its_tickets_again(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The dispatch reads its queue from the store, which every poll refreshes: the queued
    # tickets' repeats fire without a re-read of each (tickets/show_many), nor its audits.
    world = World(sandbox, tmp_path, REPEATING)
    sandbox.control("POST", "/_sandbox/seed", queue(
        {"id": 1, "subject": "Ann's own", "status": "open", "assignee": STAFF[ANN]},
        *({"id": n, "subject": f"Waiting {n}", "status": "open"} for n in range(2, 7)),
    ))
    assert world.cycle().ok
    before = len(sandbox.control("GET", "/_sandbox/requests")["requests"])
    world.advance(timedelta(minutes=15))
    report = world.cycle()
    assert report.ok, report.failures
    assert report.fired == 5
    log = sandbox.control("GET", "/_sandbox/requests")["requests"][before:]
    paths = [r["path"] for r in log]
    assert [p for p in paths if "audits" in p or "show_many" in p] == []
    assert world.writes() == []  # Ann is at capacity: nobody is handed out


def test_a_queue_served_once_in_a_pass_holds_none_of_its_other_intents_for_a_person(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Every waiting ticket asks for its queue to be served; one dispatch serves it. The others
    # have nothing to do: skipped, not counted against the rule's limit and held for a person.
    world = World(sandbox, tmp_path, REPEATING.replace(
        "    on: zendesk.ticket\n", "    on: zendesk.ticket\n    max_actions_per_hour: 2\n"))
    sandbox.control("POST", "/_sandbox/seed", queue(
        *({"id": n, "subject": f"Waiting {n}", "status": "open"} for n in range(1, 7)),
    ))
    report = world.cycle()
    assert report.ok, report.failures
    assert (report.drained.done, report.drained.limited) == (1, 0)
    assert [world.ticket(n)["assignee_id"] for n in range(1, 7)].count(ANN) == 1
    with world.store().read() as tx:
        assert tx.ledger.list(state="held") == []
        assert len(tx.ledger.list(state="skipped")) == 5


def test_a_queue_of_200_waiting_tickets_is_served_by_one_dispatch_per_repeat(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Each waiting ticket holds its own 15-minute repeat; when they fall due together the
    # queue is served once: no re-read of each ticket, and no intent per ticket that a
    # "queue served" skip would only write off (the ledger and `syncd audit` would grow by
    # 200 rows every 15 minutes). What people see stays the same: a ticket a person took
    # meanwhile is left alone, the queue is served again 15 minutes later while one waits.
    world = World(sandbox, tmp_path, REPEATING)
    sandbox.control("POST", "/_sandbox/seed", queue(
        {"id": 1, "subject": "Ann's own", "status": "open", "assignee": STAFF[ANN]},
        *({"id": n, "subject": f"Waiting {n}", "status": "open"} for n in range(2, 202)),
    ))
    assert world.cycle().ok  # Ann holds her one ticket: nobody is handed out
    assert world.writes() == []

    def intents() -> int:
        with world.store().read() as tx:
            return len(tx.ledger.list())

    def person(ticket: int, **fields: Any) -> None:
        world.http.put(f"{world.api}/tickets/{ticket}.json", json={"ticket": fields},
                       timeout=30).raise_for_status()

    person(1, status="solved")  # Ann is free again
    support = next(g["id"] for g in world._get("/groups.json")["groups"] if g["name"] == "Support")
    person(2, assignee_id=BOB, group_id=support)  # a person takes #2 out of the queue
    world.advance(timedelta(minutes=5))
    assert world.cycle().ok  # polled: nothing is due
    world.advance(timedelta(minutes=10))
    planned = intents()
    before = len(sandbox.control("GET", "/_sandbox/requests")["requests"])
    report = world.cycle()
    assert report.ok, report.failures
    assert report.fired == 199
    paths = [r["path"] for r in sandbox.control("GET", "/_sandbox/requests")["requests"][before:]]
    assert "/api/v2/tickets/show_many.json" not in paths  # no re-read of each waiting ticket
    assert intents() == planned + 1
    assert (report.drained.done, report.drained.skipped) == (1, 0)
    assert world.ticket(2)["assignee_id"] == BOB
    assert world.ticket(3)["assignee_id"] == ANN  # the next in line
    assert [world.ticket(n)["assignee_id"] for n in range(4, 202)] == [None] * 198
    with world.store().read() as tx:
        (served,) = tx.ledger.list(rule_id="serve-queue", state="done")
    shown = CliRunner().invoke(app, ["audit", "zendesk:150", "--config", str(world.config)],
                               env={**world.env, "COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    assert f"its work is done by intent {served.intent.key}" in shown.output

    person(150, comment={"body": "Any news?", "public": True})  # polled: no dispatch again
    world.advance(timedelta(minutes=2))
    assert world.cycle().ok
    assert intents() == planned + 1

    person(3, status="solved")  # Ann is free again: the queue's next repeat serves it
    world.advance(timedelta(minutes=13))
    report = world.cycle()
    assert report.ok, report.failures
    assert intents() == planned + 2
    assert world.ticket(4)["assignee_id"] == ANN
    assert [world.ticket(n)["assignee_id"] for n in range(5, 202)] == [None] * 197


NUDGE = """
  - id: nudge
    on: zendesk.ticket
    when: {group_name: Queue, status: [new, open]}
    since: created_at
    until: {status: pending}
    steps:
      - id: still-waiting
        after: 20m
        do: [{comment: {body: "Still in the queue", public: false}}]
"""


def test_a_waiting_ticket_with_another_step_due_is_re_read_before_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Its queue's repeat alone would not re-read it; the other step due with it must see
    # what a person did a moment ago, which the export does not show yet.
    world = World(sandbox, tmp_path, REPEATING + NUDGE)
    sandbox.control("POST", "/_sandbox/seed", queue(
        {"id": 1, "subject": "Ann's own", "status": "open", "assignee": STAFF[ANN]},
        *({"id": n, "subject": f"Waiting {n}", "status": "open"} for n in (2, 3, 4)),
    ))
    assert world.cycle().ok  # created 5 minutes ago: the nudges fall due in 15 minutes
    world.advance(timedelta(minutes=15))
    world.http.put(f"{world.api}/tickets/3.json", json={"ticket": {"status": "pending"}},
                   timeout=30).raise_for_status()
    report = world.cycle()
    assert report.ok, report.failures
    assert [("Still in the queue" in world.comments(n)) for n in (2, 3, 4)] == [
        True, False, True]


def test_a_queue_repeat_planned_before_a_crash_is_served_once_after_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The repeats are settled and the queue's one dispatch planned in one transaction: a
    # daemon killed before carrying it out leaves it in the ledger, and the next run serves
    # the queue once, planning nothing again.
    world = World(sandbox, tmp_path, REPEATING)
    sandbox.control("POST", "/_sandbox/seed", queue(
        {"id": 1, "subject": "Ann's own", "status": "open", "assignee": STAFF[ANN]},
        *({"id": n, "subject": f"Waiting {n}", "status": "open"} for n in range(2, 7)),
    ))
    assert world.cycle().ok
    world.http.put(f"{world.api}/tickets/1.json", json={"ticket": {"status": "solved"}},
                   timeout=30).raise_for_status()
    world.advance(timedelta(minutes=5))
    assert world.cycle().ok  # polled: Ann is free, nothing is due
    world.advance(timedelta(minutes=10))
    before = len(world.writes())  # the person's
    rt = open_runtime(world.settings, world.clock)
    try:  # the run that is killed: its repeats fired, its dispatch not carried out
        assert fire_due(rt) == 5
    finally:
        rt.close()
    report = world.cycle()
    assert report.ok, report.failures
    assert (report.fired, report.drained.done) == (0, 1)
    assert [world.ticket(n)["assignee_id"] for n in range(2, 7)] == [ANN, None, None, None, None]
    assert len(world.writes()) == before + 1
