"""Records held back because evaluating them failed (a value no code path expected, a template
that raises on this record's data): each is audited with the reason, listed by `syncd intents`,
counted in metrics and retried after a backoff, while the cursor moves on and every other
record of the page is processed."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, select, update

from syncd.model import RecordRef
from syncd.store.audit import Audit
from syncd.store.tables import quarantine

BACKOFF_BASE_S = 60.0
BACKOFF_CAP_S = 6 * 3600.0
QUARANTINED, RELEASED = "quarantined", "released"


@dataclass(frozen=True)
class Held:
    record: RecordRef
    reason: str
    attempts: int
    first_at: datetime
    next_attempt_at: datetime


def backoff(attempts: int) -> timedelta:
    """1 min, 2 min, 4 min ... capped at six hours."""
    return timedelta(seconds=min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempts - 1, 0)))


class Quarantine:
    def __init__(self, conn: Connection, audit: Audit) -> None:
        self._conn = conn
        self._audit = audit

    def hold(self, ref: RecordRef, reason: str, now: datetime) -> Held:
        """Hold `ref` back (again): one more attempt counted, the next one after a backoff."""
        found = self.get(ref)
        attempts = (found.attempts if found else 0) + 1
        retry = now + backoff(attempts)
        values = {"reason": reason, "attempts": attempts, "updated_at": now,
                  "next_attempt_at": retry}
        if found is None:
            self._conn.execute(insert(quarantine).values(
                record_kind=ref.kind, record_id=ref.id, first_at=now, **values))
        else:
            self._conn.execute(update(quarantine).where(*_key(ref)).values(**values))
        self._audit.append(QUARANTINED, now, record=ref, detail={
            "reason": reason, "attempts": attempts, "retry_at": retry.isoformat()})
        return Held(ref, reason, attempts, found.first_at if found else now, retry)

    def release(self, ref: RecordRef, now: datetime) -> bool:
        """`ref` was evaluated without error: no longer held (audited if it was)."""
        gone = self._conn.execute(_RELEASE, {"kind": ref.kind, "id": ref.id}).rowcount
        if gone:
            self._audit.append(RELEASED, now, record=ref, detail={})
        return bool(gone)

    def get(self, ref: RecordRef) -> Held | None:
        row = self._conn.execute(select(quarantine).where(*_key(ref))).first()
        return _held(row) if row is not None else None

    def due(self, kinds: builtins.list[str], now: datetime, limit: int = 100
            ) -> builtins.list[RecordRef]:
        query = (select(quarantine.c.record_kind, quarantine.c.record_id)
                 .where(quarantine.c.record_kind.in_(kinds), quarantine.c.next_attempt_at <= now)
                 .order_by(quarantine.c.next_attempt_at).limit(limit))
        return [RecordRef(kind, id_) for kind, id_ in self._conn.execute(query)]

    def list(self, record: RecordRef | None = None) -> builtins.list[Held]:
        query = select(quarantine).order_by(quarantine.c.first_at, quarantine.c.record_id)
        if record is not None:
            query = query.where(*_key(record))
        return [_held(row) for row in self._conn.execute(query)]

    def count(self) -> int:
        return int(self._conn.scalar(select(func.count()).select_from(quarantine)) or 0)


# built once: every record a poll evaluates cleanly is released
_RELEASE = delete(quarantine).where(quarantine.c.record_kind == bindparam("kind"),
                                    quarantine.c.record_id == bindparam("id"))


def _key(ref: RecordRef) -> tuple[object, ...]:
    return (quarantine.c.record_kind == ref.kind, quarantine.c.record_id == ref.id)


def _held(row: Row[object]) -> Held:
    r = row._mapping
    return Held(RecordRef(str(r["record_kind"]), str(r["record_id"])), str(r["reason"]),
                int(r["attempts"]), r["first_at"], r["next_attempt_at"])  # type: ignore[arg-type]
