"""The long-running service: APScheduler jobs, reloads refused or accepted, a clean stop."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from e2e_world import NOW, TRIAGE, World, seed, serving, wait_for

from syncd.clock import AcceleratedClock
from syncd.daemon.runtime import open_runtime
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings


def test_service_works_reloads_refuses_bad_rules_and_stops(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, TRIAGE)
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - timedelta(minutes=5)))
    settings = load_settings(world.config, env={**world.env, "SYNCD_SYNCD__POLL_INTERVAL_S": "0.3"})
    rt = open_runtime(settings, world.clock)
    with serving(rt) as service:
        wait_for(lambda: len(world.mail()) == 2)

        (world.rules_dir / "bad.yaml").write_text("rules:\n  - id: x\n    on: nowhere\n")
        service.reload()
        wait_for(lambda: b'syncd_reloads_total{result="refused"} 1.0' in service.metrics.render())
        assert set(rt.engine.rules) == {"triage"}  # the old rules keep running

        (world.rules_dir / "bad.yaml").write_text("rules: []\n")
        service.reload()
        wait_for(lambda: b'syncd_reloads_total{result="ok"} 1.0' in service.metrics.render())
    assert len(world.mail()) == 2


def test_an_accelerated_clock_polls_every_poll_interval_of_its_own_time(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, TRIAGE)
    sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=5)))
    assert world.settings.syncd.poll_interval_s == 30  # the default: half a second at 60x
    rt = open_runtime(world.settings, AcceleratedClock(NOW, 60.0))

    def exports() -> int:
        log = sandbox.control("GET", "/_sandbox/requests")["requests"]
        return sum("/incremental/" in r["path"] for r in log)

    with serving(rt):
        started = time.monotonic()
        wait_for(lambda: exports() >= 5, timeout=15)
        elapsed = time.monotonic() - started
    assert elapsed < 10  # five polls: not one every 30 real seconds
