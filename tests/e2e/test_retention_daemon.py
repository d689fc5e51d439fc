"""Retention in the running daemon: its own job prunes what is older than keep_days, and a
record whose intents were pruned does not fire again (the rule's memory stays)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_world import NOW, World, seed, serving, wait_for

from syncd.daemon import service as service_module
from syncd.daemon.leadership import Leadership
from syncd.daemon.runtime import open_runtime
from syncd.model import RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings
from syncd.store.retention import prune

TICKET = RecordRef("zendesk.ticket", "1")
NOTIFY_NEW = """
rules:
  - id: new-ticket-mail
    on: zendesk.ticket
    when: {status: new}
    do:
      - notify: {to: [desk@example.com], subject: "New #{{ ticket.id }}", body: hello}
"""


def test_pruned_intents_never_fire_again(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = World(sandbox, tmp_path, NOTIFY_NEW)
    sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=5)))
    assert world.cycle().ok and len(world.mail()) == 1
    world.advance(timedelta(days=3))  # keep_days = 1: all of it is old now

    settings = load_settings(world.config, env={**world.env, "SYNCD_STORE__KEEP_DAYS": "1"})
    rt = open_runtime(settings, world.clock)
    with serving(rt):
        def intents_left() -> int:
            with rt.store.read() as tx:
                return len(tx.ledger.list())
        wait_for(lambda: intents_left() == 0)  # the prune job ran at start
        with rt.store.read() as tx:
            assert tx.records.history(TICKET) == []
            assert tx.records.get(TICKET) is not None

    world.http.put(f"{world.api}/tickets/1.json", timeout=30,
                   json={"ticket": {"subject": "Printer 1 still on fire"}}).raise_for_status()
    world.advance(timedelta(minutes=2))
    assert world.cycle().ok
    assert len(world.mail()) == 1  # still new, but it went through the rule once already



def test_a_prune_before_the_first_lease_turn_is_made_up_once_elected(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a busy host the prune job, due at start, can run before the first lease turn has
    elected this daemon (its write is fenced): it prunes once elected, not a day later."""
    world = World(sandbox, tmp_path, NOTIFY_NEW)
    sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=5)))
    assert world.cycle().ok
    world.advance(timedelta(days=3))
    tried = threading.Event()

    def prune_first(*args: Any, **kwargs: Any) -> Any:
        tried.set()
        return prune(*args, **kwargs)

    def turn_after_the_prune(self: Leadership) -> float:
        tried.wait(10)
        return turn(self)

    turn = Leadership.turn
    monkeypatch.setattr(service_module, "prune", prune_first)
    monkeypatch.setattr(Leadership, "turn", turn_after_the_prune)
    settings = load_settings(world.config, env={**world.env, "SYNCD_STORE__KEEP_DAYS": "1"})
    rt = open_runtime(settings, world.clock)
    with serving(rt):
        def intents_left() -> int:
            with rt.store.read() as tx:
                return len(tx.ledger.list())
        wait_for(lambda: intents_left() == 0)
