"""Poll one source: each page's records, what the engine makes of them and the cursor after the
page, in ONE transaction. A crash replays at most that page; the unique intent keys absorb it."""

from __future__ import annotations

from collections.abc import Callable

from syncd.connectors.base import Connector
from syncd.daemon.planner import apply_record
from syncd.daemon.runtime import Runtime, log


def poll_source(
    rt: Runtime, source: str, connector: Connector, stopping: Callable[[], bool] = lambda: False
) -> int:
    """Read what changed since the stored cursor; returns how many records came. Stops after
    the page in hand when `stopping()` says so (SIGTERM during a long backfill)."""
    engine = rt.engine
    with rt.store.read() as tx:
        cursor = tx.cursors.get(source)
    seen = planned = 0
    for page in connector.poll_pages(cursor):
        now = rt.clock.now()
        with rt.store.transaction() as tx:
            for record in page.records:
                applied = apply_record(tx, engine, record, now, rt.grace)
                planned += len(applied.planned)
                if applied.errors:
                    rt.fail(f"{record.ref}: {len(applied.errors)} rule error(s)")
            tx.cursors.set(source, page.cursor, now)
        seen += len(page.records)
        if stopping():
            break
    log.info("poll_done", source=source, records=seen, planned=planned)
    return seen
