"""Two `syncd run` services on one PostgreSQL database and one sandbox: one leads and acts, the
other stands by and says who leads; a clean stop hands over at once; a database that goes away
mid-run is waited for, said so, and the work carries on when it is back, nothing doubled."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from e2e_world import NOW, TRIAGE, World, seed, wait_for
from postgres import PostgresServer
from prometheus_client.parser import text_string_to_metric_families

from syncd.clock import SystemClock
from syncd.daemon.notify import Notifier
from syncd.daemon.runtime import open_runtime
from syncd.daemon.service import Service
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings
from syncd.store.db import open_store
from syncd.store.lease import Lease

FAST_LEASE = {"SYNCD_SYNCD__LEASE_TERM_S": "2", "SYNCD_SYNCD__LEASE_RENEW_S": "0.5",
              "SYNCD_SYNCD__POLL_INTERVAL_S": "0.3"}


class Statuses(Notifier):
    """What systemd would be told in STATUS=, kept."""

    def __init__(self) -> None:
        super().__init__({})
        self.lines: list[str] = []

    def status(self, text: str) -> None:
        self.lines.append(text)


def gauge(service: Service, name: str) -> float:
    text = service.metrics.render().decode()
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == name)


@contextmanager
def running(world: World, url: str, holder: str,
            **env: str) -> Iterator[tuple[Service, Statuses]]:
    settings = load_settings(world.config, env={**world.env, **FAST_LEASE,
                                                "SYNCD_SYNCD__STORE_URL": url, **env})
    rt = open_runtime(settings, world.clock)
    statuses = Statuses()
    service = Service(rt, statuses, holder=holder)
    thread = threading.Thread(target=service.serve)
    thread.start()
    try:
        yield service, statuses
    finally:
        service.stop()
        thread.join(timeout=30)
        rt.close()
    assert not thread.is_alive()


def test_one_leads_the_other_stands_by_and_a_clean_stop_hands_over_at_once(
    sandbox: SandboxServer, tmp_path: Path, postgres: PostgresServer
) -> None:
    world = World(sandbox, tmp_path, TRIAGE)
    url = postgres.new_database()
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - timedelta(minutes=5)))
    with running(world, url, "host-a:1") as (a, a_status):
        wait_for(lambda: a.leadership.leading())
        with running(world, url, "host-b:2") as (b, b_status):
            wait_for(lambda: len(world.mail()) == 2)
            wait_for(lambda: any(s.startswith("standby, leader is host-a:1 since ")
                                 for s in b_status.lines))
            assert not b.leadership.leading()
            assert (gauge(a, "syncd_leader"), gauge(b, "syncd_leader")) == (1.0, 0.0)
            assert any(s.startswith("leader since ") for s in a_status.lines)
            rules = world.rules_dir / "support.yaml"
            rules.write_text(rules.read_text().replace("id: triage", "id: triage-v2"))
            for service in (a, b):
                service.reload()  # `systemctl reload syncd` on each host
            wait_for(lambda: all("triage-v2" in s.rt.engine.rules for s in (a, b)))
            a.stop()  # a clean stop releases the lease
            stopped = time.monotonic()
            wait_for(lambda: b.leadership.leading(), timeout=10)
            took_over_s = time.monotonic() - stopped
            assert took_over_s < 2.0, took_over_s  # well inside the 2 s term: not expiry
            assert gauge(b, "syncd_leader") == 1.0
            number = world.new_ticket("Printer on fire")
            wait_for(lambda: f"New ticket #{number}" in world.subjects())
            time.sleep(1.0)
    assert sorted(world.mail_per_key().values()) == [1, 1, 1]  # the first two not re-sent


def test_a_database_lost_mid_run_is_waited_for_and_nothing_is_lost_or_doubled(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    server = PostgresServer().start()  # its own server: this test stops it
    try:
        world = World(sandbox, tmp_path, TRIAGE)
        url = server.new_database()
        sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=5)))
        with running(world, url, "host-a:1") as (a, statuses):
            wait_for(lambda: len(world.mail()) == 1)
            server.halt()
            number = world.new_ticket("Arrived while the database was down")
            wait_for(lambda: any("state database UNREACHABLE since" in s
                                 for s in statuses.lines), timeout=30)
            assert gauge(a, "syncd_store_up") == 0.0
            time.sleep(2.5)  # a few reconnection attempts, backing off
            server.resume()
            wait_for(lambda: f"New ticket #{number}" in world.subjects(), timeout=60)
            wait_for(lambda: gauge(a, "syncd_store_up") == 1.0)
            assert gauge(a, "syncd_store_connection_lost_total") >= 1.0
            assert "UNREACHABLE" not in statuses.lines[-1]
            time.sleep(1.0)
        assert sorted(world.mail_per_key().values()) == [1, 1]
    finally:
        server.stop()


def test_a_host_neither_polls_nor_acts_before_it_holds_the_lease_and_polls_once_it_does(
    sandbox: SandboxServer, tmp_path: Path, postgres: PostgresServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Host A holds the lease (renewed here, as its daemon would); host B starts on the same
    store with tickets waiting: no export read, no write, no mail, no poll counted, no job
    failing on the fence (retention's pruning included) until A lets go. Then B polls at
    once, not a poll interval (an hour here) later."""
    world = World(sandbox, tmp_path, TRIAGE)
    url = postgres.new_database()
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - timedelta(minutes=5)))
    store = open_store(url)
    a = Lease(store, "host-a:1", clock=SystemClock(), term_s=2.0)
    assert a.acquire()
    letting_go = threading.Event()
    renewer = threading.Thread(target=lambda: [
        a.acquire() for _ in iter(lambda: letting_go.wait(0.5), True)])
    renewer.start()

    def requests() -> list[dict[str, str]]:
        return list(sandbox.control("GET", "/_sandbox/requests")["requests"])

    try:
        with running(world, url, "host-b:2", SYNCD_SYNCD__POLL_INTERVAL_S="3600") as (b, status):
            wait_for(lambda: any(s.startswith("standby, leader is host-a:1 since ")
                                 for s in status.lines))
            time.sleep(2.0)  # four lease turns of B, its jobs started
            seen = requests()
            assert not [r for r in seen if "/incremental/" in r["path"]]
            # sign-ins (OAuth token requests) to read the directories are no action
            assert not [r for r in seen if r["method"] != "GET" and "/oauth2/" not in r["path"]]
            assert world.mail() == []
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert errors == [], [r.getMessage() for r in errors]
            polls = [s.value for f in text_string_to_metric_families(
                b.metrics.render().decode()) for s in f.samples if s.name == "syncd_polls_total"]
            assert sum(polls) == 0
            letting_go.set()
            renewer.join()
            a.release()
            wait_for(lambda: b.leadership.leading(), timeout=10)
            wait_for(lambda: len(world.mail()) == 2, timeout=15)  # polled once elected
    finally:
        letting_go.set()
        renewer.join()
        store.close()
