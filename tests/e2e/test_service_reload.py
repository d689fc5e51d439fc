"""Safe reload in the running service: a refused rule set leaves the old rules firing, a saved
file is picked up by itself, and a removed rule's timers are cancelled and audited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from e2e_world import LADDER, NOW, TRIAGE, World, seed, serving, wait_for

from syncd.daemon.runtime import open_runtime
from syncd.daemon.service import Service
from syncd.model import RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings

VIP = """
rules:
  - id: vip
    on: zendesk.ticket
    when: {subject: {matches: "VIP"}}
    do: [{tag: [vip]}]
"""


@pytest.fixture
def running(sandbox: SandboxServer, tmp_path: Path) -> Iterator[tuple[World, Service]]:
    """The service on TRIAGE + LADDER over two new tickets, triaged once it yields."""
    world = World(sandbox, tmp_path, TRIAGE + LADDER)
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - timedelta(minutes=5)))
    settings = load_settings(world.config, env={**world.env, "SYNCD_SYNCD__POLL_INTERVAL_S": "0.3"})
    with serving(open_runtime(settings, world.clock)) as service:
        wait_for(lambda: len(world.mail()) == 2)
        yield world, service


def reloads(service: Service, result: str) -> float:
    return float(service.metrics.registry.get_sample_value(
        "syncd_reloads_total", {"result": result}) or 0)


def test_a_refused_reload_keeps_the_old_rules_firing(
    running: tuple[World, Service],
) -> None:
    world, service = running
    (world.rules_dir / "broken.yaml").write_text("rules:\n  - id: x\n    on: nowhere\n")
    service.reload()
    wait_for(lambda: reloads(service, "refused") == 1)
    assert "rules reload REFUSED" in service.status.line()
    assert "broken.yaml:3" in service.status.line()

    ticket = world.new_ticket("Printer on fire again")
    wait_for(lambda: "syncd-triaged" in world.ticket(ticket)["tags"])  # the old rules fire
    assert set(service.rt.engine.rules) == {"triage", "ladder"}
    time.sleep(2.5)  # the watcher has seen the refused file: it is not retried until it changes
    assert reloads(service, "refused") == 1


def test_a_saved_rule_file_is_reloaded_without_a_signal(running: tuple[World, Service]) -> None:
    world, service = running
    (world.rules_dir / "vip.yaml").write_text(VIP)
    wait_for(lambda: reloads(service, "ok") == 1)
    ticket = world.new_ticket("VIP customer cannot log in")
    wait_for(lambda: "vip" in world.ticket(ticket)["tags"])


def test_a_removed_rule_stops_and_its_timers_are_cancelled_and_audited(
    running: tuple[World, Service],
) -> None:
    world, service = running
    ticket = RecordRef("zendesk.ticket", "1")
    with world.store().read() as tx:
        pending = [t.step for t in tx.timers.for_record(ticket)]
    assert pending == ["h1", "h24", "h26"]
    (world.rules_dir / "support.yaml").write_text(TRIAGE)
    service.reload()
    wait_for(lambda: reloads(service, "ok") == 1)
    with world.store().read() as tx:
        assert tx.timers.for_record(ticket) == []
        cancelled = [e for e in tx.audit.for_record(ticket) if e.event == "timer_cancelled"]
    assert [(e.rule_id, e.detail["step"]) for e in cancelled] == [("ladder", s) for s in pending]
    world.advance(timedelta(hours=2))  # the ladder's first step would have come
    time.sleep(1.5)
    assert len(world.mail()) == 2
