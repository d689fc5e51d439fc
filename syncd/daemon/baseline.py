"""Going live (`[syncd] first_sync = "baseline"`): a source's first sync records what is there
without acting on it.

An instant rule fires on the first version of a record it sees inside its `when`, so a first
sync of years of history would, say, send the satisfaction question for every ticket ever
solved. While a source's first sync runs, its records are stored and the engine's memory is
written (the edges are consumed: a solved ticket does not fire when it is next polled), but
the intents of instant rules are planned `skipped` with reason "baseline", so `syncd audit`
shows what was held back. Timeline steps are left alone: their timers are kept, future steps
fire on time and past ones follow each rule's `catch_up`.

The first sync is the first poll of a source with no cursor, to its end: one that is
interrupted (SIGTERM, a crash, a vendor error) has left a cursor behind, so a rule-memory row
per source remembers that the baseline is still running until a poll reaches the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from syncd.model import Intent, RecordRef
from syncd.settings import Settings
from syncd.store.db import Tx
from syncd.store.memory import INTERNAL

REASON = "baseline"
MARKER = f"{INTERNAL}baseline"  # rule-memory row per source: {"done": bool}


def _source(source: str) -> RecordRef:
    return RecordRef("syncd.source", source)


def running(tx: Tx, settings: Settings, source: str, cursor: str | None) -> bool:
    """Whether this poll of `source` is (part of) its first sync, to be recorded as baseline."""
    if settings.syncd.first_sync != "baseline":
        return False
    marker = tx.memory.get(MARKER, _source(source))
    return cursor is None if marker is None else not marker.get("done")


def begin(tx: Tx, source: str, now: datetime) -> None:
    """Note, in the transaction of the first page, that the source's baseline runs."""
    if tx.memory.get(MARKER, _source(source)) is None:
        tx.memory.put(MARKER, _source(source), {"done": False, "since": now.isoformat()}, now)


def finish(tx: Tx, source: str, now: datetime) -> None:
    """The first sync reached the end: from now on every change of the source is acted on."""
    tx.memory.put(MARKER, _source(source), {"done": True, "at": now.isoformat()}, now)


def hold_back(tx: Tx, intents: Iterable[Intent], planned: Iterable[str], now: datetime) -> int:
    """Skip the just-planned intents of instant rules (timeline steps keep their course)."""
    fresh = set(planned)
    return sum(tx.ledger.skip(i.key, REASON, now) for i in intents
               if not i.step and i.key in fresh)  # fmt: skip
