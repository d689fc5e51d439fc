"""The store's own key-value rows (`meta`): the schema version, the last accepted rule set."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from syncd.store.tables import meta


class Meta:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, key: str) -> str | None:
        return self._conn.scalar(select(meta.c.value).where(meta.c.key == key))

    def insert(self, key: str, value: str) -> None:
        self._conn.execute(insert(meta).values(key=key, value=value))

    def update(self, key: str, value: str) -> None:
        self._conn.execute(update(meta).where(meta.c.key == key).values(value=value))

    def rewrite(self) -> None:
        """Write every row back as it is: proves the database takes a write (`syncd doctor`,
        inside a transaction that is rolled back)."""
        self._conn.execute(update(meta).values(value=meta.c.value))
