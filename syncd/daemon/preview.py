"""`syncd plan`: what the daemon would do by an instant, computed on a throwaway copy.

The real store is copied (SQLite's online backup, or one PostgreSQL snapshot: consistent even
while the daemon writes), the sources are polled into the copy (reads only), timers due by the
instant are fired each at its own due instant as the daemon would, and every intent still to be
carried out by then is listed. Nothing is executed and the copy is deleted.

A timer's record is re-read from its vendor once, as the daemon re-reads it before firing: a
poll does not carry everything (Zendesk's `agent_touched` is in the ticket's audits), and a
plan that lists the escalation of a ticket an agent answered an hour ago is a plan nobody
trusts. Later timers of the same record use that reading.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.clock import Clock
from syncd.connectors.base import Connector
from syncd.daemon.cycle import poll_all
from syncd.daemon.runtime import Runtime, open_runtime
from syncd.daemon.timers import Freshen, fetch, fire_due
from syncd.model import Record, RecordRef
from syncd.settings import Settings
from syncd.store.copy import copy_store as copy_all
from syncd.store.db import is_sqlite, open_store, sqlite_file
from syncd.store.ledger import CLAIMABLE, LedgerEntry


@dataclass(frozen=True)
class Preview:
    at: datetime
    intents: list[LedgerEntry]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "intents": [
                {
                    "key": e.intent.key,
                    "rule": e.intent.rule_id,
                    "record": str(e.intent.record),
                    "action": e.intent.action,
                    "params": dict(e.intent.params),
                    "due_at": max(e.intent.due_at, e.next_attempt_at).isoformat(),
                    "step": e.intent.step,
                    "shadow": e.intent.shadow,
                    "state": str(e.state),
                    "reason": dict(e.intent.reason),
                }
                for e in self.intents
            ],
        }


def read_once() -> Freshen:
    """`fetch`, each record read from its vendor at most once in this plan."""
    seen: dict[RecordRef, Record | None] = {}
    whole: set[RecordRef] = set()  # read with the extras

    def freshen(rt: Runtime, refs: Sequence[RecordRef],
                extras: bool) -> Mapping[RecordRef, Record | None]:
        unread = [ref for ref in refs if ref not in (whole if extras else seen)]
        if unread:
            seen.update(fetch(rt, unread, extras))
            whole.update(unread if extras else ())
        return {ref: seen.get(ref) for ref in refs}

    return freshen


def preview(
    settings: Settings,
    clock: Clock,
    at: datetime | None = None,
    connectors: Mapping[str, Connector] | None = None,
) -> Preview:
    with tempfile.TemporaryDirectory(prefix="syncd-plan-") as tmp:
        url = copy_store(settings.syncd.store_url, Path(tmp) / "state.db")
        rt = open_runtime(settings, clock, store_url=url, connectors=connectors, dry_run=True)
        try:
            poll_all(rt)
            now = clock.now()  # after the poll: what it planned is due by now
            until = max(at or now, now)
            freshen = read_once()
            while True:
                with rt.store.read() as tx:
                    due = tx.timers.next_due()
                if due is None or due > until:
                    break
                fire_due(rt, now=max(due, now), freshen=freshen)
            with rt.store.read() as tx:
                pending = [e for state in CLAIMABLE for e in tx.ledger.list(state=state)]
        finally:
            rt.close()
    due_by = [e for e in pending if max(e.intent.due_at, e.next_attempt_at) <= until]
    due_by.sort(key=lambda e: (max(e.intent.due_at, e.next_attempt_at), e.intent.key))
    return Preview(until, due_by)


def copy_store(url: str, target: Path) -> str:
    """A SQLite URL for a copy of the store at `url` (an empty one if it does not exist yet);
    a PostgreSQL store is copied in one snapshot (store/copy.py)."""
    if not is_sqlite(url):
        source_store, copy = open_store(url), open_store(f"sqlite:///{target}")
        try:
            copy_all(source_store, copy)
        finally:
            source_store.close()
            copy.close()
        return f"sqlite:///{target}"
    database = sqlite_file(url)
    source = Path(database or "")
    if database is not None and source.is_file():
        with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
    return f"sqlite:///{target}"
