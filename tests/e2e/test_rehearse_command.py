"""`syncd rehearse` as an admin runs it (a process of its own) against a running sandbox: a new
rule rehearsed over two simulated weeks with a script of people's actions, the timeline as
JSON, a pause at a chosen instant, and a refusal of anything that is not a sandbox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2e_world import NOW, seed

from syncd.resources import RULES, shipped
from syncd.sandbox.server import SandboxServer

SHIPPED = Path(str(shipped(RULES)))
SYNCD = str(Path(sys.executable).parent / "syncd")
RULE = """
rules:
  - id: pending-chase
    description: Nudge a customer who has not answered, then solve the ticket
    on: zendesk.ticket
    calendar: support
    when: {status: pending}
    since: {became: {status: pending}}
    steps:
      - {id: nudge, after: 3 business_days, do: [{comment: {public: true, body: "Any news?"}}]}
      - {id: close, after: 7 business_days, do: [{set: {status: solved}}]}
"""
SCRIPT = """
- at: 2026-03-02T09:00:00Z
  who: Carl Customer
  what: writes in
  seed:
    zendesk:
      tickets: [{id: 41, subject: Printer jammed, requester: carl@customer.example,
                 comments: [{author: carl@customer.example, body: Help}]}]
- at: 2026-03-02T11:00:00Z
  who: Ann
  what: asks for the model number, sets Pending
  zendesk:
    method: PUT
    path: /tickets/41.json
    body: {ticket: {status: pending, comment: {body: "Which model?", public: true}}}
