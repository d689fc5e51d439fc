"""Opening the store: SQLite durability, migrations, transactions, aware instants."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from postgres import PostgresServer
from sqlalchemy import (
    Connection,
    Integer,
    column,
    create_engine,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable

from syncd.model import Intent, Record, RecordRef
from syncd.store import db
from syncd.store.db import StoreError, open_store, schema_version
from syncd.store.tables import (
    cursors,
    insert_ignoring_duplicates,
    intents,
    leases,
    meta,
    metadata,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TICKET = RecordRef("zendesk.ticket", "1")

# The schema as released in version 1, frozen: later migrations must upgrade exactly this.
V1_SCHEMA = """
CREATE TABLE meta ("key" VARCHAR(64) NOT NULL, value TEXT NOT NULL, PRIMARY KEY ("key"));
CREATE TABLE cursors (source VARCHAR(64) NOT NULL, cursor TEXT NOT NULL,
    updated_at DATETIME NOT NULL, PRIMARY KEY (source));
CREATE TABLE records (kind VARCHAR(64) NOT NULL, id VARCHAR(255) NOT NULL, fields JSON NOT NULL,
    observed_at DATETIME NOT NULL, deleted BOOLEAN NOT NULL, version INTEGER NOT NULL,
    CONSTRAINT pk_records PRIMARY KEY (kind, id));
CREATE TABLE rule_memory (rule_id VARCHAR(128) NOT NULL, record_kind VARCHAR(64) NOT NULL,
    record_id VARCHAR(255) NOT NULL, memory JSON NOT NULL, updated_at DATETIME NOT NULL,
    CONSTRAINT pk_rule_memory PRIMARY KEY (rule_id, record_kind, record_id));
CREATE TABLE timers (id INTEGER NOT NULL, "key" VARCHAR(255) NOT NULL,
    rule_id VARCHAR(128) NOT NULL, record_kind VARCHAR(64) NOT NULL,
    record_id VARCHAR(255) NOT NULL, step VARCHAR(128) NOT NULL, due_at DATETIME NOT NULL,
    state VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
    PRIMARY KEY (id), CONSTRAINT uq_timers_key UNIQUE ("key"));
CREATE INDEX ix_timers_due ON timers (state, due_at);
CREATE INDEX ix_timers_owner ON timers (rule_id, record_kind, record_id);
CREATE TABLE intents (id INTEGER NOT NULL, "key" VARCHAR(255) NOT NULL,
    rule_id VARCHAR(128) NOT NULL, record_kind VARCHAR(64) NOT NULL,
    record_id VARCHAR(255) NOT NULL, action VARCHAR(64) NOT NULL, params JSON NOT NULL,
    due_at DATETIME NOT NULL, step VARCHAR(128) NOT NULL, occurrence INTEGER NOT NULL,
    shadow BOOLEAN NOT NULL, reason JSON NOT NULL, state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL, last_error TEXT, vendor_answer JSON,
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
    next_attempt_at DATETIME NOT NULL, sent_at DATETIME,
    PRIMARY KEY (id), CONSTRAINT uq_intents_key UNIQUE ("key"));
