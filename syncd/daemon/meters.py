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

from syncd.connectors.base import Connector
from syncd.connectors.http import ApiStats
from syncd.daemon.metrics import Metrics
from syncd.store.db import Tx
from syncd.store.ledger import IntentState


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
                                        retries=now.retries - last.retries)
                self._last[vendor] = now
                self.metrics.budget_remaining(vendor, governor.remaining())


def store_gauges(tx: Tx, metrics: Metrics, now: datetime) -> dict[IntentState, int]:
    """Intents by state (and per rule, those that need a look) and timers due, into the
    metrics; returns the intent counts."""
    counts = tx.ledger.count_by_state()
    metrics.set_intents(counts)
    metrics.set_rule_intents(tx.ledger.needing_a_look(now))
    metrics.set_timers_due(tx.timers.count_due(now))
    metrics.set_quarantined(tx.quarantine.count())
    metrics.set_held(tx.ledger.held_by_rule())
    return counts
