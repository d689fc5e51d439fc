"""The engine's per-(rule, record) memory (e.g. "was inside `when` last time"), kept as opaque
JSON so that edge-triggered rules survive restarts. Written in the page's transaction."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Insert, bindparam, func, select, update

from syncd.model import RecordRef
from syncd.store.tables import insert_ignoring_duplicates, rule_memory

CHUNK = 500  # ids in one IN (...)
INTERNAL = "~"  # the daemon's own rows (a source's baseline, round-robin turns): no rule id


class Remembered(NamedTuple):
    """One rule's memory for a record, and when it last changed."""

    rule_id: str
    memory: dict[str, Any]
    updated_at: datetime


class MemoryTable:
    """The rule_memory table: the engine's `RuleMemory` of each (rule, record), as JSON."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._put: Insert | None = None

    def get(self, rule_id: str, record: RecordRef) -> dict[str, Any] | None:
        return self._conn.scalar(select(rule_memory.c.memory).where(*_owner(rule_id, record)))

    def of_record(self, rule_ids: Collection[str], record: RecordRef) -> dict[str, Any]:
        """The record's memory of each of `rule_ids` that has one, in one statement (a poll
        reads it for every record it evaluates)."""
        if not rule_ids:
            return {}
        rows = self._conn.execute(_OF_RECORD, {"kind": record.kind, "id": record.id,
                                               "rules": list(rule_ids)})
        return {rule_id: memory for rule_id, memory in rows}

    def of_records(self, rule_ids: Collection[str], kind: str,
                   ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """`of_record` of many records of one kind (id -> rule -> memory), a statement per 500."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted) if rule_ids else 0, CHUNK):
            chunk = wanted[start : start + CHUNK]
            params = {"kind": kind, "rules": list(rule_ids), "ids": chunk}
            for rule_id, record_id, memory in self._conn.execute(_OF_RECORDS, params):
                found.setdefault(record_id, {})[rule_id] = memory
        return found

    def remembered(self, record: RecordRef) -> list[Remembered]:
        """Every rule's memory for the record (not the daemon's own rows), by rule id, with
        the instant it last changed (what dates a stopped timeline in `syncd audit`)."""
        query = (
            select(rule_memory.c.rule_id, rule_memory.c.memory, rule_memory.c.updated_at)
            .where(
                rule_memory.c.record_kind == record.kind,
                rule_memory.c.record_id == record.id,
                rule_memory.c.rule_id.not_like(f"{INTERNAL}%"),
            )
            .order_by(rule_memory.c.rule_id)
        )
        return [Remembered(*row) for row in self._conn.execute(query)]

    def rules(self) -> dict[str, int]:
        """Every rule id the daemon remembers something for, with how many records: a rule
        whose id changed starts from nothing, so its records go through it again."""
        rows = self._conn.execute(
            select(rule_memory.c.rule_id, func.count()).group_by(rule_memory.c.rule_id)
        )
        return {rule_id: count for rule_id, count in rows if not rule_id.startswith(INTERNAL)}

    def put(
        self, rule_id: str, record: RecordRef, memory: Mapping[str, Any], now: datetime
    ) -> None:
        values = {"rule": rule_id, "kind": record.kind, "id": record.id,
                  "mem": dict(memory), "at": now}
        if self._put is None:  # built once: a page puts a memory for every rule and record
            self._put = (
                insert_ignoring_duplicates(self._conn, rule_memory, "rule_id", "record_kind",
                                           "record_id")
                .values(rule_id=bindparam("rule"), record_kind=bindparam("kind"),
                        record_id=bindparam("id"), memory=bindparam("mem"),
                        updated_at=bindparam("at"))
                .returning(rule_memory.c.rule_id)  # psycopg's rowcount is -1 for ON CONFLICT
            )
        inserted = self._conn.execute(self._put, values).first()
        if inserted is None:
            self._conn.execute(_UPDATE, values)

    def put_many(self, rows: Iterable[tuple[str, RecordRef, Mapping[str, Any]]],
                 now: datetime) -> None:
        """`put` of many (rule, record, memory) rows in two statements: the stored ones
        updated, then the others inserted (a queue's repeats remember thousands at once)."""
        values = [{"rule": rule_id, "kind": record.kind, "id": record.id, "mem": dict(memory),
                   "at": now} for rule_id, record, memory in rows]
        if not values:
            return
        self._conn.execute(_UPDATE, values)
        insert = insert_ignoring_duplicates(self._conn, rule_memory, "rule_id", "record_kind",
                                            "record_id")
        self._conn.execute(insert.values(
            rule_id=bindparam("rule"), record_kind=bindparam("kind"), record_id=bindparam("id"),
            memory=bindparam("mem"), updated_at=bindparam("at")), values)


_UPDATE = (
    update(rule_memory)
    .where(
        rule_memory.c.rule_id == bindparam("rule"),
        rule_memory.c.record_kind == bindparam("kind"),
        rule_memory.c.record_id == bindparam("id"),
    )
    .values(memory=bindparam("mem"), updated_at=bindparam("at"))
)

_OF_RECORD = select(rule_memory.c.rule_id, rule_memory.c.memory).where(
    rule_memory.c.record_kind == bindparam("kind"),
    rule_memory.c.record_id == bindparam("id"),
    rule_memory.c.rule_id.in_(bindparam("rules", expanding=True)),
)


_OF_RECORDS = select(rule_memory.c.rule_id, rule_memory.c.record_id, rule_memory.c.memory).where(
    rule_memory.c.record_kind == bindparam("kind"),
    rule_memory.c.record_id.in_(bindparam("ids", expanding=True)),
    rule_memory.c.rule_id.in_(bindparam("rules", expanding=True)),
)


def _owner(rule_id: str, record: RecordRef) -> tuple[Any, ...]:
    return (
        rule_memory.c.rule_id == rule_id,
        rule_memory.c.record_kind == record.kind,
        rule_memory.c.record_id == record.id,
    )
