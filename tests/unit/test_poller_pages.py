"""A polled page is applied as a whole (its records' writes batched in one savepoint), and
still one bad record never stops the rest: a record the store cannot take, or whose
evaluation raises, is quarantined alone while the page's others land with their intents and
the cursor moves on. On the real store (SQLite in a temp dir), through `poll_source`, with a
fake connector that serves the pages given."""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.clock import FrozenClock
from syncd.connectors.base import Directory, Page
from syncd.daemon.poller import poll_source
from syncd.daemon.runtime import Runtime
from syncd.model import Record, RecordRef
from syncd.rules.engine import Engine
from syncd.rules.language.loader import load_rules
from syncd.settings import Settings, SyncdSection
from syncd.store.db import open_store

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
KIND = "zendesk.ticket"
RULES = """
rules:
  - id: triage
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [triaged]}]
  - id: ladder
    on: zendesk.ticket
    when: {status: open}
    since: created_at
    steps:
      - {id: one, after: 1h, do: [{comment: {body: "still waiting"}}]}
"""


@dataclass
class Pages:
    """The vendor boundary: serves the pages it is given, once."""

    system: str = "zendesk"
    kinds: frozenset[str] = frozenset({KIND})
    extra_fields: frozenset[str] = frozenset()
    pages: list[list[Record]] = field(default_factory=list)

    def poll_pages(self, cursor: str | None,
                   kinds: Collection[str] | None = None) -> Iterator[Page]:
        served, self.pages = self.pages, []
        for n, records in enumerate(served, start=1):
            yield Page(records, f"{cursor}+{n}")

    def fetch_many(self, refs: Sequence[RecordRef], *,
                   extras: bool = True) -> dict[RecordRef, Record | None]:
        return {}

    def directory(self, max_age_s: float | None = None) -> Directory:
        return Directory()


class World:
    def __init__(self, tmp_path: Path) -> None:
        folder = tmp_path / "rules"
        folder.mkdir()
        (folder / "rules.yaml").write_text(textwrap.dedent(RULES))
        loaded = load_rules(folder)
        assert not loaded.errors
        settings = Settings(syncd=SyncdSection(state_dir=tmp_path, rules_dir=folder))
        self.clock = FrozenClock(T0)
        self.source = Pages()
        self.rt = Runtime(settings=settings, clock=self.clock,
                          store=open_store(settings.syncd.store_url),
                          engine=Engine(loaded.ruleset), connectors={"zendesk": self.source})
        with self.rt.store.transaction() as tx:  # past the first sync: changes are acted on
            tx.cursors.set("zendesk", "c", T0)

    def poll(self, *pages: list[Record]) -> int:
        self.source.pages = list(pages)
        return poll_source(self.rt, "zendesk", self.source).records

    def stored(self, ticket: str) -> Record | None:
        with self.rt.store.read() as tx:
            return tx.records.get(RecordRef(KIND, ticket))

    def intents(self) -> list[tuple[str, str]]:
        with self.rt.store.read() as tx:
            return sorted((e.intent.rule_id, e.intent.record.id) for e in tx.ledger.list())

    def held(self) -> list[str]:
        with self.rt.store.read() as tx:
            return [h.record.id for h in tx.quarantine.list()]

    def cursor(self) -> str | None:
        with self.rt.store.read() as tx:
            return tx.cursors.get("zendesk")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    found = World(tmp_path)
    yield found
    found.rt.store.close()


def ticket(i: str, at: datetime = T0, **fields: Any) -> Record:
    return Record(RecordRef(KIND, i), {"id": int(i), "status": "new", "subject": f"t{i}",
                                       "tags": [], "created_at": T0.isoformat(), **fields}, at)


UNSTORABLE = {"x": {"\ud800": 1}}  # a field name with a lone surrogate: no database takes it


def test_a_record_the_store_cannot_take_is_held_and_the_rest_of_its_page_lands(
    world: World,
) -> None:
    page = [ticket("1"), ticket("2", **UNSTORABLE), ticket("3"), ticket("4", status="open")]
    assert world.poll(page) == 4
    assert [world.stored(i) is not None for i in "1234"] == [True, False, True, True]
    assert world.intents() == [("triage", "1"), ("triage", "3")]
    assert world.held() == ["2"]
    assert world.cursor() == "c+1"
    assert world.rt.failures and "quarantined" in world.rt.failures[0]
    with world.rt.store.read() as tx:  # the open one's ladder is armed
        assert [t.step for t in tx.timers.for_record(RecordRef(KIND, "4"))] == ["one"]


def test_a_record_whose_evaluation_raises_is_held_and_the_rest_lands(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluate = world.rt.engine.evaluate

    def crashing(record: Record, *args: Any, **kwargs: Any) -> Any:
        if record.ref.id == "2":
            raise RuntimeError("a bug this record meets")
        return evaluate(record, *args, **kwargs)

    monkeypatch.setattr(world.rt.engine, "evaluate", crashing)
    assert world.poll([ticket("1"), ticket("2"), ticket("3")]) == 3
    assert world.stored("2") is None  # rolled back with its evaluation
    assert world.intents() == [("triage", "1"), ("triage", "3")]
    assert world.held() == ["2"]


def test_a_ticket_twice_in_one_page_is_stored_as_two_versions_in_order(world: World) -> None:
    later = T0 + timedelta(minutes=1)
    world.poll([ticket("1"), ticket("2"), ticket("1", at=later, status="open")])
    stored = world.stored("1")
    assert stored is not None and stored.fields["status"] == "open"
    with world.rt.store.read() as tx:
        history = [(c.field, c.old, c.new) for c in tx.records.history(RecordRef(KIND, "1"))
                   if c.field == "status"]
    assert history == [("status", None, "new"), ("status", "new", "open")]
    assert world.intents() == [("triage", "1"), ("triage", "2")]  # the first version's too


def test_a_held_record_polled_clean_is_released_and_its_intents_planned(world: World) -> None:
    world.poll([ticket("1", **UNSTORABLE), ticket("2")])
    assert world.held() == ["1"]
    world.poll([ticket("1"), ticket("3")])
    assert world.held() == []
    assert world.intents() == [("triage", "1"), ("triage", "2"), ("triage", "3")]
    with world.rt.store.read() as tx:
        events = [row.event for row in tx.audit.for_record(RecordRef(KIND, "1"))]
    assert "quarantined" in events and "released" in events


def test_a_replayed_page_changes_nothing(world: World) -> None:
    page = [ticket("1"), ticket("2", status="open")]
    world.poll(page)
    with world.rt.store.read() as tx:
        before = [(r.ref.id, tx.records.history(r.ref)) for r in page]
    world.poll(page)
    with world.rt.store.read() as tx:
        assert [(r.ref.id, tx.records.history(r.ref)) for r in page] == before
    assert world.intents() == [("triage", "1")]
