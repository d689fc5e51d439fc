"""`/metrics` of the running service, parsed with prometheus-client's own parser, after cycles
against the sandbox: polls, poll errors, lag, intents, timers, API calls, 429s, retries,
budget, cycle duration."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import httpx
from e2e_world import LADDER, NOW, TRIAGE, World, seed, serving, wait_for
from prometheus_client.parser import text_string_to_metric_families

from syncd.daemon.runtime import open_runtime
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# rules reading SharePoint and Salesforce, which match nothing: those sources are polled too
WATCHERS = """
  - id: files
    on: sharepoint.file
    when: {name: never.txt}
    do: [{notify: {to: [user:ann@example.com], subject: "File", body: "{{ file.name }}"}}]
  - id: deals
    on: salesforce.opportunity
    when: {StageName: Never}
    do: [{notify: {to: [user:ann@example.com], subject: "Deal", body: "{{ opportunity.Name }}"}}]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Samples:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def done(port: int) -> float:
    """Intents done so far (none exported before the first cycle)."""
    return scrape(port).get(("syncd_intents", (("state", "done"),)), 0.0)


def test_metrics_move_as_the_service_works(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = World(sandbox, tmp_path, TRIAGE + LADDER + WATCHERS)
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - timedelta(minutes=5)))
    world.faults(
        {"vendor": "zendesk", "method": "GET", "path": r"/incremental/", "kind": "status",
         "status": 429, "retry_after": 1, "times": 1},
        {"vendor": "graph", "method": "GET", "path": r"/delta", "kind": "status", "status": 403,
         "times": 1},
    )
    port = free_port()
    settings = load_settings(world.config, env={
        **world.env, "SYNCD_SYNCD__POLL_INTERVAL_S": "0.3", "SYNCD_METRICS__ENABLED": "true",
        "SYNCD_METRICS__PORT": str(port)})
    with serving(open_runtime(settings, world.clock)) as service:
        wait_for(lambda: service.metrics_server is not None)
        wait_for(lambda: done(port) == 6)
        first = scrape(port)
        world.advance(timedelta(hours=1))  # the ladder's first step: two more mails
        wait_for(lambda: done(port) == 8)
        later = scrape(port)

    for source in ("zendesk", "salesforce", "graph"):
        assert value(first, "syncd_polls_total", source=source) >= 1
    assert value(first, "syncd_poll_errors_total", source="graph") == 1
    assert value(first, "syncd_poll_errors_total", source="zendesk") == 0
    assert value(first, "syncd_api_rate_limited_total", vendor="zendesk") == 1
    assert value(first, "syncd_api_retries_total", vendor="zendesk") >= 1
    assert value(first, "syncd_api_budget_remaining", vendor="zendesk") > 0
    assert 300 <= value(first, "syncd_source_lag_seconds", source="zendesk") < 400
    assert value(first, "syncd_timers_due") == 0
    assert value(first, "syncd_intents", state="failed") == 0
    assert value(first, "syncd_cycle_duration_seconds_count") >= 1
    assert value(first, "syncd_reloads_total", result="refused") == 0

    assert value(later, "syncd_polls_total", source="zendesk") > value(
        first, "syncd_polls_total", source="zendesk")
    for vendor in ("zendesk", "graph"):  # timer re-reads, then mails
        assert value(later, "syncd_api_calls_total", vendor=vendor) > value(
            first, "syncd_api_calls_total", vendor=vendor)
    assert value(later, "syncd_source_lag_seconds", source="zendesk") >= 3600
    assert value(later, "syncd_cycle_duration_seconds_count") > value(
        first, "syncd_cycle_duration_seconds_count")
