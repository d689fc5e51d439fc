"""Snapshots, field history, rule memory and cursors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from syncd.model import FieldChange, Record, RecordRef
from syncd.store.db import Store, open_store
from syncd.store.records import diff_fields

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
T2 = T0 + timedelta(minutes=10)
TICKET = RecordRef("zendesk.ticket", "42")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = open_store(store_url)
    yield store
    store.close()


def test_diff_walks_nested_dicts_by_dotted_path_and_compares_lists_whole() -> None:
    old = {
        "status": "new",
        "custom": {"kind": "Training", "site": {"city": "Leeds"}},
        "tags": ["a"],
    }
    new = {
        "status": "new",
        "custom": {"kind": "Other", "site": {"city": "Leeds"}},
        "tags": ["a", "b"],
    }
    assert diff_fields(old, new, T1) == [
        FieldChange("custom.kind", T1, "Training", "Other"),
        FieldChange("tags", T1, ["a"], ["a", "b"]),
    ]


def test_diff_treats_missing_and_null_alike_and_sees_a_dict_replaced() -> None:
    old = {"assignee_id": None, "via": {"channel": "web"}}
    new = {"group_id": None, "via": None}
    assert diff_fields(old, new, T1) == [FieldChange("via.channel", T1, "web", None)]


def test_first_upsert_reports_every_field_from_null(store: Store) -> None:
    with store.transaction() as tx:
        result = tx.records.upsert(Record(TICKET, {"status": "new", "tags": []}, T0))
    assert result.previous is None and result.version == 1 and result.changed
    assert result.changes == [
        FieldChange("status", T0, None, "new"),
        FieldChange("tags", T0, None, []),
    ]


def test_upsert_returns_the_previous_version_and_appends_history(store: Store) -> None:
    with store.transaction() as tx:
        tx.records.upsert(Record(TICKET, {"status": "new", "custom": {"kind": "A"}}, T0))
        second = tx.records.upsert(Record(TICKET, {"status": "open", "custom": {"kind": "A"}}, T1))
        third = tx.records.upsert(
            Record(TICKET, {"status": "pending", "custom": {"kind": "B"}}, T2)
        )
    assert second.previous == Record(TICKET, {"status": "new", "custom": {"kind": "A"}}, T0)
    assert second.changes == [FieldChange("status", T1, "new", "open")]
    assert third.version == 3
    with store.read() as tx:
        assert tx.records.get(TICKET) == Record(
            TICKET, {"status": "pending", "custom": {"kind": "B"}}, T2
        )
        assert tx.records.history(TICKET) == [
            FieldChange("custom.kind", T0, None, "A"),
            FieldChange("status", T0, None, "new"),
            FieldChange("status", T1, "new", "open"),
            FieldChange("custom.kind", T2, "A", "B"),
            FieldChange("status", T2, "open", "pending"),
        ]


def test_an_unchanged_version_is_a_no_op(store: Store) -> None:
    """Replayed pages and Salesforce's look-back window see the same version again."""
    created = datetime(2026, 3, 1, 8, tzinfo=UTC)
    with store.transaction() as tx:
        tx.records.upsert(Record(TICKET, {"status": "new", "created_at": created}, T0))
        again = tx.records.upsert(
            Record(TICKET, {"status": "new", "created_at": created.isoformat()}, T1)
        )
    assert not again.changed and again.changes == [] and again.version == 1
    with store.read() as tx:
        record = tx.records.get(TICKET)
        assert record is not None and record.observed_at == T0
        assert record.fields["created_at"] == "2026-03-01T08:00:00+00:00"
        assert len(tx.records.history(TICKET)) == 2


def test_a_deletion_is_a_version_that_hides_the_record_from_listings(store: Store) -> None:
    other = RecordRef("zendesk.ticket", "43")
    with store.transaction() as tx:
        tx.records.upsert(Record(TICKET, {"status": "open"}, T0))
        tx.records.upsert(Record(other, {"status": "new"}, T0))
        gone = tx.records.upsert(Record(TICKET, {"status": "open"}, T1, deleted=True))
        again = tx.records.upsert(Record(TICKET, {"status": "open"}, T2, deleted=True))
    assert gone.changed and gone.version == 2 and not again.changed
    with store.read() as tx:
        assert tx.records.get(TICKET) == Record(TICKET, {"status": "open"}, T1, deleted=True)
        assert [r.ref for r in tx.records.by_kind("zendesk.ticket")] == [other]
        everything = tx.records.by_kind("zendesk.ticket", include_deleted=True)
        assert [r.ref for r in everything] == [TICKET, other]


def test_a_deleted_record_seen_again_is_a_new_version(store: Store) -> None:
    with store.transaction() as tx:
        tx.records.upsert(Record(TICKET, {"status": "open"}, T0))
        tx.records.upsert(Record(TICKET, {"status": "open"}, T1, deleted=True))
        back = tx.records.upsert(Record(TICKET, {"status": "open"}, T2))
    assert back.changed and back.version == 3 and back.previous is not None
    assert back.previous.deleted and back.changes == []


def test_by_kind_filters_with_a_callable(store: Store) -> None:
    with store.transaction() as tx:
        for n, status in enumerate(["new", "open", "new"]):
            tx.records.upsert(Record(RecordRef("zendesk.ticket", str(n)), {"status": status}, T0))
        tx.records.upsert(Record(RecordRef("salesforce.account", "001"), {"status": "new"}, T0))
    with store.read() as tx:
        found = tx.records.by_kind("zendesk.ticket", lambda r: r.fields["status"] == "new")
    assert [r.ref.id for r in found] == ["0", "2"]


