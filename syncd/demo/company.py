"""The example company in the sandbox: seeded from the shipped config/sandbox-seed.yaml,
syncd's settings pointing at it with a copy of the shipped rules, and the Zendesk API its people
use to act and to look. Reading goes through the vendors' APIs (and the sandbox's own view of
SharePoint and Salesforce), never through syncd's store or log: what people would see is the
evidence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.connectors.tls import PinnedSession
from syncd.errors import Skippable
from syncd.resources import RULES, SANDBOX_SEED, copy_tree, shipped
from syncd.sandbox.server import SandboxServer, load_fixture
from syncd.settings import Settings, load_settings

# The SharePoint lists and folders the shipped rules read (docs/processes.md, "What to set up").
LISTS = ["Releases", "Arrivals", "Weekly Meetings", "Onsite Visits"]
WATCHED_FOLDERS = ["Transcripts"]
FAST = 100_000  # the sandbox's Zendesk rate limits: the story is weeks long, not its API use


@dataclass
class Checkpoint:
    """What people see at one instant."""

    tickets: dict[str, dict[str, Any]]  # by subject
    comments: dict[str, list[dict[str, Any]]]  # by ticket subject
    mail: list[dict[str, Any]]  # sent since the previous checkpoint
    tasks: list[dict[str, Any]]  # every Salesforce task
    paths: set[str]  # every SharePoint path
    failures: list[str] = field(default_factory=list)  # what syncd's cycle reported

    def mail_to(self, address: str) -> list[str]:
        return [m["subject"] for m in self.mail if address in m["to"]]


class NotReached(Skippable, LookupError):
    """A checkpoint the run stopped before (`syncd demo --until`)."""


@dataclass
class Seen:
    """The story's checkpoints, by name in time order, and the directories to read them with."""

    at: dict[str, Checkpoint]
    users: dict[str, int]  # Zendesk user id by email
    groups: dict[str, int]  # Zendesk group id by name
    sf_users: dict[str, str]  # Salesforce user email by id

    def __getitem__(self, name: str) -> Checkpoint:
        if name not in self.at:
            raise NotReached(f"checkpoint {name!r} was not reached")
        return self.at[name]

    def values(self) -> list[Checkpoint]:
        return list(self.at.values())

    def after(self, name: str) -> list[Checkpoint]:
        """The checkpoints after `name`: everything that happened later."""
        self[name]  # NotReached if the run stopped before it
        names = list(self.at)
        return [self.at[n] for n in names[names.index(name) + 1 :]]

    def user(self, email: str) -> int:
        return self.users[email]

    def group(self, name: str) -> int:
        return self.groups[name]


