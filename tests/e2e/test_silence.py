"""`syncd silence`: while a silence holds, a rule's due intents are skipped with the silence as
the reason (audited); other rules and records go on; it ends by itself or with `expire`."""

from __future__ import annotations

import json
from datetime import timedelta

from e2e_world import NOW, World, seed
from typer.testing import CliRunner, Result

from syncd.cli import app
from syncd.store.ledger import IntentState


def cli(world: World, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--config", str(world.config)], env=world.env)


def states(world: World) -> dict[tuple[str, str], set[str]]:
    store = world.store()
    try:
        with store.read() as tx:
            found: dict[tuple[str, str], set[str]] = {}
            for e in tx.ledger.list():
                found.setdefault((e.intent.rule_id, str(e.intent.record)), set()).add(
                    e.state.value)
            return found
    finally:
        store.close()


def test_a_silenced_rule_skips_with_the_silence_as_reason(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - timedelta(minutes=5)))
    assert world.cycle().ok  # creates the store; triage acts on both tickets
    added = cli(world, "silence", "add", "--rule", "ladder", "--record", "zendesk:1",
                "--for", "2h", "--start", NOW.isoformat(), "--comment", "customer on holiday")
    assert added.exit_code == 0, added.output
    silence_id = added.output.split()[1].rstrip(":")
    listed = json.loads(cli(world, "silence", "list", "--all", "--json").output)
    assert [(s["id"], s["rule_id"], s["record"]) for s in listed] == [
        (silence_id, "ladder", "zendesk.ticket:1")]

    world.advance(timedelta(hours=1, minutes=1))  # the ladder's 1 h step falls due on both
    assert world.cycle().ok
    found = states(world)
    assert found[("ladder", "zendesk.ticket:1")] == {IntentState.SKIPPED.value}
    assert IntentState.DONE.value in found[("ladder", "zendesk.ticket:2")]
    audit = json.loads(cli(world, "audit", "zendesk:1", "--json").output)
    (skipped,) = [i for i in audit["intents"] if i["rule"] == "ladder"]
    reasons = [row["detail"].get("reason", "") for row in audit["audit"]
               if row["intent"] == skipped["key"]]
    assert any("silenced on zendesk.ticket:1" in r and "customer on holiday" in r
               for r in reasons), reasons
    assert any(row["event"] == "silence_added" for row in audit["audit"])

    assert cli(world, "silence", "expire", silence_id).exit_code == 1  # over: it ended by itself
    now = cli(world, "silence", "add", "--rule", "triage", "--for", "30m", "--comment", "noisy")
    current = now.output.split()[1].rstrip(":")
    assert current in cli(world, "silence", "list").output  # from now on, for 30 minutes
    assert silence_id not in cli(world, "silence", "list").output
    expired = cli(world, "silence", "expire", current)
    assert expired.exit_code == 0, expired.output
    assert cli(world, "silence", "list").output.strip() == "no silences"
    assert cli(world, "silence", "add", "--rule", "x", "--for", "-2h", "--comment", "c"
               ).exit_code == 2
