"""Tags under concurrency: Zendesk's tag endpoints can lose tags when the ticket is updated at
the same time unless `safe_update` and `updated_stamp` go with them; a stale stamp earns a 409,
which is a reason to re-read the ticket and try again, not a dead letter."""

from __future__ import annotations

import json
from typing import Any

import requests
from test_connector_zendesk import connector, op, seed

from syncd.sandbox.server import SandboxServer


def tag_calls(sandbox: SandboxServer) -> list[tuple[str, int]]:
    return [(r["method"], r["status"]) for r in sandbox.control("GET", "/_sandbox/requests")
            ["requests"] if r["path"].startswith("/api/v2/tickets/1")]


def test_tags_are_sent_with_safe_update_and_the_tickets_stamp(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    sent: list[dict[str, Any]] = []

    def capture(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/tags" in str(response.request.url):
            sent.append(json.loads(response.request.body or b"{}"))

    zd.client.tickets.session.hooks["response"].append(capture)
    assert zd.execute(op("add_tags", tags=["vip"])).ok
    assert zd.execute(op("remove_tags", key="rule/k2", tags=["seed"])).ok
    assert [(b["tags"], b.get("safe_update"), b.get("updated_stamp")) for b in sent] == [
        (["vip"], True, "2026-03-02T08:01:00Z"),
        (["seed"], True, "2026-03-02T10:00:00Z"),  # the first write moved the stamp
    ]


def test_a_stale_stamp_is_re_read_and_retried(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    stale = op("add_tags", tags=["vip"], updated_stamp="2026-03-02T07:00:00Z")
    outcome = zd.execute(stale)
    assert outcome.ok, outcome
    assert "vip" in outcome.detail["tags"] and "seed" in outcome.detail["tags"]
    assert tag_calls(sandbox)[-3:] == [("PUT", 409), ("GET", 200), ("PUT", 200)]
