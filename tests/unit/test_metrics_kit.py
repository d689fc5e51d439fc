"""The monitoring kit's side of /metrics: process and build info, no `_created` series, the
last successful poll per source, the kill switch and fallback gauges, intents that need a look
per rule, and an endpoint that serves only /metrics, /-/healthy and /-/ready."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from syncd import __version__
from syncd.clock import FrozenClock
from syncd.daemon.meters import store_gauges
from syncd.daemon.metrics import Metrics
from syncd.model import Intent, RecordRef, intent_key
from syncd.settings import Settings
from syncd.store.db import open_store

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def test_process_build_info_and_no_created_series() -> None:
    found = samples(Metrics(sources=["zendesk"]))
    names = {name for name, _ in found}
    assert "process_resident_memory_bytes" in names and "process_start_time_seconds" in names
    build = [labels for name, labels in found if name == "syncd_build_info"]
    assert len(build) == 1 and ("version", __version__) in build[0]
    assert not [name for name in names if name.endswith("_created")]


def test_last_successful_poll_kill_switch_and_fallback() -> None:
    clock = FrozenClock(NOW)
    metrics = Metrics(sources=["zendesk"], clock=clock)
    switch = {"on": False}
    metrics.watch(kill_switch=lambda: switch["on"], fallback=lambda: True)
    metrics.polled("zendesk")
    clock.advance(timedelta(minutes=5))
    metrics.polled("zendesk", failed=True)  # a failure does not move it
    switch["on"] = True
    found = samples(metrics)
    last = found[("syncd_last_successful_poll_timestamp_seconds", (("source", "zendesk"),))]
    assert last == NOW.timestamp()
    assert found[("syncd_kill_switch_engaged", ())] == 1.0
    assert found[("syncd_rules_fallback", ())] == 1.0


def test_held_failed_and_dead_intents_per_rule(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}", max_attempts=1)
    ticket = RecordRef("zendesk.ticket", "1")

    def intent(rule: str, due: datetime, n: int = 0) -> Intent:
        return Intent(key=intent_key(rule, ticket, "", due, action_index=n), rule_id=rule,
                      record=ticket, action="tag", params={"tags": ["x"]}, due_at=due,
                      reason={})

    held, later = intent("escalate", NOW), intent("escalate", NOW + timedelta(hours=1), 1)
    broken = intent("mail", NOW)
    with store.transaction() as tx:
        tx.ledger.plan([held, later, broken], NOW)
    with store.transaction() as tx:
        assert tx.ledger.mark_sent(broken.key, NOW)
        assert tx.ledger.mark_failed(broken.key, "550", NOW, None)  # one attempt: dead
    metrics = Metrics()
    with store.read() as tx:
        store_gauges(tx, metrics, NOW)
    found = samples(metrics)
    assert found[("syncd_rule_intents", (("rule", "escalate"), ("state", "held")))] == 1
    assert found[("syncd_rule_intents", (("rule", "mail"), ("state", "dead")))] == 1
    with store.transaction() as tx:  # the held one goes out
        assert tx.ledger.mark_sent(held.key, NOW)
    with store.read() as tx:
        store_gauges(tx, metrics, NOW)
    assert samples(metrics)[("syncd_rule_intents", (("rule", "escalate"), ("state", "held")))] \
        == 0
    store.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_only_metrics_and_the_probes_are_served() -> None:
    state = {"healthy": True, "ready": False}
    server = Metrics(sources=["zendesk"]).serve(
        "127.0.0.1", 0, healthy=lambda: state["healthy"], ready=lambda: state["ready"])
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = _get(f"{base}/metrics")
        assert status == 200 and "syncd_polls_total" in body
        assert _get(f"{base}/")[0] == 404 and _get(f"{base}/metricsx")[0] == 404
        assert _get(f"{base}/-/healthy") == (200, "syncd is healthy\n")
        assert _get(f"{base}/-/ready")[0] == 503
        state.update(healthy=False, ready=True)
        assert _get(f"{base}/-/healthy")[0] == 503
        assert _get(f"{base}/-/ready") == (200, "syncd is ready\n")
    finally:
        server.stop()


def test_default_port_is_not_opentelemetrys() -> None:
    assert Settings().metrics.port != 9464
