"""The durable schema, in portable SQLAlchemy Core (SQLite now, PostgreSQL for HA).

Only portable types: JSON through SQLAlchemy's JSON type and instants through `UTCDateTime`,
which always hands back timezone-aware UTC datetimes (SQLite would otherwise drop tzinfo).
This module describes the *current* schema; `db.MIGRATIONS` brings older files up to it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Insert,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """An instant stored in UTC and read back aware; naive input is a bug and is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware instants")
        value = value.astimezone(UTC)
        # SQLite's DATETIME text has no offset: store UTC wall time so text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_dumps(value: Any) -> str:
    """The store's JSON encoder: datetimes and dates become ISO-8601 strings. A lone surrogate
    (valid in JSON, which vendors pass on from customers) is written as its `\\uXXXX` escape,
    so the text is valid UTF-8 and reads back as the same string."""
    text = json.dumps(value, default=_json_default, ensure_ascii=False)
    if text.isascii():  # most values: no surrogate to look for
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_json_value(value: Any) -> Any:
    """`value` as it will read back from a JSON column, so comparisons see what is stored."""
    return json.loads(json_dumps(value))


metadata = MetaData()


def _record_columns() -> list[Column[Any]]:
    return [
        Column("record_kind", String(64), nullable=False),
        Column("record_id", String(255), nullable=False),
    ]


meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

cursors = Table(
    "cursors",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("cursor", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

records = Table(
    "records",
    metadata,
    Column("kind", String(64), nullable=False),
    Column("id", String(255), nullable=False),
    Column("fields", JSON, nullable=False),
    Column("observed_at", UTCDateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("kind", "id", name="pk_records"),
)

# Dispatch and least-loaded read a helpdesk's open tickets every pass (`Records.by_kind` with
# `field_in` on the status): found by this index, not by decoding every stored ticket.
records_status = Index("ix_records_status", records.c.kind, records.c.fields["status"].as_string())

field_history = Table(
    "field_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_record_columns(),
    Column("version", Integer, nullable=False),
    Column("field", String(255), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("old", JSON),
    Column("new", JSON),
    ForeignKeyConstraint(
        ["record_kind", "record_id"],
        ["records.kind", "records.id"],
        ondelete="CASCADE",
        name="fk_field_history_record",
    ),
    Index("ix_field_history_record", "record_kind", "record_id", "at"),
)

rule_memory = Table(
    "rule_memory",
    metadata,
    Column("rule_id", String(128), nullable=False),
    *_record_columns(),
    Column("memory", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("rule_id", "record_kind", "record_id", name="pk_rule_memory"),
)

timers = Table(
    "timers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False),
    Column("rule_id", String(128), nullable=False),
    *_record_columns(),
    Column("step", String(128), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # pending | fired | cancelled
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("key", name="uq_timers_key"),
    Index("ix_timers_due", "state", "due_at"),
    Index("ix_timers_owner", "rule_id", "record_kind", "record_id"),
)

intents = Table(
    "intents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False),
    Column("rule_id", String(128), nullable=False),
    *_record_columns(),
    Column("action", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("step", String(128), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("shadow", Boolean, nullable=False),
    Column("reason", JSON, nullable=False),
    # planned | sent | done | failed | dead | skipped (see ledger.IntentState)
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("vendor_answer", JSON(none_as_null=True)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),  # last planned->sent transition; feeds the per-hour limits
    UniqueConstraint("key", name="uq_intents_key"),
    Index("ix_intents_claim", "state", "next_attempt_at"),
    Index("ix_intents_record", "record_kind", "record_id"),
    Index("ix_intents_rule_sent", "rule_id", "sent_at"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("record_kind", String(64)),
    Column("record_id", String(255)),
    Column("rule_id", String(128)),
    Column("intent_key", String(255)),
    Column("event", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_record", "record_kind", "record_id", "id"),
    Index("ix_audit_intent", "intent_key", "id"),
)

# records whose evaluation failed: held back, retried after a backoff (store/quarantine.py)
quarantine = Table(
    "quarantine",
    metadata,
    *_record_columns(),
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("record_kind", "record_id", name="pk_quarantine"),
)

# One row per lease (lease.py). `epoch` grows by one at every grant to a new holder: the fence
# every leader's write checks. `acquired_at`: since when the holder leads (for STATUS=).
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("epoch", Integer, nullable=False, server_default="0"),
    Column("acquired_at", UTCDateTime),
)


def insert_ignoring_duplicates(conn: Connection, table: Table, *unique: str) -> Insert:
    """INSERT ... ON CONFLICT (unique) DO NOTHING in the connection's dialect."""
    dialects = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    make = dialects.get(conn.dialect.name)
    if make is None:
        raise NotImplementedError(f"the store runs on {sorted(dialects)}, not {conn.dialect.name}")
    return make(table).on_conflict_do_nothing(index_elements=[table.c[name] for name in unique])
