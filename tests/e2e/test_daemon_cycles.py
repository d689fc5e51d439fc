"""`syncd run --once` against the sandbox: what people see, exactly once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_world import ANN, BOB, NOW, STAFF, TRIAGE, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.daemon.cycle import run_cycle
from syncd.daemon.preview import preview
from syncd.daemon.runtime import build_connectors, open_runtime
from syncd.model import Operation, Outcome, RecordRef
from syncd.sandbox.server import SandboxServer

MINUTE = timedelta(minutes=1)


@pytest.fixture
def world(sandbox: SandboxServer, tmp_path: Path, store_url: str) -> World:
    """These cycles run on each engine the store supports."""
    return World(sandbox, tmp_path, store_url=None if store_url.startswith("sqlite") else store_url)


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


def test_each_ticket_costs_one_audits_read_per_due_step_and_none_for_its_triage(
    world: World,
) -> None:
    # Reading back syncd's own writes (the tag before the assign, the assignment before the
    # mail) needs the tickets' fields; their audits only tell what agents did, which syncd's
    # writes never change. They are read once per ticket when a ladder step falls due.
    world.sandbox.control("POST", "/_sandbox/seed", seed(3, NOW - 30 * MINUTE))

    def audits_read_by(cycle: Any) -> list[str]:
        before = len(world.sandbox.control("GET", "/_sandbox/requests")["requests"])
        report = cycle()
        assert report.ok, report.failures
        log = world.sandbox.control("GET", "/_sandbox/requests")["requests"][before:]
        return sorted(r["path"] for r in log if r["path"].endswith("/audits.json"))

    assert audits_read_by(world.cycle) == []  # three triaged: tag, assign, mail each
    assert len(world.subjects()) == 3
    world.advance(31 * MINUTE)  # the 1h step of every ticket is due
    assert audits_read_by(world.cycle) == [f"/api/v2/tickets/{n}/audits.json" for n in (1, 2, 3)]
    assert [s for s in world.subjects() if s.startswith("1h")] == [
        f"1h without action: #{n}" for n in (1, 2, 3)]


def test_ladder_escalates_on_time_and_stops_once_an_agent_answered(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(3, NOW - 30 * MINUTE))
    assert world.cycle().ok
    world.advance(20 * MINUTE)
    world.reply(2, ANN, "We are on it")  # before ticket 2's first step: the ladder stops
    world.advance(11 * MINUTE)  # NOW+31m: the 1h step of every ticket is due
    assert world.cycle().ok
    assert [s for s in world.subjects() if s.startswith("1h")] == [
        "1h without action: #1", "1h without action: #3"]
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
    world.faults({"vendor": "zendesk", "method": "PUT", "path": r"^/api/v2/tickets/1\.json$",
                  "kind": "apply_then_status", "status": 500, "times": 10})
    first = world.cycle()
    assert not first.ok
    tag_writes = [w for w in world.writes() if w["path"] == "/api/v2/tickets/1.json"]
    assert tag_writes and all(w["status"] == 500 for w in tag_writes)
    world.sandbox.control("DELETE", "/_sandbox/faults")
    world.advance(10 * MINUTE)  # past the retry back-off
    assert world.cycle().ok
    assert [w for w in world.writes() if w["path"] == "/api/v2/tickets/1.json"] == tag_writes
    assert "syncd-triaged" in world.ticket(1)["tags"]
    assert world.ticket(1)["assignee_id"] == ANN  # the assignment, sent with the tag
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
    ))
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
        report = run_cycle(rt)
    finally:
        rt.close()
    assert report.drained.skipped == 6
    assert world.writes() == [] and world.mail() == []
    with world.store().read() as tx:
        entry = tx.ledger.list()[0]
        assert [a.event for a in tx.audit.for_intent(entry.intent.key)] == ["planned", "skipped"]


BROKEN = (
    TRIAGE
    + """
  - id: to-nobody
    on: zendesk.ticket
    when: {status: new}
    do: [{notify: {to: [group:Nobody], subject: Hello, body: Hi}}]
  - id: to-a-leaver
    on: zendesk.ticket
    when: {status: new}
    do: [{assign: {user: gone@example.com}}]
