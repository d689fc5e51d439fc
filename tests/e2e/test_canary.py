"""`mode: canary`: a rule acts live on a stable share of records and in shadow on the rest;
moving it to live later does not re-fire what either side planned."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

from e2e_world import NOW, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.sandbox.server import SandboxServer

MINUTE = timedelta(minutes=1)
TICKETS = 60
CANARY = """
rules:
  - id: tag-new
    on: zendesk.ticket
    mode: canary
    canary: {percent: 20}
    when: {status: new}
    do: [{tag: [seen]}]
"""


def tagged(world: World, tickets: int) -> set[int]:
    found = world.http.get(f"{world.api}/tickets.json", params={"per_page": 100},
                           timeout=30).json()["tickets"]
    return {t["id"] for t in found if "seen" in t["tags"] and t["id"] <= tickets}


def sides(world: World) -> dict[str, set[int]]:
    with world.store().read() as tx:
        entries = tx.ledger.list(rule_id="tag-new")
    found: dict[str, set[int]] = {}
    for e in entries:
        found.setdefault(e.intent.reason["canary"], set()).add(int(e.intent.record.id))
    return found


def cli(world: World, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--config", str(world.config)],
                                env={**world.env, "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return result.output


def rules(world: World, text: str) -> None:
    (world.rules_dir / "support.yaml").write_text(textwrap.dedent(text))


def test_a_canary_rule_acts_on_its_share_only_and_going_live_refires_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, CANARY)
    sandbox.control("POST", "/_sandbox/seed", seed(TICKETS, NOW - 5 * MINUTE))
    report = world.cycle()
    found = sides(world)
    live, shadow = found["live"], found["shadow"]
    assert live | shadow == set(range(1, TICKETS + 1)) and not live & shadow
    assert 5 <= len(live) <= 22  # about 20 % of 60, chosen by a hash
    assert tagged(world, TICKETS) == live  # acted on its share only
    assert (report.drained.done, report.drained.skipped) == (len(live), len(shadow))
    with world.store().read() as tx:
        reasons = {e.state.value: e for e in tx.ledger.list(rule_id="tag-new")}
        skipped = [a for a in tx.audit.for_intent(reasons["skipped"].intent.key)
                   if a.event == "skipped"]
    assert skipped[0].detail["reason"] == "canary: shadow side"
    table = cli(world, "intents")
    assert "(canary live)" in table and "(canary shadow)" in table
    first_live = min(live)
    assert "canary live" in cli(world, "audit", f"zendesk:{first_live}")

    # a wider canary keeps the records it had: the share is a stable hash
    rules(world, CANARY.replace("percent: 20", "percent: 50"))
    world.sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"tickets": [
        {"id": n, "subject": f"Printer {n}", "status": "new", "requester": "carl@customer.example"}
        for n in range(TICKETS + 1, 2 * TICKETS + 1)]}})
    world.advance(2 * MINUTE)
    world.cycle()
    wider = sides(world)
    assert live <= wider["live"] and shadow >= (wider["shadow"] & set(range(1, TICKETS + 1)))
    assert len(wider["live"] - live) >= 15  # about half of the 60 new ones

    # going live: nothing either side planned fires again
    writes = len(world.writes())
    rules(world, CANARY.replace("    mode: canary\n    canary: {percent: 20}\n", ""))
    world.advance(10 * MINUTE)
    world.cycle()
    assert len(world.writes()) == writes
    assert tagged(world, TICKETS) == live
    with world.store().read() as tx:
        assert len(tx.ledger.list(rule_id="tag-new")) == 2 * TICKETS


def test_a_canary_scope_acts_live_on_the_chosen_records(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, CANARY.replace("canary: {percent: 20}",
                                                    "canary: {scope: {tags: {contains: pilot}}}"))
    fixture = seed(4, NOW - 5 * MINUTE)
    fixture["zendesk"]["tickets"][1]["tags"] = ["pilot"]
    sandbox.control("POST", "/_sandbox/seed", fixture)
    world.cycle()
    assert tagged(world, 4) == {2}
    assert sides(world) == {"live": {2}, "shadow": {1, 3, 4}}
