"""`syncd run --once` against the sandbox: what people see, exactly once."""

from __future__ import annotations

from datetime import timedelta

from e2e_world import ANN, BOB, NOW, STAFF, World, seed

from syncd.daemon.runtime import open_runtime
from syncd.daemon.service import run_once

MINUTE = timedelta(minutes=1)


def test_triage_tags_assigns_in_turn_and_mails_the_group_once(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(3, NOW - 30 * MINUTE))
    report = world.cycle()
    assert report.ok, report.failures
    for n, agent in ((1, ANN), (2, BOB), (3, ANN)):  # round robin, Cara is away
        ticket = world.ticket(n)
        assert "syncd-triaged" in ticket["tags"]
        assert ticket["assignee_id"] == agent
    assert world.subjects() == ["New ticket #1", "New ticket #2", "New ticket #3"]
    assert set(world.mail_per_key().values()) == {1}
    assert set(world.mail()[0]["to"]) == {STAFF[ANN], STAFF[BOB], "cara@example.com"}

    writes = len(world.writes())
    again = world.cycle()
    assert again.ok, again.failures
    assert len(world.writes()) == writes  # nothing done twice
    assert len(world.mail()) == 3


def test_ladder_escalates_on_time_and_stops_once_an_agent_answered(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(3, NOW - 30 * MINUTE))
    assert world.cycle().ok
    world.advance(20 * MINUTE)
    world.reply(2, ANN, "We are on it")  # before ticket 2's first step: the ladder stops
    world.advance(11 * MINUTE)  # NOW+31m: the 1h step of every ticket is due
    assert world.cycle().ok
    assert [s for s in world.subjects() if s.startswith("1h")] == [
        "1h without action: #1", "1h without action: #3"]  # fmt: skip
    world.advance(timedelta(hours=23, minutes=30))  # NOW+24h01m
    assert world.cycle().ok
    for n in (1, 3):
        assert world.comments(n).count("Nobody has answered for 24 hours.") == 1
    assert "Nobody has answered for 24 hours." not in world.comments(2)
    world.advance(2 * timedelta(hours=1))
    assert world.cycle().ok
    assert world.cycle().ok  # and once more: nothing new
    assert [s for s in world.subjects() if s.startswith("Stuck")] == ["Stuck: #1", "Stuck: #3"]
    assert set(world.mail_per_key().values()) == {1}
    assert len(world.mail()) == 3 + 2 + 2


def test_a_tag_write_applied_then_failed_is_verified_not_repeated(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - 5 * MINUTE))
    # every attempt the connector makes is applied and answered 500: the executor sees a failure
    world.faults({"vendor": "zendesk", "method": "PUT", "path": r"/tags",
                  "kind": "apply_then_status", "status": 500, "times": 10})  # fmt: skip
    first = world.cycle()
    assert not first.ok
    tag_writes = [w for w in world.writes() if w["path"].endswith("/tags.json")]
    assert tag_writes and all(w["status"] == 500 for w in tag_writes)
    world.sandbox.control("DELETE", "/_sandbox/faults")
    world.advance(10 * MINUTE)  # past the retry back-off
    assert world.cycle().ok
    assert [w for w in world.writes() if w["path"].endswith("/tags.json")] == tag_writes
    assert "syncd-triaged" in world.ticket(1)["tags"]
    with world.store().read() as tx:
        assert {str(s): n for s, n in tx.ledger.count_by_state().items() if n} == {"done": 3}


def test_with_one_write_in_five_failing_every_effect_happens_exactly_once(world: World) -> None:
    tickets = 6
    world.sandbox.control("POST", "/_sandbox/seed", seed(tickets, NOW - 5 * MINUTE))
    kinds = [
        {"kind": "apply_then_status", "status": 500},
        {"kind": "status", "status": 503},
        {"kind": "status", "status": 429, "retry_after": 1},
        {"kind": "apply_then_drop"},
        {"kind": "delay", "delay_s": 0.2},
    ]
    world.faults(*(
        {"vendor": vendor, "method": method, "path": path, "probability": 0.05, "seed": n,
         **kind}
        for n, kind in enumerate(kinds)
        for vendor, method, path in (("zendesk", "PUT", r"/tickets/"),
                                     ("graph", "POST", r"/sendMail"))
    ))  # fmt: skip
    for _ in range(8):  # 80 minutes: triage, then the ladder's first step
        world.cycle()
        world.advance(10 * MINUTE)
    world.sandbox.control("DELETE", "/_sandbox/faults")
    assert world.cycle().ok
    with world.store().read() as tx:
        states = {str(s): n for s, n in tx.ledger.count_by_state().items() if n}
    assert states == {"done": tickets * 4}  # tag, assign, notify, 1h notify
    assert set(world.mail_per_key().values()) == {1}
    assert len(world.mail()) == tickets * 2
    assignees = [world.ticket(n)["assignee_id"] for n in range(1, tickets + 1)]
    assert assignees == [ANN, BOB] * (tickets // 2)
    assert all("syncd-triaged" in world.ticket(n)["tags"] for n in range(1, tickets + 1))


def test_kill_switch_holds_everything_until_removed(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - 5 * MINUTE))
    switch = world.settings.syncd.kill_switch_file
    switch.parent.mkdir(parents=True, exist_ok=True)
    switch.touch()
    report = world.cycle()
    assert report.ok and report.drained.held == 6
    assert world.writes() == [] and world.mail() == []
    switch.unlink()
    assert world.cycle().drained.done == 6
    assert len(world.mail()) == 2


def test_dry_run_plans_and_audits_but_writes_nothing(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - 5 * MINUTE))
    rt = open_runtime(world.settings, world.clock, dry_run=True)
    try:
        report = run_once(rt)
    finally:
        rt.close()
    assert report.drained.skipped == 6
    assert world.writes() == [] and world.mail() == []
    with world.store().read() as tx:
        entry = tx.ledger.list()[0]
        assert [a.event for a in tx.audit.for_intent(entry.intent.key)] == ["planned", "skipped"]
