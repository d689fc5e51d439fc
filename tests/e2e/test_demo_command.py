"""`syncd demo --json -`, what `make demo` runs: its own sandbox, the story, the verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.rehearsal.timeline import SYNCD, rule_processes
from syncd.resources import RULES, shipped


@pytest.mark.slow  # the whole story, six simulated weeks
def test_demo_judges_every_shipped_process_from_the_sandbox() -> None:
    result = CliRunner().invoke(app, ["demo", "--json", "-"])
    doc = json.loads(result.stdout)

    processes = doc["processes"]
    assert [p for p in processes if not p["ok"]] == []
    assert result.exit_code == 0, result.stderr
    assert doc["ok"] is True
    assert len(processes) == 22 and all(p["evidence"] for p in processes)
    shipped_processes = rule_processes(Path(str(shipped(RULES)))).values()
    assert {p["process"] for p in processes} == set(shipped_processes)
    assert "22/22 processes ✓" in result.stderr  # the table, readable

    timeline = doc["timeline"]
    assert {e["system"] for e in timeline if e["by"] == SYNCD} == {
        "Zendesk", "Salesforce", "SharePoint", "Mail"}
    assert {e["process"] for e in timeline} == {p["process"] for p in processes}
    assert any(e["by"] == "Carl Customer" for e in timeline)  # people act in the story too
    assert doc["simulated"] == {"from": "2026-03-02T08:00:00+00:00",
                                "to": "2026-04-13T09:05:00+00:00"}
    assert doc["real_seconds"] > 0


def test_demo_until_stops_early_and_fails_what_it_did_not_reach() -> None:
    result = CliRunner().invoke(app, ["demo", "--quiet", "--until", "2026-03-02T08:00:00Z",
                                      "--json", "-"])
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    assert doc["simulated"]["to"] == "2026-03-02T08:00:00+00:00"
    later = next(p for p in doc["processes"] if p["name"].startswith("product-release"))
    assert later["ok"] is False
    assert any("not reached" in line for line in later["evidence"])
