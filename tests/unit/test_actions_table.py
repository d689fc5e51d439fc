"""Intent -> vendor operations, one row per case, for every action builder (daemon/actions.py).

What a user would notice is in each row: a Zendesk comment's public flag (`notify: {via:
note}` is an internal note: a customer must never read it), who a mail goes to (cc never
repeats a `to` address, in any letter case), which fields are written, and that tags are
added or removed, never replaced. The store is the real one (SQLite in a temp dir); the
directories are the connectors' cached copies, given as data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.connectors.base import Directory, DirectoryGroup, DirectoryUser
from syncd.daemon.actions import BUILDERS, ActionContext, operations, written
from syncd.daemon.people import ActionError, NothingToDo, People, RecordMiss
from syncd.model import Intent, Operation, Record, RecordRef
from syncd.pathnames import path_problem
from syncd.store.db import Store, open_store

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
KEY = "rule-x/0123456789abcdef01234567"
MAILBOX = "syncd@example.com"
TICKET = RecordRef("zendesk.ticket", "7")
OPPORTUNITY = RecordRef("salesforce.opportunity", "006A")
FILE = RecordRef("sharepoint.file", "f1")

ZENDESK = Directory(
    users={
        "11": DirectoryUser("11", "Ann", "ann@example.com"),
        "12": DirectoryUser("12", "Bob", "Bob@Example.com"),
        "13": DirectoryUser("13", "Cid", "cid@example.com", away=True),
        "14": DirectoryUser("14", "Dee", "dee@example.com", active=False),
    },
    groups={
        "100": DirectoryGroup("100", "Support", frozenset({"11", "12", "14"})),
        "200": DirectoryGroup("200", "Engineers", frozenset({"12", "13"})),
    },
)
SALESFORCE = Directory(
    users={
        "005A": DirectoryUser("005A", "Sam", "sam@example.com"),
        "005B": DirectoryUser("005B", "Tia", "tia@example.com"),
    },
    groups={"00G1": DirectoryGroup("00G1", "Sales", frozenset({"005A"}))},
)
TICKET_FIELDS = {
    "status": "open",
    "updated_at": "2026-03-02T09:00:00Z",
    "assignee_email": "ann@example.com",
    "requester_email": "Customer@Example.org",
}


@dataclass
class Row:
    """One intent on one record, and the exact operations it must become."""

    name: str
    action: str
    params: dict[str, Any]
    expected: list[tuple[str, str, str, str, dict[str, Any]]]  # suffix, system, verb, target
    record: RecordRef = TICKET
    fields: dict[str, Any] = field(default_factory=lambda: dict(TICKET_FIELDS))
    roles: dict[str, Any] = field(default_factory=dict)
    stored: list[Record] = field(default_factory=list)  # other records in the store


def ops(row: Row) -> list[Operation]:
    return [Operation(KEY + suffix, system, verb, target, payload)
            for suffix, system, verb, target, payload in row.expected]


def mail(to: list[str], cc: list[str], subject: str, body: str,
         suffix: str = "") -> tuple[str, str, str, str, dict[str, Any]]:
    return (suffix, "graph", "send_mail", MAILBOX,
            {"to": to, "cc": cc, "subject": subject, "body": body})


ROWS = [
    # -- tag / untag: additive, with Zendesk's safe_update stamp ---------------------------
    Row("tag adds, blanks dropped", "tag", {"tags": ["a", " b ", "", "  "]},
        [("", "zendesk", "add_tags", "7",
          {"tags": ["a", "b"], "updated_stamp": "2026-03-02T09:00:00Z"})]),
    Row("untag removes", "untag", {"tags": ["a"]},
        [("", "zendesk", "remove_tags", "7",
          {"tags": ["a"], "updated_stamp": "2026-03-02T09:00:00Z"})]),
    Row("tag without a stamp", "tag", {"tags": ["a"]},
        [("", "zendesk", "add_tags", "7", {"tags": ["a"]})], fields={"status": "open"}),
    # -- unassign ----------------------------------------------------------------------------
    Row("unassign clears both", "unassign", {},
        [("", "zendesk", "update", "7", {"assignee_id": None, "group_id": None})]),
    Row("unassign keeps the group", "unassign", {"keep_group": True},
        [("", "zendesk", "update", "7", {"assignee_id": None})]),
    # -- comment -----------------------------------------------------------------------------
    Row("comment is private by default", "comment", {"body": "hi"},
        [("", "zendesk", "comment", "7", {"body": "hi", "public": False})]),
    Row("comment public when asked", "comment", {"body": "hi", "public": True},
        [("", "zendesk", "comment", "7", {"body": "hi", "public": True})]),
    Row("comment on the linked ticket", "comment", {"body": "hi", "record": "99"},
        [("", "zendesk", "comment", "99", {"body": "hi", "public": False})]),
    # -- notify ------------------------------------------------------------------------------
    Row("notify via note is a private comment", "notify",
        {"via": "note", "subject": "Quality review", "body": "sent back", "to": ["assignee"]},
        [("", "zendesk", "comment", "7",
          {"body": "Quality review\n\nsent back", "public": False})]),
    Row("notify via note without a subject", "notify", {"via": "note", "body": "sent back"},
        [("", "zendesk", "comment", "7", {"body": "sent back", "public": False})]),
    Row("notify mail: cc repeats of to dropped, any case", "notify",
        {"to": ["group:Support", "ann@example.com"],
         "cc": ["ANN@example.com", "bob@example.com", "requester", "user:eve@example.com"],
         "subject": "Case 7\r\nwaiting", "body": "b"},
        [mail(["ann@example.com", "Bob@example.com"],  # domains normalised by email-validator
              ["Customer@example.org", "eve@example.com"], "Case 7 waiting", "b")]),
    Row("notify mail to the assignee and a role", "notify",
        {"to": ["assignee", "role:leads"], "subject": "s", "body": "b"},
        [mail(["ann@example.com", "lee@example.com", "max@example.com"], [], "s", "b")],
        roles={"leads": ["lee@example.com", "user:max@example.com"]}),
    Row("notify mail to a Salesforce owner", "notify",
        {"to": ["owner"], "cc": ["owner", "tia@example.com"], "subject": "s", "body": "b"},
        [mail(["sam@example.com"], ["tia@example.com"], "s", "b")],
        record=OPPORTUNITY, fields={"OwnerId": "005A"}),
    # -- set ---------------------------------------------------------------------------------
    Row("set zendesk fields and custom fields", "set",
        {"fields": {"status": "pending", "priority": "high", "custom.impact": "major"}},
        [("", "zendesk", "update", "7",
          {"status": "pending", "priority": "high", "custom_fields": {"impact": "major"}})]),
    Row("set on the linked ticket", "set", {"fields": {"status": "open"}, "record": "99"},
        [("", "zendesk", "update", "99", {"status": "open"})]),
    Row("set salesforce fields", "set", {"fields": {"StageName": "Closed Won"}},
        [("", "salesforce", "update", "Opportunity",
          {"Id": "006A", "fields": {"StageName": "Closed Won"}})],
        record=OPPORTUNITY, fields={"OwnerId": "005A"}),
    # -- assign ------------------------------------------------------------------------------
    Row("assign a fixed user and group", "assign",
        {"user": "bob@example.com", "group": "Support"},
        [("", "zendesk", "update", "7", {"group_id": 100, "assignee_id": 12})]),
    Row("assign a fixed user who is away: the group only", "assign",
        {"user": "13", "group": "Engineers"},
        [("", "zendesk", "update", "7", {"group_id": 200})]),
    Row("assign round robin starts at the lowest id", "assign",
        {"group": "Support", "strategy": "round_robin"},
        [("", "zendesk", "update", "7", {"group_id": 100, "assignee_id": 11})]),
    Row("assign least loaded counts open tickets", "assign",
        {"group": "Support", "strategy": "least_loaded"},
        [("", "zendesk", "update", "7", {"group_id": 100, "assignee_id": 12})],
        stored=[Record(RecordRef("zendesk.ticket", "50"), {"status": "open", "assignee_id": 11},
                       T0),
                Record(RecordRef("zendesk.ticket", "51"), {"status": "solved",
                                                           "assignee_id": 12}, T0)]),
    Row("assign a salesforce owner", "assign", {"user": "005B"},
        [("", "salesforce", "update", "Opportunity",
          {"Id": "006A", "fields": {"OwnerId": "005B"}})],
        record=OPPORTUNITY, fields={"OwnerId": "005A"}),
    Row("assign by mapping", "assign",
        {"strategy": "mapping",
         "mapping": {"field": "custom.region", "table": {"EU": "11"}, "default": "12"}},
        [("", "zendesk", "update", "7", {"assignee_id": 11})],
        fields={"custom": {"region": "EU"}}),
    # -- salesforce creates ------------------------------------------------------------------
    Row("create_task with defaults", "create_task", {"subject": "Call"},
        [("", "salesforce", "create", "Task",
          {"fields": {"Subject": "Call", "WhatId": "006A", "Status": "Not Started",
                      "Priority": "Normal"}})],
        record=OPPORTUNITY, fields={"OwnerId": "005A"}),
    Row("create_task with everything", "create_task",
        {"subject": "Call", "due": "2026-03-09T10:00:00+00:00", "description": "d",
         "owner": "owner", "status": "In Progress", "priority": "High"},
        [("", "salesforce", "create", "Task",
          {"fields": {"Subject": "Call", "WhatId": "006A", "Status": "In Progress",
                      "Priority": "High", "ActivityDate": "2026-03-09", "Description": "d",
                      "OwnerId": "005A"}})],
        record=OPPORTUNITY, fields={"OwnerId": "005A"}),
    Row("create_task owner by role", "create_task", {"subject": "Call", "owner": "role:am"},
        [("", "salesforce", "create", "Task",
          {"fields": {"Subject": "Call", "WhatId": "006A", "Status": "Not Started",
                      "Priority": "Normal", "OwnerId": "005B"}})],
        record=OPPORTUNITY, fields={}, roles={"am": "tia@example.com"}),
    Row("create_event lasts its duration", "create_event",
        {"subject": "Kick-off", "start": "2026-03-09T10:00:00+00:00", "duration": "90m",
         "owner": "user:005B", "description": "d"},
        [("", "salesforce", "create", "Event",
          {"fields": {"Subject": "Kick-off", "WhatId": "006A",
                      "StartDateTime": "2026-03-09T10:00:00+00:00",
                      "EndDateTime": "2026-03-09T11:30:00+00:00", "DurationInMinutes": 90,
                      "Description": "d", "OwnerId": "005B"}})],
        record=OPPORTUNITY, fields={}),
    Row("create_event defaults to an hour", "create_event",
        {"subject": "K", "start": "2026-03-09T10:00:00+00:00"},
        [("", "salesforce", "create", "Event",
          {"fields": {"Subject": "K", "WhatId": "006A",
                      "StartDateTime": "2026-03-09T10:00:00+00:00",
                      "EndDateTime": "2026-03-09T11:00:00+00:00", "DurationInMinutes": 60}})],
        record=OPPORTUNITY, fields={}),
    # -- create_ticket, ensure_folder --------------------------------------------------------
    Row("create_ticket", "create_ticket",
        {"subject": "Renewal\nfor ACME", "body": "b", "requester": "owner", "group": "Support",
         "priority": "high", "tags": ["renewal", " "]},
        [("", "zendesk", "create_ticket", "",
          {"subject": "Renewal for ACME", "body": "b", "requester_email": "sam@example.com",
           "group_id": 100, "priority": "high", "tags": ["renewal"]})],
        record=OPPORTUNITY, fields={"OwnerId": "005A"}),
    Row("create_ticket, the bare minimum", "create_ticket", {"subject": "s", "body": "b"},
        [("", "zendesk", "create_ticket", "", {"subject": "s", "body": "b"})],
        record=OPPORTUNITY, fields={}),
    Row("ensure_folder", "ensure_folder",
        {"path": "/Clients/ACME/", "subfolders": ["Contracts", "/Notes/", ""]},
        [("", "graph", "ensure_folder", "Clients/ACME", {"subfolders": ["Contracts", "/Notes/"]})],
        record=OPPORTUNITY, fields={}),
    # -- file_transcript ---------------------------------------------------------------------
    Row("file_transcript attaches privately", "file_transcript",
        {"ticket_from": r"#(\d+)", "organization": "acme"},
        [("", "zendesk", "comment", "7",
          {"body": "Transcript: call #7.vtt", "public": False,
           "attachments": [{"filename": "call #7.vtt", "drive_path": "Calls/call #7.vtt"}]})],
        record=FILE, fields={"name": "call #7.vtt", "path": "Calls/call #7.vtt"},
        stored=[Record(TICKET, {"status": "open", "organization_name": "ACME"}, T0)]),
    Row("file_transcript of another client is filed elsewhere", "file_transcript",
        {"ticket_from": r"#(\d+)", "organization": "Globex", "else_folder": "Unfiled",
         "else_notify": ["ann@example.com"]},
        [("#copy", "graph", "copy_file", "Calls/call #7.vtt", {"destination": "Unfiled"}),
         mail(["ann@example.com"], [], "Transcript not filed: call #7.vtt",
              "'call #7.vtt' names ticket 7 and the client 'Globex', but ticket 7 belongs to "
              "'ACME'.\n\nTranscript: call #7.vtt (https://sp/x)\nA copy is in Unfiled.\n"
              "Please file it where it belongs.", "#notify")],
        record=FILE,
        fields={"name": "call #7.vtt", "path": "Calls/call #7.vtt", "web_url": "https://sp/x"},
        stored=[Record(TICKET, {"status": "open", "organization_name": "ACME"}, T0)]),
    Row("file_transcript without a number", "file_transcript",
        {"ticket_from": r"#(\d+)", "else_folder": "Unfiled"},
        [("#copy", "graph", "copy_file", "Calls/call.vtt", {"destination": "Unfiled"})],
        record=FILE, fields={"name": "call.vtt", "path": "Calls/call.vtt"}),
    # -- dispatch ----------------------------------------------------------------------------
    Row("dispatch hands the queue out by priority, tells the requester publicly", "dispatch",
        {"queue": "Queue", "to": "Support", "capacity": 1, "notify_requester": "Taken"},
        [("#21", "zendesk", "update", "21", {"assignee_id": 11, "group_id": 100}),
         ("#21/note", "zendesk", "comment", "21", {"body": "Taken", "public": True}),
         ("#20", "zendesk", "update", "20", {"assignee_id": 12, "group_id": 100}),
         ("#20/note", "zendesk", "comment", "20", {"body": "Taken", "public": True})],
        stored=[Record(RecordRef("zendesk.ticket", str(n)),
                       {"status": status, "priority": prio, "group_name": "Queue",
                        "created_at": f"2026-03-02T0{n - 18}:00:00Z"}, T0)
                for n, status, prio in [(20, "new", "normal"), (21, "open", "urgent"),
                                        (22, "pending", "urgent"), (23, "new", "low")]]),
    Row("dispatch counts what agents hold, then the oldest first", "dispatch",
        {"queue": "Queue", "to": "Support", "capacity": 1},
        [("#32", "zendesk", "update", "32", {"assignee_id": 12, "group_id": 100})],
        stored=[Record(RecordRef("zendesk.ticket", "30"),
                       {"status": "open", "assignee_id": 11, "group_name": "Other"}, T0),
                Record(RecordRef("zendesk.ticket", "31"),
                       {"status": "new", "priority": "normal", "group_name": "Queue",
                        "created_at": "2026-03-02T08:00:00Z"}, T0),
                Record(RecordRef("zendesk.ticket", "32"),
                       {"status": "new", "priority": "normal", "group_name": "Queue",
                        "created_at": "2026-03-02T07:00:00Z"}, T0)]),
    Row("dispatch a queue's `where`, by age only", "dispatch",
        {"queue": {"group": "Queue", "where": {"priority": "urgent"}}, "to": "Support",
         "capacity": 1, "order": ["age"]},
        [("#42", "zendesk", "update", "42", {"assignee_id": 11, "group_id": 100}),
         ("#40", "zendesk", "update", "40", {"assignee_id": 12, "group_id": 100})],
        stored=[Record(RecordRef("zendesk.ticket", str(n)),
                       {"status": "new", "priority": prio, "group_name": "Queue",
                        "created_at": f"2026-03-02T0{hour}:00:00Z"}, T0)
                for n, prio, hour in [(40, "urgent", 9), (41, "low", 7), (42, "urgent", 8)]]),
    Row("dispatch by age only, whatever the priority", "dispatch",
        {"queue": "Queue", "to": "Support", "capacity": 1, "order": ["age"]},
        [("#51", "zendesk", "update", "51", {"assignee_id": 11, "group_id": 100}),
         ("#50", "zendesk", "update", "50", {"assignee_id": 12, "group_id": 100})],
        stored=[Record(RecordRef("zendesk.ticket", str(n)),
                       {"status": "new", "priority": prio, "group_name": "Queue",
                        "created_at": f"2026-03-02T0{hour}:00:00Z"}, T0)
                for n, prio, hour in [(50, "urgent", 9), (51, "low", 7)]]),
    Row("file_transcript: a refused else_folder is never written, people are told",
        "file_transcript",
        {"ticket_from": r"#(\d+)", "else_folder": "../Elsewhere",
         "else_notify": ["ann@example.com"]},
        [mail(["ann@example.com"], [], "Transcript not filed: call.vtt",
              "No ticket number found in 'call.vtt'. The else_folder is refused: "
              + str(path_problem("../Elsewhere")) + ".\n\nTranscript: call.vtt (Calls/call.vtt)\n"
              "It was left where it is.\nPlease file it where it belongs.", "#notify")],
        record=FILE, fields={"name": "call.vtt", "path": "Calls/call.vtt"}),
    Row("file_transcript naming a deleted ticket", "file_transcript",
        {"ticket_from": r"#(\d+)", "else_notify": ["ann@example.com"]},
        [mail(["ann@example.com"], [], "Transcript not filed: call #7.vtt",
              "'call #7.vtt' names ticket 7, but ticket 7 was not found (deleted).\n\n"
              "Transcript: call #7.vtt (Calls/call #7.vtt)\nIt was left where it is.\n"
              "Please file it where it belongs.", "#notify")],
        record=FILE, fields={"name": "call #7.vtt", "path": "Calls/call #7.vtt"},
        stored=[Record(TICKET, {"status": "open"}, T0, deleted=True)]),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    found = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield found
    found.close()


def people() -> People:
    found = People({"zendesk": object(), "salesforce": object(), "graph": object()})  # type: ignore[dict-item]
    found.directories.update({"zendesk": ZENDESK, "salesforce": SALESFORCE})
    return found


def build(store: Store, row: Row, who: People | None = None,
          refused: str | None = None) -> list[Operation]:
    with store.transaction() as tx:
        for record in row.stored:
            tx.records.upsert(record)
        record = Record(row.record, row.fields, T0)
        ctx = ActionContext(tx=tx, record=record, people=who or people(), roles=row.roles,
                            mailbox=MAILBOX, now=T0)
        intent = Intent(KEY, "rule-x", row.record, row.action, row.params, T0)
        return operations(ctx, intent, refused)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_intent_becomes_exactly_these_operations(store: Store, row: Row) -> None:
    assert build(store, row) == ops(row)


def test_every_builder_has_a_row() -> None:
    assert set(BUILDERS) <= {row.action for row in ROWS}


def test_no_zendesk_comment_is_public_unless_the_rule_says_so() -> None:
    """The privacy rule read across the table: only `comment: {public: true}` and dispatch's
    `notify_requester` (a message to the requester by design) reach the customer."""
    public = {row.name for row in ROWS for *_, verb, _, payload in row.expected
              if verb == "comment" and payload["public"]}
    assert public == {"comment public when asked",
                      "dispatch hands the queue out by priority, tells the requester publicly"}


def test_round_robin_moves_on_and_remembers(store: Store) -> None:
    row = next(r for r in ROWS if r.name == "assign round robin starts at the lowest id")
    picked = [build(store, row)[0].payload["assignee_id"] for _ in range(3)]
    assert picked == [11, 12, 11]  # 14 is inactive: never picked


def test_a_second_dispatch_in_the_pass_does_not_hand_out_the_same_ticket(store: Store) -> None:
    row = next(r for r in ROWS if r.action == "dispatch")
    who = people()
    build(store, row, who)
    with pytest.raises(NothingToDo, match=r"served in this pass"):
        build(store, row, who)  # one dispatch per queue per pass: 20 and 21 are not out twice


@pytest.mark.parametrize(
    ("row", "error", "message"),
    [
        (Row("", "tag", {"tags": ["a"]}, [], record=OPPORTUNITY), ActionError,
         "tag does not apply to salesforce.opportunity"),
        (Row("", "tag", {"tags": [" "]}, []), NothingToDo, "nothing to do"),
        (Row("", "comment", {"body": "b"}, [], record=FILE), ActionError, "does not apply"),
        (Row("", "notify", {"via": "note", "body": "b"}, [], record=OPPORTUNITY), ActionError,
         "notify does not apply"),
        (Row("", "notify", {"to": ["assignee"], "subject": "s", "body": "b"}, [],
             fields={"status": "new"}), NothingToDo, "no recipient"),
        (Row("", "notify", {"to": ["Ann <ann@example.com>, x@y.z"], "subject": "s", "body": "b"},
             []), ActionError, "is not one mail address"),
        (Row("", "set", {"fields": {"subject": "x"}}, []), ActionError,
         "zendesk cannot set 'subject'"),
        (Row("", "set", {"fields": {"Name": "x"}, "record": "1"}, [], record=OPPORTUNITY),
         ActionError, "works on Zendesk tickets only"),
        (Row("", "assign", {"user": "13"}, []), ActionError, "is away and no group"),
        (Row("", "assign", {"group": "Sales"}, [], record=OPPORTUNITY, fields={}), ActionError,
         "a Salesforce owner must be a user"),
        (Row("", "file_transcript", {"ticket_from": r"#(\d+)", "else_folder": "a/../b"}, [],
             record=FILE, fields={"name": "n", "path": "p"}), ActionError,
         "No ticket number found in 'n'. The else_folder is refused"),
        (Row("", "file_transcript", {"ticket_from": r"#(\d+)"}, [], record=FILE,
             fields={"name": "n", "path": "p"}), ActionError, "No else_folder or else_notify"),
        (Row("", "create_task", {"subject": "s", "owner": "owner"}, [], record=OPPORTUNITY,
             fields={}), ActionError, "has no OwnerId"),
        (Row("", "create_event", {"subject": "s", "start": "2026-03-09T10:00:00+00:00",
                                  "duration": "2 business_days"}, [], record=OPPORTUNITY,
             fields={}), ActionError, "wall duration"),
        (Row("", "ensure_folder", {"path": "/"}, [], record=FILE), ActionError, "non-empty"),
        (Row("", "ensure_folder", {"path": "A/../B"}, [], record=FILE), ActionError, "'..'"),
        (Row("", "file_transcript", {"ticket_from": r"#(\d+)"}, [], record=FILE,
             fields={"name": "n #7"}), ActionError, "has no path"),
        (Row("", "dispatch", {"queue": "Queue", "to": "Support", "capacity": 1}, []),
         NothingToDo, "no queued ticket"),
    ],
)
def test_what_cannot_be_carried_out_says_why(
    store: Store, row: Row, error: type[Exception], message: str | None
) -> None:
    with pytest.raises(error, match=message):
        build(store, row)


def test_round_robin_with_everybody_away_is_refused(store: Store) -> None:
    who = people()
    who.directories["zendesk"] = Directory(ZENDESK.users | {
        "12": DirectoryUser("12", "Bob", "bob@example.com", away=True)}, ZENDESK.groups)
    row = Row("", "assign", {"group": "Engineers", "strategy": "round_robin"}, [])
    with pytest.raises(ActionError, match="nobody in group 'Engineers' is available"):
        build(store, row, who)


def test_a_ticket_not_read_yet_is_looked_up_once(store: Store) -> None:
    row = Row("", "file_transcript", {"ticket_from": r"#(\d+)", "else_folder": "Unfiled"}, [],
              record=FILE, fields={"name": "call #8.vtt", "path": "Calls/call #8.vtt"})
    who = people()
    with pytest.raises(RecordMiss) as miss:
        build(store, row, who)
    assert miss.value.ref == RecordRef("zendesk.ticket", "8")
    who.looked_up.add(miss.value.ref)  # looked up: the vendor has no such ticket
    assert build(store, row, who) == [
        Operation(KEY + "#copy", "graph", "copy_file", "Calls/call #8.vtt",
                  {"destination": "Unfiled"})]


def test_a_refused_attachment_takes_the_else_path(store: Store) -> None:
    row = next(r for r in ROWS if r.name == "file_transcript attaches privately")
    row = Row(row.name, row.action, {**row.params, "else_notify": ["ann@example.com"]}, [],
              record=FILE, fields=row.fields, stored=row.stored)
    found = build(store, row, refused="ticket is closed")
    assert [(o.key, o.verb, o.payload.get("to")) for o in found] == [
        (KEY + "#notify", "send_mail", ["ann@example.com"])]
    assert found[0].payload["body"].startswith(
        "Zendesk refused to attach 'call #7.vtt' to ticket 7: ticket is closed")
    assert found[0].payload["subject"] == "Transcript not filed: call #7.vtt"
    with pytest.raises(ActionError, match="ticket is closed"):  # no else path: dead letter
        build(store, Row("", "comment", {"body": "b"}, []), refused="ticket is closed")


def test_mail_without_graph_is_refused(store: Store) -> None:
    who = People({"zendesk": object()})  # type: ignore[dict-item]
    who.directories["zendesk"] = ZENDESK
    with pytest.raises(ActionError, match=r"\[graph\] section"):
        build(store, Row("", "notify", {"to": ["assignee"], "subject": "s", "body": "b"}, []),
              who)


def test_lone_surrogates_become_replacement_characters(store: Store) -> None:
    row = Row("", "comment", {"body": "a\ud800b"}, [])
    assert build(store, row)[0].payload["body"] == "a\ufffdb"


def test_written_names_the_records_read_back() -> None:
    def op(system: str, verb: str, target: str, **payload: Any) -> Operation:
        return Operation("k", system, verb, target, payload)

    assert written(op("zendesk", "update", "7")) == TICKET
    assert written(op("zendesk", "comment", "7")) == TICKET
    assert written(op("zendesk", "create_ticket", "")) is None
    assert written(op("salesforce", "update", "Opportunity", Id="006A")) == OPPORTUNITY
    assert written(op("salesforce", "create", "Task")) is None
    assert written(op("graph", "send_mail", MAILBOX)) is None
