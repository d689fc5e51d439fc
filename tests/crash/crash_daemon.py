"""`syncd run` for the crash test, with the Salesforce connector's API budget raised.

The connector meters Salesforce at `daily_api_requests` (15,000, a Developer Edition org) times
its share per day, about five calls a minute, and that is not a setting yet: a daemon killed
fifty times would spend the test waiting for budget instead of crashing. Everything else is the
unmodified `syncd` command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.connectors import salesforce


@dataclass(frozen=True)
class _Generous(salesforce.SalesforceConfig):
    daily_api_requests: int = 50_000_000


salesforce.SalesforceConfig = _Generous  # type: ignore[misc]

if __name__ == "__main__":
    from syncd.cli import app

    app()