def test_by_kind_selects_on_a_field_in_the_database_as_python_would(store: Store) -> None:
    """Dispatch and least-loaded read only open tickets, without decoding the solved history."""
    odd = [{"status": "open"}, {"status": "solved"}, {"status": None}, {}, {"status": 7},
           {"status": "Open"}, {"status": "hold", "x": "é"}, {"status": ["open"]}]
    with store.transaction() as tx:
        for n, fields in enumerate(odd):
            tx.records.upsert(Record(RecordRef("zendesk.ticket", str(n)), fields, T0))
        tx.records.upsert(Record(RecordRef("salesforce.account", "9"), {"status": "open"}, T0))
    with store.read() as tx:
        found = tx.records.by_kind("zendesk.ticket", field_in=("status", {"open", "hold"}))
    assert [r.ref.id for r in found] == ["0", "6"]
    assert found[1].fields == {"status": "hold", "x": "é"}


def test_rule_memory_round_trips_as_json(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.memory.get("triage", TICKET) is None
        tx.memory.put("triage", TICKET, {"inside": True, "entered_at": T0}, T0)
        tx.memory.put("triage", TICKET, {"inside": False}, T1)
        tx.memory.put("ladder", TICKET, {"anchor": "x"}, T1)
    with store.read() as tx:
        assert tx.memory.get("triage", TICKET) == {"inside": False}
        assert tx.memory.get("ladder", TICKET) == {"anchor": "x"}


def test_rule_memory_of_many_records_is_put_at_once(store: Store) -> None:
    other = RecordRef("zendesk.ticket", "8")
    with store.transaction() as tx:
        tx.memory.put("ladder", TICKET, {"fired": ["a#0"]}, T0)
        tx.memory.put_many([("ladder", TICKET, {"fired": ["a#1"]}),
                            ("ladder", other, {"fired": ["a#0"]})], T1)
    with store.read() as tx:
        assert tx.memory.of_records(["ladder"], "zendesk.ticket", [TICKET.id, "8"]) == {
            TICKET.id: {"ladder": {"fired": ["a#1"]}}, "8": {"ladder": {"fired": ["a#0"]}}}
        assert [r.updated_at for r in tx.memory.remembered(other)] == [T1]


def test_cursors_move_per_source(store: Store) -> None:
    with store.transaction() as tx:
        tx.cursors.set("zendesk", "c1", T0)
        tx.cursors.set("graph", "delta-1", T0)
        tx.cursors.set("zendesk", "c2", T1)
    with store.read() as tx:
        assert tx.cursors.get("zendesk") == "c2"
        assert tx.cursors.get("salesforce") is None
        assert tx.cursors.all() == {"graph": ("delta-1", T0), "zendesk": ("c2", T1)}


def _flat(fields: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(fields, dict):
        return {prefix.rstrip("."): fields}
    return {path: value for name, inner in fields.items()
            for path, value in _flat(inner, f"{prefix}{name}.").items()}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from(["a", "b"]),
    lambda inner: st.lists(inner, max_size=2)
    | st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.dictionaries(st.sampled_from(["status", "custom", "via", "tags"]), JSON, max_size=4)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(FIELDS, FIELDS)
def test_diff_is_every_dotted_path_whose_value_differs(old: dict[str, Any],
                                                       new: dict[str, Any]) -> None:
    """The definition: both versions flattened to dotted paths (a missing path reads as null),
    one change per path whose values differ, in path order."""
    before, after = _flat(old), _flat(new)
    assert diff_fields(old, new, T1) == [
        FieldChange(path, T1, before.get(path), after.get(path))
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


def test_the_open_tickets_are_read_by_index_not_through_the_solved_history(
    store: Store,
) -> None:
    """Dispatch reads a helpdesk's open tickets each pass: the database finds them by an index
    on the status (ix_records_status), on either engine, instead of reading and decoding every
    stored ticket (100,000 rows for 12,000 open ones)."""
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", seen)
    with store.read() as tx:
        tx.records.by_kind("zendesk.ticket", field_in=("status", {"open", "hold"}))
        (statement, parameters), = statements
        if tx.conn.dialect.name == "postgresql":
            tx.conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: scanned
            plan = tx.conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
        else:
            plan = tx.conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    event.remove(store.engine, "before_cursor_execute", seen)
    assert "ix_records_status" in str(plan), plan


def test_fields_of_picks_top_level_fields_as_stored(store: Store) -> None:
    """What a dispatch reads of every open ticket: a few fields, with their JSON types (an
    agent id stays a number, a missing field reads as None), in id order."""
    with store.transaction() as tx:
        for n, fields in [("10", {"status": "open", "assignee_id": 7, "group_name": "Dispatch",
                                  "subject": "é" * 500}),
                          ("9", {"status": "hold", "assignee_id": None}),
                          ("8", {"status": "solved", "assignee_id": 7})]:
            tx.records.upsert(Record(RecordRef("zendesk.ticket", n), fields, T0))
        tx.records.upsert(Record(RecordRef("zendesk.ticket", "11"), {"status": "new"}, T0,
                                 deleted=True))
    with store.read() as tx:
        found = tx.records.fields_of("zendesk.ticket", ["assignee_id", "group_name"],
                                     field_in=("status", {"new", "open", "hold"}))
    assert found == [("10", {"assignee_id": 7, "group_name": "Dispatch"}),
                     ("9", {"assignee_id": None, "group_name": None})]
