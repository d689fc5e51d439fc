"""The hostile corpus: strings customers, agents and list editors can really type (lone
surrogates, NUL, bidi overrides, CR/LF, Jinja syntax, `..`, URL metacharacters, a 1 MiB value,
10,000 tags) through every source (Zendesk tickets, Salesforce opportunities and accounts,
SharePoint files and list items) into every action (tag, set, comment, notify, assign,
create_task, create_event, create_ticket, ensure_folder, file_transcript), all in one cycle.

Whatever each hostile record does (carried out, refused with a reason, or quarantined), the
cycle finishes, nothing is lost (every record is stored or held back), no text from the
corpus is ever evaluated as a template, and the ordinary record of each source that comes
after the hostile ones is processed in full."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_world import NOW, STAFF, World, seed

from syncd.model import RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings
from syncd.store.ledger import IntentState

MIB = 1024 * 1024
# text fields take these as they are (Zendesk, Salesforce long text, SharePoint list text)
CORPUS = [
    "lone \ud800 surrogate and \udfff",
    "nul \x00 in the middle",
    "rtl \u202eexe.vtt\u202c override",
    "cr\r\nBcc: leak@evil.example\r\nlf",
    "{{ 7 * 7 }} {% for i in range(10) %}x{% endfor %} {{ ticket.__class__ }}",
    "../../etc/passwd and ..",
    "url ?a=1&b=2#frag %2e%2e%2f +plus; semi",
    "big " + "x" * MIB,
]
# SharePoint names cannot hold control characters, " * : < > ? / \ | (the sandbox refuses them
# as SharePoint does), so the drive's corpus is what a name can be
NAMES = [
    "..  - weekly.vtt",
    ". - weekly.vtt",
    "{{ 7 + 7 }}{% if true %}x{% endif %} - weekly.vtt",
    "ZD-1 %2e%2e%2f&filename=invoice.html&x=.vtt",
    "\u202eZD-1 txt.exe.vtt",
    "#1 stocktake call.vtt",
]
RULES = """
rules:
  - id: tickets
    on: zendesk.ticket
    when: {status: new}
    on_failure: continue          # every action is tried on every hostile record
    do:
      - tag: [seen, "s-{{ ticket.subject[:12] | replace(' ', '_') }}"]
      - comment: {body: "Echo: {{ ticket.subject }} / {{ ticket.description[:200] }}"}
      - set: {priority: high}
      - assign: {group: Support, strategy: round_robin}
      - notify: {to: [hal@example.com], cc: [requester],
                 subject: "New: {{ ticket.subject[:200] }}", body: "{{ ticket.description }}"}
      - ensure_folder: {path: "Tickets/{{ ticket.subject[:50] }}"}
      - create_ticket: {subject: "Follow-up {{ ticket.subject[:100] }}", body: "{{ ticket.id }}",
                        tags: ["from-{{ ticket.id }}"]}
  - id: opportunities
    on: salesforce.opportunity
    when: {StageName: Closed Won}
    on_failure: continue
    do:
      - create_task: {subject: "Kick-off {{ opportunity.Name }}", due: 1d,
                      description: "{{ opportunity.Name }} won"}
      - create_event: {subject: "Meet {{ opportunity.Name }}", start: 2d, duration: 1h}
      - ensure_folder: {path: "Clients/{{ opportunity.Name }}", subfolders: [Meetings]}
      - notify: {to: [hal@example.com], subject: "Won: {{ opportunity.Name }}",
                 body: "{{ opportunity.Name }}"}
  - id: files
    on: sharepoint.file
    when: {folder: Transcripts}
    do:
      - file_transcript:
          ticket_from: "(?:ZD-|#)(\\\\d+)"
          else_folder: "Clients/{{ file.name.split(' - ')[0] | trim }}/Meetings"
          else_notify: [hal@example.com]
  - id: items
    on: sharepoint.item
    when: {list: Arrivals}
    on_failure: continue
    do:
      - notify: {to: ["{{ item.fields.get('HRPartner') or 'hr@support.example' }}"],
                 subject: "Arrival: {{ item.fields.Title }}", body: "{{ item.fields.Role }}"}
