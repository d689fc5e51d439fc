"""Poll one source: each page's records, what the engine makes of them and the cursor after the
page, in ONE transaction. A crash replays at most that page; the unique intent keys absorb it.
Only the record kinds the rules read are polled (sources.py); a source none of whose kinds a
rule reads makes no call at all.

A polled record that time has made due (a pending timer has come, or a timeline step would fire)
is re-read from its vendor before it is evaluated, exactly as the timer job would: a poll lags
(Zendesk's export hides the last minute and carries no `agent_touched`), and a ticket answered
a minute ago must not escalate because the poll happened to run before the timer job. The
records due in one page are re-read together (`fetch_many`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.connectors.base import Connector
from syncd.daemon import baseline
from syncd.daemon.contain import apply_page_contained, retry_quarantined
from syncd.daemon.planner import Known, changed_at, due_by_time
from syncd.daemon.runtime import Runtime, log
from syncd.daemon.sources import wanted
from syncd.model import Intent, Record, RecordRef
from syncd.rules.engine import Engine
from syncd.store.db import Tx


@dataclass
class Polled:
    """What one poll of a source read."""

    kinds: frozenset[str] = frozenset()  # the record kinds read (none: not polled)
    records: int = 0
    planned: int = 0  # intents to carry out (the baseline's skipped ones not counted)
    newest: datetime | None = None  # the newest change seen, for the source's lag

    def saw(self, at: datetime | None) -> None:
        if at is not None and (self.newest is None or at > self.newest):
            self.newest = at


def note_unread(rt: Runtime, source: str, kinds: frozenset[str]) -> None:
    """Remember since when no rule reads `kinds` of `source` (baseline.py), and say so once."""
    with rt.store.read() as tx:
        fresh = baseline.unnoted(tx, kinds)
    if fresh:
        with rt.store.transaction() as tx:
            baseline.unread(tx, fresh, rt.clock.now())
        log.info("kinds_unread", source=source, kinds=fresh, reason="no rule reads them")


def _due(tx: Tx, engine: Engine, record: Record, now: datetime, grace: timedelta,
         known: Known) -> bool:
    """`due_by_time`, taking a record whose evaluation raises as due: it is re-read, and
    applying it quarantines it alone (contain.py) instead of stopping its page."""
    try:
        return due_by_time(tx, engine, record, now, grace, known)
    except Exception as exc:
        log.warning("due_check_failed", record=str(record.ref), error=type(exc).__name__)
        return True


def _as_read(polled: Record, fresh: Mapping[RecordRef, Record | None], now: datetime) -> Record:
    """The polled record, or its re-read if it was re-read (deleted if gone since)."""
    if polled.ref not in fresh:
        return polled
    found = fresh[polled.ref]
    return found if found is not None else Record(polled.ref, polled.fields, now, deleted=True)


def poll_source(
    rt: Runtime, source: str, connector: Connector, stopping: Callable[[], bool] = lambda: False
) -> Polled:
    """Read what changed since the stored cursor, of the kinds the rules read. Stops after the
    page in hand when `stopping()` says so (SIGTERM during a long backfill). A source's first
    sync is recorded as its baseline (baseline.py) unless `[syncd] first_sync = "fire"`, and
    so is the catch-up of a kind read again after a time unread."""
    engine = rt.engine
    kinds = wanted(engine, connector)
    note_unread(rt, source, connector.kinds - kinds)
    with rt.store.read() as tx:
        cursor = tx.cursors.get(source)
        first = baseline.running(tx, rt.settings, source, cursor)
        resumed = baseline.resuming(tx, rt.settings, kinds)
    # at go-live, steps already due are skipped: no re-read before them
    past_due = first and baseline.skips_past_due(rt.settings)
    found = Polled(kinds)
    if not kinds:
        return found
    reread = held = pages = 0
    for page in connector.poll_pages(cursor, kinds):
        now = rt.clock.now()
        refs = [r.ref for r in page.records]
        due = []
        if not past_due:
            with rt.store.read() as tx:
                known = Known(tx, engine, refs)
                due = [r.ref for r in page.records if not r.deleted
                       and _due(tx, engine, r, now, rt.grace, known)]
        fresh = connector.fetch_many(due) if due else {}
        reread += len(fresh)
        records = [_as_read(polled, fresh, now) for polled in page.records]
        held_back = {r.ref.kind for r in records} if first else resumed
        with rt.store.transaction() as tx:
            if first:
                baseline.begin(tx, source, now)
            holding: list[Intent] = []  # the baseline's, skipped at once
            applied_all = apply_page_contained(rt, tx, engine, records, now, rt.grace,
                                               held_back, past_due)
            for record, applied in zip(records, applied_all, strict=True):
                found.saw(changed_at(record))
                if applied is None:  # quarantined: the page goes on without it
                    continue
                found.planned += len(applied.planned) - len(applied.holding)
                holding += applied.holding
            held += baseline.hold_back(tx, holding, now) if holding else 0
            tx.cursors.set(source, page.cursor, now)
        found.records += len(page.records)
        pages += 1
        if first or resumed:  # a large helpdesk's first sync reads for minutes: say how far
            log.info("baseline_progress", source=source, pages=pages, records=found.records,
                     through=found.newest.isoformat() if found.newest else None)
            rt.progress.page(source, pages, found.records, found.newest)
        if stopping():
            rt.progress.done(source)
            break
    else:  # read to the end, not stopped: the first sync (if it was one) is complete
        if first or resumed:
            with rt.store.transaction() as tx:
                if first:
                    baseline.finish(tx, source, rt.clock.now())
                baseline.caught_up(tx, resumed, rt.clock.now())
            rt.progress.done(source)
            log.info("baseline_done", source=source, held=held, kinds=sorted(resumed) or None)
    retry_quarantined(rt, connector, kinds)
    if found.records:  # quiet when nothing changed: a poll runs every few seconds
        log.info("poll_done", source=source, records=found.records, planned=found.planned,
                 reread=reread, baseline=held)
    return found
