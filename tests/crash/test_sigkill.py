"""`syncd run` killed with SIGKILL at random moments, again and again, while the vendors fail one
call in five: once it is let finish, every side effect exists exactly once.

The sandbox runs in this process; the daemon is a subprocess with the sandbox's `syncd.toml`.
`SYNCD_CRASH_KILLS` sets the number of kills (default 50), `SYNCD_CRASH_SEED` the RNG seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.connectors.tls import PinnedSession
from syncd.sandbox.server import SandboxServer
from syncd.store.db import open_store

pytestmark = pytest.mark.crash

KILLS = int(os.environ.get("SYNCD_CRASH_KILLS", "50"))
SEED = int(os.environ.get("SYNCD_CRASH_SEED", "20260302"))
TICKETS = 60
BATCH = 10  # tickets arriving every five kills
OPPORTUNITIES = 12
PER_TICKET = 5  # intents per ticket: triage's four actions and the follow-up's mail
KEY_HEADER = "x-syncd-key"
# the tickets arrive within the hour: more writes than the default limits let one rule make
RAISED_LIMITS = {f"SYNCD_LIMITS__{k}": '{"any": 100000}'
                 for k in ("RULE_PER_CYCLE", "RULE_PER_HOUR", "PER_CYCLE", "PER_HOUR")}
DAEMON = Path(__file__).with_name("crash_daemon.py")
AGENTS = ["ann@example.com", "bob@example.com"]

RULES = """
rules:
  - id: triage
    on: zendesk.ticket
    when: {status: new}
    do:
      - tag: [syncd-triaged]
      - assign: {group: Support, strategy: round_robin}
      - comment: {body: "Thanks for writing in (#{{ ticket.id }})."}
      - notify: {to: [group:Support], subject: "New ticket #{{ ticket.id }}",
                 body: "{{ ticket.subject }}"}
  - id: follow-up
    on: zendesk.ticket
    when: {status: [new, open]}
    since: created_at
    steps:
      - id: soon
        after: 2m
        do: [{notify: {to: [group:Support], subject: "Still open: #{{ ticket.id }}",
                       body: "{{ ticket.url }}"}}]
  - id: kickoff
    on: salesforce.opportunity
    when: {StageName: Closed Won}
    do:
      - create_task: {subject: "Kick-off {{ opportunity.Name }}"}
