"""monitoring/: the alert rules and the Grafana dashboard name only metrics syncd exports, and
the alerts fire as their unit tests say (`promtool test rules`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from syncd.clock import FrozenClock
from syncd.daemon.metrics import Metrics

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
METRIC = re.compile(r"\b((?:syncd|process)_[a-z_]+|up)\b(?!\s*\()")
PROMETHEUS_OWN = {"up"}  # written by Prometheus for every scrape target


def exported() -> set[str]:
    """Every sample name /metrics shows once each kind of event has happened."""
    clock = FrozenClock(NOW)
    metrics = Metrics(sources=["zendesk"], vendors=["zendesk"], clock=clock)
    metrics.polled("zendesk")
    metrics.polled("zendesk", failed=True)
    metrics.saw_change("zendesk", NOW - timedelta(minutes=1))
    metrics.set_intents({"planned": 1})
    metrics.set_rule_intents({("escalate", "held"): 1})
    metrics.set_timers_due(0)
    metrics.api_counts("zendesk", calls=3, rate_limited=1, retries=1)
    metrics.budget_remaining("zendesk", 10, 350)
    metrics.reloaded(ok=False)
    metrics.webhook()
    metrics.webhook(refused="stale")
    metrics.watch(kill_switch=lambda: False, fallback=lambda: False)
    with metrics.time_cycle():
        pass
    families = text_string_to_metric_families(metrics.render().decode())
    return {sample.name for family in families for sample in family.samples}


def named(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def alert_rules() -> list[dict[str, Any]]:
    document = YAML(typ="safe").load((MONITORING / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    known = exported() | PROMETHEUS_OWN
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 15
    for expr in exprs:
        assert named(expr), f"names no metric: {expr}"
        assert named(expr) <= known, f"not exported: {named(expr) - known} in {expr}"
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for subject in ("polls", "lag", "intents by state", "api budget", "cycle duration"):
        assert subject in titles


def test_every_alert_names_exported_metrics_and_says_what_to_do() -> None:
    rules = alert_rules()
    known = exported() | PROMETHEUS_OWN
    assert {r["alert"] for r in rules} >= {
        "SyncdDown", "SyncdNoSuccessfulPoll", "SyncdIntentsFailing", "SyncdIntentsHeld",
        "SyncdRulesFallback", "SyncdApiBudgetNearlySpent"}
    for rule in rules:
        assert named(rule["expr"]) and named(rule["expr"]) <= known, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]


def _promtool() -> str | None:
    local = Path(sys.executable).with_name("promtool")
    return shutil.which("promtool") or (str(local) if local.is_file() else None)


def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    promtool = _promtool()
    if promtool is None:
        assert not os.environ.get("CI"), "CI must have promtool: monitoring/get-promtool"
        pytest.skip("promtool not installed (make test gets it: monitoring/get-promtool)")
    for args in (["check", "rules", "alerts.yaml"], ["test", "rules", "alerts.test.yaml"]):
        done = subprocess.run([promtool, *args], cwd=MONITORING, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
