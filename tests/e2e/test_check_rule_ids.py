"""`syncd check --config`: a rule whose id changed is a new rule to the running daemon, and
the admin is told before a reload makes records go through it again."""

from __future__ import annotations

from datetime import timedelta

from e2e_world import NOW, RULES, World, seed
from typer.testing import CliRunner

from syncd.cli import app


def test_a_renamed_rule_is_flagged_against_what_the_daemon_remembers(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(3, NOW - timedelta(minutes=30)))
    assert world.cycle().ok  # the daemon has run triage and the ladder on three tickets
    renamed = world.rules_dir.parent / "edited"
    renamed.mkdir()
    (renamed / "support.yaml").write_text(RULES.replace("id: triage", "id: triage-v2"))

    shown = CliRunner().invoke(app, ["check", str(renamed), "--config", str(world.config)],
                               env=world.env)
    assert shown.exit_code == 0, shown.output  # warnings, not errors: renaming may be meant
    new, gone = [line for line in shown.output.splitlines() if ": warning: " in line]
    assert new.startswith(f"{renamed / 'support.yaml'}:3:")
    assert "rule 'triage-v2' is new to the daemon" in new and "keep the old id" in new
    assert "'triage'" in new
    assert gone.startswith(f"{world.settings.syncd.store_url}: warning: ")
    assert "rule 'triage' went through 3 records" in gone and "cancels its pending" in gone
    assert shown.output.rstrip().endswith("2 warnings")

    unchanged = CliRunner().invoke(app, ["check", str(world.rules_dir), "--config",
                                         str(world.config)], env=world.env)
    assert unchanged.exit_code == 0 and "warning" not in unchanged.output


def test_rules_that_have_touched_no_record_are_not_new_to_the_daemon(world: World) -> None:
    quiet = RULES + """
  - id: vip-only
    on: zendesk.ticket
    when: {tags: {contains: vip}}
    do: [{tag: [vip-seen]}]
"""
    (world.rules_dir / "support.yaml").write_text(quiet)
    world.sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - timedelta(minutes=30)))
    assert world.cycle().ok  # accepts the rule set; no ticket is a vip's

    shown = CliRunner().invoke(app, ["check", str(world.rules_dir), "--config",
                                     str(world.config)], env=world.env)
    assert shown.exit_code == 0 and "warning" not in shown.output, shown.output
