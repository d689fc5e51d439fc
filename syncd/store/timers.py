"""Durable timers: the instants at which a timeline rule must look at a record again.

Rows, not sleeping threads, so a restart loses none. The engine recomputes a record's timers
for a rule whenever it evaluates it; `replace` makes the stored set match, cancelling (and
auditing) those that disappeared. A timer's key names one firing (rule, record, step, anchor,
occurrence), so a fired timer is never re-armed by replanning the same input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from syncd.model import RecordRef
from syncd.store.audit import Audit
from syncd.store.tables import timers

CHUNK = 500  # ids in one IN (...): well below SQLite's and PostgreSQL's parameter limits


class TimerState(StrEnum):
    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class TimerSpec:
    """One timer the engine wants; `model.intent_key(...)` of its step makes a good key."""

    key: str
    step: str
    due_at: datetime


@dataclass(frozen=True)
class StoredTimer:
    """A timer row as stored (the engine's own `Timer` is what it wants armed)."""

    key: str
    rule_id: str
    record: RecordRef
    step: str
    due_at: datetime
    state: TimerState


# built once: every record evaluated reads and settles its timers through them
_OWNED = select(timers).where(timers.c.rule_id == bindparam("rule"),
                              timers.c.record_kind == bindparam("kind"),
                              timers.c.record_id == bindparam("id"))
_PENDING = select(timers).where(timers.c.key == bindparam("key"),
                                timers.c.state == TimerState.PENDING.value)
_INSERT = insert(timers)


class Timers:
    def __init__(self, conn: Connection, audit: Audit) -> None:
        self._conn = conn
        self._audit = audit

    def replace(
        self,
        rule_id: str,
        record: RecordRef,
        specs: Iterable[TimerSpec],
        now: datetime,
        reason: str = "",
    ) -> None:
        """Make the rule's pending timers for the record exactly `specs`: new ones scheduled,
        moved ones rescheduled, missing ones cancelled (audited with `reason`), a cancelled one
        re-armed if it is wanted again; fired ones stay fired. Each change is audited."""
        wanted: dict[str, TimerSpec] = {}
        for spec in specs:
            if spec.key in wanted:
                raise ValueError(f"duplicate timer key {spec.key!r} for {rule_id} on {record}")
            wanted[spec.key] = spec
        owner = {"rule": rule_id, "kind": record.kind, "id": record.id}
        existing = {row.key: row for row in self._conn.execute(_OWNED, owner)}
        for key, row in existing.items():
            if row.state == TimerState.PENDING and key not in wanted:
                self._set(row, now, state=TimerState.CANCELLED, event="timer_cancelled",
                          reason=reason)
        for key, spec in wanted.items():
            row = existing.get(key)
            if row is None:
                self._conn.execute(_INSERT, {
                    "key": key, "rule_id": rule_id, "record_kind": record.kind,
                    "record_id": record.id, "step": spec.step, "due_at": spec.due_at,
                    "state": TimerState.PENDING.value, "created_at": now, "updated_at": now,
                })
                self._log("timer_scheduled", rule_id, record, key, spec.step, spec.due_at, now)
            elif row.state == TimerState.CANCELLED:
                self._set(
                    row, now, state=TimerState.PENDING, due_at=spec.due_at, event="timer_scheduled"
                )
            elif row.state == TimerState.PENDING and row.due_at != spec.due_at:
                self._set(row, now, due_at=spec.due_at, event="timer_rescheduled")

    def cancel_rule(self, rule_id: str, now: datetime) -> int:
        """Cancel every pending timer of a rule that no longer exists; returns how many."""
        query = select(timers).where(
            timers.c.rule_id == rule_id, timers.c.state == TimerState.PENDING.value
        )
        rows = self._conn.execute(query).all()
        for row in rows:
            self._set(row, now, state=TimerState.CANCELLED, event="timer_cancelled",
                      reason="the rule was removed by a reload")
        return len(rows)

    def due(self, now: datetime, limit: int = 100) -> list[StoredTimer]:
        """Pending timers whose instant has come, earliest first."""
        query = (
            select(timers)
            .where(timers.c.state == TimerState.PENDING.value, timers.c.due_at <= now)
            .order_by(timers.c.due_at, timers.c.id)
            .limit(limit)
        )
        return [_timer(row) for row in self._conn.execute(query)]

    def count_due(self, now: datetime) -> int:
        """Pending timers whose instant has come (a backlog the timer job has not fired yet)."""
        query = (
            select(func.count())
            .select_from(timers)
            .where(timers.c.state == TimerState.PENDING.value, timers.c.due_at <= now)
        )
        return int(self._conn.scalar(query) or 0)

    def next_due(self) -> datetime | None:
        """The earliest pending instant: the timer job sleeps until then."""
        return self._conn.scalar(
            select(func.min(timers.c.due_at)).where(timers.c.state == TimerState.PENDING.value)
        )

    def mark_fired(self, key: str, now: datetime) -> bool:
        """Pending -> fired; False if it was already fired or cancelled (lost race)."""
        row = self._conn.execute(_PENDING, {"key": key}).first()
        return row is not None and self._set(row, now, state=TimerState.FIRED, event="timer_fired")

    def cancel(self, key: str, now: datetime, reason: str) -> bool:
        """Pending -> cancelled, audited with `reason`; False if no longer pending."""
        row = self._conn.execute(_PENDING, {"key": key}).first()
        return row is not None and self._set(
            row, now, state=TimerState.CANCELLED, event="timer_cancelled", reason=reason
        )

    def for_record(self, record: RecordRef) -> list[StoredTimer]:
        """The record's pending timers (for `syncd audit`)."""
        query = (
            select(timers)
            .where(
                timers.c.record_kind == record.kind,
                timers.c.record_id == record.id,
                timers.c.state == TimerState.PENDING.value,
            )
            .order_by(timers.c.due_at, timers.c.id)
        )
        return [_timer(row) for row in self._conn.execute(query)]

    def for_records(self, kind: str, ids: Iterable[str]) -> dict[str, list[StoredTimer]]:
        """`for_record` of many records of one kind, in a statement per 500."""
        found: dict[str, list[StoredTimer]] = {}
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), CHUNK):
            query = (
                select(timers)
                .where(
                    timers.c.record_kind == kind,
                    timers.c.record_id.in_(wanted[start : start + CHUNK]),
                    timers.c.state == TimerState.PENDING.value,
                )
                .order_by(timers.c.due_at, timers.c.id)
            )
            for row in self._conn.execute(query):
                found.setdefault(row.record_id, []).append(_timer(row))
        return found

    def _set(
        self, row: Row[Any], now: datetime, *, event: str, reason: str = "", **values: Any
    ) -> bool:
        """Guarded update of one timer from the state it was read in, audited."""
        result = self._conn.execute(
            update(timers)
            .where(timers.c.key == row.key, timers.c.state == row.state)
            .values(updated_at=now, **values)
        )
        if result.rowcount != 1:
            return False
        due_at = values.get("due_at", row.due_at)
        record = RecordRef(row.record_kind, row.record_id)
        self._log(event, row.rule_id, record, row.key, row.step, due_at, now, reason)
        return True

    def _log(
        self,
        event: str,
        rule_id: str,
        record: RecordRef,
        key: str,
        step: str,
        due_at: datetime,
        now: datetime,
        reason: str = "",
    ) -> None:
        detail = {"timer": key, "step": step, "due_at": due_at.isoformat()}
        self._audit.append(
            event,
            now,
            record=record,
            rule_id=rule_id,
            detail={**detail, "reason": reason} if reason else detail,
        )


def _timer(row: Row[Any]) -> StoredTimer:
    return StoredTimer(
        key=row.key,
        rule_id=row.rule_id,
        record=RecordRef(row.record_kind, row.record_id),
        step=row.step,
        due_at=row.due_at,
        state=TimerState(row.state),
    )
