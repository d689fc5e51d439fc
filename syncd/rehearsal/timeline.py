"""The timeline: what happened in the vendors, told as events (simulated time, process, system,
what, record). It is read from what the vendors show, over HTTPS (client.py), not from syncd's
log: the sandbox's request log (`/_sandbox/requests`) says which vendors were written to since
the last look; then new mail (`/_sandbox/mail`), new Zendesk ticket audits, Salesforce tasks
(SOQL) and SharePoint paths (the drive's delta) are read and compared with the last look. A
change names its process (the rule file's name) through the syncd key the vendor keeps with it
(mail header, audit metadata, ticket external id, the task's Syncd_Key__c), or else through a
cast of records (the demo's story names its own).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from syncd.rehearsal.client import SandboxClient

SYNCD = "syncd"
_SEND_MAIL = "/sendMail"
_SHORT = 70  # characters of a comment shown
_GREETING = re.compile(r"^(hello|hi|dear)\b[^.]{0,40},$", re.IGNORECASE)


@dataclass(frozen=True)
class Event:
    at: datetime
    process: str
    system: str  # Zendesk, Salesforce, SharePoint, Mail
    what: str
    record: str
    by: str = SYNCD  # or the person who acted

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def rule_processes(rules_dir: Path) -> dict[str, str]:
    """Rule id -> process id (its rule file's name)."""
    found: dict[str, str] = {}
    for path in sorted(rules_dir.glob("*.yaml")):
        doc = YAML(typ="safe").load(path.read_text()) or {}
        found |= {rule["id"]: path.stem for rule in doc.get("rules") or []}
    return found


class Timeline:
    """Compares what the vendors show with the last look; `observe` returns what changed.

    `cast`: record names (ticket subjects, opportunity names, paths' parts) -> process, for
    changes that carry no syncd key (a person's, a folder)."""

    def __init__(self, client: SandboxClient, rules_dir: Path, at: datetime,
                 cast: dict[str, str] | None = None) -> None:
        self.client = client
        self.cast = cast or {}
        self.processes = rule_processes(rules_dir)
        fields = client.zendesk_all("/ticket_fields.json", "ticket_fields")
        self.field_titles = {str(f["id"]): f["title"] for f in fields}
        self.group_names = {g["id"]: g["name"] for g in client.zendesk_all("/groups.json",
                                                                           "groups")}
        self.people = {u["id"]: u["name"] for u in client.zendesk_all("/users.json", "users")}
        self._tickets: dict[int, dict[str, Any]] = {}  # by id, as of the last audits read
        self._requests = 0
        self._mail = 0
        self._audit = 0
        self._tasks: dict[str, dict[str, Any]] = {}
        self._task_key = True  # the Task has Syncd_Key__c (else it is read without)
        self._paths: dict[str, bool] = {}
        self._drive: str | None = None  # the drive's delta link as of the last look
        self._drive_items: dict[str, tuple[str, str | None, bool]] = {}  # id: name, parent, dir
        self._baseline(at)

    def _baseline(self, at: datetime) -> None:
        """What the sandbox holds when the rehearsal starts is where it starts, not news."""
        self._requests = len(self.client.control("GET", "requests")["requests"])
        self._zendesk(at)
        self._salesforce(at)
        self._sharepoint(at)
        self._new_mail(at)

    def observe(self, at: datetime) -> list[Event]:
        """Events for every change the vendors show since the last call."""
        log = self.client.control("GET", "requests")["requests"]
        writes = [r for r in log[self._requests :] if _took_effect(r)]
        self._requests = len(log)
        vendors = {r["vendor"] for r in writes if not r["path"].endswith(_SEND_MAIL)}
        events = self._zendesk(at) if "zendesk" in vendors else []
        if "salesforce" in vendors:
            events += self._salesforce(at)
        if "graph" in vendors:
            events += self._sharepoint(at)
        if any(r["path"].endswith(_SEND_MAIL) for r in writes):
            events += self._new_mail(at)
        return events

    def _process(self, key: str | None, *names: str) -> str:
        if key and "/" in key:
            return self.processes.get(key.split("/", 1)[0], "")
        return next((self.cast[n] for n in names if n in self.cast), "")

    def person(self, user_id: int | None) -> str:
        if user_id not in self.people:
            self.people.update({u["id"]: u["name"] for u in self.client.zendesk_all(
                "/users.json", "users")})
        return str(self.people.get(user_id, user_id))

    # -- mail --------------------------------------------------------------------------------
    def _new_mail(self, at: datetime) -> list[Event]:
        mail = self.client.control("GET", "mail")["mail"]
        new, self._mail = mail[self._mail :], len(mail)
        return [Event(at, self._process(m["headers"].get("x-syncd-key")), "Mail",
                      f"mailed “{m['subject']}”", _recipients(m)) for m in new]

    # -- Zendesk -----------------------------------------------------------------------------
    def _zendesk(self, at: datetime) -> list[Event]:
        audits: list[dict[str, Any]] = []
        page = 1
        while True:  # newest first: read until an audit already seen
            found = self.client.call("zendesk", "GET", "/ticket_audits.json",
                                     params={"page": page, "per_page": 100})["audits"]
            fresh = [a for a in found if a["id"] > self._audit]
            audits += fresh
            if len(fresh) < 100:
                break
            page += 1
        if not audits:
            return []
        self._audit = max(a["id"] for a in audits)
        self._tickets = {t["id"]: t for t in self.client.zendesk_all("/tickets.json", "tickets")}
        told: dict[tuple[str, str], list[str]] = {}  # a ticket's changes told as one
        for audit in sorted(audits, key=lambda a: a["id"]):
            process, record, what = self._audit_change(audit)
            told.setdefault((process, record), []).append(what)
        return [Event(at, process, "Zendesk", "; ".join(whats), record)
                for (process, record), whats in told.items()]

    def _audit_change(self, audit: dict[str, Any]) -> tuple[str, str, str]:
        """(process, record, what) of one audit."""
        ticket = self._tickets.get(audit["ticket_id"], {})
        subject = str(ticket.get("subject", ""))
        key = (audit["metadata"].get("custom") or {}).get("syncd_key") or ticket.get("external_id")
        what = "; ".join(self._describe(e) for e in audit["events"] if e["type"] != "Create")
        if any(e["type"] == "Create" for e in audit["events"]):
            what = f"opened the ticket; {what}" if what else "opened the ticket"
        return self._process(key, subject), f"#{audit['ticket_id']} {subject}", what

    def _describe(self, event: dict[str, Any]) -> str:
        if event["type"] == "Comment":
            kind = "public reply" if event["public"] else "internal note"
            files = [a["file_name"] for a in event.get("attachments") or []]
            attached = f" + {', '.join(files)}" if files else ""
            return f"{kind} “{_first_line(event['body'])}”{attached}"
        name, value = event.get("field_name"), event.get("value")
        before = event.get("previous_value")
        if name == "tags":
            added = [f"+{t}" for t in value or [] if t not in (before or [])]
            return "tags " + " ".join(added + [f"−{t}" for t in before or [] if t not in value])
        if name == "assignee_id":
            return f"assigned to {self.person(int(value))}" if value else "unassigned"
        if name == "group_id":
            return f"group {self.group_names.get(int(value), value)}" if value else "no group"
        if name in ("status", "priority"):
            return f"{name} {before} → {value}" if before else f"{name} {value}"
        return f"{self.field_titles.get(str(name), name)} → {value}"

    # -- Salesforce --------------------------------------------------------------------------
    def _salesforce(self, at: datetime) -> list[Event]:
        """New tasks and moved ones, told per record (opportunity) and process."""
        soql = self.client.soql
        opportunities = {o["Id"]: o["Name"] for o in soql("SELECT Id, Name FROM Opportunity")}
        users = {u["Id"]: u["Name"] for u in soql("SELECT Id, Name FROM User")}
        tasks = {t["Id"]: t for t in self._read_tasks()}
        told: dict[tuple[str, str], list[str]] = {}
        for tid, task in tasks.items():
            old = self._tasks.get(tid)
            due = task.get("ActivityDate")
            if old is not None and old.get("ActivityDate") == due:
                continue
            subject = str(task.get("Subject") or "").split(": ")[0]
            record = opportunities.get(task.get("WhatId"), "")
            process = self._process(task.get("Syncd_Key__c"), record)
            told.setdefault((process, record), []).append(
                f"“{subject}” ({users.get(task.get('OwnerId'), '?')}, due {due})"
                if old is None else f"“{subject}” moved to {due}")
        self._tasks = tasks
        return [Event(at, process, "Salesforce", _tasks_told(lines), record)
                for (process, record), lines in told.items()]

    def _read_tasks(self) -> list[dict[str, Any]]:
        fields = "Id, Subject, ActivityDate, WhatId, OwnerId"
        if self._task_key:
            try:
                return self.client.soql(f"SELECT {fields}, Syncd_Key__c FROM Task")
            except Exception:  # an org without syncd's key field on Task
                self._task_key = False
        return self.client.soql(f"SELECT {fields} FROM Task")

    # -- SharePoint --------------------------------------------------------------------------
    def _sharepoint(self, at: datetime) -> list[Event]:
        changed, self._drive = self.client.drive_changes(self._drive)
        for item in changed:  # a delta carries no paths: they are built from parents' ids
            if item.get("deleted") is not None:
                self._drive_items.pop(item["id"], None)
            elif item.get("root") is None:
                parent = (item.get("parentReference") or {}).get("id")
                folder = item.get("folder") is not None
                self._drive_items[item["id"]] = (item["name"], parent, folder)
        items = drive_paths(self._drive_items)
        new = sorted(set(items) - set(self._paths))
        self._paths = items
        events = []
        for path in new:
            parent = path.rpartition("/")[0]
            if parent in new:
                continue  # told with its parent
            inside = [p for p in new if p.startswith(f"{path}/")]
            what = "new folder" if items[path] else "new file"
            if inside:
                what += f" with {', '.join(p[len(path) + 1 :] for p in inside)}"
            events.append(Event(at, self._process(None, *reversed(path.split("/"))),
                                "SharePoint", what, path))
        return events


def drive_paths(items: dict[str, tuple[str, str | None, bool]]) -> dict[str, bool]:
    """Every drive item's path below the root ('Clients/Acme Ltd/Meetings'): is it a folder?
    `items`: id -> (name, parent id, folder?), the root left out."""

    def path(item_id: str) -> str:
        name, parent, _ = items[item_id]
        return f"{path(parent)}/{name}" if parent in items else name

    return {path(i): folder for i, (_, _, folder) in items.items()}


def _took_effect(request: dict[str, Any]) -> bool:
    """A write the vendor accepted (token requests are not data, nor are Salesforce polls:
    reads in one composite POST)."""
    return (request["method"] in {"POST", "PUT", "PATCH", "DELETE"}
            and (request["status"] or 500) < 400
            and not request["path"].endswith(("/token", "/composite")))


def _tasks_told(lines: list[str]) -> str:
    return f"task {lines[0]}" if len(lines) == 1 else f"{len(lines)} tasks: {'; '.join(lines)}"


def _first_line(text: str) -> str:
    """The first line that says something (not a greeting such as "Hello,")."""
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    line = next((x for x in lines if not _GREETING.match(x)), lines[0] if lines else "")
    return line if len(line) <= _SHORT else f"{line[: _SHORT - 1]}…"


def _recipients(mail: dict[str, Any]) -> str:
    to = ", ".join(mail["to"])
    return f"{to} (cc {len(mail['cc'])})" if mail.get("cc") else to
