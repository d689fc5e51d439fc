"""The smaller defects of issue 12, each played with the shipped rules against the sandbox in a
world other than the demo's: a date-only column in British Summer Time, a hand-over inside the
Support group, an arrival moved after it was announced, a meeting whose agenda is late, and a
typo in a condition's var reference."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest
from e2e_world import ANN, BOB, NOW, World, seed
from test_shipped_transcripts import SHIPPED, shipped

from syncd.connectors.tls import PinnedSession, httpx_verify
from syncd.sandbox.server import SandboxServer

HARRIET = "harriet@people.example"


def arrivals(*items: dict[str, Any]) -> dict[str, Any]:
    base = seed(0, NOW)
    base["graph"] = {"lists": [
        {"name": "Arrivals",
         "columns": ["Role", {"name": "Arrival", "dateTime": {}}, "LineManager", "HRPartner",
                     "ITCoordinator",
                     {"name": "Status", "choice": {"choices": ["Planned", "Cancelled"]}}],
         "items": [{"fields": f} for f in items]},
        {"name": "Weekly Meetings",
         "columns": ["Client", {"name": "MeetingStart", "dateTime": {}}, "OnboardingLead",
                     "OnboardingLeadManager", {"name": "AgendaSent", "boolean": {}}],
         "items": []},
    ]}
    return base


def mail_to(world: World, address: str) -> list[dict[str, Any]]:
    return [m for m in world.mail() if address in m["to"]]


@pytest.fixture
def world(sandbox: SandboxServer, tmp_path: Path) -> Iterator[World]:
    found = World(sandbox, tmp_path, "rules: []\n")
    shipped(found, "employee-onboarding.yaml", "weekly-meeting-agenda.yaml",
            "case-lifecycle.yaml")
    yield found


def patch_item(world: World, list_name: str, title: str, fields: dict[str, Any]) -> None:
    """What a person does in SharePoint: edit a list item's fields, through Graph."""
    g = world.sandbox.info["graph"]
    app = msal.ConfidentialClientApplication(
        g["client_id"], client_credential=g["client_secret"], authority=g["authority"],
        instance_discovery=False, http_client=PinnedSession(verify=world.sandbox.ca_bundle))
    token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    site = f"/sites/{g['site_id']}"
    with httpx.Client(base_url=g["base_url"], verify=httpx_verify(world.sandbox.ca_bundle),
                      headers={"Authorization": f"Bearer {token['access_token']}"}) as http:
        lists = http.get(f"{site}/lists").raise_for_status().json()["value"]
        list_id = next(x["id"] for x in lists if x["displayName"] == list_name)
        items = http.get(f"{site}/lists/{list_id}/items", params={"expand": "fields"})
        item_id = next(i["id"] for i in items.raise_for_status().json()["value"]
                       if i["fields"].get("Title") == title)
        http.patch(f"{site}/lists/{list_id}/items/{item_id}/fields",
                   json=fields).raise_for_status()


def test_a_date_only_column_in_summer_time_is_mailed_as_its_local_day(
    world: World, sandbox: SandboxServer
) -> None:
    # Graph stores "1 June" of a date-only column, in London (BST), as 31 May 23:00 UTC
    sandbox.control("POST", "/_sandbox/seed", arrivals(
        {"Title": "June Joiner", "Arrival": "2026-05-31T23:00:00Z", "HRPartner": HARRIET,
         "Status": "Planned"}))
    report = world.cycle()
    assert report.ok, report.failures
    (prepare,) = mail_to(world, HARRIET)
    assert "2026-06-01" in prepare["subject"] and "2026-06-01" in prepare["body"]
    assert "2026-05-31" not in prepare["subject"] + prepare["body"]


