"""`syncd explain RECORD --rule ID`: each condition's tests with the record's values and
answers, at the last evaluation and at each pending step (Home Assistant's traces)."""

from __future__ import annotations

import json
from datetime import timedelta

from e2e_world import NOW, World, seed
from typer.testing import CliRunner

from syncd.cli import app


def explain(world: World, *args: str) -> tuple[int, str]:
    shown = CliRunner().invoke(app, ["explain", *args, "--config", str(world.config)],
                               env=world.env)
    return shown.exit_code, shown.output


def test_a_ladder_shows_why_each_step_will_or_will_not_fire(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=5)))
    assert world.cycle().ok
    code, out = explain(world, "zendesk:1", "--rule", "ladder")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("rule ladder (") and lines[0].endswith(" on zendesk.ticket:1")
    assert lines[1].startswith("last evaluation, 2026-03-02")
    assert '  when: true' in lines and '    ✓ status in ["new", "open"]    (is open)' in lines
    assert '  until: false' in lines
    # the audits are read when a step falls due, not when syncd reads back its own triage
    assert '    ✗ agent_touched eq true    (is null)' in lines
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split(" due")[0] for s in steps] == ["step h1", "step h24", "step h26"]

    def triage_when() -> dict:
        _, out = explain(world, "zendesk:1", "--rule", "triage", "--json")
        (last,) = json.loads(out)["evaluations"]  # an instant rule: no pending steps
        return last["conditions"]["when"]

    when = triage_when()  # syncd read its triage back in the same cycle: its own tag is seen
    assert when["ok"] is False
    assert {"test": 'tags lacks "syncd-triaged"', "ok": False} in [
        {k: v for k, v in t.items() if k != "value"} for t in when["all"]]
    assert any("syncd-triaged" in (t.get("value") or []) for t in when["all"])


def test_unknown_rule_and_wrong_kind_are_explained(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=5)))
    assert world.cycle().ok
    code, out = explain(world, "zendesk:1", "--rule", "ladderr")
    assert code == 1 and "no rule 'ladderr'" in out and "did you mean 'ladder'?" in out