"""
CANARY = "Canary printer"


def fixture() -> dict[str, Any]:
    created = (NOW - timedelta(minutes=30)).isoformat()
    base = seed(0, NOW)
    tickets = [
        {"id": n, "subject": text[:MIB], "description": text, "status": "new",
         "requester": "carl@customer.example", "created_at": created, "updated_at": created}
        for n, text in enumerate(CORPUS, start=1)
    ]
    tickets.append({"id": 90, "subject": "many tags", "description": "10,000 tags",
                    "status": "new", "requester": "carl@customer.example",
                    "tags": [f"tag{n}" for n in range(10_000)], "created_at": created,
                    "updated_at": created})
    tickets.append({"id": 99, "subject": CANARY, "description": "Help", "status": "new",
                    "requester": "carl@customer.example", "created_at": created,
                    "updated_at": (NOW - timedelta(minutes=20)).isoformat()})  # last in the page
    base["zendesk"]["tickets"] = tickets
    opportunities = [
        {"Name": text[:120], "StageName": "Closed Won", "CloseDate": "2026-03-01",
         "AccountId": "@acme"}
        for text in CORPUS
    ] + [{"Name": "Canary deal", "StageName": "Closed Won", "CloseDate": "2026-03-01",
          "AccountId": "@acme"}]
    key = [{"name": "Syncd_Key__c", "type": "string", "external_id": True}]
    base["salesforce"] = {"settings": {"custom_fields": {"Task": key, "Event": key}},
                          "accounts": [{"@key": "acme", "Name": "Acme Ltd"}],
                          "opportunities": opportunities}
    files = [{"path": f"Transcripts/{name}", "content": "WEBVTT", "created_at": created}
             for name in [*NAMES, "Kestrel Foods - Weekly meeting #2.vtt"]]
    items = [{"fields": {"Title": text[:255], "Role": text, "HRPartner": text[:255]}}
             for text in CORPUS if "\x00" not in text and "\ud800" not in text]
    items.append({"fields": {"Title": "Canary arrival", "Role": "Support",
                             "HRPartner": "harriet@support.example"}})
    base["graph"] = {
        "folders": ["Transcripts", "Clients/Kestrel Foods/Meetings"],
        "files": files,
        "lists": [{"name": "Arrivals", "columns": [{"name": "Title"}, {"name": "Role"},
                                                   {"name": "HRPartner"}], "items": items}],
    }
    return base


@pytest.fixture
def corpus_world(sandbox: SandboxServer, tmp_path: Path) -> World:
    world = World(sandbox, tmp_path, RULES)
    world.env["SYNCD_GRAPH__LISTS"] = '["Arrivals"]'
    world.env["SYNCD_GRAPH__WATCHED_FOLDERS"] = '["Transcripts"]'
    # every corpus string is a record: more than the default blast-radius limits let one rule
    # do in an hour, which is the point of those limits but not of this test
    world.env.update({f"SYNCD_LIMITS__{k}": '{"any": 100000}'
                      for k in ("RULE_PER_CYCLE", "RULE_PER_HOUR", "PER_CYCLE", "PER_HOUR")})
    world.settings = load_settings(world.config, env=world.env)
    sandbox.control("POST", "/_sandbox/seed", fixture())
    return world


def test_every_source_into_every_action_and_the_rest_goes_on(corpus_world: World) -> None:
    world = corpus_world
    report = world.cycle()
    assert not [f for f in report.failures if f.startswith("poll ")], report.failures
    store = world.store()
    try:
        with store.read() as tx:
            entries = tx.ledger.list()
            held = {h.record for h in tx.quarantine.list()}
            stored = {(r.ref.kind, r.ref.id) for kind in ("zendesk.ticket",
                      "salesforce.opportunity", "sharepoint.file", "sharepoint.item")
                      for r in tx.records.by_kind(kind)}
    finally:
        store.close()
    # nothing lost: every hostile ticket is stored or held back with its reason
    for n in [*range(1, len(CORPUS) + 1), 90]:
        ref = RecordRef("zendesk.ticket", str(n))
        assert (ref.kind, ref.id) in stored or ref in held, ref
    # the ordinary record of each source, read after the hostile ones, went through in full
    by_record: dict[str, list[tuple[str, IntentState]]] = {}
    for e in entries:
        by_record.setdefault(str(e.intent.record), []).append((e.intent.action, e.state))
    assert all(s is IntentState.DONE for _, s in by_record["zendesk.ticket:99"]), (
        by_record["zendesk.ticket:99"], report.failures)
    canary = world.ticket(99)
    assert "seen" in canary["tags"] and canary["priority"] == "high"
    assert canary["group_id"] is not None
    assert any(c.startswith("Echo: Canary printer") for c in world.comments(99))
    deal = [r for r in world.soql("SELECT Id, Subject FROM Task") if "Canary deal" in r["Subject"]]
    assert len(deal) == 1, [f for f in report.failures if "opportunit" in f][:3]
    subjects = world.subjects()
    assert "New: Canary printer" in subjects and "Won: Canary deal" in subjects
    assert "Arrival: Canary arrival" in subjects
    assert "Transcript not filed" not in " ".join(s for s in subjects if "Kestrel" in s)
    # no corpus text was ever run as a template, no mail went to an address from data
    mails = world.mail()
    assert any(m["subject"].startswith("New: {{ 7 * 7 }} {% for") for m in mails)
    for mail in mails:
        assert all(a in (*STAFF.values(), "hal@example.com", "carl@customer.example",
                         "harriet@support.example", "hr@support.example")
                   for a in [*mail["to"], *mail["cc"]]), mail
        assert "\r" not in mail["subject"] and "\n" not in mail["subject"]
    # every failure names its record and reason on one line
    assert all("\n" not in f for f in report.failures)
