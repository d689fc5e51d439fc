"""Copy a whole state database to another (`syncd store copy`): SQLite to PostgreSQL when an
installation moves to two hosts, or back, or PostgreSQL to PostgreSQL.

Everything the daemon keeps goes across, row for row with the same ids: snapshots and field
history, rule memory, timers, the intents ledger with its audit, cursors and the last accepted
rule set. The leases do not: they belong to the processes running on the source. The source is
read in one snapshot; the destination is written in one transaction, so a failed copy leaves it
empty. Stop syncd on the source first: what it writes after the snapshot would not be copied.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, text

from syncd.store.db import Store, StoreError
from syncd.store.tables import leases, meta, metadata

BATCH = 1000


@dataclass(frozen=True)
class Copied:
    rows: dict[str, int]  # table -> rows copied


def copy_store(source: Store, destination: Store) -> Copied:
    """Copy every table of `source` into `destination`, which must hold no data yet."""
    tables = [t for t in metadata.sorted_tables if t is not leases]
    counts: dict[str, int] = {}
    with source.engine.connect() as src:
        if src.dialect.name == "postgresql":  # one snapshot across every table
            src = src.execution_options(isolation_level="REPEATABLE READ")
        with src.begin(), destination.transaction(fenced=False) as tx:
            dst = tx.conn
            _refuse_data(dst, tables)
            for table in tables:
                query = select(table)
                if table is meta:  # the destination wrote its own schema_version
                    query = query.where(meta.c.key != "schema_version")
                pk = list(table.primary_key.columns)
                counts[table.name] = 0
                for chunk in src.execute(query.order_by(*pk)).mappings().partitions(BATCH):
                    dst.execute(insert(table), [dict(row) for row in chunk])
                    counts[table.name] += len(chunk)
            _advance_sequences(dst)
    return Copied(counts)


def _refuse_data(conn: Connection, tables: list[object]) -> None:
    for table in tables:
        query = select(func.count()).select_from(table)  # type: ignore[arg-type]
        if table is meta:
            query = query.where(meta.c.key != "schema_version")
        if conn.scalar(query):
            name = getattr(table, "name", "?")
            raise StoreError(f"the destination already holds data (table {name}): copy into "
                             "an empty database, never over a live one")


def _advance_sequences(conn: Connection) -> None:
    """PostgreSQL hands out ids from sequences, which rows inserted with their ids did not
    move: set each past the largest id copied, or the next insert would collide."""
    if conn.dialect.name != "postgresql":
        return
    for table in metadata.sorted_tables:
        column = table.autoincrement_column
        if column is None:
            continue
        conn.execute(
            text(f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                 f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"),
            {"table": table.name, "column": column.name},
        )
