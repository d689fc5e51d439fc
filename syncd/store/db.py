"""Opening the store: engine, SQLite durability settings, schema migrations, transactions.

One `Store.transaction()` per unit of work (a polled page: snapshots + history + engine output
+ timers + cursor; or one ledger transition). A crash anywhere inside rolls all of it back.
On SQLite every write transaction starts with `BEGIN IMMEDIATE`, so concurrent writers queue on
the lock (busy_timeout) instead of failing on a read-to-write upgrade, and a read inside a
transaction is never stale by the time its write lands.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    NestedTransaction,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.schema import CreateIndex

from syncd.errors import Fatal
from syncd.files import private_file
from syncd.store.audit import Audit
from syncd.store.cursors import Cursors
from syncd.store.ledger import Ledger
from syncd.store.memory import MemoryTable
from syncd.store.meta import Meta
from syncd.store.quarantine import Quarantine
from syncd.store.records import Records
from syncd.store.tables import (
    UTCDateTime,
    json_dumps,
    meta,
    metadata,
    quarantine,
    records_status,
)
from syncd.store.timers import Timers

BUSY_TIMEOUT_MS = 30_000
_WRITE = "syncd_write"
MIGRATION_LOCK = 0x73796E6364  # "syncd": the advisory lock migrations take on PostgreSQL


class StoreError(Fatal, RuntimeError):
    """The store cannot be opened or used as configured."""


# What opening or using a store raises: syncd's own refusals, and the database's errors as
# SQLAlchemy wraps them (a URL that is not one included).
STORE_ERRORS: tuple[type[Exception], ...] = (StoreError, SQLAlchemyError)


def shown_url(url: str) -> str:
    """The database URL as it may be shown: its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> str | None:
    """The database file an SQLite URL names; None for an in-memory one or another engine."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def _initial_schema(conn: Connection) -> None:
    # Version 1 is tables.py but for the tables later migrations altered, frozen below as
    # version 1 had them, so a fresh database replays history step by step.
    later = ("leases", "quarantine")
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name not in later],
                        checkfirst=False)
    _V1_LEASES.create(conn, checkfirst=False)


_V1_LEASES = Table(
    "leases",
    MetaData(),
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)


def _quarantine_table(conn: Connection) -> None:
    """Version 2: records held back after an error (quarantine.py)."""
    quarantine.create(conn, checkfirst=False)


def _lease_epochs(conn: Connection) -> None:
    """Version 3: leases carry a fencing epoch and since when their holder leads."""
    instant = UTCDateTime().dialect_impl(conn.dialect).impl.compile(dialect=conn.dialect)
    conn.exec_driver_sql("ALTER TABLE leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0")
    conn.exec_driver_sql(f"ALTER TABLE leases ADD COLUMN acquired_at {instant}")


def _records_status_index(conn: Connection) -> None:
    """Version 4: the records' status indexed (tables.records_status); a database created at
    version 1 by this code has it already."""
    conn.execute(CreateIndex(records_status, if_not_exists=True))


# MIGRATIONS[n - 1] brings a database from version n - 1 to version n.
MIGRATIONS: list[Callable[[Connection], None]] = [
    _initial_schema, _quarantine_table, _lease_epochs, _records_status_index
]


def connection_lost(exc: BaseException) -> bool:
    """The database went away (server restart, network cut, failover): the transaction was
    rolled back and the work is to be retried once it is back, not counted as a failure."""
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def schema_version() -> int:
    """The version this code writes and reads."""
    return len(MIGRATIONS)


@dataclass(frozen=True)
class Tx:
    """One transaction's view of the store."""

    conn: Connection
    records: Records
    ledger: Ledger
    timers: Timers
    cursors: Cursors
    memory: MemoryTable
    audit: Audit
    quarantine: Quarantine
    meta: Meta

    def savepoint(self) -> NestedTransaction:
        """A block inside the transaction that, if it raises, is rolled back alone."""
        return self.conn.begin_nested()