def test_an_arrival_moved_after_it_was_announced_sends_a_correction(
    world: World, sandbox: SandboxServer
) -> None:
    sandbox.control("POST", "/_sandbox/seed", arrivals(
        {"Title": "Mo Mover", "Arrival": "2026-03-16T00:00:00Z", "HRPartner": HARRIET,
         "LineManager": "lee@people.example", "Status": "Planned"}))
    assert world.cycle().ok  # the preparation mail states 16 March; the announcement too
    assert sorted(m["subject"] for m in mail_to(world, HARRIET)) == [
        "2 weeks to go: announce the arrival of Mo Mover",
        "New team member Mo Mover arrives 2026-03-16: prepare the arrival"]
    world.advance(timedelta(hours=1))
    patch_item(world, "Arrivals", "Mo Mover", {"Arrival": "2026-03-30T00:00:00Z"})
    world.advance(timedelta(minutes=5))
    report = world.cycle()
    assert report.ok, report.failures
    corrections = [m for m in mail_to(world, HARRIET) if m["subject"].startswith("Correction")]
    assert [m["subject"] for m in corrections] == [
        "Correction: Mo Mover now arrives 2026-03-30"]
    assert "no longer 2026-03-16" in corrections[0]["body"]
    assert "lee@people.example" in corrections[0]["cc"]
    world.advance(timedelta(minutes=5))
    assert world.cycle().ok  # said once
    assert len([m for m in mail_to(world, HARRIET) if m["subject"].startswith("Correction")]) == 1


def test_the_agenda_reminder_comes_before_the_deadline_then_the_manager_is_told(
    world: World, sandbox: SandboxServer
) -> None:
    start = datetime(2026, 3, 5, 14, 0, tzinfo=NOW.tzinfo)  # Thursday 14:00
    fixture = arrivals()
    fixture["graph"]["lists"][1]["items"] = [{"fields": {
        "Title": "Kestrel weekly", "Client": "Kestrel Foods",
        "MeetingStart": start.isoformat().replace("+00:00", "Z"),
        "OnboardingLead": "olly@people.example", "OnboardingLeadManager": "maud@people.example",
        "AgendaSent": False}}]
    sandbox.control("POST", "/_sandbox/seed", fixture)
    assert world.cycle().ok
    world.advance(start - timedelta(hours=48) - world.clock.now())
    assert world.cycle().ok
    reminders = mail_to(world, "olly@people.example")
    assert len(reminders) == 1, "the lead is reminded 48 h before the meeting"
    assert "Thursday" not in reminders[0]["subject"]
    assert "2026-03-05 14:00 GMT" in reminders[0]["body"]
    assert mail_to(world, "maud@people.example") == []
    world.advance(timedelta(hours=24))
    assert world.cycle().ok
    (overdue,) = mail_to(world, "maud@people.example")
    assert overdue["cc"] == ["olly@people.example"]


def test_a_case_handed_over_inside_support_notifies_the_new_owner(
    world: World, sandbox: SandboxServer
) -> None:
    fixture = {**seed(1, NOW - timedelta(minutes=5)), "graph": arrivals()["graph"]}
    fixture["zendesk"]["groups"].append({"name": "Engineers", "members": []})
    fixture["zendesk"]["ticket_fields"] = [
        {"title": "Kind", "type": "tagger", "key": "kind",
         "options": ["High Priority", "Low Priority", "Training", "Third Party", "Other"]},
        {"title": "Request type", "type": "tagger", "key": "request_type",
         "options": ["Multi-site licence", "Other request"]}]
    fixture["zendesk"]["tickets"][0]["group"] = "Support"
    sandbox.control("POST", "/_sandbox/seed", fixture)
    assert world.cycle().ok
    first = world.ticket(1)["assignee_id"]
    assert first in (ANN, BOB)
    other = BOB if first == ANN else ANN
    new_owner = {ANN: "ann@example.com", BOB: "bob@example.com"}[other]
    assert not any("is now yours" in m["subject"] for m in world.mail())  # the first assignment
    world.http.put(f"{world.api}/tickets/1.json", timeout=30,
                   json={"ticket": {"assignee_id": other}}).raise_for_status()
    world.advance(timedelta(minutes=2))
    assert world.cycle().ok
    assert [m["subject"] for m in mail_to(world, new_owner) if "is now yours" in m["subject"]] == [
        "Case #1 is now yours: Printer 1 on fire"]


def test_a_condition_value_like_a_template_that_is_no_var_reference_fails_check(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(SHIPPED, rules)
    path = rules / "case-lifecycle.yaml"
    text = path.read_text()
    assert text.count('"{{ vars.support_group }}"') > 1
    path.write_text(text.replace('"{{ vars.support_group }}"', '"{{ var.support_group }}"', 1))
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1)
                if "{{ var.support_group }}" in row)
    run = subprocess.run([str(Path(sys.executable).parent / "syncd"), "check", str(rules)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    errors = [row for row in run.stdout.splitlines() if ": error: " in row]
    assert len(errors) == 1, run.stdout
    assert errors[0].startswith(f"{path}:{line}:")
    assert "{{ var.support_group }}" in errors[0] and "vars." in errors[0]