class Company:
    """The sandbox seeded with the example company, and syncd's settings for it."""

    def __init__(self, server: SandboxServer, workdir: Path) -> None:
        self.server = server
        server.control("POST", "/_sandbox/reset")
        fixture = load_fixture(shipped(SANDBOX_SEED))
        fixture["zendesk"]["settings"] = {"rate_limit_per_minute": FAST,
                                          "incremental_per_minute": FAST}
        server.control("POST", "/_sandbox/seed", fixture)
        self.start = datetime.fromisoformat(fixture["clock"])
        self.rules_dir = workdir / "rules"
        copy_tree(shipped(RULES), self.rules_dir)
        self.settings = self._settings(workdir)
        zd = server.info["zendesk"]
        self.http = PinnedSession(verify=server.ca_bundle)
        self.http.auth = (f"{zd['email']}/token", zd["token"])
        self.api = f"{server.url}/api/v2"
        self.fields = {f["key"]: f for f in self.get("/ticket_fields.json")["ticket_fields"]}
        self.people = {u["id"]: u for u in self.get("/users.json")["users"]}
        self.users = {u["email"]: u["id"] for u in self.people.values()}
        self.groups = {g["name"]: g["id"] for g in self.get("/groups.json")["groups"]}
        self._mail_seen = 0

    def _settings(self, workdir: Path) -> Settings:
        env = {
            "SYNCD_SYNCD__RULES_DIR": str(self.rules_dir),
            "SYNCD_SYNCD__STATE_DIR": str(workdir / "state"),
            "SYNCD_METRICS__ENABLED": "false",
            # The seeded records are the story's news: act on them (going live would not).
            "SYNCD_SYNCD__FIRST_SYNC": "fire",
            "SYNCD_ZENDESK__INCREMENTAL_PER_MINUTE": str(FAST),
            "SYNCD_GRAPH__LISTS": json.dumps(LISTS),
            "SYNCD_GRAPH__WATCHED_FOLDERS": json.dumps(WATCHED_FOLDERS),
        }
        if self.server.directory is None:
            raise ValueError("the sandbox needs a directory: it writes syncd.toml there")
        return load_settings(self.server.directory / "syncd.toml", env=env)

    def set_clock(self, when: datetime) -> None:
        self.server.control("POST", "/_sandbox/clock", {"now": when.isoformat()})

    # -- what people see ---------------------------------------------------------------------
    def look(self, failures: list[str]) -> Checkpoint:
        tickets = {t["subject"]: t for t in self.get("/tickets.json")["tickets"]}
        comments = {subject: self.get(f"/tickets/{t['id']}/comments.json")["comments"]
                    for subject, t in tickets.items()}
        mail = self.mail()
        new, self._mail_seen = mail[self._mail_seen :], len(mail)
        snapshot = self.server.sandbox.snapshot()
        return Checkpoint(tickets, comments, new, self.salesforce(snapshot).get("Task", []),
                          set(drive_items(snapshot["graph"])), failures)

    def mail(self) -> list[dict[str, Any]]:
        return list(self.server.control("GET", "/_sandbox/mail")["mail"])

    def seen(self, checkpoints: dict[str, Checkpoint]) -> Seen:
        sf = self.salesforce()["User"]
        return Seen(checkpoints, self.users, self.groups, {u["Id"]: u["Email"] for u in sf})

    def salesforce(self, snapshot: dict[str, Any] | None = None) -> dict[str, list[Any]]:
        """Salesforce's records by object name."""
        state = snapshot or self.server.sandbox.snapshot()
        return dict(state["salesforce"]["store"]["records"])

    def person(self, user_id: int | None) -> str:
        return str(self.people[user_id]["name"]) if user_id in self.people else str(user_id)

    # -- what people do ----------------------------------------------------------------------
    def ticket(self, subject: str) -> dict[str, Any]:
        found = [t for t in self.get("/tickets.json")["tickets"] if t["subject"] == subject]
        if len(found) != 1:
            raise LookupError(f"{len(found)} tickets named {subject!r}")
        return found[0]

    def assignee_email(self, subject: str) -> str:
        assignee = self.ticket(subject)["assignee_id"]
        return next(email for email, uid in self.users.items() if uid == assignee)

    def update(self, subject: str, custom: dict[str, Any] | None = None, **fields: Any) -> None:
        if custom:
            fields["custom_fields"] = [{"id": self.fields[k]["id"], "value": v}
                                       for k, v in custom.items()]
        self._send("PUT", f"/tickets/{self.ticket(subject)['id']}.json", {"ticket": fields})

    def reply(self, subject: str, author: str, body: str) -> None:
        comment = {"body": body, "public": True, "author_id": self.users[author]}
        self.update(subject, comment=comment)

    def add_tags(self, subject: str, *tags: str) -> None:
        self._send("PUT", f"/tickets/{self.ticket(subject)['id']}/tags.json", {"tags": list(tags)})

    def new_ticket(self, subject: str, requester: str, group: str, body: str) -> None:
        ticket = {"subject": subject, "comment": {"body": body}, "requester": {"email": requester},
                  "group_id": self.groups[group]}
        self._send("POST", "/tickets.json", {"ticket": ticket})

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        resp = self.http.get(f"{self.api}{path}", params=params or None, timeout=30)
        resp.raise_for_status()
        return dict(resp.json())

    def _send(self, method: str, path: str, body: dict[str, Any]) -> None:
        resp = self.http.request(method, f"{self.api}{path}", json=body, timeout=30)
        resp.raise_for_status()


def drive_items(graph: dict[str, Any]) -> dict[str, bool]:
    """Every live drive item's path ('Clients/Acme Ltd/Meetings/x.vtt'): is it a folder?"""
    items = {i["id"]: i for d in graph["drives"] for i in d["items"] if not i.get("deleted")}

    def path(item: dict[str, Any]) -> str:
        parent = items.get(item.get("parent_id") or "")
        if parent is None or (parent["name"] == "root" and parent.get("parent_id") is None):
            return str(item["name"])
        return f"{path(parent)}/{item['name']}"

    return {path(i): bool(i["is_folder"]) for i in items.values() if i["name"] != "root"}
