"""`syncd run` for the crash test, with the Salesforce API budget raised.

syncd meters Salesforce at `[salesforce] daily_api_requests` (default 15,000, a Developer
Edition org) times `share` per day, about five calls a minute: a daemon killed fifty times
would spend the test waiting for budget instead of crashing. The sandbox's org allows far more
(the fixture's `daily_api_limit`), so the setting says so, through the environment as any
deployment could. Everything else is the unmodified `syncd` command line.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ.setdefault("SYNCD_SALESFORCE__DAILY_API_REQUESTS", "10000000")  # the fixture's org
    from syncd.cli import app

    app()
