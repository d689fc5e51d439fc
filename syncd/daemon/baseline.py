"""Going live (`[syncd] first_sync = "baseline"`): a source's first sync records what is there
without acting on it.

An instant rule fires on the first version of a record it sees inside its `when`, so a first
sync of years of history would, say, send the satisfaction question for every ticket ever
solved. While a source's first sync runs, its records are stored and the engine's memory is
written (the edges are consumed: a solved ticket does not fire when it is next polled), but
the intents of instant rules are planned `skipped` with reason "baseline", so `syncd audit`
shows what was held back. Timelines keep their timers and future steps fire on time; the steps
already past due when the first sync reads a record are skipped too, reason "before go-live"
(a helpdesk's month of overdue escalations is not mailed in minutes), unless
`[syncd] first_sync_catch_up = "fire"`, when they follow each rule's `catch_up`.

The first sync is the first poll of a source with no cursor, to its end: one that is
interrupted (SIGTERM, a crash, a vendor error) has left a cursor behind, so a rule-memory row
per source remembers that the baseline is still running until a poll reaches the end.

A record kind no rule reads is not polled (sources.py). Its changes in the meantime were
acted on by nobody, so when a rule reads it again the catch-up is a baseline too: a row per
kind (`unread`) notes since when it went unread, and polls hold back its records' instant
intents (`resuming`) until one reaches the end (`caught_up`). A kind never read at all is
noted the same way, so that its first enumeration is a baseline even when its source's other
kinds have long been polled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from syncd.model import Intent, RecordRef
from syncd.settings import Settings
from syncd.store.db import Tx
from syncd.store.memory import INTERNAL

REASON = "baseline"
PAST_DUE = "before go-live"
MARKER = f"{INTERNAL}baseline"  # rule-memory row per source: {"done": bool}
UNREAD = f"{INTERNAL}unread"  # rule-memory row per record kind: {"since": iso | None}


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


def _kind(kind: str) -> RecordRef:
    return RecordRef("syncd.kind", kind)


def unnoted(tx: Tx, kinds: Iterable[str]) -> list[str]:
    """Of `kinds`, which no rule reads now, those not noted as unread yet."""
    return [k for k in sorted(kinds) if not (tx.memory.get(UNREAD, _kind(k)) or {}).get("since")]


def unread(tx: Tx, kinds: Iterable[str], now: datetime) -> None:
    """Note that no rule reads `kinds` from `now` on."""
    for kind in kinds:
        tx.memory.put(UNREAD, _kind(kind), {"since": now.isoformat()}, now)


def resuming(tx: Tx, settings: Settings, kinds: Iterable[str]) -> frozenset[str]:
    """Of `kinds` (read again), those whose catch-up is still a baseline."""
    if settings.syncd.first_sync != "baseline":
        return frozenset()
    return frozenset(k for k in kinds if (tx.memory.get(UNREAD, _kind(k)) or {}).get("since"))


def caught_up(tx: Tx, kinds: Iterable[str], now: datetime) -> None:
    """A poll read `kinds` to the end: from now on their changes are acted on."""
    for kind in kinds:
        tx.memory.put(UNREAD, _kind(kind), {"since": None, "caught_up": now.isoformat()}, now)


def skips_past_due(settings: Settings) -> bool:
    """Whether the first sync skips the timeline steps already due (and so needs not re-read
    their records before them)."""
    return settings.syncd.first_sync_catch_up == "skip"


def to_hold(intents: Iterable[Intent], planned: Iterable[str],
            past_due: bool = False) -> list[Intent]:
    """The just-planned intents a first sync skips: those of instant rules and, with
    `past_due`, the timeline steps already due (every step the engine plans now is due by now)."""
    fresh = set(planned)
    return [i for i in intents if i.key in fresh and (past_due or not i.step)]


def hold_back(tx: Tx, intents: Sequence[Intent], now: datetime) -> int:
    """Skip `to_hold`'s intents (a page's at once), each with its reason."""
    return tx.ledger.skip_many({i.key: PAST_DUE if i.step else REASON for i in intents}, now)
