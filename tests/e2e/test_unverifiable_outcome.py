"""A refused verification is not an absence. A mail whose answer was lost (sendMail applied,
then a 504) is verified in Sent Items before it is sent again; an app without Mail.Read (or
Mail.ReadBasic.All) is refused that read. The intent must then stay `unknown`: held, alerted
(log, STATUS=), listed, and resolved by a person, never sent a second time on its own."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from e2e_world import NOW, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.daemon.status import Status
from syncd.sandbox.server import SandboxServer
from syncd.store.ledger import IntentState

NOTIFY = """
rules:
  - id: welcome
    on: zendesk.ticket
    when: {status: new}
    do:
      - notify: {to: [carl@customer.example], subject: "We got #{{ ticket.id }}", body: Hi}
"""
NO_MAIL_READ = ["Sites.ReadWrite.All", "Mail.Send", "User.Read.All"]


def world_with_a_lost_answer(sandbox: SandboxServer, tmp_path: Path) -> World:
    sandbox.control("POST", "/_sandbox/seed", {**seed(1, NOW - timedelta(hours=1)),
                                                "graph": {"app_roles": NO_MAIL_READ}})
    world = World(sandbox, tmp_path, NOTIFY)
    world.faults({"vendor": "graph", "path": "/sendMail", "kind": "apply_then_status",
                  "status": 504, "times": 1})
    world.cycle()  # sent, applied, but answered 504: outcome unknown
    assert len(world.mail()) == 1
    return world


def intents(world: World, *args: str) -> str:
    result = CliRunner().invoke(app, ["intents", "--config", str(world.config), *args],
                                env=world.env)
    assert result.exit_code == (1 if "--failed" in args else 0), result.output
    return result.output


def test_a_refused_verification_holds_the_intent_as_unknown(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = world_with_a_lost_answer(sandbox, tmp_path)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # well past every retry backoff
            world.advance(timedelta(hours=2))
            world.cycle()
    assert len(world.mail()) == 1  # never sent again on its own
    with world.store().read() as tx:
        [entry] = tx.ledger.list()
        assert entry.state is IntentState.UNKNOWN
        assert "403" in (entry.last_error or "")
        status = Status(world.settings.syncd.tz)
        status.cycle(NOW, tx.ledger.count_by_state())
    assert "1 unknown" in status.line()
    assert any("intent_unverifiable" in r.getMessage() for r in caplog.records)
    for listing in (["--state", "unknown"], ["--failed"]):
        listed = json.loads(intents(world, *listing, "--json"))
        assert [(e["key"], e["state"]) for e in listed] == [(entry.intent.key, "unknown")]

    # a person looked in the mailbox and saw it went out
    assert "done" in intents(world, "--mark-done", entry.intent.key)
    with world.store().read() as tx:
        assert tx.ledger.get(entry.intent.key).state is IntentState.DONE  # type: ignore[union-attr]


def test_retry_of_an_unknown_intent_sends_it_again_once(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = world_with_a_lost_answer(sandbox, tmp_path)
    world.advance(timedelta(hours=2))
    world.cycle()
    with world.store().read() as tx:
        [entry] = tx.ledger.list()
    assert entry.state is IntentState.UNKNOWN
    intents(world, "--retry", entry.intent.key)  # a person: it was not sent after all
    world.cycle()
    world.advance(timedelta(hours=2))
    world.cycle()
    assert len(world.mail()) == 2
    with world.store().read() as tx:
        assert tx.ledger.get(entry.intent.key).state is IntentState.DONE  # type: ignore[union-attr]
