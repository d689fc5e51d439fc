"""Poll one source: each page's records, what the engine makes of them and the cursor after the
page, in ONE transaction. A crash replays at most that page; the unique intent keys absorb it.

A polled record that time has made due (a pending timer has come, or a timeline step would fire)
is re-read from its vendor before it is evaluated, exactly as the timer job would: a poll lags
(Zendesk's export hides the last minute and carries no `agent_touched`), and a ticket answered
a minute ago must not escalate because the poll happened to run before the timer job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from syncd.connectors.base import Connector
from syncd.daemon import baseline
from syncd.daemon.planner import apply_record, due_by_time
from syncd.daemon.runtime import Runtime, log
from syncd.model import Record
from syncd.rules.conditions import as_instant

# the vendor's last-change instant of a record, by source: Zendesk, SharePoint, Salesforce
CHANGED_AT = ("updated_at", "modified_at", "SystemModstamp", "LastModifiedDate")


@dataclass
class Polled:
    """What one poll of a source read."""

    records: int = 0
    planned: int = 0  # intents to carry out (the baseline's skipped ones not counted)
    newest: datetime | None = None  # the newest change seen, for the source's lag

    def saw(self, at: datetime | None) -> None:
        if at is not None and (self.newest is None or at > self.newest):
            self.newest = at


def changed_at(record: Record) -> datetime | None:
    """When the vendor says the record last changed (None if it does not say)."""
    for name in CHANGED_AT:
        found = as_instant(record.fields.get(name))
        if found is not None:
            return found
    return None


def poll_source(
    rt: Runtime, source: str, connector: Connector, stopping: Callable[[], bool] = lambda: False
) -> Polled:
    """Read what changed since the stored cursor. Stops after the page in hand when
    `stopping()` says so (SIGTERM during a long backfill). A source's first sync is recorded
    as its baseline (baseline.py) unless `[syncd] first_sync = "fire"`."""
    engine = rt.engine
    with rt.store.read() as tx:
        cursor = tx.cursors.get(source)
        first = baseline.running(tx, rt.settings, source, cursor)
    found = Polled()
    reread = held = 0
    for page in connector.poll_pages(cursor):
        now = rt.clock.now()
        with rt.store.read() as tx:
            due = [r.ref for r in page.records
                   if not r.deleted and due_by_time(tx, engine, r, now, rt.grace)]  # fmt: skip
        fresh = {ref: connector.fetch(ref) for ref in due}
        reread += len(fresh)
        with rt.store.transaction() as tx:
            if first:
                baseline.begin(tx, source, now)
            for polled in page.records:
                record = fresh.get(polled.ref, polled)
                if record is None:  # gone since the page was read
                    record = Record(polled.ref, polled.fields, now, deleted=True)
                applied = apply_record(tx, engine, record, now, rt.grace, baseline=first)
                found.planned += len(applied.planned) - applied.held
                held += applied.held
                if applied.errors:
                    rt.fail(f"{record.ref}: {len(applied.errors)} rule error(s)")
                found.saw(changed_at(record))
            tx.cursors.set(source, page.cursor, now)
        found.records += len(page.records)
        if stopping():
            break
    else:  # read to the end, not stopped: the first sync (if it was one) is complete
        if first:
            with rt.store.transaction() as tx:
                baseline.finish(tx, source, rt.clock.now())
            log.info("baseline_done", source=source, held=held)
    if found.records:  # quiet when nothing changed: a poll runs every few seconds
        log.info("poll_done", source=source, records=found.records, planned=found.planned,
                 reread=reread, baseline=held)  # fmt: skip
    return found
