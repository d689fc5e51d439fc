"""Going live (`[syncd] first_sync`): the first sync of a source records what is there and acts
on none of it, while timelines keep their timers."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from e2e_world import NOW, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.connectors.base import Page
from syncd.daemon.poller import poll_source
from syncd.daemon.runtime import open_runtime
from syncd.model import Record, RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings
from syncd.store.ledger import IntentState

MINUTE = timedelta(minutes=1)
RULES = """
rules:
  - id: csat
    on: zendesk.ticket
    when: {status: solved}
    do: [{notify: {to: [requester], subject: "How did we do on #{{ ticket.id }}?", body: Hi}}]
  - id: triage
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [syncd-triaged]}]
  - id: ladder
    on: zendesk.ticket
    when: {status: new}
    since: created_at
    steps:
      - id: h1
        after: 1h
        do: [{comment: {body: "An hour without an answer."}}]
"""


def going_live(sandbox: SandboxServer, tmp_path: Path) -> World:
    world = World(sandbox, tmp_path, RULES)
    world.env.pop("SYNCD_SYNCD__FIRST_SYNC")  # the default
    world.settings = load_settings(world.config, env=world.env)
    assert world.settings.syncd.first_sync == "baseline"
    return world


def test_the_first_sync_acts_on_nothing_and_later_changes_on_everything(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = going_live(sandbox, tmp_path)
    history = seed(3, NOW - 30 * MINUTE)
    history["zendesk"]["tickets"][0]["status"] = "solved"  # solved long ago: no CSAT mail now
    sandbox.control("POST", "/_sandbox/seed", history)

    first = world.cycle()
    assert first.ok, first.failures
    assert world.writes() == [] and world.mail() == []
    with world.store().read() as tx:
        skipped = {(e.intent.rule_id, e.intent.record.id) for e in tx.ledger.list()
                   if e.state == IntentState.SKIPPED}
        timers = [t.step for n in (2, 3) for t in tx.timers.for_record(
            RecordRef("zendesk.ticket", str(n)))]
    assert skipped == {("csat", "1"), ("triage", "2"), ("triage", "3")}
    assert timers == ["h1", "h1"]  # the ladder keeps its course
    shown = CliRunner().invoke(app, ["audit", "zendesk:1", "--json", "--config",
                                     str(world.config)], env=world.env)
    assert shown.exit_code == 0, shown.output
    audited = json.loads(shown.output)
    assert [(r["event"], r["rule"], r["detail"].get("reason")) for r in audited["audit"]
            if r["event"] == "skipped"] == [("skipped", "csat", "baseline")]
    assert [i["state"] for i in audited["intents"]] == ["skipped"]

    # after going live: a change fires, an unchanged record does not, the ladder steps on time
    world.http.put(f"{world.api}/tickets/2.json", timeout=30,
                   json={"ticket": {"status": "solved"}}).raise_for_status()
    world.http.put(f"{world.api}/tickets/1.json", timeout=30,
                   json={"ticket": {"priority": "high"}}).raise_for_status()
    world.advance(31 * MINUTE)
    assert world.cycle().ok
    assert world.subjects() == ["How did we do on #2?"]
    assert world.comments(3)[-1] == "An hour without an answer."
    assert "syncd-triaged" not in world.ticket(3)["tags"]


class TwoPages:
    """A source whose first sync takes two pages; a record `changes` on the third poll."""

    kinds = frozenset({"zendesk.ticket"})
    extra_fields: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.polls = 0

    def poll_pages(
        self, cursor: str | None, kinds: Collection[str] | None = None
    ) -> Iterator[Page]:
        self.polls += 1
        stamp = (NOW - 30 * MINUTE).isoformat()
        if cursor is None:
            yield Page([self._ticket("1", "new", stamp)], "p1")
        if cursor in (None, "p1"):
            yield Page([self._ticket("2", "new", stamp)], "p2")
        else:
            yield Page([self._ticket("3", "new", NOW.isoformat())], "p3")

    def fetch(self, ref: RecordRef) -> Record | None:
        return None

    def fetch_many(
        self, refs: Sequence[RecordRef], *, extras: bool = True
    ) -> dict[RecordRef, Record | None]:
        return dict.fromkeys(refs)

    @staticmethod
    def _ticket(n: str, status: str, stamp: str) -> Record:
        fields = {"id": int(n), "status": status, "created_at": stamp, "updated_at": stamp}
        return Record(RecordRef("zendesk.ticket", n), fields, NOW)


def test_an_interrupted_first_sync_is_still_the_baseline_when_it_resumes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = going_live(sandbox, tmp_path)
    source = TwoPages()
    rt = open_runtime(world.settings, world.clock, connectors={})
    try:
        first = poll_source(rt, "zendesk", source, stopping=lambda: True)  # SIGTERM: 1 page
        resumed = poll_source(rt, "zendesk", source)
        live = poll_source(rt, "zendesk", source)
        with rt.store.read() as tx:
            states = {e.intent.record.id: str(e.state) for e in tx.ledger.list(rule_id="triage")}
    finally:
        rt.close()
    assert (first.records, first.planned, resumed.planned, live.planned) == (1, 0, 0, 1)
    assert states == {"1": "skipped", "2": "skipped", "3": "planned"}
    assert live.newest == NOW


def test_a_first_sync_says_how_far_it_has_read_page_by_page(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A large helpdesk's first sync reads for minutes: each page is a line at info, not
    silence; later polls stay quiet about pages."""
    world = going_live(sandbox, tmp_path)
    source = TwoPages()
    rt = open_runtime(world.settings, world.clock, connectors={})
    try:
        with caplog.at_level(logging.INFO, logger="syncd"):
            poll_source(rt, "zendesk", source)
            going = [r.syncd_fields for r in caplog.records  # type: ignore[attr-defined]
                     if r.getMessage() == "baseline_progress"]
            caplog.clear()
            poll_source(rt, "zendesk", source)
            later = [r for r in caplog.records if r.getMessage() == "baseline_progress"]
    finally:
        rt.close()
    assert [(f["source"], f["pages"], f["records"]) for f in going] == [
        ("zendesk", 1, 1), ("zendesk", 2, 2)]
    assert going[-1]["through"] == (NOW - 30 * MINUTE).isoformat()
    assert later == []


