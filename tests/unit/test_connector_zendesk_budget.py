"""The Zendesk export's own budget (10 requests a minute per account) has its own share,
`export_share`, all of it by default: a poll reads the export at most twice a minute, so the
budget binds only on a backlog (a go-live, a catch-up after an outage), which should go at the
export's own pace (issue 19). `rate_share`, the account's budget, does not scale it; an admin
whose BI tool reads the export too lowers `export_share`."""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.clock import FrozenClock
from syncd.connectors.http import default_lane
from syncd.connectors.zendesk import ZendeskConnector
from syncd.settings import ZendeskSection


def exports_per_minute(**shares: float) -> int:
    """Export calls in an hour, per minute on average."""
    clock = FrozenClock(datetime(2026, 3, 2, 10, tzinfo=UTC))
    start = clock.now()
    settings = ZendeskSection(subdomain="acme", email="a@example.com", token="t", **shares)
    governor = ZendeskConnector(settings, clock).governor
    calls = 0
    with default_lane("poll"):
        while (clock.now() - start).total_seconds() <= 3600:
            governor.acquire("incremental")
            calls += 1
    return round(calls / 60)


def test_a_backlog_reads_the_export_at_its_own_pace_by_default() -> None:
    assert exports_per_minute() == 10
    assert exports_per_minute(rate_share=0.2) == 10


def test_export_share_scales_the_export_budget() -> None:
    assert exports_per_minute(export_share=0.5) == 5
    assert exports_per_minute(export_share=0.2, rate_share=1.0) == 2
