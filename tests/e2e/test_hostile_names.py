"""Names built from data are checked before they become paths or parameters: a transcript's
name reaches Zendesk as exactly its own name, a client folder built from a file name is one safe
path segment (else the intent fails with the reason, never a write elsewhere in the drive)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_world import NOW, World, seed

from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings

ATTACH = """
rules:
  - id: attach
    on: sharepoint.file
    when: {folder: Transcripts}
    do:
      - file_transcript: {ticket_from: "(?:ZD-|#)(\\\\d+)", else_folder: Transcripts/Unmatched,
                          else_notify: [hal@example.com]}
"""
TO_CLIENT = """
rules:
  - id: to-client
    on: sharepoint.file
    when: {folder: Transcripts}
    do:
      - file_transcript:
          ticket_from: "ZD-(\\\\d+)"
          else_folder: "Clients/{{ file.name.split(' - ')[0] | trim }}/Meetings"
"""


def fixture(*names: str) -> dict[str, Any]:
    base = seed(2, NOW - timedelta(minutes=30))
    created = (NOW - timedelta(minutes=5)).isoformat()
    files = [{"path": f"Transcripts/{n}", "content": "WEBVTT", "created_at": created}
             for n in names]
    return {**base, "graph": {"folders": ["Clients/Kestrel Foods/Meetings"], "files": files}}


def attachments(world: World, ticket: int) -> list[str]:
    found = world._get(f"/tickets/{ticket}/comments.json")["comments"]
    return [a["file_name"] for c in found for a in c.get("attachments") or []]


def drive_paths(sandbox: SandboxServer) -> set[str]:
    """Every item's path in every drive, from the root (`Clients/Acme/Meetings/x.vtt`)."""
    graph = sandbox.sandbox.snapshot()["graph"]  # type: ignore[union-attr]
    items = {i["id"]: i for d in graph["drives"] for i in d["items"] if not i.get("deleted")}

    def path(item: dict[str, Any]) -> str:
        parent = items.get(item["parent_id"] or "")
        if parent is None:
            return ""
        above = path(parent)
        return f"{above}/{item['name']}" if above else item["name"]

    return {path(i) for i in items.values()} - {""}


@pytest.mark.parametrize(
    ("name", "ticket"),
    [
        ("#1 stocktake call.vtt", 1),
        ("ZD-1 notes&filename=invoice.html&x=.vtt", 1),
        ("ZD-2 %2e%2e%2f.vtt", 2),
        ("ZD-2 50% + tax;v=1.vtt", 2),
    ],
)
def test_a_transcript_reaches_zendesk_under_exactly_its_own_name(
    sandbox: SandboxServer, tmp_path: Path, name: str, ticket: int
) -> None:
    world = World(sandbox, tmp_path, ATTACH)
    sandbox.control("POST", "/_sandbox/seed", fixture(name))
    report = world.cycle()
    assert report.ok, report.failures
    assert attachments(world, ticket) == [name]


@pytest.mark.parametrize("client", ["..", ".", "CON", "desktop.ini", "LPT1"])
def test_a_folder_built_from_data_is_one_safe_segment_or_refused(
    sandbox: SandboxServer, tmp_path: Path, client: str
) -> None:
    world = World(sandbox, tmp_path, TO_CLIENT)
    name = f"{client} - weekly.vtt"
    kestrel = "Kestrel Foods - Weekly meeting #2.vtt"
    sandbox.control("POST", "/_sandbox/seed", fixture(name, kestrel))
    before = drive_paths(sandbox)
    report = world.cycle()
    made = drive_paths(sandbox) - before
    assert made == {"Clients/Kestrel Foods/Meetings/Kestrel Foods - Weekly meeting #2.vtt"}
    (failure,) = report.failures
    assert "not one safe path segment" in failure
    with world.store().read() as tx:
        (dead,) = [e for e in tx.ledger.list() if e.state.value == "dead"]
    assert "not one safe path segment" in (dead.last_error or "")


ARRIVALS = """
vars:
  hr_team: hr@support.example
rules:
  - id: arrival
    on: sharepoint.item
    when: {list: Arrivals}
    do:
      - notify:
          to: ["{{ item.fields.get('HRPartner') or vars.hr_team }}"]
          subject: "Arrival: {{ item.fields.Title }}"
          body: "Please prepare."
"""