LADDER_RULES = """
rules:
  - id: ladder
    on: zendesk.ticket
    when: {status: new}
    since: created_at
    steps:
      - id: h1
        after: 1h
        do: [{notify: {to: [requester], subject: "1h: #{{ ticket.id }}", body: Hi}}]
      - id: h4
        after: 4h
        do: [{comment: {body: "Four hours without an answer."}}]
"""


def past_due_world(sandbox: SandboxServer, tmp_path: Path, catch_up: str | None) -> World:
    """Ticket 1 was created 3 h before go-live (its 1 h step is past due, its 4 h step is not);
    ticket 2 30 minutes before (nothing due yet)."""
    world = World(sandbox, tmp_path, LADDER_RULES)
    world.env.pop("SYNCD_SYNCD__FIRST_SYNC")  # the default
    if catch_up is not None:
        world.env["SYNCD_SYNCD__FIRST_SYNC_CATCH_UP"] = catch_up
    world.settings = load_settings(world.config, env=world.env)
    history = seed(2, NOW - 30 * MINUTE)
    history["zendesk"]["tickets"][0]["created_at"] = (NOW - 180 * MINUTE).isoformat()
    sandbox.control("POST", "/_sandbox/seed", history)
    return world


def test_steps_past_due_at_go_live_are_skipped_and_audited_later_ones_fire_on_time(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = past_due_world(sandbox, tmp_path, None)
    assert world.settings.syncd.first_sync_catch_up == "skip"
    assert world.cycle().ok
    assert world.mail() == [] and world.comments(1)[1:] == []  # no storm at go-live
    shown = CliRunner().invoke(app, ["audit", "zendesk:1", "--json", "--config",
                                     str(world.config)], env=world.env)
    assert shown.exit_code == 0, shown.output
    audited = json.loads(shown.output)
    assert [(r["rule"], r["detail"].get("reason")) for r in audited["audit"]
            if r["event"] == "skipped"] == [("ladder", "before go-live")]
    assert [(i["step"], i["state"]) for i in audited["intents"]] == [("h1", "skipped")]
    human = CliRunner().invoke(app, ["audit", "zendesk:1", "--config", str(world.config)],
                               env=world.env)
    assert "before go-live" in human.output

    world.advance(31 * MINUTE)  # ticket 2's 1 h step falls due after go-live: it fires
    assert world.cycle().ok
    assert world.subjects() == ["1h: #2"]
    world.advance(30 * MINUTE)  # ticket 1's 4 h step, due after go-live, fires on time
    assert world.cycle().ok
    assert world.comments(1)[-1] == "Four hours without an answer."
    assert world.subjects() == ["1h: #2"]  # and the skipped 1 h step never goes out


def test_first_sync_catch_up_fire_sends_the_past_due_steps_at_go_live(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = past_due_world(sandbox, tmp_path, "fire")
    assert world.cycle().ok
    assert world.subjects() == ["1h: #1"]


class Twice:
    """One page in which ticket 1 appears twice: solved, then new again (a page of the export
    can hold two versions of a ticket)."""

    kinds = frozenset({"zendesk.ticket"})
    extra_fields: frozenset[str] = frozenset()

    def poll_pages(
        self, cursor: str | None, kinds: Collection[str] | None = None
    ) -> Iterator[Page]:
        if cursor is None:
            yield Page([TwoPages._ticket("1", "new", (NOW - 30 * MINUTE).isoformat())], "p1")
            return
        solved = TwoPages._ticket("1", "new", NOW.isoformat())
        solved.fields["status"] = "solved"
        yield Page([solved, TwoPages._ticket("1", "new", NOW.isoformat())], "p2")

    def fetch_many(
        self, refs: Sequence[RecordRef], *, extras: bool = True
    ) -> dict[RecordRef, Record | None]:
        return dict.fromkeys(refs)


def test_a_record_twice_in_one_page_is_evaluated_against_its_first_version(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """The page's stored state is read at once; the second version must still see what the
    first one left."""
    world = going_live(sandbox, tmp_path)
    rt = open_runtime(world.settings, world.clock, connectors={})
    try:
        poll_source(rt, "zendesk", Twice())  # the baseline: ticket 1, new
        live = poll_source(rt, "zendesk", Twice())
        with rt.store.read() as tx:
            ref = RecordRef("zendesk.ticket", "1")
            seen = (tx.memory.of_record(["triage", "ladder", "csat"], ref),
                    [(t.step, t.due_at) for t in tx.timers.for_record(ref)],
                    [(e.intent.rule_id, str(e.state)) for e in tx.ledger.list()])
    finally:
        rt.close()
    memory, timers, intents = seen
    # as after the last version (new): inside triage's `when`, outside csat's (which the
    # first version entered: a later solve must send the satisfaction mail again)
    assert memory["triage"]["in_when"] and not memory["csat"].get("in_when")
    assert [step for step, _ in timers] == ["h1"]
    assert sorted(intents) == [("csat", "planned"), ("triage", "skipped")]
    assert live.records == 2
