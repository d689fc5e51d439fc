"""Every action kind, carried out by the daemon against the three emulators."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from e2e_world import ANN, BOB, CARA, NOW, STAFF, World, seed

from syncd.sandbox.server import SandboxServer

RULES = """
rules:
  - id: ticket-kinds
    on: zendesk.ticket
    when: {subject: {matches: "^Kinds"}}
    do:
      - set: {priority: high, custom.product: gadget}
      - notify: {to: [assignee], via: note, subject: Heads-up, body: "Looked at by syncd"}
      - create_ticket: {subject: "Follow-up on #{{ ticket.id }}", body: "Call the customer",
                        requester: requester, group: Support, tags: [followup]}
      - assign: {group: Support, strategy: least_loaded}
  - id: unassign-solved
    on: zendesk.ticket
    when: {subject: {matches: "^Release"}}
    do: [{unassign: {keep_group: true}}, {comment: {body: "Released", public: true}}]
  - id: dispatch-queue
    on: zendesk.ticket
    when: {subject: {matches: "^Dispatch"}}
    do: [{dispatch: {queue: Queue, to: Support, capacity: 3,
                     notify_requester: "An agent has your ticket"}}]
  - id: won
    on: salesforce.opportunity
    when: {StageName: Closed Won}
    do:
      - create_task: {subject: "Kick-off {{ opportunity.Name }}", owner: owner, due: 2d}
      - create_event: {subject: Training, start: 1d, duration: 2h}
      - assign: {strategy: account_owner}
      - ensure_folder: {path: "Clients/{{ opportunity.Name }}", subfolders: [Contracts]}
      - notify: {to: [owner], subject: "Won: {{ opportunity.Name }}", body: Congratulations}
  - id: transcripts
    on: sharepoint.file
    when: {folder: Transcripts}
    do:
      - file_transcript: {ticket_from: "ZD-(\\\\d+)", else_folder: Transcripts/Unmatched,
                          else_notify: [group:Support]}
"""


def fixture() -> dict[str, Any]:
    base = seed(0, NOW)
    created = (NOW - timedelta(minutes=5)).isoformat()
    zendesk = base["zendesk"]
    zendesk["groups"].append({"name": "Queue", "members": [STAFF[ANN]]})
    zendesk["ticket_fields"] = [{"title": "Product", "type": "text", "key": "product"}]
    zendesk["tickets"] = [
        {"id": 1, "subject": "Kinds of things", "assignee": STAFF[ANN], "group": "Support"},
        {"id": 2, "subject": "Release me", "assignee": STAFF[BOB], "group": "Support"},
        {"id": 3, "subject": "Busy", "assignee": STAFF[BOB], "group": "Support"},
        {"id": 4, "subject": "Dispatch now", "group": "Queue", "priority": "low"},
        {"id": 5, "subject": "Waiting", "group": "Queue", "priority": "urgent"},
    ]
    for ticket in zendesk["tickets"]:
        ticket.update(requester="carl@customer.example", created_at=created, updated_at=created)
    return {
        **base,
        "salesforce": {
            "settings": {"custom_fields": {"Task": [
                {"name": "Syncd_Key__c", "type": "string", "external_id": True}],
                "Event": [{"name": "Syncd_Key__c", "type": "string", "external_id": True}]}},
            "users": [
                {"Username": "olga@acme.example", "Email": "olga@acme.example", "Name": "Olga",
                 "@key": "olga"},
                {"Username": "pete@acme.example", "Email": "pete@acme.example", "Name": "Pete",
                 "@key": "pete"},
            ],
            "accounts": [{"Name": "Acme", "@key": "acme", "OwnerId": "@pete"}],
            "opportunities": [{"Name": "Big deal", "StageName": "Closed Won",
                               "CloseDate": "2026-03-01", "AccountId": "@acme",
                               "OwnerId": "@olga", "LastModifiedDate": created,
                               "SystemModstamp": created}],
        },
        "graph": {"files": [
            {"path": f"Transcripts/{name}", "content": "WEBVTT", "created_at": created}
            for name in ("ZD-3 call.vtt", "Unknown call.vtt")
        ]},
    }


def test_every_action_kind_reaches_its_vendor(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = World(sandbox, tmp_path, RULES)
    sandbox.control("POST", "/_sandbox/seed", fixture())
    report = world.cycle()
    assert report.ok, report.failures
    assert world.cycle().ok  # and nothing more to do

    kinds = world.ticket(1)
    assert kinds["priority"] == "high"
    assert kinds["assignee_id"] == ANN  # least loaded: Bob holds two, Cara is away
    assert world.comments(1)[-1] == "Heads-up\n\nLooked at by syncd"
    created = [t for t in world._get("/tickets.json")["tickets"] if "followup" in t["tags"]]
    assert [t["subject"] for t in created] == ["Follow-up on #1"]

    released = world.ticket(2)
    assert released["assignee_id"] is None and released["group_id"] is not None
    assert world.comments(2)[-1] == "Released"

    # one agent in Queue's target group with capacity: the urgent ticket first
    assert world.ticket(5)["assignee_id"] in (ANN, BOB)
    assert world.comments(5)[-1] == "An agent has your ticket"

    assert any(c.startswith("Transcript: ZD-3 call.vtt") for c in world.comments(3))
    mails = {m["subject"]: m for m in world.mail()}
    # read your own writes: `owner` is who the `assign` before it made the owner
    assert mails["Won: Big deal"]["to"] == ["pete@acme.example"]
    assert set(mails["Transcript not filed: Unknown call.vtt"]["to"]) == {
        STAFF[ANN], STAFF[BOB], STAFF[CARA]}
    (task,) = world.soql("SELECT Subject, ActivityDate, Owner.Email FROM Task")
    assert (task["Subject"], task["ActivityDate"]) == ("Kick-off Big deal", "2026-03-04")
    assert task["Owner"]["Email"] == "olga@acme.example"
    (event,) = world.soql("SELECT Subject, DurationInMinutes FROM Event")
    assert (event["Subject"], event["DurationInMinutes"]) == ("Training", 120)
    (deal,) = world.soql("SELECT Owner.Email FROM Opportunity")
    assert deal["Owner"]["Email"] == "pete@acme.example"  # the account's owner
    with world.store().read() as tx:
        states = {str(s): n for s, n in tx.ledger.count_by_state().items() if n}
        folder = [e for e in tx.ledger.list(state="done") if e.intent.action == "ensure_folder"]
    assert states == {"done": 4 + 2 + 1 + 5 + 2}
    assert folder[0].vendor_answer == {folder[0].intent.key: {"path": "Clients/Big deal"}}
