"""Output a terminal or a log reader trusts: a ticket subject holding terminal escapes, a NUL,
a bidi override or a forged log line shows as escapes in `syncd audit`, `syncd intents` and
`syncd plan`, and every log event stays one line."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from e2e_world import NOW, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.logs import configure_logging, get_logger

HOSTILE = "Printer\x1b]0;pwned\x07\x1b[2J\x00 \u202egnp.exe\nts=2026 event=forged_by_customer"
RAW = ("\x1b", "\x00", "\x07", "\u202e")


def test_audit_intents_and_plan_show_customer_text_escaped(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(0, NOW - timedelta(minutes=30)))
    ticket = world.new_ticket(HOSTILE)
    world.cycle()
    runner = CliRunner()
    env = {**world.env, "SYNCD_CONFIG": str(world.config), "COLUMNS": "1000"}  # no wrapping
    outputs = {
        "audit": runner.invoke(app, ["audit", f"zendesk:{ticket}"], env=env),
        "intents": runner.invoke(app, ["intents"], env=env),
        "plan": runner.invoke(app, ["plan", "--config", str(world.config)], env=env),
    }
    for name, result in outputs.items():
        assert result.exit_code == 0, (name, result.output)
        assert not any(c in result.stdout for c in RAW), (name, result.stdout)
        assert "forged_by_customer" not in "".join(
            line for line in result.stdout.splitlines() if line.startswith("ts="))
    assert "\\x1b]0;pwned" in outputs["audit"].stdout and "\\u202e" in outputs["audit"].stdout


@pytest.mark.parametrize("fmt", ["keyvalue", "json"])
@pytest.mark.parametrize(
    "value", ["a\nts=1 event=forged", "a\u2028ts=1 event=forged", "a\x85ts=1", "x \ud800 y"]
)
def test_one_event_is_one_line_whatever_the_value(fmt: str, value: str) -> None:
    stream = io.StringIO()
    configure_logging(fmt, "INFO", stream=stream)  # type: ignore[arg-type]
    get_logger("syncd.test").info("ticket_seen", subject=value)
    written = stream.getvalue()
    assert len(written.splitlines()) == 1, written
    assert "\x85" not in written and "\u2028" not in written
    if fmt == "json":
        assert json.loads(written)["subject"] == value  # escaped, not altered