"""
)


def test_a_bad_intent_fails_alone_with_its_reason(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = World(sandbox, tmp_path, BROKEN)  # triage only: the CLI runs on the real clock
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - 5 * MINUTE))
    switch = world.settings.syncd.kill_switch_file
    switch.parent.mkdir(parents=True, exist_ok=True)
    switch.touch()
    world.cycle()  # plans everything, executes nothing
    world.http.delete(f"{world.api}/tickets/2.json", timeout=30).raise_for_status()
    switch.unlink()
    world.advance(2 * MINUTE)  # the export shows the deletion a minute later
    result = CliRunner().invoke(app, ["run", "--once", "--config", str(world.config)],
                                env=world.env)
    assert result.exit_code == 1, result.output
    with world.store().read() as tx:
        dead: dict[tuple[str, str], str | None] = {}
        for e in tx.ledger.list(state="dead"):  # a do: list's first failure, not what followed
            dead.setdefault((e.intent.rule_id, e.intent.record.id), e.last_error)
        done = {(e.intent.rule_id, e.intent.action) for e in tx.ledger.list(state="done")}
    assert dead[("to-nobody", "1")] == "no group named 'Nobody'"
    assert dead[("to-a-leaver", "1")] == "no zendesk user 'gone@example.com'"
    assert dead[("triage", "2")] == "zendesk.ticket:2 is deleted"
    assert done == {("triage", "tag"), ("triage", "assign"), ("triage", "notify")}
    assert world.subjects() == ["New ticket #1"]


def test_max_actions_per_hour_is_a_limit_that_holds_the_excess_for_a_person(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, """
        rules:
          - id: careful
            on: zendesk.ticket
            max_actions_per_hour: 2
            when: {status: new}
            do: [{tag: [seen]}]
    """)
    sandbox.control("POST", "/_sandbox/seed", seed(4, NOW - 5 * MINUTE))
    first = world.cycle()
    assert (first.drained.done, first.drained.limited) == (2, 2)
    world.advance(61 * MINUTE)
    assert world.cycle().drained.done == 0  # held, not deferred: a person decides
    assert ["seen" in world.ticket(n)["tags"] for n in range(1, 5)] == [True, True, False, False]
    with world.store().read() as tx:
        assert {e.last_error for e in tx.ledger.list(state="held")} == {
            "held: rule careful: 2 any per hour"}


def test_plan_lists_what_is_due_without_touching_the_store_or_vendors(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - 30 * MINUTE))
    found = preview(world.settings, world.clock, NOW + 2 * timedelta(hours=1))
    listed = [(i["rule"], i["record"], i["action"], i["due_at"])
              for i in found.to_json()["intents"]]
    h1 = (NOW + 30 * MINUTE).isoformat()
    assert sorted(listed) == sorted(
        [("triage", f"zendesk.ticket:{n}", a, NOW.isoformat())
         for n in (1, 2) for a in ("tag", "assign", "notify")]
        + [("ladder", f"zendesk.ticket:{n}", "notify", h1) for n in (1, 2)]
    )
    assert found.to_json()["intents"][0]["reason"]
    cli = CliRunner().invoke(app, ["plan", "--config", str(world.config), "--json"],
                             env=world.env)
    assert cli.exit_code == 0, cli.output
    shown = json.loads(cli.stdout)["intents"]  # on the real clock: the whole ladder is late
    assert {(i["rule"], i["action"]) for i in shown} >= {("triage", "tag"), ("ladder", "comment")}
    assert not world.settings.syncd.state_dir.exists()
    assert world.writes() == [] and world.mail() == []


def test_plan_reads_a_due_ticket_again_and_leaves_out_the_step_an_agent_stopped(
    world: World,
) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - 30 * MINUTE))
    assert world.cycle().ok  # triaged; each ladder waits for its 1 h step
    world.advance(5 * MINUTE)
    world.reply(1, ANN, "On it.")  # the poll shows ticket 1 changed, not who changed it
    world.advance(2 * MINUTE)
    found = preview(world.settings, world.clock, NOW + 2 * timedelta(hours=1))
    assert [(i["rule"], i["record"]) for i in found.to_json()["intents"]] == [
        ("ladder", "zendesk.ticket:2")]
    assert world.mail_per_key() and all(n == 1 for n in world.mail_per_key().values())
    world.advance(timedelta(hours=1))
    assert world.cycle().ok  # and the daemon agrees with the plan
    assert [s for s in world.subjects() if s.startswith("1h without action")] == [
        "1h without action: #2"]


class Conflicted:
    """The Zendesk connector, answering the first write that holds an update with Zendesk's
    409 `conflict` (triage's tag and assignment go as one update)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.system, self.fetched = inner, inner.system, 0
        self.conflicts = 1

    def execute(self, op: Operation) -> Outcome:
        return self.execute_many([op])[0]

    def execute_many(self, ops: Sequence[Operation]) -> list[Outcome]:
        if any(op.verb == "update" for op in ops) and self.conflicts:
            self.conflicts -= 1
            return [Outcome(ok=False, retryable=False, error="conflict")] * len(ops)
        return list(self.inner.execute_many(ops))

    def fetch(self, ref: RecordRef) -> Any:
        self.fetched += 1
        return self.inner.fetch(ref)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_conflict_rereads_the_record_and_tries_again(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - 5 * MINUTE))
    connectors = build_connectors(world.settings, world.clock)
    zendesk = connectors["zendesk"] = Conflicted(connectors["zendesk"])
    rt = open_runtime(world.settings, world.clock, connectors=connectors)
    try:
        first = run_cycle(rt)
        assert first.drained.failed == 2 and zendesk.fetched == 1  # the record read once
        second = run_cycle(rt)
    finally:
        rt.close()
    assert second.drained.done == 2  # tag and assignment, retried at once: not dead-lettered
    assert world.ticket(1)["assignee_id"] == ANN


def test_shadow_rules_plan_and_audit_but_never_act(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = World(sandbox, tmp_path, TRIAGE.replace("on: zendesk.ticket", "on: zendesk.ticket\n"
                                                    "    mode: shadow"))
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - 5 * MINUTE))
    assert world.cycle().drained.skipped == 6
    assert world.writes() == [] and world.mail() == []
    with world.store().read() as tx:
        reasons = {e.detail.get("reason") for e in tx.audit.for_record(RecordRef(
            "zendesk.ticket", "1")) if e.event == "skipped"}
    assert reasons == {"shadow mode"}
