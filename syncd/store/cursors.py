"""Where each source's polling resumes. Advanced in the same transaction as the page it ends,
so a crash replays the page instead of skipping it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from syncd.store.tables import cursors, insert_ignoring_duplicates


class Cursors:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, source: str) -> str | None:
        return self._conn.scalar(select(cursors.c.cursor).where(cursors.c.source == source))

    def set(self, source: str, cursor: str, now: datetime) -> None:
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING
        inserted = self._conn.execute(
            insert_ignoring_duplicates(self._conn, cursors, "source")
            .values(source=source, cursor=cursor, updated_at=now)
            .returning(cursors.c.source)
        ).first()
        if inserted is None:
            self._conn.execute(
                update(cursors)
                .where(cursors.c.source == source)
                .values(cursor=cursor, updated_at=now)
            )

    def all(self) -> dict[str, tuple[str, datetime]]:
        """Every source's cursor and when it last moved (for lag metrics and `doctor`)."""
        rows = self._conn.execute(select(cursors).order_by(cursors.c.source))
        return {row.source: (row.cursor, row.updated_at) for row in rows}
