"""The shipped ticket lifecycle (rules/ticket-lifecycle.yaml, seed 004: "each ticket is reviewed
... we then set the right priority ... the dispatcher schedules the requests based on the
priority and then age") against the sandbox, in a world other than the demo's: requests nobody
has triaged yet wait in the queue, and requests triaged in the same poll go out by priority."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_world import NOW, World, seed
from test_shipped_transcripts import shipped

from syncd.sandbox.server import SandboxServer

IVAN, DITA = "ivan@itpros.example", "dita@itpros.example"
FIELDS = [
    {"title": "Impact", "type": "tagger", "key": "impact", "options": ["High", "Medium", "Low"]},
    {"title": "Severity", "type": "tagger", "key": "severity",
     "options": ["Critical", "Major", "Minor"]},
]


def desk(*tickets: dict[str, Any]) -> dict[str, Any]:
    """Ivan, the one IT Pro, already holding two open requests (room for one more of the
    rule's 3), and `tickets` waiting in Dispatch (unless said)."""
    base = seed(0, NOW)
    zd = base["zendesk"]
    zd["users"] += [{"name": "Ivan", "email": IVAN, "role": "agent"},
                    {"name": "Dita", "email": DITA, "role": "agent"},
                    {"name": "Cora", "email": "cora@customer.example"}]
    zd["groups"] += [{"name": "Dispatch", "members": [DITA]},
                     {"name": "IT Pros", "members": [IVAN]},
                     {"name": "Quality Review", "members": [DITA]}]
    zd["ticket_fields"] = FIELDS
    held = [{"subject": f"Held {n}", "group": "IT Pros", "assignee": IVAN, "status": "open",
             "custom_fields": {"Impact": "low", "Severity": "minor"}, "priority": "low"}
            for n in (1, 2)]
    zd["tickets"] = [
        {"requester": "cora@customer.example", "group": "Dispatch",
         "created_at": (NOW - timedelta(hours=3)).isoformat(),
         "updated_at": (NOW - timedelta(hours=3)).isoformat(), **t}
        for t in (*held, *tickets)
    ]
    return base


@pytest.fixture
def world(sandbox: SandboxServer, tmp_path: Path) -> Iterator[World]:
    found = World(sandbox, tmp_path, "rules: []\n")
    shipped(found, "ticket-lifecycle.yaml")
    yield found


def by_subject(world: World) -> dict[str, dict[str, Any]]:
    return {t["subject"]: t for t in world._get("/tickets.json")["tickets"]}


def test_a_request_nobody_has_triaged_is_not_dispatched(
    world: World, sandbox: SandboxServer
) -> None:
    hours = lambda h: (NOW - timedelta(hours=h)).isoformat()  # noqa: E731
    sandbox.control("POST", "/_sandbox/seed", desk(
        {"subject": "Untriaged, older", "created_at": hours(5), "updated_at": hours(5)},
        {"subject": "Triaged", "custom_fields": {"Impact": "medium", "Severity": "minor"},
         "created_at": hours(1), "updated_at": hours(1)},
    ))
    for _ in range(3):
        report = world.cycle()
        assert report.ok, report.failures
        world.advance(timedelta(minutes=5))
    tickets = by_subject(world)
    ivan = tickets["Held 1"]["assignee_id"]
    assert tickets["Triaged"]["assignee_id"] == ivan
    assert tickets["Untriaged, older"]["assignee_id"] is None
    assert not any("assigned" in c for c in world.comments(tickets["Untriaged, older"]["id"]))


def test_requests_triaged_in_the_same_poll_go_out_by_priority_then_age(
    world: World, sandbox: SandboxServer
) -> None:
    hours = lambda h: (NOW - timedelta(hours=h)).isoformat()  # noqa: E731
    sandbox.control("POST", "/_sandbox/seed", desk(
        {"subject": "Old, minor", "created_at": hours(5), "updated_at": hours(5)},
        {"subject": "New, critical", "created_at": hours(1), "updated_at": hours(1)},
    ))
    assert world.cycle().ok
    tickets = by_subject(world)
    fields = {f["key"]: f["id"] for f in world._get("/ticket_fields.json")["ticket_fields"]}
    for subject, impact, severity in (("Old, minor", "low", "minor"),
                                      ("New, critical", "high", "critical")):
        custom = [{"id": fields["impact"], "value": impact},
                  {"id": fields["severity"], "value": severity}]
        world.http.put(f"{world.api}/tickets/{tickets[subject]['id']}.json", timeout=30,
                       json={"ticket": {"custom_fields": custom}}).raise_for_status()
    world.advance(timedelta(minutes=2))
    report = world.cycle()  # one poll sees both triaged: priorities, then the dispatch
    assert report.ok, report.failures
    tickets = by_subject(world)
    assert (tickets["New, critical"]["priority"], tickets["Old, minor"]["priority"]) == (
        "urgent", "low")
    assert tickets["New, critical"]["assignee_id"] == tickets["Held 1"]["assignee_id"]
    assert tickets["Old, minor"]["assignee_id"] is None
