"""Zendesk webhooks as a push source (daemon/push.py): the sandbox's webhook, fired by a ticket
change and signed as Zendesk signs, makes `syncd run` act in seconds without waiting for the
export; forged, unsigned and replayed requests do nothing; a lost webhook is caught by the
export and a repeated one (or the export's copy of the same change) acts once."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import secret_scan
from e2e_world import NOW, TRIAGE, World, seed, serving, wait_for
from prometheus_client.parser import text_string_to_metric_families

from syncd.connectors.zendesk_webhook import SIGNATURE, TIMESTAMP, sign
from syncd.daemon.planner import apply_record
from syncd.daemon.runtime import open_runtime
from syncd.daemon.service import Service
from syncd.model import Record, RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings

SECRET = "whsec-" + "3f9a1c7e5b2d4086" * 2
PATH = "/webhooks/zendesk"
STAMP = "2026-03-02T10:00:00Z"  # NOW, as the sandbox signs it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Hooked:
    """A World whose syncd listens for webhooks over HTTPS (a cert from the sandbox's CA) with
    the signing secret in its own credentials directory."""

    def __init__(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        self.world = World(sandbox, tmp_path, rules=TRIAGE)
        secret_scan.secrets.add(SECRET)
        creds = tmp_path / "credentials"
        shutil.copytree(sandbox.directory / "credentials", creds)  # type: ignore[operator]
        (creds / "zendesk_webhook_secret").write_text(SECRET + "\n")
        cert = sandbox.ca.issue_cert("127.0.0.1")
        (tmp_path / "hook.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(tmp_path / "hook.key"))
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}{PATH}"
        self.env = {
            **self.world.env,
            "SYNCD_SECRETS__DIR": str(creds),
            "SYNCD_SYNCD__POLL_INTERVAL_S": "3600",  # one poll at start: the rest is pushed
            "SYNCD_WEBHOOKS__ENABLED": "true",
            "SYNCD_WEBHOOKS__PORT": str(self.port),
            "SYNCD_WEBHOOKS__TLS_CERT": str(tmp_path / "hook.pem"),
            "SYNCD_WEBHOOKS__TLS_KEY": str(tmp_path / "hook.key"),
            "SYNCD_WEBHOOKS__BATCH_S": "0.2",
        }
        self.settings = load_settings(self.world.config, env=self.env)
        self.ca = sandbox.ca_bundle

    def seed(self, endpoint: str | None = None) -> None:
        fixture = seed(0, NOW)
        fixture["zendesk"]["webhooks"] = [{"endpoint": endpoint or self.url,
                                           "signing_secret": SECRET, "ca_bundle": self.ca}]
        self.world.sandbox.control("POST", "/_sandbox/seed", fixture)

    @contextmanager
    def running(self) -> Iterator[Service]:
        """`syncd run` with webhooks on, after one `run --once` made the source live; the
        service's own poll at start is done (the next one is an hour later)."""
        self.world.cycle()
        reads = self.incremental_reads()
        rt = open_runtime(self.settings, self.world.clock)
        with serving(rt) as service:
            wait_for(self._listening)
            wait_for(lambda: self.incremental_reads() > reads)
            yield service

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        tls = ssl.create_default_context(cafile=self.ca)
        return httpx.post(self.url, content=body, headers=headers, verify=tls, timeout=10)

    def new_ticket(self, subject: str) -> int:
        """A customer writes in (the clock stands: the export would not show it yet)."""
        ticket = {"subject": subject, "comment": {"body": "Help"},
                  "requester": {"email": "carl@customer.example"}}
        resp = self.world.http.post(f"{self.world.api}/tickets.json", json={"ticket": ticket},
                                    timeout=30)
        resp.raise_for_status()
        return int(resp.json()["ticket"]["id"])

    def requests(self) -> list[dict[str, Any]]:
        return list(self.world.sandbox.control("GET", "/_sandbox/requests")["requests"])

    def incremental_reads(self) -> int:
        return sum("/incremental/" in r["path"] for r in self.requests())

    def rereads(self) -> int:
        """show_many calls: the daemon's re-reads of pushed tickets (one ticket per test)."""
        return sum(r["path"].endswith("show_many.json") for r in self.requests())

    def triage_writes(self, ticket_id: int) -> int:
        """Ticket updates: triage's tag and assignment go as one."""
        return sum(r["method"] == "PUT" and r["path"].endswith(f"/tickets/{ticket_id}.json")
                   for r in self.requests())

    def triaged(self, ticket_id: int) -> bool:
        return "syncd-triaged" in self.world.ticket(ticket_id)["tags"]


@pytest.fixture
def hooked(sandbox: SandboxServer, tmp_path: Path) -> Hooked:
    return Hooked(sandbox, tmp_path)


def test_a_signed_webhook_acts_in_seconds_without_waiting_for_the_export(hooked: Hooked) -> None:
    hooked.seed()
    with hooked.running():
        ticket = hooked.new_ticket("Printer on fire")
        wait_for(lambda: hooked.triaged(ticket))
        wait_for(lambda: len(hooked.world.mail()) == 1)
        assert hooked.incremental_reads() == 2  # `--once` and the start: the webhook brought it
    subjects = hooked.world.subjects()
    assert subjects == [f"New ticket #{ticket}"]


def test_forged_and_unsigned_requests_do_nothing(hooked: Hooked) -> None:
    hooked.seed(endpoint="https://127.0.0.1:9/nowhere")  # the sandbox's own webhook goes astray
    with hooked.running():
        ticket = hooked.new_ticket("Printer on fire")
        body = json.dumps({"ticket_id": str(ticket)}).encode()
        forged = {SIGNATURE: sign("not-the-secret-at-all", STAMP, body), TIMESTAMP: STAMP}
        assert hooked.post(body, forged).status_code == 401
        assert hooked.post(body, {}).status_code == 401
        assert hooked.post(body, {TIMESTAMP: STAMP}).status_code == 401
        stale = "2026-03-02T09:50:00Z"
        assert hooked.post(body, {SIGNATURE: sign(SECRET, stale, body),
                                  TIMESTAMP: stale}).status_code == 401
        threading.Event().wait(1.0)  # longer than the batch window: nothing may follow
        assert hooked.rereads() == 0
        assert not hooked.triaged(ticket)
    assert hooked.world.mail() == []


def test_a_replayed_request_is_refused_and_the_ticket_acted_on_once(hooked: Hooked) -> None:
    hooked.seed(endpoint="https://127.0.0.1:9/nowhere")
    with hooked.running():
        ticket = hooked.new_ticket("Printer on fire")
        body = json.dumps({"ticket_id": str(ticket)}).encode()
        signed = {SIGNATURE: sign(SECRET, STAMP, body), TIMESTAMP: STAMP}
        assert hooked.post(body, signed).status_code == 200
        wait_for(lambda: hooked.triaged(ticket))
        replay = hooked.post(body, signed)
        assert replay.status_code == 401 and "replayed" in replay.json()["error"]
        wait_for(lambda: len(hooked.world.mail()) == 1)
    assert hooked.triage_writes(ticket) == 1


def test_a_duplicate_webhook_and_the_exports_copy_act_once(hooked: Hooked) -> None:
    """Zendesk may send one change twice (two triggers, a retry re-signed); the export later
    returns the same change. One triage write, one mail."""
    hooked.seed()
    with hooked.running():
        ticket = hooked.new_ticket("Printer on fire")
        wait_for(lambda: hooked.triaged(ticket) and len(hooked.world.mail()) == 1)
        body = json.dumps({"ticket_id": str(ticket)}).encode()
        again = "2026-03-02T10:00:01Z"  # a second, distinct and genuine request
        assert hooked.post(body, {SIGNATURE: sign(SECRET, again, body),
                                  TIMESTAMP: again}).status_code == 200
        wait_for(lambda: hooked.rereads() >= 2)
        threading.Event().wait(0.5)
    hooked.world.advance(timedelta(minutes=2))  # the export shows the change now
    report = hooked.world.cycle()
    assert report.polled["zendesk"] >= 1
    assert hooked.triage_writes(ticket) == 1
    assert len(hooked.world.mail()) == 1


def test_a_lost_webhook_is_caught_by_the_export(hooked: Hooked) -> None:
    hooked.seed(endpoint=f"https://127.0.0.1:{free_port()}{PATH}")  # nobody listens: lost
    hooked.world.cycle()  # live: the source has its cursor
    ticket = hooked.new_ticket("Printer on fire")
    sender = hooked.world.sandbox.sandbox.vendors[0].webhooks  # type: ignore[attr-defined]
    wait_for(lambda: sender.idle() and len(sender.delivered) == 1)
    assert sender.delivered[0].log == ["ConnectionRefusedError"]
    assert not hooked.triaged(ticket)
    hooked.world.advance(timedelta(minutes=2))
    hooked.world.cycle()
    assert hooked.triaged(ticket)
    assert len(hooked.world.mail()) == 1


def test_an_older_copy_of_a_ticket_never_replaces_a_newer_one(hooked: Hooked) -> None:
    """A poll's page read before a webhook's re-read but committed after it carries the older
    version: applying it must not undo the newer one (nor re-fire the rule it left)."""
    rt = open_runtime(hooked.settings, hooked.world.clock)
    try:
        ref = RecordRef("zendesk.ticket", "7")
        base = {"id": 7, "status": "new", "tags": [], "subject": "x", "group_id": None,
                "assignee_id": None, "created_at": "2026-03-02T09:59:00Z"}
        old = Record(ref, {**base, "updated_at": "2026-03-02T09:59:00Z"}, NOW)
        new = Record(ref, {**base, "tags": ["syncd-triaged"], "updated_at": "2026-03-02T10:00:00Z"},
                     NOW)
        with rt.store.transaction() as tx:
            first = apply_record(tx, rt.engine, old, NOW, rt.grace)
            apply_record(tx, rt.engine, new, NOW, rt.grace)
            late = apply_record(tx, rt.engine, old, NOW + timedelta(seconds=1), rt.grace)
            stored = tx.records.get(ref)
        assert first.planned  # tag, assign, notify
        assert late.planned == []
        assert stored is not None and stored.fields["tags"] == ["syncd-triaged"]
    finally:
        rt.close()


def webhook_samples(service: Service) -> dict[tuple[str, str], float]:
    """(sample name, reason) -> value of the webhook series /metrics shows."""
    families = text_string_to_metric_families(service.metrics.render().decode())
    return {(s.name, s.labels.get("reason", "")): s.value for f in families for s in f.samples
            if "webhook" in s.name}


def test_metrics_count_accepted_and_refused_requests_by_reason(hooked: Hooked) -> None:
    """An operator sees webhooks arrive, and why some are refused: a wrong signing secret
    (signature), a clock off or a captured request (stale), a repeat (replay), anything else."""
    hooked.seed(endpoint="https://127.0.0.1:9/nowhere")
    with hooked.running() as service:
        before = webhook_samples(service)
        assert before[("syncd_webhooks_accepted_total", "")] == 0
        assert before[("syncd_webhooks_refused_total", "signature")] == 0  # there from start
        ticket = hooked.new_ticket("Printer on fire")
        body = json.dumps({"ticket_id": str(ticket)}).encode()
        signed = {SIGNATURE: sign(SECRET, STAMP, body), TIMESTAMP: STAMP}
        assert hooked.post(body, signed).status_code == 200
        assert hooked.post(body, signed).status_code == 401  # replay
        forged = {SIGNATURE: sign("not-the-secret-at-all", STAMP, body), TIMESTAMP: STAMP}
        assert hooked.post(body, forged).status_code == 401
        assert hooked.post(body, {}).status_code == 401
        stale = "2026-03-02T09:50:00Z"
        assert hooked.post(body, {SIGNATURE: sign(SECRET, stale, body),
                                  TIMESTAMP: stale}).status_code == 401
        nothing = b'{"hello": 1}'
        assert hooked.post(nothing, {SIGNATURE: sign(SECRET, STAMP, nothing),
                                     TIMESTAMP: STAMP}).status_code == 401
        after = webhook_samples(service)
    assert after[("syncd_webhooks_accepted_total", "")] == 1
    assert after[("syncd_webhook_last_accepted_timestamp_seconds", "")] == NOW.timestamp()
    refused = {reason: v for (name, reason), v in after.items()
               if name == "syncd_webhooks_refused_total"}
    assert refused == {"signature": 2, "stale": 1, "replay": 1, "unknown": 1}
