"""A rule on a development task writing to the customer ticket it names (`record:`), with the
shipped rules themselves, against the sandbox: the write lands once on the other ticket, and a
link to a ticket that does not exist ends in the dead letter with Zendesk's 404."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from e2e_world import BOB, NOW, STAFF, World, seed
from ruamel.yaml import YAML
from typer.testing import CliRunner

from syncd.cli import app
from syncd.resources import RULES, shipped
from syncd.sandbox.server import SandboxServer

SHIPPED = {  # rule id -> its file: the rules under test are the shipped ones, as written
    "dev-task-closed-closes-customer-ticket": "development-queue.yaml",
    "category-task-closed-close-ticket": "ticket-categories-sla.yaml",
}
CUSTOMER, TASK, ORPHAN, MISSING = 1, 2, 3, 999
MINUTES = timedelta(minutes=2)  # past the export's one-minute lag


def shipped_rules() -> str:
    """The shipped rules of SHIPPED as a rules file (JSON is YAML), each with the vars it
    inherits from its own file (its own entries winning, as the loader merges them)."""
    rules = []
    for rule_id, name in SHIPPED.items():
        document = YAML(typ="safe").load((Path(str(shipped(RULES))) / name).read_text())
        shared = document.get("vars") or {}
        rules += [
            {**rule, "vars": {**shared, **rule.get("vars", {})}}
            for rule in document["rules"]
            if rule["id"] == rule_id
        ]
    assert len(rules) == len(SHIPPED)
    return json.dumps({"rules": rules})


def fixture() -> dict[str, Any]:
    base = seed(0, NOW)
    created = (NOW - timedelta(hours=1)).isoformat()
    zendesk = base["zendesk"]
    zendesk["groups"].append({"name": "Development", "members": [STAFF[BOB]]})
    zendesk["ticket_fields"] = [
        {"title": "Category", "type": "tagger", "key": "category",
         "options": [{"name": "Urgent Issue", "value": "urgent_issue"}]},
        {"title": "Dev stage", "type": "tagger", "key": "dev_stage",
         "options": ["MTP", "Task closed"]},
        {"title": "Customer ticket", "type": "integer", "key": "customer_ticket"},
    ]
    task = {"type": "task", "group": "Development", "assignee": STAFF[BOB], "status": "open",
            "requester": STAFF[BOB]}
    zendesk["tickets"] = [
        {"id": CUSTOMER, "subject": "Checkout page broken", "status": "open",
         "requester": "carl@customer.example", "custom_fields": {"Category": "urgent_issue"}},
        {"id": TASK, "subject": "Task: fix the checkout page", **task,
         "custom_fields": {"Customer ticket": CUSTOMER}},
        {"id": ORPHAN, "subject": "Task: a typo in the link", **task,
         "custom_fields": {"Customer ticket": MISSING}},
    ]
    for ticket in zendesk["tickets"]:
        ticket.update(created_at=created, updated_at=created)
    return base


def custom(world: World, ticket_id: int) -> dict[str, Any]:
    """A ticket's custom field values by key, as the Zendesk API shows them."""
    keys = {f["id"]: f["key"] for f in world._get("/ticket_fields.json")["ticket_fields"]}
    return {keys[c["id"]]: c["value"] for c in world.ticket(ticket_id)["custom_fields"]}


def ticket_writes(world: World, ticket_id: int) -> int:
    return sum(r["path"].endswith(f"/tickets/{ticket_id}.json") for r in world.writes())


def solve(world: World, ticket_id: int) -> None:
    """The support tech lead closes the task (solves it in Zendesk)."""
    world.http.put(f"{world.api}/tickets/{ticket_id}.json", timeout=30,
                   json={"ticket": {"status": "solved"}}).raise_for_status()
    world.advance(MINUTES)


def cli_json(world: World, *args: str, code: int = 0) -> Any:
    shown = CliRunner().invoke(app, [*args, "--json", "--config", str(world.config)],
                               env=world.env)
    assert shown.exit_code == code, shown.output
    return json.loads(shown.output)


def test_a_closed_task_closes_its_customer_ticket_once(sandbox: SandboxServer,
                                                       tmp_path: Path) -> None:
    world = World(sandbox, tmp_path, shipped_rules())
    sandbox.control("POST", "/_sandbox/seed", fixture())
    assert world.cycle().ok
    assert world.writes() == []  # an open task writes nothing

    solve(world, TASK)
    report = world.cycle()
    assert report.ok, report.failures
    assert custom(world, CUSTOMER)["dev_stage"] == "task_closed"  # the other ticket
    assert custom(world, TASK).get("dev_stage") is None
    # the write's answer is the customer ticket as saved: its own rule acts in the same cycle
    assert world.ticket(CUSTOMER)["status"] == "closed"
    comments = world.comments(CUSTOMER)
    assert comments[-1].startswith(f'Hello,\n\nThe fix for ticket #{CUSTOMER} "Checkout page')
    writes = ticket_writes(world, CUSTOMER)
    assert writes == 3  # Dev stage, the note, the status

    for _ in range(2):  # nothing is written twice
        world.advance(MINUTES)
        report = world.cycle()
        assert report.ok, report.failures
    assert ticket_writes(world, CUSTOMER) == writes
    assert world.comments(CUSTOMER) == comments

    audited = cli_json(world, "audit", f"zendesk:{TASK}")
    (intent,) = audited["intents"]  # the task caused it: it is the task's intent
    assert (intent["rule"], intent["record"], intent["state"]) == (
        "dev-task-closed-closes-customer-ticket",
        f"zendesk.ticket:{TASK}",
        "done",
    )
    assert intent["params"] == {"record": str(CUSTOMER),
                                "fields": {"custom.dev_stage": "task_closed"}}
    (prepared,) = [r for r in audited["audit"] if r["event"] == "prepared"]
    assert [op["target"] for op in prepared["detail"]["ops"]] == [str(CUSTOMER)]


def test_a_link_to_a_missing_ticket_is_a_dead_intent_naming_the_404(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, shipped_rules())
    sandbox.control("POST", "/_sandbox/seed", fixture())
    assert world.cycle().ok

    solve(world, ORPHAN)
    report = world.cycle()
    assert not report.ok
    assert any("404" in failure for failure in report.failures)
    (failed,) = cli_json(world, "intents", "--failed", code=1)  # exit 1: there are failures
    assert (failed["rule"], failed["record"], failed["state"]) == (
        "dev-task-closed-closes-customer-ticket",
        f"zendesk.ticket:{ORPHAN}",
        "dead",
    )
    assert "zendesk 404" in failed["last_error"]
    (audited,) = cli_json(world, "audit", f"zendesk:{ORPHAN}")["intents"]
    assert audited["key"] == failed["key"] and audited["state"] == "dead"
    assert custom(world, CUSTOMER).get("dev_stage") is None  # no other ticket was written
    assert ticket_writes(world, MISSING) == 1  # tried once: a 404 is not retried

    world.advance(MINUTES)
    assert world.cycle().ok  # the dead intent stays dead; nothing else to do
    assert ticket_writes(world, MISSING) == 1
