"""`syncd replay`: a changed rule set evaluated over the history the daemon recorded while it
ran against the sandbox; no vendor is called."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

from e2e_world import NOW, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.sandbox.server import SandboxServer

MINUTE = timedelta(minutes=1)
RUNNING = """
rules:
  - id: urgent
    on: zendesk.ticket
    when: {priority: urgent}
    do: [{tag: [hot]}]
  - id: ladder
    on: zendesk.ticket
    when: {status: [new, open]}
    since: created_at
    steps:
      - id: h1
        after: 1h
        do: [{comment: {body: "An hour without an answer."}}]
  - id: welcome
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [welcomed]}]
"""
# urgent also takes high; the ladder's first step waits two hours; welcome is unchanged
CANDIDATE = RUNNING.replace("when: {priority: urgent}", "when: {priority: [urgent, high]}") \
    .replace("after: 1h", "after: 2h")
# urgent stops taking urgent tickets that are already solved
NARROWED = RUNNING.replace("when: {priority: urgent}",
                           "when: {priority: urgent, status: [new, open]}")


def rules_dir(tmp_path: Path, name: str, text: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "support.yaml").write_text(textwrap.dedent(text))
    return directory


def replay(world: World, rules: Path, *more: str) -> tuple[int, Any]:
    result = CliRunner().invoke(app, [
        "replay", "--rules", str(rules), "--config", str(world.config), "--json",
        "--since", "2026-03-01T00:00:00Z", "--until", "2026-03-03T12:00:00Z", *more,
    ], env=world.env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def recorded_history(sandbox: SandboxServer, tmp_path: Path) -> World:
    """Three tickets seen for two and a half hours: #1 and #2 turn urgent, #3 high; #1 is
    solved at 11:12, between the ladder's instant (10:55) and the candidate's (11:55)."""
    world = World(sandbox, tmp_path, RUNNING)
    fixture = seed(3, NOW - 5 * MINUTE)
    for ticket, priority in zip(fixture["zendesk"]["tickets"], ["normal", "normal", "low"],
                                strict=True):
        ticket["priority"] = priority
    sandbox.control("POST", "/_sandbox/seed", fixture)
    world.cycle()
    world.advance(20 * MINUTE)
    for ticket, change in ((2, {"priority": "urgent"}), (3, {"priority": "high"}),
                           (1, {"priority": "urgent"})):
        world.http.put(f"{world.api}/tickets/{ticket}.json", json={"ticket": change},
                       timeout=30).raise_for_status()
    world.advance(2 * MINUTE)
    world.cycle()
    for n in range(12):
        if n == 5:
            world.http.put(f"{world.api}/tickets/1.json", json={"ticket": {"status": "solved"}},
                           timeout=30).raise_for_status()
        world.advance(10 * MINUTE)
        world.cycle()
    return world


def test_replay_lists_added_removed_and_moved_intents_and_exits_1(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = recorded_history(sandbox, tmp_path)
    calls = len(sandbox.control("GET", "/_sandbox/requests")["requests"])
    code, found = replay(world, rules_dir(tmp_path, "candidate", CANDIDATE))
    assert code == 1
    assert len(sandbox.control("GET", "/_sandbox/requests")["requests"]) == calls  # no vendor
    rules = {r["rule"]: r for r in found["rules"]}
    assert set(rules) == {"urgent", "ladder"}  # welcome is unchanged: no difference
    added = rules["urgent"]["added"]
    assert (added["count"], rules["urgent"]["removed"]["count"]) == (1, 0)
    [example] = added["examples"]
    assert (example["record"], example["action"]) == ("zendesk.ticket:3", "tag")
    assert example["values"] == {"priority": "high"}
    moved = rules["ladder"]["moved"]
    assert moved["count"] == 2
    assert [e["record"] for e in moved["examples"]] == ["zendesk.ticket:2", "zendesk.ticket:3"]
    assert moved["examples"][0]["from"] == "2026-03-02T10:55:00+00:00"
    assert moved["examples"][0]["to"] == "2026-03-02T11:55:00+00:00"
    assert rules["ladder"]["removed"]["count"] == 1  # ticket 1: solved before the new instant
    assert rules["ladder"]["removed"]["examples"][0]["values"] == {"status": "solved"}
    text = CliRunner().invoke(app, [
        "replay", "--rules", str(tmp_path / "candidate"), "--config", str(world.config),
        "--since", "2026-03-01T00:00:00Z", "--until", "2026-03-03T12:00:00Z",
    ], env={**world.env, "COLUMNS": "200"})
    assert text.exit_code == 1
    lines = text.output.splitlines()
    assert "urgent: 1 added, 0 removed, 0 moved" in lines
    assert "  + zendesk.ticket:3 tag 2026-03-02 10:22:00 UTC (priority=high)" in lines
    assert "  - zendesk.ticket:1 comment 2026-03-02 10:55:00 UTC (status=solved)" in lines
    assert ("  ~ zendesk.ticket:2 comment 2026-03-02 10:55:00 UTC -> 2026-03-02 11:55:00 UTC"
            in lines)


def test_replay_of_a_narrowed_rule_lists_what_it_would_no_longer_do(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = recorded_history(sandbox, tmp_path)
    code, found = replay(world, rules_dir(tmp_path, "narrowed", NARROWED))
    assert code == 0  # ticket 1 was still open when it turned urgent: the same intents
    world.http.put(f"{world.api}/tickets/2.json", json={"ticket": {"status": "solved"}},
                   timeout=30).raise_for_status()
    world.advance(2 * MINUTE)
    world.cycle()
    world.http.put(f"{world.api}/tickets/2.json", json={"ticket": {"priority": "low"}},
                   timeout=30).raise_for_status()
    world.advance(2 * MINUTE)
    world.cycle()
    world.http.put(f"{world.api}/tickets/2.json", json={"ticket": {"priority": "urgent"}},
                   timeout=30).raise_for_status()
    world.advance(2 * MINUTE)
    world.cycle()
    code, found = replay(world, rules_dir(tmp_path, "narrowed-again", NARROWED))
    assert code == 1
    [rule] = found["rules"]
    assert (rule["rule"], rule["removed"]["count"], rule["added"]["count"]) == ("urgent", 1, 0)
    [example] = rule["removed"]["examples"]
    assert example["record"] == "zendesk.ticket:2"
    assert example["values"] == {"status": "solved"}  # what failed the narrowed `when`


def test_replay_of_the_running_rules_finds_no_difference(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = recorded_history(sandbox, tmp_path)
    code, found = replay(world, world.rules_dir)
    assert (code, found["rules"]) == (0, [])
    result = CliRunner().invoke(app, ["replay", "--rules", str(world.rules_dir), "--config",
                                      str(world.config), "--since", "14d"], env=world.env)
    assert result.exit_code == 0 and "no difference" in result.output
