"""Failover and the price of PostgreSQL.

1. Takeover: two `syncd run` processes on one PostgreSQL database and the sandbox; the leader is
   SIGKILLed (then restarted, as systemd would) or SIGSTOPped (then woken, once a standby
   leads), `--failovers` times each. Takeover time: from the signal to the moment a standby
   holds the lease, read from the `leases` table every 20 ms. Target: p99 <= 15 s with the
   default 10 s term (after SIGKILL it is bounded by the term + the standby's 1 s try).
2. Cycle cost: the same workload on SQLite and on PostgreSQL, run side by side: one `run --once`
   cycle over `--tickets` new tickets (poll, plan, tag + mail each), and the store alone
   (plan, claim, answer `--intents` intents, one transaction each step, as the executor
   does). Printed as PostgreSQL / SQLite ratios.

PostgreSQL is a throwaway local server (tests/postgres.py: initdb, loopback, fsync off) and
SQLite lives on /dev/shm when it exists: neither pays for fsync, so the ratios compare the
engines' round trips and locking, not disks.

    .venv/bin/python bench/failover.py [--failovers 20] [--term 10] [--tickets 300] [--intents 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import percentile, table
from postgres import PostgresServer
from sqlalchemy import select

from syncd.clock import FrozenClock
from syncd.daemon.cycle import run_cycle
from syncd.daemon.runtime import open_runtime
from syncd.model import Intent, RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings
from syncd.store.db import open_store
from syncd.store.lease import LEADER
from syncd.store.tables import leases

RULES = """
rules:
  - id: triage
    on: zendesk.ticket
    when: {status: new}
    do:
      - tag: [syncd-triaged]
      - notify: {to: [group:Support], subject: "New ticket #{{ ticket.id }}",
                 body: "{{ ticket.subject }}"}