"""
# one call in five fails, in every way a vendor fails (writes, and the reads verify relies on)
FAULT_KINDS: list[tuple[float, dict[str, Any]]] = [
    (0.04, {"kind": "status", "status": 429, "retry_after": 1}),
    (0.04, {"kind": "status", "status": 503}),
    (0.03, {"kind": "delay", "delay_s": 0.5}),
    (0.04, {"kind": "apply_then_status", "status": 500}),
    (0.02, {"kind": "drop"}),
    (0.03, {"kind": "apply_then_drop"}),
]
FAULT_TARGETS = [
    ("zendesk", r"^/api/v2/tickets/\d+"),
    ("graph", r"/sendMail$|/SentItems/"),
    ("salesforce", r"^/services/data/v[\d.]+/(sobjects/Task|query)"),
]


def fixture() -> dict[str, Any]:
    """People, groups and deals; tickets arrive while the daemon is being killed."""
    return {
        "zendesk": {
            "settings": {"rate_limit_per_minute": 100000, "incremental_per_minute": 100000},
            "users": [{"name": a.split("@")[0], "email": a, "role": "agent"} for a in AGENTS]
            + [{"name": "Carl", "email": "carl@customer.example"}],
            "groups": [{"name": "Support", "members": AGENTS}],
        },
        "salesforce": {
            "settings": {
                "daily_api_limit": 10_000_000,
                "custom_fields": {
                    "Task": [{"name": "Syncd_Key__c", "type": "string", "external_id": True,
                              "unique": True}],
                },
            },
            "accounts": [{"Name": "Acme", "@key": "acme"}],
            "opportunities": [
                {"Name": f"Deal {n}", "StageName": "Closed Won", "CloseDate": "2026-03-01",
                 "AccountId": "@acme"}
                for n in range(1, OPPORTUNITIES + 1)
            ],
        },
        "graph": {"settings": {"rate_limit_per_minute": 100000}},
    }


def tickets(numbers: range) -> dict[str, Any]:
    """New tickets, a minute old: their follow-up step falls due two minutes after creation."""
    created = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return {
        "zendesk": {
            "tickets": [
                {"id": n, "subject": f"Order {n} is late", "status": "new",
                 "requester": "carl@customer.example", "created_at": created,
                 "updated_at": created}
                for n in numbers
            ]
        }
    }


class Daemon:
    """Starts `syncd run` against the sandbox; all runs append to one log file."""

    def __init__(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "crash.yaml").write_text(textwrap.dedent(RULES))
        self.state = tmp_path / "state"
        self.log = tmp_path / "daemon.log"
        self.config = sandbox.directory / "syncd.toml"  # type: ignore[operator]
        self.env = {
            **os.environ,
            "SYNCD_SYNCD__RULES_DIR": str(rules),
            "SYNCD_SYNCD__STATE_DIR": str(self.state),
            "SYNCD_SYNCD__POLL_INTERVAL_S": "1",
            "SYNCD_METRICS__ENABLED": "false",
            "SYNCD_ZENDESK__INCREMENTAL_PER_MINUTE": "100000",
            "SYNCD_ZENDESK__PLAN_RATE_PER_MINUTE": "100000",
            "SYNCD_SALESFORCE__OBJECTS": '["Opportunity"]',
            "SYNCD_SYNCD__FIRST_SYNC": "fire",  # the seeded records are the scenario
            **RAISED_LIMITS,
        }

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, str(DAEMON), "run", "--config", str(self.config)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )

    def started(self) -> int:
        """How many runs so far got to `daemon_started` (jobs scheduled, work begins)."""
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count("event=daemon_started")

    def store_url(self) -> str:
        return f"sqlite:///{self.state / 'state.db'}"


def wait_until(done: Callable[[], bool], timeout: float, every: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(every)
    return done()


def test_sigkill_at_random_moments_loses_and_repeats_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    sandbox.control("POST", "/_sandbox/seed", fixture())
    sandbox.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": vendor, "path": path, "probability": p, "seed": SEED + n, **kind}
        for n, (vendor, path) in enumerate(FAULT_TARGETS)
        for p, kind in FAULT_KINDS
    ]})
    daemon = Daemon(sandbox, tmp_path)
    rng = random.Random(SEED)

    kills = 0
    arrived = 0
    while kills < KILLS:
        if arrived < TICKETS and kills % 5 == 0:  # keep the daemon busy while it is killed
            batch = range(arrived + 1, min(TICKETS, arrived + BATCH) + 1)
            sandbox.control("POST", "/_sandbox/seed", tickets(batch))
            arrived = batch[-1]
        started_before = daemon.started()
        process = daemon.start()
        if rng.random() < 0.25:  # during start-up (settling what the last run left `sent`)
            time.sleep(rng.uniform(0.5, 3.0))
        else:  # while it works: polling, planning, executing
            wait_until(lambda n=started_before: daemon.started() > n, timeout=20, every=0.05)
            time.sleep(rng.uniform(0.0, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=30)

    if arrived < TICKETS:  # a short run (few kills): the rest arrive now
        sandbox.control("POST", "/_sandbox/seed", tickets(range(arrived + 1, TICKETS + 1)))
    sandbox.control("DELETE", "/_sandbox/faults")
    expected = TICKETS * PER_TICKET + OPPORTUNITIES
    process = daemon.start()
    try:
        finished = wait_until(lambda: done_count(daemon) == expected, timeout=120)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    log = daemon.log.read_text(errors="replace")
    assert finished, f"{done_count(daemon)}/{expected} done\n{log[-3000:]}"
    assert code == 0, log[-3000:]  # SIGTERM: the work in flight finished, clean exit
    working = log.count("event=daemon_started") - 1  # killed runs that had started working
    assert working >= KILLS // 2, f"only {working} of {KILLS} kills hit a working daemon"

    assert_every_effect_once(sandbox, TICKETS)
    print(
        f"{kills} kills ({working} while working), {expected} intents, "
        f"{verified(daemon)} settled by verifying at the vendor, "
        f"{time.monotonic() - started:.0f} s"
    )


def done_count(daemon: Daemon) -> int:
    if not (daemon.state / "state.db").exists():
        return 0
    store = open_store(daemon.store_url())
    try:
        with store.read() as tx:
            counts = tx.ledger.count_by_state()
        return sum(n for state, n in counts.items() if str(state) == "done")
    finally:
        store.close()


def verified(daemon: Daemon) -> int:
    """Intents whose outcome was unknown (a kill, a lost answer) and was found at the vendor."""
    store = open_store(daemon.store_url())
    try:
        with store.read() as tx:
            return sum("verified" in (e.vendor_answer or {}) for e in tx.ledger.list())
    finally:
        store.close()


def assert_every_effect_once(sandbox: SandboxServer, tickets: int) -> None:
    """What people see at the vendors after the scenario: every mail, comment, tag, assignment
    and task of `tickets` tickets and the opportunities exactly once, whatever was killed
    meanwhile."""
    see = Vendors(sandbox)
    mails = sandbox.control("GET", "/_sandbox/mail")["mail"]
    per_key = Counter(m["headers"].get(KEY_HEADER) for m in mails)
    assert len(mails) == tickets * 2 and set(per_key.values()) == {1}
    subjects = Counter(m["subject"] for m in mails)
    assignees: Counter[int] = Counter()
    for n in range(1, tickets + 1):
        assert subjects[f"New ticket #{n}"] == subjects[f"Still open: #{n}"] == 1
        assert see.comments(n).count(f"Thanks for writing in (#{n}).") == 1, n
        ticket = see.ticket(n)
        assert "syncd-triaged" in ticket["tags"]
        assignees[ticket["assignee_id"]] += 1
    # in turn, each choice made once: a retried assignment repeats its frozen choice
    assert sorted(assignees.values()) == [tickets // 2] * 2 and None not in assignees
    tasks = Counter(t["Subject"] for t in see.tasks())
    assert tasks == {f"Kick-off Deal {n}": 1 for n in range(1, OPPORTUNITIES + 1)}


class Vendors:
    """What people see, read straight from the emulators' APIs."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.url = sandbox.url
        self.http = PinnedSession(verify=sandbox.ca_bundle)
        zd, sf = sandbox.info["zendesk"], sandbox.info["salesforce"]
        self.zendesk_auth = (f"{zd['email']}/token", zd["token"])
        token = self.http.post(sf["token_url"], data={
            "grant_type": "client_credentials", "client_id": sf["client_id"],
            "client_secret": sf["client_secret"]}, timeout=30).json()
        self.sf_token = token["access_token"]

    def ticket(self, n: int) -> dict[str, Any]:
        return dict(self._zendesk(f"/tickets/{n}.json")["ticket"])

    def comments(self, n: int) -> list[str]:
        return [c["body"] for c in self._zendesk(f"/tickets/{n}/comments.json")["comments"]]

    def tasks(self) -> list[dict[str, Any]]:
        resp = self.http.get(f"{self.url}/services/data/v59.0/query",
                             params={"q": "SELECT Id, Subject, Syncd_Key__c FROM Task"},
                             headers={"Authorization": f"Bearer {self.sf_token}"},
                             timeout=30)
        resp.raise_for_status()
        return list(resp.json()["records"])

    def _zendesk(self, path: str) -> dict[str, Any]:
        resp = self.http.get(f"{self.url}/api/v2{path}", auth=self.zendesk_auth, timeout=30)
        resp.raise_for_status()
        return dict(resp.json())
