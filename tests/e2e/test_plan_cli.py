"""`syncd plan`: --rule and --record filters, a repeat's occurrences on one line, audit's time
and reason formats, and a TSV mode that never wraps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from e2e_world import NOW, TRIAGE, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.sandbox.server import SandboxServer

NAG = TRIAGE + """
  - id: nag
    on: zendesk.ticket
    when: {status: [new, open]}
    since: created_at
    steps:
      - after: 15m
        repeat: every 15m
        do: [{tag: [nagged]}]
"""


def plan(world: World, *args: str) -> str:
    shown = CliRunner().invoke(app, ["plan", "--config", str(world.config), *args],
                               env=world.env)
    assert shown.exit_code == 0, shown.output
    return shown.stdout  # logs go to stderr


def test_plan_filters_groups_repeats_and_speaks_like_audit(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, NAG)
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - timedelta(hours=3)))
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()  # plan runs on the real clock
    out = plan(world, "--rule", "nag", "--record", "zendesk:1", "--at", later).splitlines()
    assert out[0].endswith("in 1 lines") and "intent(s) due by" in out[0]
    (line,) = [x for x in out[1:] if not x.startswith("    ")]
    assert " nag  zendesk.ticket:1  tag step step-1" in line
    assert " UTC … " in line and "x)" in line  # first … last (count)
    assert out[2].startswith("    because status=")

    everything = plan(world)
    assert "triage" in everything and "zendesk.ticket:2" in everything

    tsv = plan(world, "--tsv", "--rule", "triage").splitlines()
    assert tsv[0].split("\t") == ["due", "rule", "record", "action", "step", "shadow",
                                  "params", "reason"]
    assert len(tsv) == 1 + 2 * 3  # two tickets: tag, assign, notify each
    assert all(len(row.split("\t")) == 8 for row in tsv)