CREATE INDEX ix_intents_rule_sent ON intents (rule_id, sent_at);
CREATE INDEX ix_intents_claim ON intents (state, next_attempt_at);
CREATE INDEX ix_intents_record ON intents (record_kind, record_id);
CREATE TABLE audit (id INTEGER NOT NULL, at DATETIME NOT NULL, record_kind VARCHAR(64),
    record_id VARCHAR(255), rule_id VARCHAR(128), intent_key VARCHAR(255),
    event VARCHAR(64) NOT NULL, detail JSON NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_audit_record ON audit (record_kind, record_id, id);
CREATE INDEX ix_audit_intent ON audit (intent_key, id);
CREATE TABLE leases (name VARCHAR(64) NOT NULL, holder VARCHAR(255) NOT NULL,
    expires_at DATETIME NOT NULL, PRIMARY KEY (name));
CREATE TABLE field_history (id INTEGER NOT NULL, record_kind VARCHAR(64) NOT NULL,
    record_id VARCHAR(255) NOT NULL, version INTEGER NOT NULL, field VARCHAR(255) NOT NULL,
    at DATETIME NOT NULL, old JSON, new JSON, PRIMARY KEY (id),
    CONSTRAINT fk_field_history_record FOREIGN KEY(record_kind, record_id)
        REFERENCES records (kind, id) ON DELETE CASCADE);
CREATE INDEX ix_field_history_record ON field_history (record_kind, record_id, at);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO records VALUES ('zendesk.ticket', '1', '{"status": "open"}',
    '2026-03-01 08:00:00.000000', 0, 1);
INSERT INTO intents VALUES (1, 'triage/abc', 'triage', 'zendesk.ticket', '1', 'tag',
    '{"tags": ["x"]}', '2026-03-01 08:00:00.000000', '', 0, 0, '{}', 'planned', 0, NULL, NULL,
    '2026-03-01 08:00:00.000000', '2026-03-01 08:00:00.000000',
    '2026-03-01 08:00:00.000000', NULL);
"""


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _v1_file(tmp_path: Path) -> Path:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SCHEMA)
    return path


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Each table and index with its columns (name, type, not null, default, pk)."""
    with sqlite3.connect(path) as conn:
        names = conn.execute("SELECT name, type FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        pragma = {"table": "table_info", "index": "index_info"}
        return {
            name: conn.execute(f"PRAGMA {pragma[kind]}({name})").fetchall()
            for name, kind in names.fetchall()
        }


def _at_version(url: str, version: int) -> None:
    """A database as the released `version` left it, made by the real migration steps."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for step in db.MIGRATIONS[:version]:
            step(conn)
        conn.execute(insert(meta).values(key="schema_version", value=str(version)))
    engine.dispose()


def _set_version(url: str, value: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=value))
    engine.dispose()


def _table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_fresh_database_gets_every_table_and_the_current_version(store_url: str) -> None:
    store = open_store(store_url)
    assert store.version() == schema_version() == 4
    assert set(metadata.tables) <= _table_names(store_url)
    store.close()


def test_reopening_is_idempotent(store_url: str) -> None:
    open_store(store_url).close()
    store = open_store(store_url)
    assert store.version() == schema_version()
    store.close()


def test_v1_fixture_opens_with_its_data_and_the_same_schema_as_a_fresh_one(
    tmp_path: Path,
) -> None:
    path = _v1_file(tmp_path)
    store = open_store(_url(path))
    with store.read() as tx:
        assert tx.records.get(TICKET) == Record(
            TICKET, {"status": "open"}, datetime(2026, 3, 1, 8, tzinfo=UTC)
        )
        entry = tx.ledger.get("triage/abc")
        assert entry is not None and entry.intent.due_at.tzinfo is UTC
    store.close()
    fresh = tmp_path / "fresh.db"
    open_store(_url(fresh)).close()
    assert _tables(path) == _tables(fresh)


def test_a_version_1_lease_gets_an_epoch_on_either_engine(store_url: str) -> None:
    _at_version(store_url, 1)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO leases (name, holder, expires_at) "
                          "VALUES ('leader', 'old-host', :at)"), {"at": NOW})
    engine.dispose()
    store = open_store(store_url)
    assert store.version() == 4
    with store.read() as tx:
        row = tx.conn.execute(select(leases)).one()
    assert (row.name, row.holder, row.epoch, row.acquired_at) == ("leader", "old-host", 0, None)
    store.close()


def test_an_older_database_is_migrated_in_order(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _at_version(store_url, 1)

    def add_priority(conn: Connection) -> None:
        conn.exec_driver_sql("ALTER TABLE intents ADD COLUMN priority INTEGER NOT NULL DEFAULT 5")

    with open_store(store_url).transaction() as tx:
        tx.ledger.plan([Intent("triage/1", "triage", TICKET, "tag", {"tags": ["x"]}, NOW)], NOW)
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, add_priority])
    _set_version(store_url, str(len(db.MIGRATIONS) - 1))  # as the code before add_priority
    store = open_store(store_url)
    assert store.version() == len(db.MIGRATIONS)
    with store.read() as tx:
        priority = column("priority", Integer)
        assert tx.conn.scalar(select(priority).select_from(intents)) == 5
    store.close()


def test_a_failing_migration_leaves_the_database_at_its_old_version(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _at_version(store_url, 1)

    def half_done(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE half (x INTEGER)")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, half_done])
    with pytest.raises(RuntimeError, match="migration bug"):
        open_store(store_url)
    monkeypatch.undo()
    assert "half" not in _table_names(store_url)
    assert "acquired_at" not in {c["name"] for c in _columns(store_url, "leases")}
    store = open_store(store_url)
    assert store.version() == schema_version()
    store.close()


def _columns(url: str, table: str) -> list[dict[str, object]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(inspect(conn).get_columns(table))  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_a_newer_database_is_refused_with_a_clear_error(store_url: str) -> None:
    open_store(store_url).close()
    _set_version(store_url, "99")
    with pytest.raises(StoreError, match=r"schema version 99 is newer .* supports \(4\)"):
        open_store(store_url)
    engine = create_engine(store_url)
    with engine.connect() as conn:
        assert conn.scalar(select(meta.c.value)) == "99"
    engine.dispose()


def test_a_missing_state_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(_url(tmp_path / "nowhere" / "state.db"))


def test_sqlite_runs_in_wal_with_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    store = open_store(_url(tmp_path / "state.db"))
    with store.read() as tx:
        pragma = tx.conn.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS
    store.close()


def test_instants_come_back_aware_utc_whatever_offset_went_in(store_url: str) -> None:
    store = open_store(store_url)
    paris = timezone(timedelta(hours=1))
    written = datetime(2026, 3, 2, 10, 30, 0, 123456, tzinfo=paris)
    with store.transaction() as tx:
        tx.cursors.set("zendesk", "c1", written)
    with store.read() as tx:
        _, at = tx.cursors.all()["zendesk"]
    assert at == written and at.tzinfo is UTC and at.hour == 9 and at.microsecond == 123456
    store.close()


def test_naive_instants_are_refused(store_url: str) -> None:
    store = open_store(store_url)
    with pytest.raises(Exception, match="naive datetime"), store.transaction() as tx:
        tx.cursors.set("zendesk", "c1", datetime(2026, 3, 2, 9, 30))
    store.close()


def test_an_exception_mid_page_rolls_back_everything(store_url: str) -> None:
    store = open_store(store_url)
    intent = Intent("triage/1", "triage", TICKET, "tag", {"tags": ["x"]}, NOW)
    with pytest.raises(RuntimeError, match="connector died"), store.transaction() as tx:
        tx.records.upsert(Record(TICKET, {"status": "new"}, NOW))
        assert tx.ledger.plan([intent], NOW) == ["triage/1"]
        tx.memory.put("triage", TICKET, {"inside": True}, NOW)
        tx.cursors.set("zendesk", "page-2", NOW)
        raise RuntimeError("connector died")
    with store.read() as tx:
        assert tx.records.get(TICKET) is None
        assert tx.records.history(TICKET) == []
        assert tx.ledger.get("triage/1") is None
        assert tx.audit.for_record(TICKET) == []
        assert tx.memory.get("triage", TICKET) is None
        assert tx.cursors.get("zendesk") is None
    # The replayed page plans the same intent again: it is new, exactly once.
    with store.transaction() as tx:
        assert tx.ledger.plan([intent], NOW) == ["triage/1"]
    store.close()


def test_read_snapshots_never_write(store_url: str) -> None:
    store = open_store(store_url)
    with store.read() as tx:
        tx.cursors.set("zendesk", "c1", NOW)
    with store.read() as tx:
        assert tx.cursors.get("zendesk") is None
    store.close()


def test_write_transactions_take_the_lock_up_front_and_queue(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a writer that has only read so far already excludes other writers,
    and a second writer waits (busy_timeout) rather than failing."""
    path = tmp_path / "state.db"
    first, second = open_store(_url(path)), open_store(_url(path))

    def write_b() -> None:
        with second.transaction() as tx:
            tx.cursors.set("zendesk", "b", NOW)

    with first.transaction() as tx:
        assert tx.cursors.get("zendesk") is None
        with sqlite3.connect(path, timeout=0) as raw, pytest.raises(sqlite3.OperationalError):
            raw.execute("BEGIN IMMEDIATE")
        waiter = threading.Thread(target=write_b)
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive()
        tx.cursors.set("zendesk", "a", NOW)
    waiter.join(timeout=10)
    with first.read() as tx:
        assert tx.cursors.get("zendesk") == "b"
    first.close()
    second.close()


def test_schema_and_statements_compile_for_postgresql() -> None:
    dialect = postgresql.dialect()
    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        assert "TIMESTAMP WITH TIME ZONE" in ddl or "updated_at" not in ddl
        for index in table.indexes:
            CreateIndex(index).compile(dialect=dialect)

    class FakeConn:
        dialect = postgresql.dialect()

    statement = insert_ignoring_duplicates(FakeConn(), cursors, "source")  # type: ignore[arg-type]
    assert "ON CONFLICT (source) DO NOTHING" in str(statement.compile(dialect=dialect))


def test_json_columns_take_datetimes_and_sets_as_plain_json(tmp_path: Path) -> None:
    store = open_store(_url(tmp_path / "state.db"))
    with store.transaction() as tx:
        tx.audit.append("reload_refused", NOW, detail={"at": NOW, "files": {"a.yaml"}})
    with store.read() as tx:
        detail = tx.conn.execute(text("SELECT detail FROM audit")).scalar()
    assert detail == '{"at": "2026-03-02T09:30:00+00:00", "files": ["a.yaml"]}'
    store.close()


def test_hosts_starting_together_on_a_fresh_postgresql_database_all_open_it(
    postgres: PostgresServer,
) -> None:
    url = postgres.new_database()
    opened: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def host() -> None:
        start.wait()
        try:
            store = open_store(url)
            opened.append(store.version())
            store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=host) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and opened == [schema_version()] * 4


def test_a_connection_cut_mid_transaction_rolls_it_back_and_the_next_one_reconnects(
    postgres: PostgresServer,
) -> None:
    url = postgres.new_database()
    store = open_store(url)
    intent = Intent("triage/1", "triage", TICKET, "tag", {"tags": ["x"]}, NOW)
    with pytest.raises(DBAPIError) as cut, store.transaction() as tx:
        tx.ledger.plan([intent], NOW)
        tx.cursors.set("zendesk", "page-2", NOW)
        postgres.disconnect_all(make_url(url).database or "")
        tx.records.upsert(Record(TICKET, {"status": "new"}, NOW))
    assert db.connection_lost(cut.value)
    with store.transaction() as tx:  # a fresh connection; the page is replayed whole
        assert tx.ledger.get("triage/1") is None and tx.cursors.get("zendesk") is None
        assert tx.ledger.plan([intent], NOW) == ["triage/1"]
    store.close()