@pytest.mark.parametrize(
    "partner",
    [
        "group:Supervisors",  # only literal rule text may name a group
        "role:hr_team",
        "hp@support.example, boss@support.example",
        "hp@support.example\r\nBcc: leak@evil.example",
        "Hal <hp@support.example>",
    ],
)
def test_a_recipient_from_data_is_one_address_or_the_intent_fails_saying_why(
    sandbox: SandboxServer, tmp_path: Path, partner: str
) -> None:
    world = World(sandbox, tmp_path, ARRIVALS)
    world.env["SYNCD_GRAPH__LISTS"] = '["Arrivals"]'
    world.settings = load_settings(world.config, env=world.env)
    columns = [{"name": "Title"}, {"name": "HRPartner"}]
    items = [{"fields": {"Title": "Dana\r\nBcc: x@evil.example",
                         "HRPartner": "hp@support.example"}},
             {"fields": {"Title": "Eve", "HRPartner": partner}}]
    sandbox.control("POST", "/_sandbox/seed", {
        **seed(0, NOW), "graph": {"lists": [{"name": "Arrivals", "columns": columns,
                                             "items": items}]}})
    report = world.cycle()
    (mail,) = world.mail()
    assert mail["to"] == ["hp@support.example"] and mail["cc"] == []
    assert mail["subject"] == "Arrival: Dana Bcc: x@evil.example"  # one line
    (failure,) = report.failures
    assert "is not one mail address" in failure


def test_a_transcript_over_the_size_cap_is_left_in_place_and_reported(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, ATTACH)
    world.env["SYNCD_SYNCD__MAX_ATTACHMENT_MB"] = "0.001"  # 1,000 bytes
    world.settings = load_settings(world.config, env=world.env)
    created = (NOW - timedelta(minutes=5)).isoformat()
    sandbox.control("POST", "/_sandbox/seed", {**seed(1, NOW - timedelta(minutes=30)), "graph": {
        "files": [{"path": "Transcripts/ZD-1 long.vtt", "content": "WEBVTT\n" + "x" * 2000,
                   "created_at": created}]}})
    before = drive_paths(sandbox)
    report = world.cycle()
    assert report.ok, report.failures
    assert attachments(world, 1) == [] and drive_paths(sandbox) == before
    (mail,) = world.mail()
    assert mail["subject"] == "Transcript not filed: ZD-1 long.vtt"
    assert "2,007 bytes, over the 1,000" in mail["body"] and "left where it is" in mail["body"]


CLIENT_FOLDER = """
rules:
  - id: client-folder
    on: zendesk.ticket
    when: {status: new}
    do:
      - ensure_folder: {path: "Clients/{{ ticket.subject }}", subfolders: [Meetings]}
"""


def test_a_slash_printed_from_data_is_not_a_path_separator(sandbox: SandboxServer,
                                                           tmp_path: Path) -> None:
    """The `/` written in the rule separate folders; one in an account's name does not."""
    world = World(sandbox, tmp_path, CLIENT_FOLDER)
    fixture = seed(0, NOW)
    fixture["zendesk"]["tickets"] = [
        {"id": n, "subject": s, "status": "new", "requester": "carl@customer.example",
         "created_at": (NOW - timedelta(minutes=30)).isoformat()}
        for n, s in ((1, "Kestrel Foods/Meetings"), (2, "A\\B"), (3, "Acme Ltd"))]
    sandbox.control("POST", "/_sandbox/seed", fixture)
    before = drive_paths(sandbox)
    report = world.cycle()
    assert drive_paths(sandbox) - before == {"Clients", "Clients/Acme Ltd",
                                             "Clients/Acme Ltd/Meetings"}
    assert sorted(f.split(": ", 1)[0] for f in report.failures) == [
        "client-folder/" + k for k in sorted(
            e.intent.key.split("/", 1)[1] for e in _dead(world))]
    assert all("a value from the record contains '/'" in f for f in report.failures)


def _dead(world: World) -> list[Any]:
    store = world.store()
    try:
        with store.read() as tx:
            return [e for e in tx.ledger.list() if e.state.value == "dead"]
    finally:
        store.close()
