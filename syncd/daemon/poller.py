"""Poll one source: each page's records, what the engine makes of them and the cursor after the
page, in ONE transaction. A crash replays at most that page; the unique intent keys absorb it.

A polled record that time has made due (a pending timer has come, or a timeline step would fire)
is re-read from its vendor before it is evaluated, exactly as the timer job would: a poll lags
(Zendesk's export hides the last minute and carries no `agent_touched`), and a ticket answered
a minute ago must not escalate because the poll happened to run before the timer job.
"""

from __future__ import annotations

from collections.abc import Callable

from syncd.connectors.base import Connector
from syncd.daemon.planner import apply_record, due_by_time
from syncd.daemon.runtime import Runtime, log
from syncd.model import Record


def poll_source(
    rt: Runtime, source: str, connector: Connector, stopping: Callable[[], bool] = lambda: False
) -> int:
    """Read what changed since the stored cursor; returns how many records came. Stops after
    the page in hand when `stopping()` says so (SIGTERM during a long backfill)."""
    engine = rt.engine
    with rt.store.read() as tx:
        cursor = tx.cursors.get(source)
    seen = planned = reread = 0
    for page in connector.poll_pages(cursor):
        now = rt.clock.now()
        with rt.store.read() as tx:
            due = [r.ref for r in page.records
                   if not r.deleted and due_by_time(tx, engine, r, now, rt.grace)]  # fmt: skip
        fresh = {ref: connector.fetch(ref) for ref in due}
        reread += len(fresh)
        with rt.store.transaction() as tx:
            for polled in page.records:
                record = fresh.get(polled.ref, polled) if polled.ref in fresh else polled
                if record is None:  # gone since the page was read
                    record = Record(polled.ref, polled.fields, now, deleted=True)
                applied = apply_record(tx, engine, record, now, rt.grace)
                planned += len(applied.planned)
                if applied.errors:
                    rt.fail(f"{record.ref}: {len(applied.errors)} rule error(s)")
            tx.cursors.set(source, page.cursor, now)
        seen += len(page.records)
        if stopping():
            break
    if seen:  # quiet when nothing changed: a poll runs every few seconds
        log.info("poll_done", source=source, records=seen, planned=planned, reread=reread)
    return seen
