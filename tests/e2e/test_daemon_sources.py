"""Only what the rules read is polled: a configured vendor whose records no rule reads costs no
calls (Graph kept for mail sends mail, nothing else), a reload that adds a rule on it starts
its polls, and what changed there meanwhile is caught up as a baseline, not acted on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from e2e_world import NOW, TRIAGE, World, seed

from syncd.daemon.cycle import run_cycle
from syncd.daemon.reload import reload_rules
from syncd.daemon.runtime import open_runtime
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings
from syncd.store.ledger import IntentState

MINUTE = timedelta(minutes=1)
FILES = """
rules:
  - id: inbox
    on: sharepoint.file
    when: {folder: Inbox}
    do: [{notify: {to: [hal@example.com], subject: "New file {{ file.name }}", body: Hi}}]
"""


def calls(sandbox: SandboxServer, vendor: str) -> list[tuple[str, str]]:
    log = sandbox.control("GET", "/_sandbox/requests")["requests"]
    return [(r["method"], r["path"]) for r in log if r["vendor"] == vendor]


def file(name: str) -> dict[str, Any]:
    return {"graph": {"files": [{"path": f"Inbox/{name}", "content": "hello"}]}}


def test_rules_that_read_only_tickets_poll_only_zendesk_and_graph_only_sends_mail(
    world: World,
) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", {**seed(1, NOW - 5 * MINUTE), **file("a.txt")})
    (world.rules_dir / "support.yaml").write_text(f"{TRIAGE}")
    report = world.cycle()
    assert report.ok, report.failures
    assert set(report.polled) == {"zendesk"}
    assert world.subjects() == ["New ticket #1"]
    assert calls(world.sandbox, "salesforce") == []
    graph = calls(world.sandbox, "graph")
    assert graph and all(m == "POST" and p.endswith("/sendMail") for m, p in graph), graph


def test_a_reload_adding_a_sharepoint_rule_polls_the_drive_and_catches_up_as_a_baseline(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, TRIAGE)
    world.env.pop("SYNCD_SYNCD__FIRST_SYNC")  # the default: going live records a baseline
    world.settings = load_settings(world.config, env=world.env)
    sandbox.control("POST", "/_sandbox/seed", {**seed(1, NOW - 5 * MINUTE), **file("old.txt")})
    rt = open_runtime(world.settings, world.clock)
    try:
        assert run_cycle(rt).ok
        assert not [p for _, p in calls(sandbox, "graph") if p.endswith("/delta")]

        world.advance(MINUTE)  # a file arrives while no rule reads the drive
        sandbox.control("POST", "/_sandbox/seed", file("unread.txt"))
        (world.rules_dir / "files.yaml").write_text(FILES)
        reload_rules(rt)
        caught_up = run_cycle(rt)
        assert caught_up.ok, caught_up.failures
        assert set(caught_up.polled) == {"zendesk", "graph"}
        assert world.mail() == []  # files from before the rule are not acted on
        with rt.store.read() as tx:  # held back as a first sync's are (baseline.py)
            held = [str(e.state) for e in tx.ledger.list(rule_id="inbox")]
        assert held == [IntentState.SKIPPED.value] * 2

        world.advance(MINUTE)  # from now on the rule acts
        sandbox.control("POST", "/_sandbox/seed", file("new.txt"))
        assert run_cycle(rt).ok
        assert world.subjects() == ["New file new.txt"]

        (world.rules_dir / "files.yaml").unlink()  # the rule goes: so do the drive's polls
        reload_rules(rt)
        before = len(calls(sandbox, "graph"))
        world.advance(MINUTE)
        assert set(run_cycle(rt).polled) == {"zendesk"}
        assert len(calls(sandbox, "graph")) == before
    finally:
        rt.close()
