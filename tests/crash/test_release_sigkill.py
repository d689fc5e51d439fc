"""Intents held by a blast-radius limit, released by a person, while `syncd run` is killed with
SIGKILL again and again and the mail API loses answers: each held mail goes out exactly once.

The daemon is the unmodified command line (crash_daemon.py) against an in-process sandbox;
`SYNCD_CRASH_SEED` sets the RNG seed.
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
from typer.testing import CliRunner

from syncd.cli import app
from syncd.sandbox.server import SandboxServer
from syncd.store.db import open_store

pytestmark = pytest.mark.crash

SEED = int(os.environ.get("SYNCD_CRASH_SEED", "20260302"))
TICKETS = 16
LIMIT = 3
KILLS = 12
KEY_HEADER = "x-syncd-key"
DAEMON = Path(__file__).with_name("crash_daemon.py")
RULES = f"""
rules:
  - id: welcome
    on: zendesk.ticket
    limits: {{per_hour: {{mail: {LIMIT}}}}}
    when: {{status: new}}
    do: [{{notify: {{to: [requester], subject: "Welcome #{{{{ ticket.id }}}}", body: Hi}}}}]
"""


def fixture() -> dict[str, Any]:
    created = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    return {
        "zendesk": {
            "settings": {"rate_limit_per_minute": 100000, "incremental_per_minute": 100000},
            "users": [{"name": "Carl", "email": "carl@customer.example"}],
            "tickets": [
                {"id": n, "subject": f"Order {n}", "status": "new",
                 "requester": "carl@customer.example", "created_at": created,
                 "updated_at": created}
                for n in range(1, TICKETS + 1)
            ],
        },
        "graph": {"settings": {"rate_limit_per_minute": 100000}},
    }


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.2)
    return done()


def test_released_intents_go_out_exactly_once_across_sigkills(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "welcome.yaml").write_text(textwrap.dedent(RULES))
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    config = sandbox.directory / "syncd.toml"  # type: ignore[operator]
    env = {
        **os.environ,
        "SYNCD_SYNCD__RULES_DIR": str(rules),
        "SYNCD_SYNCD__STATE_DIR": str(state),
        "SYNCD_SYNCD__POLL_INTERVAL_S": "1",
        "SYNCD_METRICS__ENABLED": "false",
        "SYNCD_ZENDESK__INCREMENTAL_PER_MINUTE": "100000",
        "SYNCD_ZENDESK__PLAN_RATE_PER_MINUTE": "100000",
        "SYNCD_SYNCD__FIRST_SYNC": "fire",
    }
    sandbox.control("POST", "/_sandbox/seed", fixture())

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen([sys.executable, str(DAEMON), "run", "--config", str(config)],
                                    env=env, stdout=out, stderr=subprocess.STDOUT)

    def states() -> Counter[str]:
        if not (state / "state.db").exists():
            return Counter()
        store = open_store(f"sqlite:///{state / 'state.db'}")
        try:
            with store.read() as tx:
                return Counter({str(s): n for s, n in tx.ledger.count_by_state().items() if n})
        finally:
            store.close()

    process = start()
    held = wait_until(lambda: states()["held"] == TICKETS - LIMIT, timeout=60)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert held, f"{states()}\n{log.read_text(errors='replace')[-3000:]}"
    assert len(sandbox.control("GET", "/_sandbox/mail")["mail"]) == LIMIT

    # the mail API now applies a send and loses the answer, or fails outright, now and then
    sandbox.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": "graph", "path": r"/sendMail$", "probability": p, "seed": SEED + n, **kind}
        for n, (p, kind) in enumerate([
            (0.2, {"kind": "apply_then_drop"}), (0.1, {"kind": "apply_then_status",
                                                       "status": 500}),
            (0.1, {"kind": "status", "status": 503})])
    ]})
    released = CliRunner().invoke(app, ["intents", "--release", "welcome", "--config",
                                        str(config)], env=env)
    assert released.exit_code == 0, released.output
    rng = random.Random(SEED)
    for _ in range(KILLS):
        process = start()
        time.sleep(rng.uniform(0.5, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    sandbox.control("DELETE", "/_sandbox/faults")
    process = start()
    try:
        finished = wait_until(lambda: states() == Counter({"done": TICKETS}), timeout=120)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert finished, f"{states()}\n{log.read_text(errors='replace')[-3000:]}"
    mails = sandbox.control("GET", "/_sandbox/mail")["mail"]
    assert Counter(m["subject"] for m in mails) == {f"Welcome #{n}": 1
                                                    for n in range(1, TICKETS + 1)}
    assert set(Counter(m["headers"].get(KEY_HEADER) for m in mails).values()) == {1}
