"""The Zendesk export's own budget (10 requests a minute per account) is shared like the rest:
syncd spends only its `rate_share` of it, so another integration on the account keeps its part."""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.clock import FrozenClock
from syncd.connectors.http import default_lane
from syncd.connectors.zendesk import ZendeskConnector
from syncd.settings import ZendeskSection


def exports_per_minute(rate_share: float) -> int:
    """Export calls in an hour, per minute on average."""
    clock = FrozenClock(datetime(2026, 3, 2, 10, tzinfo=UTC))
    start = clock.now()
    settings = ZendeskSection(subdomain="acme", email="a@example.com", token="t",
                              rate_share=rate_share)
    governor = ZendeskConnector(settings, clock).governor
    calls = 0
    with default_lane("poll"):
        while (clock.now() - start).total_seconds() <= 3600:
            governor.acquire("incremental")
            calls += 1
    return round(calls / 60)


def test_export_budget_is_scaled_by_rate_share() -> None:
    assert exports_per_minute(1.0) == 10
    assert exports_per_minute(0.5) == 5
    assert exports_per_minute(0.2) == 2
