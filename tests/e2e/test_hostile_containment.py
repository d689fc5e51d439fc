"""One bad record never stops the rest: a ticket no code path expected (a lone surrogate in its
subject, valid JSON) is stored as it came, and a record whose evaluation raises is quarantined
(audited with the reason, counted, listed, retried after a backoff) while the cursor moves on."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from e2e_world import NOW, TRIAGE, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.daemon.contain import apply_contained
from syncd.daemon.runtime import open_runtime
from syncd.model import Record, RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.store.quarantine import Held

SURROGATE = "x \ud800 printer"
MINUTE = timedelta(minutes=1)


def test_a_lone_surrogate_round_trips_and_the_tickets_after_it_are_triaged(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(0, NOW - 30 * MINUTE))
    bad = world.new_ticket(SURROGATE)
    good = world.new_ticket("Printer on fire")
    report = world.cycle()
    assert report.ok, report.failures
    assert "syncd-triaged" in world.ticket(good)["tags"]
    assert "syncd-triaged" in world.ticket(bad)["tags"]
    assert "x \ufffd printer" in [m["body"] for m in world.mail()]  # U+FFFD: UTF-8 carries it
    store = world.store()
    try:
        with store.read() as tx:
            stored = tx.records.get(RecordRef("zendesk.ticket", str(bad)))
        assert stored is not None and stored.fields["subject"] == SURROGATE
    finally:
        store.close()


CLIENT_TAG = (
    TRIAGE
    + """
  - id: client-tag
    on: zendesk.ticket
    when: {tags: {lacks: syncd-client}}
    do:
      - tag: [syncd-client, "client-{{ ticket.subject.split(' - ')[1] | lower }}"]
"""
)


def _held(world: World) -> list[Held]:
    store = world.store()
    try:
        with store.read() as tx:
            return tx.quarantine.list()
    finally:
        store.close()


def test_a_record_a_rule_fails_on_is_quarantined_and_retried_while_the_rest_goes_on(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, CLIENT_TAG)
    world.sandbox.control("POST", "/_sandbox/seed", seed(0, NOW - 30 * MINUTE))
    bad = world.new_ticket("printer on fire")  # no " - ": the template fails on this one
    good = world.new_ticket("Printer - Acme")
    report = world.cycle()
    assert "client-acme" in world.ticket(good)["tags"]
    assert "syncd-triaged" in world.ticket(bad)["tags"]  # the other rule still acted on it
    assert "syncd-client" not in world.ticket(bad)["tags"]  # the failing rule: nothing of it
    assert [f for f in report.failures if "quarantined" in f] == [
        f for f in report.failures if f.startswith(f"zendesk.ticket:{bad}")]
    (held,) = _held(world)
    assert held.record == RecordRef("zendesk.ticket", str(bad)) and held.attempts == 1
    assert "client-tag" in held.reason

    runner = CliRunner()
    env = {**world.env, "SYNCD_CONFIG": str(world.config)}
    listed = runner.invoke(app, ["intents", "--quarantined", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [h["record"] for h in json.loads(listed.stdout)] == [f"zendesk.ticket:{bad}"]
    told = runner.invoke(app, ["audit", f"zendesk:{bad}", "--json"], env=env)
    (row,) = [r for r in json.loads(told.stdout)["audit"] if r["event"] == "quarantined"]
    assert row["detail"]["attempts"] == 1 and "client-tag" in row["detail"]["reason"]

    world.advance(MINUTE // 2)  # within the backoff: not tried again
    world.cycle()
    assert _held(world)[0].attempts == 1
    world.advance(2 * MINUTE)  # past it: re-read and evaluated again, still failing
    world.cycle()
    assert _held(world)[0].attempts == 2

    resp = world.http.put(f"{world.api}/tickets/{bad}.json", timeout=30,
                          json={"ticket": {"subject": "printer - Kestrel"}})
    resp.raise_for_status()
    world.advance(2 * MINUTE)
    assert world.cycle().ok
    assert "client-kestrel" in world.ticket(bad)["tags"]
    assert _held(world) == []
    released = runner.invoke(app, ["audit", f"zendesk:{bad}", "--json"], env=env)
    events = [r["event"] for r in json.loads(released.stdout)["audit"]]
    assert events.count("quarantined") == 2 and events[-1] != "quarantined"
    assert "released" in events


def test_a_record_the_store_cannot_take_is_quarantined_and_the_page_goes_on(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """An exception while storing or evaluating one record rolls back that record alone."""
    world = World(sandbox, tmp_path)
    rt = open_runtime(world.settings, world.clock, connectors={})
    try:
        with rt.store.transaction() as tx:
            # a nested key with a lone surrogate: a field name (not a value) the store refuses
            odd = Record(RecordRef("zendesk.ticket", "7"), {"status": "new", "x": {"\ud800": 1}},
                         NOW)
            fine = Record(RecordRef("zendesk.ticket", "8"),
                          {"id": 8, "status": "new", "subject": "ok", "tags": []}, NOW)
            assert apply_contained(rt, tx, rt.engine, odd, NOW, rt.grace) is None
            assert apply_contained(rt, tx, rt.engine, fine, NOW, rt.grace) is not None
        with rt.store.read() as tx:
            assert tx.records.get(fine.ref) is not None
            assert [h.reason.split(":")[0] for h in tx.quarantine.list()] == ["UnicodeEncodeError"]
        assert rt.failures and "quarantined" in rt.failures[0]
    finally:
        rt.close()
