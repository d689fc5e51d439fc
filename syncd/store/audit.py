"""The append-only audit trail: what syncd did and why, per record and per intent.

`syncd audit zendesk.ticket:123` reads it back in insertion order (the `id`), which is the
order things happened even when several rows share one clock instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from syncd.model import RecordRef
from syncd.store.tables import audit

_APPEND = insert(audit)  # built once: appended to for every intent and record event


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    event: str
    record: RecordRef | None
    rule_id: str | None
    intent_key: str | None
    detail: Mapping[str, Any]


class Audit:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def append(
        self,
        event: str,
        now: datetime,
        *,
        record: RecordRef | None = None,
        rule_id: str | None = None,
        intent_key: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        values = audit_row(event, now, record=record, rule_id=rule_id, intent_key=intent_key,
                           detail=detail)
        result = self._conn.execute(_APPEND, values)
        return int(result.inserted_primary_key[0])

    def append_many(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows made by `audit_row`, in order, in one statement (a queue's repeats
        settle thousands of timers at once)."""
        found = list(rows)
        if found:
            self._conn.execute(_APPEND, found)

    def for_record(self, record: RecordRef) -> list[AuditEntry]:
        query = (
            select(audit)
            .where(audit.c.record_kind == record.kind, audit.c.record_id == record.id)
            .order_by(audit.c.id)
        )
        return [_entry(row) for row in self._conn.execute(query)]

    def for_rule(self, rule_id: str) -> list[AuditEntry]:
        """Every row of one rule, oldest first (a person's `--release`/`--drop` among them)."""
        query = select(audit).where(audit.c.rule_id == rule_id).order_by(audit.c.id)
        return [_entry(row) for row in self._conn.execute(query)]

    def for_intent(self, key: str) -> list[AuditEntry]:
        query = select(audit).where(audit.c.intent_key == key).order_by(audit.c.id)
        return [_entry(row) for row in self._conn.execute(query)]


def audit_row(
    event: str,
    now: datetime,
    *,
    record: RecordRef | None = None,
    rule_id: str | None = None,
    intent_key: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One audit row's values, for `append_many`."""
    return {
        "at": now,
        "event": event,
        "record_kind": record.kind if record else None,
        "record_id": record.id if record else None,
        "rule_id": rule_id,
        "intent_key": intent_key,
        "detail": dict(detail or {}),
    }


def _entry(row: Row[Any]) -> AuditEntry:
    record = RecordRef(row.record_kind, row.record_id) if row.record_kind is not None else None
    return AuditEntry(
        id=row.id,
        at=row.at,
        event=row.event,
        record=record,
        rule_id=row.rule_id,
        intent_key=row.intent_key,
        detail=row.detail,
    )
