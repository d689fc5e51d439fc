"""Retention in the running daemon: its own job prunes what is older than keep_days, and a
record whose intents were pruned does not fire again (the rule's memory stays)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from e2e_world import NOW, World, seed, serving, wait_for

from syncd.daemon.runtime import open_runtime
from syncd.model import RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings

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

