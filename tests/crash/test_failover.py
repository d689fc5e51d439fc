"""Three `syncd run` processes on one PostgreSQL database and one sandbox failing one call in five:
the leader is SIGKILLed, or SIGSTOPped past its term and woken later, again and again, and
the dead are restarted; once it is let finish, every side effect exists exactly once.

The same rules, faults and checks as the SIGKILL test (test_sigkill.py), with a short lease
(2 s term) so that a run stays well under two minutes. `SYNCD_FAILOVERS` sets the number of
failovers (default 6: three of each), `SYNCD_CRASH_SEED` the RNG seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from postgres import PostgresServer
from sqlalchemy import select
from test_sigkill import (
    DAEMON,
    FAULT_KINDS,
    FAULT_TARGETS,
    OPPORTUNITIES,
    PER_TICKET,
    RAISED_LIMITS,
    RULES,
    SEED,
    assert_every_effect_once,
    fixture,
    wait_until,
)
from typer.testing import CliRunner

from syncd.cli import app
from syncd.sandbox.server import SandboxServer
from syncd.store.db import open_store
from syncd.store.lease import LEADER
from syncd.store.ledger import IntentState
from syncd.store.tables import leases

pytestmark = pytest.mark.crash

FAILOVERS = int(os.environ.get("SYNCD_FAILOVERS", "6"))
TERM_S = 2.0
TICKETS = 18
TAKEOVER_LIMIT_S = 15.0


def tickets(numbers: range) -> dict[str, Any]:
    """New tickets whose follow-up step (2 min after creation) falls due within seconds. Their
    last change is a minute old: the oldest the export shows at once, as it leaves out the
    last minute (and newer than where the last poll's cursor stopped)."""
    now = datetime.now(UTC)
    created = (now - timedelta(minutes=2) + timedelta(seconds=5)).isoformat()
    updated = (now - timedelta(minutes=1)).isoformat()
    return {"zendesk": {"tickets": [
        {"id": n, "subject": f"Order {n} is late", "status": "new",
         "requester": "carl@customer.example", "created_at": created, "updated_at": updated}
        for n in numbers
    ]}}


class Cluster:
    """`syncd run` processes sharing one database; each run logs to its own file."""

    def __init__(self, sandbox: SandboxServer, tmp_path: Path, url: str) -> None:
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "crash.yaml").write_text(textwrap.dedent(RULES))
        self.url = url
        self.tmp = tmp_path
        self.config = sandbox.directory / "syncd.toml"  # type: ignore[operator]
        self.env = {
            **os.environ,
            "SYNCD_SYNCD__RULES_DIR": str(rules),
            "SYNCD_SYNCD__STATE_DIR": str(tmp_path / "state"),
            "SYNCD_SYNCD__STORE_URL": url,
            "SYNCD_SYNCD__LEASE_TERM_S": str(TERM_S),
            "SYNCD_SYNCD__LEASE_RENEW_S": str(TERM_S / 4),
            "SYNCD_SYNCD__POLL_INTERVAL_S": "1",
            "SYNCD_METRICS__ENABLED": "false",
            "SYNCD_ZENDESK__INCREMENTAL_PER_MINUTE": "100000",
            "SYNCD_ZENDESK__PLAN_RATE_PER_MINUTE": "100000",
            "SYNCD_SALESFORCE__OBJECTS": '["Opportunity"]',
            "SYNCD_SYNCD__FIRST_SYNC": "fire",
            **RAISED_LIMITS,
        }
        (tmp_path / "state").mkdir()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self) -> subprocess.Popen[bytes]:
        log_path = self.tmp / f"daemon-{len(self.logs)}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, str(DAEMON), "run", "--config", str(self.config)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        self.logs.append(log_path)
        return process

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def holder(self) -> tuple[int, int] | None:
        """The lease's (pid, epoch) as the database has it, if a live lease exists."""
        store = open_store(self.url)
        try:
            with store.read() as tx:
                row = tx.conn.execute(select(leases).where(leases.c.name == LEADER)).first()
        finally:
            store.close()
        if row is None or row.expires_at <= datetime.now(UTC):
            return None
        return int(row.holder.rsplit(":", 1)[1]), int(row.epoch)

    def leader(self, timeout: float = 30.0, other_than: int = 0
               ) -> tuple[subprocess.Popen[bytes], int]:
        """The running process that holds a live lease (waiting for one, not `other_than`),
        and its epoch."""
        found: list[tuple[subprocess.Popen[bytes], int]] = []

        def led() -> bool:
            held = self.holder()
            found[:] = [(p, held[1]) for p in self.running()
                        if held and p.pid == held[0] and p.pid != other_than]
            return bool(found)

        assert wait_until(led, timeout, every=0.1), "no leader among the running daemons"
        return found[0]

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs)

    def nudge(self) -> bool:
        """What an operator does once the vendors are well again: `syncd intents --retry` each
        intent waiting out its back-off (up to an hour), so the run ends in seconds. Verify
        before resend applies as ever. False, so that it can lead a wait's condition."""
        store = open_store(self.url)
        try:
            with store.read() as tx:
                waiting = [e.intent.key for e in tx.ledger.list(state=IntentState.FAILED)]
        finally:
            store.close()
        env = {k: v for k, v in self.env.items() if k.startswith("SYNCD_")}
        for key in waiting:
            result = CliRunner().invoke(app, ["intents", "--retry", key, "--config",
                                              str(self.config)], env=env)
            assert result.exit_code in (0, 1), result.output  # 1: it moved on meanwhile
        return False

    def done(self) -> int:
        store = open_store(self.url)
        try:
            with store.read() as tx:
                return sum(n for s, n in tx.ledger.count_by_state().items() if str(s) == "done")
        finally:
            store.close()


