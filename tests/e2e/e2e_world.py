"""The daemon end to end against the sandbox: `run --once` cycles in-process on a frozen clock
kept equal to the sandbox's, and what people would see read back from the emulators."""

from __future__ import annotations

import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.clock import FrozenClock
from syncd.connectors.tls import PinnedSession
from syncd.daemon.cycle import CycleReport, run_cycle
from syncd.daemon.notify import Notifier
from syncd.daemon.runtime import Runtime, open_runtime
from syncd.daemon.service import Service
from syncd.sandbox.server import SandboxServer
from syncd.settings import Settings, load_settings
from syncd.store.db import Store, open_store

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ANN, BOB, CARA, SUE = 1001, 1002, 1003, 1004
STAFF = {
    ANN: "ann@example.com",
    BOB: "bob@example.com",
    CARA: "cara@example.com",
    SUE: "sue@example.com",
}
KEY_HEADER = "x-syncd-key"

TRIAGE = """
rules:
  - id: triage
    on: zendesk.ticket
    when: {status: new, tags: {lacks: syncd-triaged}}
    do:
      - tag: [syncd-triaged]
      - assign: {group: Support, strategy: round_robin}
      - notify:
          to: [group:Support]
          subject: "New ticket #{{ ticket.id }}"
          body: "{{ ticket.subject }}"
"""
LADDER = """
  - id: ladder
    on: zendesk.ticket
    when: {status: [new, open]}
    since: created_at
    until: {agent_touched: true}
    steps:
      - id: h1
        after: 1h
        do: [{notify: {to: [group:Support], subject: "1h without action: #{{ ticket.id }}",
                       body: "{{ ticket.url }}"}}]
      - id: h24
        after: 24h
        do: [{comment: {body: "Nobody has answered for 24 hours."}}]
      - id: h26
        after: 26h
        do: [{notify: {to: [group:Supervisors], subject: "Stuck: #{{ ticket.id }}",
                       body: "{{ ticket.subject }}"}}]
"""
RULES = TRIAGE + LADDER


def seed(tickets: int, created: datetime) -> dict[str, Any]:
    stamp = created.isoformat().replace("+00:00", "Z")
    return {
        "clock": NOW.isoformat(),
        "zendesk": {
            "settings": {"rate_limit_per_minute": 100000, "incremental_per_minute": 100000},
            "users": [
                {"id": uid, "name": email.split("@")[0].title(), "email": email,
                 "role": "agent", "away": uid == CARA}
                for uid, email in STAFF.items()
            ] + [{"name": "Carl", "email": "carl@customer.example"}],
            "groups": [
                {"name": "Support", "members": [STAFF[ANN], STAFF[BOB], STAFF[CARA]]},
                {"name": "Supervisors", "members": [STAFF[SUE]]},
            ],
            "tickets": [
                {"id": n, "subject": f"Printer {n} on fire", "status": "new",
                 "requester": "carl@customer.example", "created_at": stamp, "updated_at": stamp}
                for n in range(1, tickets + 1)
            ],
        },
    }


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Until `condition()` holds; fails the test after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@contextmanager
def serving(rt: Runtime, notifier: Notifier | None = None) -> Iterator[Service]:
    """`syncd run`'s service on `rt` in a thread; stopped, joined and closed on the way out."""
    service = Service(rt, notifier)
    thread = threading.Thread(target=service.serve)
    thread.start()
    try:
        yield service
    finally:
        service.stop()
        thread.join(timeout=30)
        rt.close()
    assert not thread.is_alive()


