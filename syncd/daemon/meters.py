"""Feed the metrics (metrics.py) from what the connectors and the store already count, after
each job, rather than instrumenting every call site.

Connectors count their API calls, 429s and retries in their budget governor
(`connector.governor.stats`, cumulative since start, connectors/http.py); the meter adds what
changed since its last reading. The remaining budget is the governor's default bucket, refilled
to now (read-only: the governor keeps spending it meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from sqlalchemy import case, func, select

from syncd.connectors.base import Connector
from syncd.connectors.http import ApiStats
from syncd.daemon.metrics import Metrics
from syncd.store.db import Tx
from syncd.store.ledger import IntentState
from syncd.store.tables import intents, timers
from syncd.store.timers import TimerState


class VendorMeter:
    """API calls, 429s, retries and remaining budget per vendor, from the governors."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._last: dict[str, ApiStats] = {}
        self._lock = threading.Lock()

    def read(self, connectors: Mapping[str, Connector]) -> None:
        with self._lock:
            for vendor, connector in connectors.items():
                governor = getattr(connector, "governor", None)
                if governor is None:  # a stand-in connector (tests) counts nothing
                    continue
                now, last = replace(governor.stats), self._last.get(vendor, ApiStats())
                self.metrics.api_counts(vendor, calls=now.calls - last.calls,
                                        rate_limited=now.throttled - last.throttled,
                                        retries=now.retries - last.retries)  # fmt: skip
                self._last[vendor] = now
                self.metrics.budget_remaining(vendor, governor.remaining())


def timers_due(tx: Tx, now: datetime) -> int:
    """Pending timers whose instant has come (a backlog the timer job has not fired yet)."""
    return int(tx.conn.scalar(
        select(func.count()).select_from(timers)
        .where(timers.c.state == TimerState.PENDING.value, timers.c.due_at <= now)
    ) or 0)  # fmt: skip


def rule_intents(tx: Tx, now: datetime) -> dict[tuple[str, str], int]:
    """(rule, state) -> count of intents that need a look: failed, dead, and held (planned,
    due, not carried out: the kill switch, max_actions_per_hour, a backlog)."""
    held = (intents.c.state == IntentState.PLANNED.value) & (intents.c.due_at <= now)
    state = case((held, "held"), else_=intents.c.state)
    query = (
        select(intents.c.rule_id, state, func.count())
        .where(held | intents.c.state.in_([IntentState.FAILED.value, IntentState.DEAD.value]))
        .group_by(intents.c.rule_id, state)
    )
    return {(rule, str(kind)): count for rule, kind, count in tx.conn.execute(query)}


def store_gauges(tx: Tx, metrics: Metrics, now: datetime) -> dict[IntentState, int]:
    """Intents by state (and per rule, those that need a look) and timers due, into the
    metrics; returns the intent counts."""
    counts = tx.ledger.count_by_state()
    metrics.set_intents(counts)
    metrics.set_rule_intents(rule_intents(tx, now))
    metrics.set_timers_due(timers_due(tx, now))
    metrics.set_quarantined(tx.quarantine.count())
    metrics.set_held(tx.ledger.held_by_rule())
    return counts