class Fence(Protocol):
    """Checks, inside a write transaction, that this process may still write (lease.py)."""

    def check(self, conn: Connection) -> None: ...


class Store:
    def __init__(self, engine: Engine, max_attempts: int) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        # Set by a daemon that leads through a lease: every write transaction then starts by
        # checking its epoch, so a stale leader's write fails instead of landing.
        self.fence: Fence | None = None

    @contextmanager
    def transaction(self, *, fenced: bool = True) -> Iterator[Tx]:
        """A write transaction: committed when the block ends, rolled back if it raises (or
        if the fence, when there is one, says this process no longer leads)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                if fenced and self.fence is not None:
                    self.fence.check(conn)
                yield self._tx(conn)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A consistent read-only snapshot (CLI, metrics) that never blocks the daemon's writes
        under WAL; whatever is written through it is rolled back."""
        with self.engine.connect() as conn:
            yield self._tx(conn)

    def version(self) -> int:
        with self.engine.connect() as conn:
            return _stored_version(conn)

    def close(self) -> None:
        self.engine.dispose()

    def _tx(self, conn: Connection) -> Tx:
        audit = Audit(conn)
        return Tx(
            conn=conn,
            records=Records(conn),
            ledger=Ledger(conn, audit, self.max_attempts),
            timers=Timers(conn, audit),
            cursors=Cursors(conn),
            memory=MemoryTable(conn),
            audit=audit,
            quarantine=Quarantine(conn, audit),
            meta=Meta(conn),
        )


def open_store(url: str, *, max_attempts: int = 8) -> Store:
    """Open (creating or migrating) the state database at `url`.

    Refuses a database written by a newer syncd rather than guess at its schema.
    """
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    database = sqlite_file(url)
    if database is not None:
        parent = Path(database).parent
        if not parent.is_dir():
            raise StoreError(f"{shown}: directory {parent} does not exist (check syncd.state_dir)")
        # 0600 before SQLite opens it: its -wal and -shm files take the database file's mode
        for suffix in ("", "-wal", "-shm"):
            path = Path(database + suffix)
            if not suffix or path.exists():
                private_file(path)
    # pre_ping: a connection the server dropped (restart, failover, network cut) is replaced
    # when taken from the pool instead of failing the next transaction.
    engine = create_engine(url, json_serializer=json_dumps, json_deserializer=json.loads,
                           pool_pre_ping=parsed.get_backend_name() != "sqlite")
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    store = Store(engine, max_attempts)
    try:
        _migrate(store, shown)
    except BaseException:
        engine.dispose()
        raise
    return store


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event decide how transactions start (pysqlite would defer
        # BEGIN until the first write and hide it from us).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _stored_version(conn: Connection) -> int:
    if not inspect(conn).has_table(meta.name):
        return 0
    value = conn.scalar(select(meta.c.value).where(meta.c.key == "schema_version"))
    return int(value) if value is not None else 0


def _migrate(store: Store, shown: str) -> None:
    """Bring the database to `schema_version()` in one transaction (all steps or none)."""
    latest = schema_version()
    with store.transaction(fenced=False) as tx:
        if tx.conn.dialect.name == "postgresql":  # hosts starting together migrate one by one
            tx.conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        current = _stored_version(tx.conn)
        if current > latest:
            raise StoreError(
                f"{shown}: state schema version {current} is newer than this syncd supports "
                f"({latest}); upgrade syncd, or point syncd.store_url at another database"
            )
        for version in range(current + 1, latest + 1):
            MIGRATIONS[version - 1](tx.conn)
        if current == latest:
            return
        if current == 0:
            tx.conn.execute(insert(meta).values(key="schema_version", value=str(latest)))
        else:
            tx.conn.execute(
                update(meta).where(meta.c.key == "schema_version").values(value=str(latest))
            )