class World:
    """A sandbox seeded for one test, syncd settings pointing at it, and a shared clock."""

    def __init__(self, sandbox: SandboxServer, tmp_path: Path, rules: str = RULES,
                 store_url: str | None = None) -> None:
        self.sandbox = sandbox
        self.clock = FrozenClock(NOW)
        self.rules_dir = tmp_path / "rules"
        self.rules_dir.mkdir()
        (self.rules_dir / "support.yaml").write_text(textwrap.dedent(rules))
        self.config = sandbox.directory / "syncd.toml"  # type: ignore[operator]
        self.env = {
            "SYNCD_SYNCD__RULES_DIR": str(self.rules_dir),
            "SYNCD_SYNCD__STATE_DIR": str(tmp_path / "state"),
            "SYNCD_METRICS__ENABLED": "false",
            "SYNCD_ZENDESK__INCREMENTAL_PER_MINUTE": "100000",
            # the seeded records are the scenario: act on them (going live is its own test)
            "SYNCD_SYNCD__FIRST_SYNC": "fire",
            **({"SYNCD_SYNCD__STORE_URL": store_url} if store_url else {}),
        }
        self.settings: Settings = load_settings(self.config, env=self.env)
        zd = sandbox.info["zendesk"]
        self.http = PinnedSession(verify=sandbox.ca_bundle)
        self.http.auth = (f"{zd['email']}/token", zd["token"])
        self.api = f"{sandbox.url}/api/v2"

    # -- syncd -------------------------------------------------------------------------------
    def cycle(self) -> CycleReport:
        """`syncd run --once`, in-process: a fresh runtime each time, as a fresh process."""
        rt = open_runtime(self.settings, self.clock)
        try:
            return run_cycle(rt)
        finally:
            rt.close()

    def store(self) -> Store:
        return open_store(self.settings.syncd.store_url)

    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        self.sandbox.control("POST", "/_sandbox/clock", {"now": self.clock.now().isoformat()})

    # -- what people see ---------------------------------------------------------------------
    def ticket(self, ticket_id: int) -> dict[str, Any]:
        return self._get(f"/tickets/{ticket_id}.json")["ticket"]

    def comments(self, ticket_id: int) -> list[str]:
        found = self._get(f"/tickets/{ticket_id}/comments.json")["comments"]
        return [c["body"] for c in found]

    def mail(self) -> list[dict[str, Any]]:
        return list(self.sandbox.control("GET", "/_sandbox/mail")["mail"])

    def mail_per_key(self) -> Counter[str]:
        return Counter(m["headers"].get(KEY_HEADER) for m in self.mail())

    def subjects(self) -> list[str]:
        return sorted(m["subject"] for m in self.mail())

    def new_ticket(self, subject: str) -> int:
        """A customer writes in; the clock moves on until the export shows it."""
        ticket = {"subject": subject, "comment": {"body": "Help"},
                  "requester": {"email": "carl@customer.example"}}
        resp = self.http.post(f"{self.api}/tickets.json", json={"ticket": ticket}, timeout=30)
        resp.raise_for_status()
        self.advance(timedelta(minutes=2))  # the export leaves out the last minute
        return int(resp.json()["ticket"]["id"])

    def reply(self, ticket_id: int, author: int, body: str) -> None:
        """A public comment by `author` (an agent answering the customer)."""
        comment = {"body": body, "public": True, "author_id": author}
        resp = self.http.put(f"{self.api}/tickets/{ticket_id}.json",
                             json={"ticket": {"comment": comment}}, timeout=30)
        resp.raise_for_status()

    def soql(self, query: str) -> list[dict[str, Any]]:
        sf = self.sandbox.info["salesforce"]
        http = PinnedSession(verify=self.sandbox.ca_bundle)
        token = http.post(sf["token_url"], timeout=30, data={
            "grant_type": "client_credentials", "client_id": sf["client_id"],
            "client_secret": sf["client_secret"]}).json()["access_token"]
        resp = http.get(
            f"{self.sandbox.url}/services/data/v59.0/query",
            params={"q": query},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        resp.raise_for_status()
        return list(resp.json()["records"])

    def faults(self, *specs: dict[str, Any]) -> None:
        self.sandbox.control("POST", "/_sandbox/faults", {"faults": list(specs)})

    def writes(self) -> list[dict[str, Any]]:
        log = self.sandbox.control("GET", "/_sandbox/requests")["requests"]
        reads = ("/token", "/composite")  # a composite call is syncd's Salesforce poll
        return [r for r in log if r["method"] in ("POST", "PUT", "PATCH", "DELETE")
                and not r["path"].endswith(reads)]

    def _get(self, path: str) -> dict[str, Any]:
        resp = self.http.get(f"{self.api}{path}", timeout=30)
        resp.raise_for_status()
        return dict(resp.json())
