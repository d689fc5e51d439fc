"""`syncd run` logs one line per event in the configured format, each naming its record, rule,
intent and, when a vendor gave one, the vendor's request id."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from e2e_world import NOW, TRIAGE, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.sandbox.server import SandboxServer


def test_run_logs_json_events_with_record_rule_intent_and_request_id(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, TRIAGE)  # the CLI runs on the real clock: no timelines
    sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=5)))
    world.faults({"vendor": "graph", "method": "POST", "path": r"/sendMail", "kind": "status",
                  "status": 400, "times": 1})
    env = {**world.env, "SYNCD_SYNCD__LOG_FORMAT": "json"}
    result = CliRunner().invoke(app, ["run", "--once", "--config", str(world.config)], env=env)
    assert result.exit_code == 1  # the mail failed
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    events = {line["event"]: line for line in lines}
    assert {"poll_done", "intent_done", "intent_failed", "cycle_done"} <= set(events)
    for event in ("intent_done", "intent_failed"):
        assert {"record", "rule", "intent", "action"} <= set(events[event])
    failed = events["intent_failed"]
    assert (failed["record"], failed["rule"], failed["action"]) == (
        "zendesk.ticket:1", "triage", "notify")
    assert failed["request_id"]  # Graph's request-id, to quote to Microsoft support