def test_failover_after_sigkill_and_sigstop_loses_and_repeats_nothing(
    sandbox: SandboxServer, tmp_path: Path, postgres: PostgresServer
) -> None:
    started = time.monotonic()
    sandbox.control("POST", "/_sandbox/seed", fixture())
    sandbox.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": vendor, "path": path, "probability": p, "seed": SEED + n, **kind}
        for n, (vendor, path) in enumerate(FAULT_TARGETS)
        for p, kind in FAULT_KINDS
    ]})
    cluster = Cluster(sandbox, tmp_path, postgres.new_database())
    rng = random.Random(SEED)
    for _ in range(3):  # a leader and two standbys: one is always warm while one restarts
        cluster.start()
    takeovers: dict[str, list[float]] = {"sigkill": [], "sigstop": []}
    arrived = 0
    batch = -(-TICKETS // FAILOVERS)
    try:
        for round_ in range(FAILOVERS):
            if arrived < TICKETS:  # keep the leader busy while it is failed over
                numbers = range(arrived + 1, min(TICKETS, arrived + batch) + 1)
                sandbox.control("POST", "/_sandbox/seed", tickets(numbers))
                arrived = numbers[-1]
            leader, epoch = cluster.leader()
            done = cluster.done()  # fail it while it works: once it carried something out
            wait_until(lambda n=done: cluster.done() > n, timeout=8, every=0.1)
            time.sleep(rng.uniform(0.0, 1.0))
            how = "sigkill" if round_ % 2 == 0 else "sigstop"
            hit = time.monotonic()
            leader.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGSTOP)
            if how == "sigkill":
                leader.wait(timeout=30)
                cluster.start()  # systemd's Restart=on-failure: back as a standby
            _, new_epoch = cluster.leader(timeout=TAKEOVER_LIMIT_S + 5, other_than=leader.pid)
            takeovers[how].append(time.monotonic() - hit)
            assert new_epoch > epoch
            if how == "sigstop":  # it wakes up well past its term, while the new leader works
                time.sleep(rng.uniform(0.0, 2.0))
                leader.send_signal(signal.SIGCONT)
        if arrived < TICKETS:
            sandbox.control("POST", "/_sandbox/seed", tickets(range(arrived + 1, TICKETS + 1)))
        sandbox.control("DELETE", "/_sandbox/faults")
        failed_over = time.monotonic() - started
        expected = TICKETS * PER_TICKET + OPPORTUNITIES
        finished = wait_until(lambda: cluster.nudge() or cluster.done() == expected, 90)
    except BaseException:
        with postgres.admin() as admin:  # who holds what, when a takeover did not come
            for row in admin.execute("SELECT pid, state, wait_event, now() - state_change, "
                                     "left(query, 100) FROM pg_stat_activity "
                                     "WHERE datname IS NOT NULL").fetchall():
                print("pg_stat_activity", row)
        for process in cluster.running():
            process.kill()
            process.wait(timeout=30)
        for path in cluster.logs:
            print(f"== {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        raise
    for process in cluster.running():
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=60) for p in cluster.running()]
    log = cluster.log_text()
    assert finished, f"{cluster.done()}/{expected} done\n{log[-3000:]}"
    assert set(codes) <= {0}, log[-3000:]
    assert max(takeovers["sigkill"] + takeovers["sigstop"]) <= TAKEOVER_LIMIT_S, takeovers
    woken = log.count("event=leader_fenced") + log.count("event=leader_lost")
    assert woken >= len(takeovers["sigstop"]), "a woken leader did not step down"

    assert_every_effect_once(sandbox, TICKETS)
    print(f"{FAILOVERS} failovers, takeover s: {takeovers}, {expected} intents, "
          f"{failed_over:.0f} s of failovers, {time.monotonic() - started:.0f} s in all")
