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

from sqlalchemy import func, select

from syncd.connectors.base import Connector
from syncd.connectors.http import DEFAULT_BUCKET, ApiStats, Bucket
from syncd.daemon.metrics import Metrics
from syncd.store.db import Tx
from syncd.store.ledger import IntentState
from syncd.store.tables import timers
from syncd.store.timers import TimerState


def remaining(bucket: Bucket, now: datetime) -> float:
    """Calls the bucket would allow at `now`."""
    if bucket.updated is None or now <= bucket.updated:
        return bucket.tokens
    elapsed = (now - bucket.updated).total_seconds()
    return min(bucket.capacity, bucket.tokens + elapsed * bucket.per_minute / 60.0)


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
                budget = governor.buckets[DEFAULT_BUCKET]
                self.metrics.budget_remaining(vendor, remaining(budget, governor.clock.now()))


def timers_due(tx: Tx, now: datetime) -> int:
    """Pending timers whose instant has come (a backlog the timer job has not fired yet)."""
    return int(tx.conn.scalar(
        select(func.count()).select_from(timers)
        .where(timers.c.state == TimerState.PENDING.value, timers.c.due_at <= now)
    ) or 0)  # fmt: skip


def store_gauges(tx: Tx, metrics: Metrics, now: datetime) -> dict[IntentState, int]:
    """Intents by state and timers due, into the metrics; returns the intent counts."""
    counts = tx.ledger.count_by_state()
    metrics.set_intents(counts)
    metrics.set_timers_due(timers_due(tx, now))
    metrics.set_quarantined(tx.quarantine.count())
    metrics.set_held(tx.ledger.held_by_rule())
    return counts