"""


def rules_dir(tmp_path: Path) -> Path:
    found = tmp_path / "my-rules"
    found.mkdir()
    shutil.copy(SHIPPED / "calendars.yaml", found / "calendars.yaml")
    (found / "pending-chase.yaml").write_text(textwrap.dedent(RULE))
    return found


def rehearse(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # no wrapping: rich breaks long words (the temporary paths) at 80 columns, so where a
    # message broke depended on the length of the temporary directory's name (xdist's longer)
    return subprocess.run([SYNCD, "rehearse", *args], capture_output=True, text=True,
                          input=stdin, timeout=300,
                          env={**os.environ, "COLUMNS": "1000"})


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


def test_a_new_rule_rehearsed_over_two_simulated_weeks(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.control("POST", "/_sandbox/seed", seed(0, NOW))
    (tmp_path / "story.yaml").write_text(textwrap.dedent(SCRIPT))
    run = rehearse("--sandbox", str(sandbox.directory), "--rules", str(rules_dir(tmp_path)),
                   "--from", "2026-03-02T08:00:00Z", "--until", "2026-03-16T08:00:00Z",
                   "--script", str(tmp_path / "story.yaml"), "--json", "-")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    events = doc["events"]
    people = [(e["by"], e["what"]) for e in events if e["by"] != "syncd"]
    assert people == [("Carl Customer", "writes in"),
                      ("Ann", "asks for the model number, sets Pending")]
    syncd = [e for e in events if e["by"] == "syncd"]
    nudge = [e for e in syncd if "Any news?" in e["what"]]
    solved = [e for e in syncd if "status pending → solved" in e["what"]]
    assert len(nudge) == 1 and len(solved) == 1, syncd
    assert nudge[0]["process"] == "pending-chase"  # the rule file, from the comment's key
    # 3 and 7 business days after Monday 11:00 (Europe/London, 09:00-17:30 weekdays)
    assert at(nudge[0]).date().isoformat() == "2026-03-05"
    assert at(solved[0]).date().isoformat() == "2026-03-11"
    assert doc["cycles"] < 40  # jumps from one instant to the next, not poll by poll
    # what people see in the sandbox: the same, at the simulated instants
    ticket = sandbox.sandbox.snapshot()["zendesk"]["tickets"]  # type: ignore[union-attr]
    assert [t["status"] for t in ticket if t["id"] == 41] == ["solved"]
    clock = sandbox.control("GET", "/_sandbox/clock")["now"]
    assert datetime.fromisoformat(clock.replace("Z", "+00:00")) <= datetime(
        2026, 3, 16, 8, tzinfo=UTC)


def test_a_stop_pauses_the_rehearsal_at_the_chosen_instant(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.control("POST", "/_sandbox/seed", seed(0, NOW))
    (tmp_path / "story.yaml").write_text(textwrap.dedent(SCRIPT))
    run = rehearse("--sandbox", str(sandbox.directory), "--rules", str(rules_dir(tmp_path)),
                   "--from", "2026-03-02T08:00:00Z", "--until", "2026-03-06T08:00:00Z",
                   "--script", str(tmp_path / "story.yaml"),
                   "--stop-at", "2026-03-04T12:00:00Z", stdin="\n")
    assert run.returncode == 0, run.stderr
    assert "paused at 2026-03-04T12:00:00+00:00" in " ".join(run.stdout.split())
    assert "Any news?" in run.stdout  # and it went on after the pause


def test_anything_but_a_sandbox_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    rules = str(rules_dir(tmp_path))
    fake = tmp_path / "not-a-sandbox"
    fake.mkdir()
    info = dict(sandbox.info)
    info["url"] = "https://127.0.0.1:9"  # nothing answers the control API there
    (fake / "sandbox.json").write_text(json.dumps(info))
    shutil.copy(sandbox.directory / "syncd.toml", fake / "syncd.toml")  # type: ignore[operator]
    run = rehearse("--sandbox", str(fake), "--rules", rules, "--until", "2026-03-03T00:00:00Z")
    assert run.returncode == 2
    assert "rehearsals run only against a sandbox" in " ".join(run.stdout.split())

    real = tmp_path / "pointing-at-zendesk.toml"
    text = (sandbox.directory / "syncd.toml").read_text()  # type: ignore[operator]
    real.write_text(text.replace(f'netloc = "{sandbox.info["zendesk"]["netloc"]}"',
                                 'netloc = "acme.zendesk.com"'))
    run = rehearse("--sandbox", str(sandbox.directory), "--config", str(real), "--rules", rules,
                   "--until", "2026-03-03T00:00:00Z")
    assert run.returncode == 2
    assert "zendesk.netloc" in run.stdout and "never touches a real vendor" in " ".join(
        run.stdout.split())
    assert sandbox.control("GET", "/_sandbox/requests")["requests"] == [] or all(
        r["method"] == "GET" for r in sandbox.control("GET", "/_sandbox/requests")["requests"])


def test_a_script_step_the_vendor_refuses_stops_with_its_answer(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.control("POST", "/_sandbox/seed", seed(0, NOW))
    (tmp_path / "story.yaml").write_text(textwrap.dedent("""
        - at: 2026-03-02T10:00:00Z
          zendesk: {method: PUT, path: /tickets/99.json, body: {ticket: {status: open}}}
        """))
    run = rehearse("--sandbox", str(sandbox.directory), "--rules", str(rules_dir(tmp_path)),
                   "--from", "2026-03-02T08:00:00Z", "--until", "2026-03-03T08:00:00Z",
                   "--script", str(tmp_path / "story.yaml"))
    assert run.returncode == 2, run.stdout + run.stderr
    told = " ".join(run.stdout.split())
    assert "story.yaml:2: step 1: PUT /tickets/99.json" in told and "404" in told
    (tmp_path / "bad.yaml").write_text("- {at: 2026-03-02T10:00:00Z, zendsk: {path: /x}}\n")
    run = rehearse("--sandbox", str(sandbox.directory), "--until", "2026-03-03T08:00:00Z",
                   "--script", str(tmp_path / "bad.yaml"))
    assert run.returncode == 2
    assert "bad.yaml:1: step 1: unknown key 'zendsk'" in " ".join(run.stdout.split())
