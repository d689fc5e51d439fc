"""Silences, as Alertmanager has them: for a while, a rule's intents (on one record, or on all)
are skipped instead of carried out, with the silence as the reason. They end by themselves at
`ends_at` or earlier when expired; each change is an audit row (event `silence_added`,
`silence_expired`). The STOP file stays the global kill switch, which holds rather than skips.

Kept as one JSON value in the `meta` table: a handful at a time, read once per executor pass.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import insert, select, update

from syncd.model import RecordRef
from syncd.store.db import Tx
from syncd.store.tables import meta

KEY = "silences"


@dataclass(frozen=True)
class Silence:
    id: str
    rule_id: str
    record: str | None  # "zendesk.ticket:123"; None: every record of the rule
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str

    def holds(self, rule_id: str, record: RecordRef, now: datetime) -> bool:
        return (self.rule_id == rule_id and self.starts_at <= now < self.ends_at
                and self.record in (None, str(record)))

    def reason(self) -> str:
        where = f" on {self.record}" if self.record else ""
        return (f"silenced{where} until {self.ends_at.isoformat()} by {self.created_by}: "
                f"{self.comment} (silence {self.id})")

    def to_json(self) -> dict[str, str | None]:
        found = asdict(self)
        found["starts_at"], found["ends_at"] = self.starts_at.isoformat(), self.ends_at.isoformat()
        return found


def every(tx: Tx) -> list[Silence]:
    """All silences kept, expired ones included (oldest first)."""
    value = tx.conn.scalar(select(meta.c.value).where(meta.c.key == KEY))
    return [_silence(item) for item in json.loads(value)] if value else []


def active(tx: Tx, now: datetime) -> list[Silence]:
    return [s for s in every(tx) if s.starts_at <= now < s.ends_at]


def add(tx: Tx, rule_id: str, record: RecordRef | None, starts: datetime, until: datetime,
        comment: str, created_by: str, now: datetime) -> Silence:
    silence = Silence(uuid.uuid4().hex[:12], rule_id, str(record) if record else None, starts,
                      until, comment, created_by)
    _save(tx, [*every(tx), silence])
    tx.audit.append("silence_added", now, record=record, rule_id=rule_id,
                    detail=silence.to_json())
    return silence


def expire(tx: Tx, silence_id: str, now: datetime) -> Silence | None:
    """End a silence now; None when there is no such silence still holding."""
    kept = every(tx)
    found = next((s for s in kept if s.id == silence_id and s.ends_at > now), None)
    if found is None:
        return None
    ended = replace(found, ends_at=now)
    _save(tx, [ended if s.id == silence_id else s for s in kept])
    record = RecordRef.parse(found.record) if found.record else None
    tx.audit.append("silence_expired", now, record=record, rule_id=found.rule_id,
                    detail=ended.to_json())
    return ended


def _save(tx: Tx, silences: list[Silence]) -> None:
    value = json.dumps([s.to_json() for s in silences])
    exists = tx.conn.scalar(select(meta.c.key).where(meta.c.key == KEY))
    if exists is None:
        tx.conn.execute(insert(meta).values(key=KEY, value=value))
    else:
        tx.conn.execute(update(meta).where(meta.c.key == KEY).values(value=value))


def _silence(item: dict[str, str]) -> Silence:
    return Silence(item["id"], item["rule_id"], item.get("record"),
                   datetime.fromisoformat(item["starts_at"]),
                   datetime.fromisoformat(item["ends_at"]), item["comment"],
                   item.get("created_by") or "")
