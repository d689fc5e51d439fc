"""Metrics: own registry, exposition that prometheus-client's parser reads, values that move."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.clock import FrozenClock
from syncd.daemon.metrics import Metrics
from syncd.store.ledger import IntentState

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return _samples(metrics.render().decode()).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def metrics(clock: FrozenClock) -> Metrics:
    return Metrics(sources=["zendesk", "salesforce"], vendors=["zendesk", "graph"], clock=clock)


def test_named_sources_vendors_and_reload_results_start_at_zero(metrics: Metrics) -> None:
    assert _value(metrics, "syncd_polls_total", source="salesforce") == 0
    assert _value(metrics, "syncd_poll_errors_total", source="zendesk") == 0
    assert _value(metrics, "syncd_api_rate_limited_total", vendor="graph") == 0
    assert _value(metrics, "syncd_reloads_total", result="refused") == 0


def test_polls_errors_api_calls_and_reloads_count(metrics: Metrics) -> None:
    metrics.polled("zendesk")
    metrics.polled("zendesk", failed=True)
    metrics.polled("sharepoint")  # not named up front: appears on first use
    for status in (200, 429, 200):
        metrics.api_call("zendesk", status=status)
    metrics.api_call("graph")
    metrics.retried("zendesk")
    metrics.budget_remaining("zendesk", 312)
    metrics.reloaded(ok=True)
    metrics.reloaded(ok=False)
    metrics.reloaded(ok=False)
    samples = _samples(metrics.render().decode())
    assert samples[("syncd_polls_total", (("source", "zendesk"),))] == 2
    assert samples[("syncd_poll_errors_total", (("source", "zendesk"),))] == 1
    assert samples[("syncd_polls_total", (("source", "sharepoint"),))] == 1
    assert samples[("syncd_api_calls_total", (("vendor", "zendesk"),))] == 3
    assert samples[("syncd_api_calls_total", (("vendor", "graph"),))] == 1
    assert samples[("syncd_api_rate_limited_total", (("vendor", "zendesk"),))] == 1
    assert samples[("syncd_api_retries_total", (("vendor", "zendesk"),))] == 1
    assert samples[("syncd_api_budget_remaining", (("vendor", "zendesk"),))] == 312
    assert samples[("syncd_reloads_total", (("result", "ok"),))] == 1
    assert samples[("syncd_reloads_total", (("result", "refused"),))] == 2


def test_lag_is_now_minus_the_newest_change_and_grows_until_the_next(
    metrics: Metrics, clock: FrozenClock
) -> None:
    assert _value(metrics, "syncd_source_lag_seconds", source="zendesk") is None
    metrics.saw_change("zendesk", NOW - timedelta(seconds=90))
    metrics.saw_change("zendesk", NOW - timedelta(seconds=300))  # older: ignored
    assert _value(metrics, "syncd_source_lag_seconds", source="zendesk") == 90
    clock.advance(30)
    assert _value(metrics, "syncd_source_lag_seconds", source="zendesk") == 120
    metrics.saw_change("zendesk", clock.now() - timedelta(seconds=5))
    assert _value(metrics, "syncd_source_lag_seconds", source="zendesk") == 5


def test_intents_by_state_and_timers_due_are_gauges(metrics: Metrics) -> None:
    counts = dict.fromkeys(IntentState, 0) | {IntentState.PLANNED: 4, IntentState.DEAD: 1}
    metrics.set_intents(counts)
    metrics.set_timers_due(7)
    samples = _samples(metrics.render().decode())
    assert samples[("syncd_intents", (("state", "planned"),))] == 4
    assert samples[("syncd_intents", (("state", "dead"),))] == 1
    assert samples[("syncd_intents", (("state", "done"),))] == 0
    assert samples[("syncd_timers_due", ())] == 7
    metrics.set_intents({**counts, IntentState.PLANNED: 0, IntentState.DONE: 4})
    metrics.set_timers_due(0)
    samples = _samples(metrics.render().decode())
    assert samples[("syncd_intents", (("state", "planned"),))] == 0
    assert samples[("syncd_intents", (("state", "done"),))] == 4
    assert samples[("syncd_timers_due", ())] == 0


def test_held_intents_per_rule_go_back_to_zero_once_released(metrics: Metrics) -> None:
    metrics.set_held({"close-stale": 7, "survey": 3})
    samples = _samples(metrics.render().decode())
    assert samples[("syncd_intents_held", (("rule", "close-stale"),))] == 7
    metrics.set_held({"survey": 1})
    samples = _samples(metrics.render().decode())
    assert samples[("syncd_intents_held", (("rule", "close-stale"),))] == 0
    assert samples[("syncd_intents_held", (("rule", "survey"),))] == 1


def test_cycle_duration_histogram_observes_each_cycle_even_a_failing_one(
    metrics: Metrics,
) -> None:
    with metrics.time_cycle():
        pass
    with pytest.raises(RuntimeError), metrics.time_cycle():
        raise RuntimeError("vendor down")
    assert _value(metrics, "syncd_cycle_duration_seconds_count") == 2
    assert _value(metrics, "syncd_cycle_duration_seconds_bucket", le="+Inf") == 2
    assert _value(metrics, "syncd_cycle_duration_seconds_bucket", le="0.1") == 2


def test_each_instance_has_its_own_registry(clock: FrozenClock) -> None:
    first, second = Metrics(clock=clock), Metrics(clock=clock)  # no duplicate-series error
    first.polled("zendesk")
    assert _value(second, "syncd_polls_total", source="zendesk") is None


@pytest.fixture
def served(metrics: Metrics) -> Iterator[int]:
    server = metrics.serve("127.0.0.1", 0)
    yield server.port
    server.stop()


def test_serves_metrics_over_http_on_loopback(metrics: Metrics, served: int) -> None:
    metrics.polled("zendesk")
    url = f"http://127.0.0.1:{served}/metrics"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(url, timeout=5) as answer:
        assert answer.status == 200
        body = answer.read().decode()
    assert _samples(body)[("syncd_polls_total", (("source", "zendesk"),))] == 1
    assert "python_gc_objects_collected_total" not in body  # not the global registry
