"""Durable timers: the instants at which a timeline rule must look at a record again.

Rows, not sleeping threads, so a restart loses none. The engine recomputes a record's timers
for a rule whenever it evaluates it; `replace` makes the stored set match, cancelling (and
auditing) those that disappeared. A timer's key names one firing (rule, record, step, anchor,
occurrence), so a fired timer is never re-armed by replanning the same input.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, or_, select, tuple_, update

from syncd.model import RecordRef
from syncd.store.audit import Audit, audit_row
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


@dataclass(frozen=True)
class Wanted:
    """The timers a rule wants for a record (`Timers.replace_many`)."""

    rule_id: str
    record: RecordRef
    specs: tuple[TimerSpec, ...]
    reason: str = ""  # why a pending timer no longer wanted is cancelled


# built once: every record evaluated reads and settles its timers through them
_OWNED = select(timers).where(
    timers.c.rule_id.in_(bindparam("rules", expanding=True)),
    timers.c.record_kind == bindparam("kind"),
    timers.c.record_id.in_(bindparam("ids", expanding=True)),
    or_(timers.c.state == TimerState.PENDING.value,
        timers.c.key.in_(bindparam("keys", expanding=True))),
)
_SETTLE = (
    update(timers)
    .where(timers.c.key.in_(bindparam("keys", expanding=True)),
           timers.c.state == TimerState.PENDING.value)
    .values(state=bindparam("settled"), updated_at=bindparam("at"))
    .returning(timers.c.key, timers.c.rule_id, timers.c.record_kind, timers.c.record_id,
               timers.c.step, timers.c.due_at)
)
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
        self.replace_many([Wanted(rule_id, record, tuple(specs), reason)], now)

    def replace_many(self, wanted: Sequence[Wanted], now: datetime) -> None:
        """`replace` for many (rule, record) owners, in a few statements for all of them: the
        owners' pending timers and the wanted keys' rows read at once, the new ones inserted at
        once, the unwanted cancelled at once (a queue's repeats re-arm thousands together)."""
        owners: dict[tuple[str, RecordRef], Wanted] = {}
        for one in wanted:
            keys = [spec.key for spec in one.specs]
            if len(set(keys)) != len(keys):
                twice = next(k for k in keys if keys.count(k) > 1)
                raise ValueError(f"duplicate timer key {twice!r} for {one.rule_id} on "
                                 f"{one.record}")
            owners[(one.rule_id, one.record)] = one
        existing = self._owned(list(owners.values()))
        self._settle(TimerState.CANCELLED, {
            key: one.reason for owner, one in owners.items()
            for key, row in existing.get(owner, {}).items()
            if row.state == TimerState.PENDING and key not in {s.key for s in one.specs}}, now)
        scheduled: list[dict[str, Any]] = []
        for owner, one in owners.items():
            rows = existing.get(owner, {})
            for spec in one.specs:
                key, row = spec.key, rows.get(spec.key)
                if row is None:
                    scheduled.append({
                        "key": key, "rule_id": one.rule_id, "record_kind": one.record.kind,
                        "record_id": one.record.id, "step": spec.step, "due_at": spec.due_at,
                        "state": TimerState.PENDING.value, "created_at": now, "updated_at": now,
                    })
                elif row.state == TimerState.CANCELLED:
                    self._set(row, now, state=TimerState.PENDING, due_at=spec.due_at,
                              event="timer_scheduled")
                elif row.state == TimerState.PENDING and row.due_at != spec.due_at:
                    self._set(row, now, due_at=spec.due_at, event="timer_rescheduled")
        if scheduled:
            self._conn.execute(_INSERT, scheduled)
            self._audit.append_many(
                _event("timer_scheduled", RecordRef(r["record_kind"], r["record_id"]),
                       r["rule_id"], r["key"], r["step"], r["due_at"], now)
                for r in scheduled)

    def _owned(self, wanted: Sequence[Wanted]) -> dict[tuple[str, RecordRef], dict[str, Row[Any]]]:
        """The owners' pending timers, and the rows of the keys they want in any state (a fired
        one stays fired, a cancelled one is re-armed): (rule, record) -> key -> row."""
        found: dict[tuple[str, RecordRef], dict[str, Row[Any]]] = {}
        for kind in dict.fromkeys(one.record.kind for one in wanted):
            mine = [one for one in wanted if one.record.kind == kind]
            for start in range(0, len(mine), CHUNK // 2):
                chunk = mine[start : start + CHUNK // 2]
                params = {
                    "kind": kind,
                    "rules": sorted({one.rule_id for one in chunk}),
                    "ids": sorted({one.record.id for one in chunk}),
                    "keys": [spec.key for one in chunk for spec in one.specs] or [""],
                }
                for row in self._conn.execute(_OWNED, params):
                    owner = (row.rule_id, RecordRef(row.record_kind, row.record_id))
                    found.setdefault(owner, {})[row.key] = row
        return found

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

    def due(self, now: datetime, limit: int = 100,
            steps: Collection[tuple[str, str]] | None = None) -> list[StoredTimer]:
        """Pending timers whose instant has come, earliest first; only those of the (rule,
        step) pairs `steps` if given."""
        query = (
            select(timers)
            .where(timers.c.state == TimerState.PENDING.value, timers.c.due_at <= now)
            .order_by(timers.c.due_at, timers.c.id)
            .limit(limit)
        )
        if steps is not None:
            query = query.where(tuple_(timers.c.rule_id, timers.c.step).in_(sorted(steps)))
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
        return self._settle(TimerState.FIRED, {key: ""}, now) == 1

    def cancel(self, key: str, now: datetime, reason: str) -> bool:
        """Pending -> cancelled, audited with `reason`; False if no longer pending."""
        return self._settle(TimerState.CANCELLED, {key: reason}, now) == 1

    def fire_many(self, reasons: Mapping[str, str], now: datetime) -> int:
        """`mark_fired` of many timers (key -> the reason audited with it, "" for none), in a
        statement per 500; returns how many were pending."""
        return self._settle(TimerState.FIRED, reasons, now)

    def cancel_many(self, reasons: Mapping[str, str], now: datetime) -> int:
        """`cancel` of many timers (key -> reason), in a statement per 500."""
        return self._settle(TimerState.CANCELLED, reasons, now)

    def _settle(self, state: TimerState, reasons: Mapping[str, str], now: datetime) -> int:
        """Pending -> `state` for the keys still pending, each audited (in the order given)."""
        event = "timer_fired" if state is TimerState.FIRED else "timer_cancelled"
        keys = list(reasons)
        settled = 0
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            rows = {row.key: row for row in self._conn.execute(
                _SETTLE, {"keys": chunk, "settled": state.value, "at": now})}
            self._audit.append_many(
                _event(event, RecordRef(row.record_kind, row.record_id), row.rule_id, key,
                       row.step, row.due_at, now, reasons[key])
                for key in chunk if (row := rows.get(key)) is not None)
            settled += len(rows)
        return settled

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
        self._audit.append_many([_event(event, record, rule_id, key, step, due_at, now, reason)])


def _event(event: str, record: RecordRef, rule_id: str, key: str, step: str, due_at: datetime,
           now: datetime, reason: str = "") -> dict[str, Any]:
    """A timer's audit row."""
    detail = {"timer": key, "step": step, "due_at": due_at.isoformat()}
    return audit_row(event, now, record=record, rule_id=rule_id,
                     detail={**detail, "reason": reason} if reason else detail)


def _timer(row: Row[Any]) -> StoredTimer:
    return StoredTimer(
        key=row.key,
        rule_id=row.rule_id,
        record=RecordRef(row.record_kind, row.record_id),
        step=row.step,
        due_at=row.due_at,
        state=TimerState(row.state),
    )
