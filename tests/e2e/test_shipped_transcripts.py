"""The shipped transcripts process (rules/transcripts.yaml, seed 003: "IF IN DOUBT PLEASE ASK")
against the sandbox in a world other than the demo's: other customers, closed tickets, meeting
titles with a `#`, a ticket younger than the Zendesk export. A transcript is attached to the
ticket it unambiguously names, or filed (client folder, else Unmatched) and the helpdesk
manager told why; never only in the dead-letter list."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_world import NOW, World, seed

from syncd.resources import RULES
from syncd.resources import shipped as shipped_file
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings

SHIPPED = Path(str(shipped_file(RULES)))
HAL = "hal@support.example"


def shipped(world: World, *files: str) -> None:
    """The world runs the shipped rule files `files` (with the calendars and templates)."""
    (world.rules_dir / "support.yaml").unlink()
    for name in ("calendars.yaml", *files):
        shutil.copy(SHIPPED / name, world.rules_dir / name)
    shutil.copytree(SHIPPED / "templates", world.rules_dir / "templates")
    world.env["SYNCD_GRAPH__WATCHED_FOLDERS"] = json.dumps(["Transcripts"])
    world.env["SYNCD_GRAPH__LISTS"] = json.dumps(["Arrivals", "Weekly Meetings"])
    world.settings = load_settings(world.config, env=world.env)


def customers(tickets: list[dict[str, Any]], files: list[str]) -> dict[str, Any]:
    """Two customer organisations (Acme Ltd, Kestrel Foods), `tickets`, and `files` dropped into
    Transcripts five minutes ago."""
    base = seed(0, NOW)
    stamp = (NOW - timedelta(hours=2)).isoformat()
    zd = base["zendesk"]
    zd["organizations"] = [{"name": "Acme Ltd"}, {"name": "Kestrel Foods"}]
    zd["users"] += [
        {"name": "Amy", "email": "amy@acme.example", "organization": "Acme Ltd"},
        {"name": "Ken", "email": "ken@kestrel.example", "organization": "Kestrel Foods"},
        {"name": "Hal", "email": HAL, "role": "agent"},
    ]
    zd["tickets"] = [{"created_at": stamp, "updated_at": stamp, **t} for t in tickets]
    created = (NOW - timedelta(minutes=5)).isoformat()
    base["graph"] = {
        "folders": ["Transcripts", "Clients/Acme Ltd/Meetings", "Clients/Kestrel Foods/Meetings"],
        "files": [{"path": f"Transcripts/{n}", "content": "WEBVTT", "created_at": created}
                  for n in files],
    }
    return base


def paths(sandbox: SandboxServer) -> set[str]:
    graph = sandbox.sandbox.snapshot()["graph"]  # type: ignore[union-attr]
    items = {i["id"]: i for d in graph["drives"] for i in d["items"] if not i.get("deleted")}

    def path(item: dict[str, Any]) -> str:
        parent = items.get(item.get("parent_id") or "")
        if parent is None or parent.get("parent_id") is None:
            return str(item["name"])
        return f"{path(parent)}/{item['name']}"

    return {path(i) for i in items.values() if i.get("parent_id")}


def attachments(world: World, ticket_id: int) -> list[str]:
    found = world._get(f"/tickets/{ticket_id}/comments.json")["comments"]
    return [a["file_name"] for c in found for a in c.get("attachments") or []]


def to_hal(world: World) -> dict[str, str]:
    return {m["subject"]: m["body"] for m in world.mail() if HAL in m["to"]}


def dead_letters(world: World) -> list[str]:
    with world.store().read() as tx:
        return [e.intent.key for e in tx.ledger.list() if str(e.state) == "failed"]


@pytest.fixture
def world(sandbox: SandboxServer, tmp_path: Path) -> Iterator[World]:
    found = World(sandbox, tmp_path, "rules: []\n")
    shipped(found, "transcripts.yaml")
    yield found


def test_a_transcript_for_a_closed_ticket_is_filed_and_the_manager_told_why(
    world: World, sandbox: SandboxServer
) -> None:
    sandbox.control("POST", "/_sandbox/seed", customers(
        [{"id": 7, "subject": "Old printer case", "requester": "amy@acme.example",
          "status": "closed"}],
        ["ZD-7 printer follow-up.vtt", "Acme Ltd - ZD-7 review.vtt"],
    ))
    world.cycle()
    world.advance(timedelta(minutes=5))
    world.cycle()
    assert attachments(world, 7) == []
    found = paths(sandbox)
    assert "Transcripts/Unmatched/ZD-7 printer follow-up.vtt" in found
    assert "Clients/Acme Ltd/Meetings/Acme Ltd - ZD-7 review.vtt" in found
    mails = to_hal(world)
    body = mails["Transcript not filed: ZD-7 printer follow-up.vtt"]
    assert "ticket 7" in body and "closed" in body.lower()
    assert "A copy is in Transcripts/Unmatched." in body
    assert "Transcript not filed: Acme Ltd - ZD-7 review.vtt" in mails
    assert dead_letters(world) == []
    world.advance(timedelta(minutes=5))
    assert world.cycle().ok  # the else path is taken once: nothing sent again
    assert len([m for m in world.mail() if HAL in m["to"]]) == 2
    with world.store().read() as tx:
        assert {str(e.state) for e in tx.ledger.list()} == {"done"}


def test_a_bare_hash_number_in_a_meeting_title_is_not_a_ticket_reference(
    world: World, sandbox: SandboxServer
) -> None:
    sandbox.control("POST", "/_sandbox/seed", customers(
        [{"id": 2, "subject": "Acme's private case", "requester": "amy@acme.example"}],
        ["Kestrel Foods - Weekly meeting #2.vtt", "#2 stocktake call.vtt"],
    ))
    report = world.cycle()
    assert report.ok, report.failures
    assert attachments(world, 2) == []
    found = paths(sandbox)
    assert "Clients/Kestrel Foods/Meetings/Kestrel Foods - Weekly meeting #2.vtt" in found
    assert "Transcripts/Unmatched/#2 stocktake call.vtt" in found
    assert "Transcript not filed: #2 stocktake call.vtt" in to_hal(world)


def test_a_ticket_of_another_client_is_not_a_match(world: World, sandbox: SandboxServer) -> None:
    sandbox.control("POST", "/_sandbox/seed", customers(
        [{"id": 3, "subject": "Acme's case", "requester": "amy@acme.example"},
         {"id": 4, "subject": "Kestrel's case", "requester": "ken@kestrel.example"}],
        ["Kestrel Foods - ticket 3 review.vtt", "Kestrel Foods - ZD-4 review.vtt"],
    ))
    report = world.cycle()
    assert report.ok, report.failures
    assert attachments(world, 3) == []
    assert attachments(world, 4) == ["Kestrel Foods - ZD-4 review.vtt"]
    assert "Clients/Kestrel Foods/Meetings/Kestrel Foods - ticket 3 review.vtt" in paths(sandbox)
    body = to_hal(world)["Transcript not filed: Kestrel Foods - ticket 3 review.vtt"]
    assert "Acme Ltd" in body and "Kestrel Foods" in body
    assert "A copy is in Clients/Kestrel Foods/Meetings." in body


def test_a_ticket_younger_than_the_export_is_looked_up_before_deciding(
    world: World, sandbox: SandboxServer
) -> None:
    sandbox.control("POST", "/_sandbox/seed", customers([], []))
    assert world.cycle().ok
    resp = world.http.post(f"{world.api}/tickets.json", timeout=30, json={"ticket": {
        "subject": "Stocktake", "comment": {"body": "Call at 10"},
        "requester": {"email": "ken@kestrel.example"}}})
    resp.raise_for_status()
    ticket = int(resp.json()["ticket"]["id"])
    world.advance(timedelta(seconds=20))
    world.sandbox.control("POST", "/_sandbox/seed", {"graph": {"files": [
        {"path": f"Transcripts/ZD-{ticket} stocktake call.vtt", "content": "WEBVTT"}]}})
    world.advance(timedelta(seconds=20))  # the ticket is younger than the export's minute
    report = world.cycle()
    assert report.ok, report.failures
    assert attachments(world, ticket) == [f"ZD-{ticket} stocktake call.vtt"]
    assert to_hal(world) == {}
    shows = [r["path"] for r in sandbox.control("GET", "/_sandbox/requests")["requests"]
             if r["method"] == "GET" and "/tickets/show_many" in r["path"]]
    assert len(shows) == 1


def test_the_else_path_after_a_refusal_is_carried_out_exactly_once(
    world: World, sandbox: SandboxServer
) -> None:
    sandbox.control("POST", "/_sandbox/seed", customers(
        [{"id": 7, "subject": "Old printer case", "requester": "amy@acme.example",
          "status": "closed"}],
        ["ZD-7 printer follow-up.vtt"],
    ))
    # the manager's mail is sent, but the answer is lost: an unknown outcome
    world.faults({"vendor": "graph", "method": "POST", "path": "sendMail",
                  "kind": "apply_then_drop", "times": 1})
    world.cycle()
    for _ in range(3):
        world.advance(timedelta(minutes=2))
        world.cycle()
    log = sandbox.control("GET", "/_sandbox/requests")["requests"]
    assert next(r["status"] for r in log if r["path"].endswith("/sendMail")) is None  # dropped
    mails = [m["subject"] for m in world.mail() if HAL in m["to"]]
    assert mails == ["Transcript not filed: ZD-7 printer follow-up.vtt"]
    assert "Transcripts/Unmatched/ZD-7 printer follow-up.vtt" in paths(sandbox)
    assert attachments(world, 7) == []
    with world.store().read() as tx:
        assert {str(e.state) for e in tx.ledger.list()} == {"done"}
