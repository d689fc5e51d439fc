"""A restart with a rules directory that fails `syncd check` runs the last accepted rules, and
says so, instead of running nothing; a first start with broken rules is refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from e2e_world import NOW, TRIAGE, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.daemon.runtime import RulesRefused, open_runtime
from syncd.daemon.service import Service
from syncd.sandbox.server import SandboxServer

BROKEN = "rules:\n  - id: typo\n    on: zendesk.tickt\n    do: [{tag: [x]}]\n"


def test_a_restart_on_broken_rules_runs_the_last_accepted_ones_and_says_so(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=5)))
    assert world.cycle().ok  # accepted: triage runs, and is saved as the last accepted set
    (world.rules_dir / "typo.yaml").write_text(BROKEN)
    ticket = world.new_ticket("Scanner jammed")

    report = world.cycle()  # a fresh runtime: a restart on the broken directory
    assert "syncd-triaged" in world.ticket(ticket)["tags"]  # the good rules kept running
    (failure,) = report.failures
    assert failure.startswith(f"rules directory refused: {world.rules_dir / 'typo.yaml'}:3:")
    assert "running the rules accepted 2026-03-02T10:00:00+00:00" in failure
    rt = open_runtime(world.settings, world.clock)
    try:
        assert "rules REFUSED at start" in Service(rt).status.line()
    finally:
        rt.close()

    (world.rules_dir / "typo.yaml").write_text(BROKEN.replace("zendesk.tickt", "zendesk.ticket"))
    fixed = world.cycle()
    assert fixed.ok, fixed.failures  # the directory loads again, and is the new saved set


def test_a_first_start_on_broken_rules_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = World(sandbox, tmp_path, TRIAGE + BROKEN.removeprefix("rules:\n"))
    with pytest.raises(RulesRefused):
        open_runtime(world.settings, world.clock)
    shown = CliRunner().invoke(app, ["run", "--once", "--config", str(world.config)],
                               env=world.env)
    assert shown.exit_code == 2  # refused: nothing to fall back to
    assert "support.yaml:" in shown.output and "zendesk.tickt" in shown.output
