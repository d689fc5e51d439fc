"""Replay's reconstruction of the past: the versions rebuilt from a snapshot and its field
history are the versions the store was given, nested fields and all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from syncd.daemon.replay import differing, recorded
from syncd.model import Record, RecordRef
from syncd.rules.language.loader import load_rules
from syncd.store.db import open_store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TICKET = RecordRef("zendesk.ticket", "7")
SEEN = [
    {"status": "new", "priority": "low", "custom": {"impact": "minor"}},
    {"status": "open", "priority": "low", "custom": {"impact": "minor"}, "tags": ["a"]},
    {"status": "open", "priority": "urgent", "custom": {"impact": "major", "team": "core"}},
    {"status": "solved", "priority": "urgent", "custom": {"team": "core"}, "tags": ["a", "b"]},
]


def test_versions_are_rebuilt_from_the_snapshot_and_its_history(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.transaction() as tx:
            for n, fields in enumerate(SEEN):
                tx.records.upsert(Record(TICKET, fields, T0 + timedelta(minutes=n)))
                tx.records.upsert(Record(TICKET, fields, T0 + timedelta(minutes=n, seconds=30)))
            tx.records.upsert(Record(RecordRef("zendesk.ticket", "8"), {"status": "new"}, T0))
        with store.read() as tx:
            found = {str(ref): seen for ref, _, seen in recorded(tx, ["zendesk.ticket"])}
    finally:
        store.close()
    assert [v.fields for v in found["zendesk.ticket:7"]] == SEEN
    assert [v.at for v in found["zendesk.ticket:7"]] == [T0 + timedelta(minutes=n)
                                                        for n in range(4)]
    assert [v.fields for v in found["zendesk.ticket:8"]] == [{"status": "new"}]


def test_only_rules_that_differ_are_replayed(tmp_path: Path) -> None:
    rules = """
rules:
  - id: same
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [a]}]
  - id: edited
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [b]}]
  - id: gone
    on: zendesk.ticket
    do: [{tag: [c]}]
"""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "old" / "r.yaml").write_text(rules)
    (tmp_path / "new" / "r.yaml").write_text(
        rules.replace("tag: [b]", "tag: [bb]").replace("id: gone", "id: born"))
    old, new = (load_rules(tmp_path / d).ruleset for d in ("old", "new"))
    assert differing(old, new) == ["edited", "born", "gone"]
    assert differing(old, old) == []