"""
AGENTS = ["ann@example.com", "bob@example.com"]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def desk(tickets: int, created: datetime) -> dict[str, Any]:
    return {"zendesk": {
        "settings": {"rate_limit_per_minute": 1_000_000, "incremental_per_minute": 1_000_000},
        "users": [{"name": a.split("@")[0], "email": a, "role": "agent"} for a in AGENTS]
        + [{"name": "Carl", "email": "carl@customer.example"}],
        "groups": [{"name": "Support", "members": AGENTS}],
        "tickets": [{"id": n, "subject": f"Order {n}", "status": "new",
                     "requester": "carl@customer.example", "created_at": created.isoformat(),
                     "updated_at": created.isoformat()} for n in range(1, tickets + 1)],
    }, "graph": {"settings": {"rate_limit_per_minute": 1_000_000}}}


def env_for(root: Path, url: str, **syncd: object) -> dict[str, str]:
    rules = root / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "triage.yaml").write_text(RULES)
    (root / "state").mkdir(exist_ok=True)
    return {
        "SYNCD_SYNCD__RULES_DIR": str(rules),
        "SYNCD_SYNCD__STATE_DIR": str(root / "state"),
        "SYNCD_SYNCD__STORE_URL": url,
        "SYNCD_METRICS__ENABLED": "false",
        "SYNCD_ZENDESK__INCREMENTAL_PER_MINUTE": "1000000",
        "SYNCD_SYNCD__FIRST_SYNC": "fire",
        **{f"SYNCD_SYNCD__{k.upper()}": str(v) for k, v in syncd.items()},
    }


# -- 1. takeover ------------------------------------------------------------------------------
class Pair:
    def __init__(self, sandbox: SandboxServer, root: Path, url: str, term: float) -> None:
        self.url = url
        self.root = root
        self.config = sandbox.directory / "syncd.toml"  # type: ignore[operator]
        self.env = {**os.environ, **env_for(root, url, lease_term_s=term,
                                            lease_renew_s=min(3.0, term / 3),
                                            poll_interval_s=5)}
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.root / f"daemon-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "syncd.cli", "run", "--config",
                                     str(self.config)], env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        deadline = time.monotonic() + 60
        while "event=daemon_started" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"syncd run did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        return proc

    def holder(self) -> int | None:
        store = open_store(self.url)
        try:
            with store.read() as tx:
                row = tx.conn.execute(select(leases).where(leases.c.name == LEADER)).first()
        finally:
            store.close()
        if row is None or row.expires_at <= datetime.now(UTC):
            return None
        return int(row.holder.rsplit(":", 1)[1])

    def leader(self, other_than: int = 0, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.holder()
            for proc, _ in self.procs:
                if proc.pid == pid and pid != other_than and proc.poll() is None:
                    return proc
            time.sleep(0.02)
        raise RuntimeError("no leader")

    def stop(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                proc.wait(timeout=60)


def takeovers(failovers: int, term: float, pg: PostgresServer) -> dict[str, list[float]]:
    rng = random.Random(20260302)
    found: dict[str, list[float]] = {"SIGKILL": [], "SIGSTOP": []}
    with tempfile.TemporaryDirectory(prefix="syncd-failover-") as tmp, \
            SandboxServer(directory=Path(tmp) / "sandbox") as sandbox:
        sandbox.control("POST", "/_sandbox/seed", desk(5, datetime.now(UTC) - timedelta(hours=1)))
        pair = Pair(sandbox, Path(tmp), pg.new_database(), term)
        try:
            pair.start()
            pair.start()
            for n in range(2 * failovers):
                how = "SIGKILL" if n % 2 == 0 else "SIGSTOP"
                leader = pair.leader()
                time.sleep(rng.uniform(0.5, 2.0))
                hit = time.monotonic()
                leader.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGSTOP)
                pair.leader(other_than=leader.pid)
                found[how].append(time.monotonic() - hit)
                if how == "SIGKILL":
                    leader.wait(timeout=30)
                    pair.start()  # systemd's Restart=on-failure
                else:
                    leader.send_signal(signal.SIGCONT)  # it wakes and stands by
                print(f"  {how} {len(found[how])}: {found[how][-1]:.2f} s", flush=True)
        finally:
            pair.stop()
    return found


# -- 2. cycle cost ----------------------------------------------------------------------------
def one_cycle(sandbox: SandboxServer, root: Path, url: str, tickets: int) -> float:
    sandbox.control("POST", "/_sandbox/reset")
    sandbox.control("POST", "/_sandbox/clock", {"now": NOW.isoformat()})
    sandbox.control("POST", "/_sandbox/seed", desk(tickets, NOW - timedelta(minutes=5)))
    settings = load_settings(sandbox.directory / "syncd.toml",  # type: ignore[operator]
                             env=env_for(root, url))
    rt = open_runtime(settings, FrozenClock(NOW))
    try:
        started = time.perf_counter()
        report = run_cycle(rt)
        elapsed = time.perf_counter() - started
    finally:
        rt.close()
    if report.drained.done != 2 * tickets:
        raise RuntimeError(f"cycle did {report.drained.done} of {2 * tickets} intents")
    return elapsed


def store_only(url: str, count: int) -> float:
    store = open_store(url)
    ref = RecordRef("zendesk.ticket", "1")
    planned = [Intent(f"r/{n}", "r", ref, "tag", {"tags": ["x"]}, NOW) for n in range(count)]
    started = time.perf_counter()
    for intent in planned:
        with store.transaction() as tx:
            tx.ledger.plan([intent], NOW)
        with store.transaction() as tx:
            tx.ledger.mark_sent(intent.key, NOW)
        with store.transaction() as tx:
            tx.ledger.mark_done(intent.key, {"ok": True}, NOW)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def cycle_costs(pg: PostgresServer, tickets: int, intents: int) -> list[list[object]]:
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    cycles: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    stores: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    with tempfile.TemporaryDirectory(prefix="syncd-cost-", dir=shm) as tmp, \
            SandboxServer(directory=Path(tmp) / "sandbox") as sandbox:
        for n in range(3):  # side by side, alternating
            for engine in ("sqlite", "postgresql"):
                root = Path(tmp) / f"{engine}-{n}"
                root.mkdir()
                url = f"sqlite:///{root / 'state.db'}" if engine == "sqlite" else pg.new_database()
                cycles[engine].append(one_cycle(sandbox, root, url, tickets))
                other = (f"sqlite:///{root / 'store.db'}" if engine == "sqlite"
                         else pg.new_database())
                stores[engine].append(store_only(other, intents))
    rows: list[list[object]] = []
    for name, runs in ((f"one cycle, {tickets} new tickets ({2 * tickets} intents)", cycles),
                       (f"store only, {intents} intents x 3 transactions", stores)):
        lite, pg_s = statistics.median(runs["sqlite"]), statistics.median(runs["postgresql"])
        rows.append([name, f"{lite:.2f} s", f"{pg_s:.2f} s", f"{pg_s / lite:.2f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failovers", type=int, default=20, help="of each kind")
    parser.add_argument("--term", type=float, default=10.0, help="lease_term_s")
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--intents", type=int, default=2000)
    args = parser.parse_args()
    pg = PostgresServer().start()
    try:
        print(f"takeover, {args.failovers} failovers of each kind, lease term {args.term:g} s:")
        found = takeovers(args.failovers, args.term, pg)
        rows = [[how, f"{percentile(v, 50):.2f} s", f"{percentile(v, 99):.2f} s",
                 f"{max(v):.2f} s"] for how, v in found.items()]
        print(table(rows, ["after", "p50", "p99", "max"]))
        worst = max(percentile(v, 99) for v in found.values())
        print(f"target p99 <= 15 s: {'met' if worst <= 15 else 'NOT met'} ({worst:.2f} s)\n")
        print("cycle cost, PostgreSQL against SQLite (median of 3, side by side):")
        print(table(cycle_costs(pg, args.tickets, args.intents),
                    ["workload", "SQLite", "PostgreSQL", "PostgreSQL / SQLite"]))
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
