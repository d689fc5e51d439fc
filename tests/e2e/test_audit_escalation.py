"""`syncd audit` explains an escalation across Zendesk and Graph (issue 7's "done when"): a
ticket nobody answers climbs the ladder (1h: mail through Graph, 24h: a Zendesk comment), a
person changes its priority on the way, and once an agent has replied the 26h step stops.
Asserted on what an admin reads: the JSON for structure, the tables for the key facts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from e2e_world import ANN, KEY_HEADER, NOW, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.settings import load_settings

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
PARIS = "Europe/Paris"  # CET in March: instants read one hour later than UTC
CREATED = NOW - 30 * MINUTE  # 09:30 UTC, 10:30 CET


def _audit(world: World, *options: str) -> str:
    shown = CliRunner().invoke(
        app,
        ["audit", "zendesk:1", "--config", str(world.config), *options],
        env={**world.env, "COLUMNS": "400"},  # one table row per line
    )
    assert shown.exit_code == 0, shown.output
    return shown.output


def _explained(world: World) -> dict[str, Any]:
    return dict(json.loads(_audit(world, "--json")))


def _line(out: str, *texts: str) -> int:
    """The number of the first line of `out` holding every one of `texts` (a table row: the
    console is wide enough for each row to be one line); the test fails if there is none."""
    found = [n for n, line in enumerate(out.splitlines()) if all(t in line for t in texts)]
    if not found:
        pytest.fail(f"no line shows all of {texts}:\n{out}")
    return found[0]


def _section(out: str, title: str) -> str:
    """One table of the human output, from its title on."""
    assert title in out, out
    return out[out.index(title) :]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_audit_explains_an_escalation_across_zendesk_and_graph(world: World) -> None:
    world.env["SYNCD_SYNCD__TIMEZONE"] = PARIS
    world.settings = load_settings(world.config, env=world.env)
    history = seed(1, CREATED)
    history["zendesk"]["tickets"][0]["priority"] = "normal"
    world.sandbox.control("POST", "/_sandbox/seed", history)
    assert world.cycle().ok  # 10:00 UTC: triaged, the ladder's timers set
    world.advance(31 * MINUTE)
    assert world.cycle().ok  # 10:31: the 1h step mails the group through Graph
    world.advance(2 * HOUR)
    world.http.put(f"{world.api}/tickets/1.json", timeout=30,
                   json={"ticket": {"priority": "urgent"}}).raise_for_status()
    world.advance(5 * MINUTE)
    assert world.cycle().ok  # 12:36: the change seen
    world.advance(CREATED + 24 * HOUR + MINUTE - world.clock.now())
    assert world.cycle().ok  # 09:31 the next day: the 24h step comments on the ticket

    explained = _explained(world)
    assert {"field": "priority", "at": "2026-03-02T12:36:00+00:00", "old": "normal",
            "new": "urgent"} in explained["history"]
    steps = {i["step"]: i for i in explained["intents"] if i["rule"] == "ladder"}
    assert list(steps) == ["h1", "h24"]
    h1, h24 = steps["h1"], steps["h24"]
    assert (h1["action"], h1["state"], h24["action"], h24["state"]) == (
        "notify", "done", "comment", "done")
    for intent in (h1, h24):  # the values that made it fire: `when`, and the anchor counted from
        assert intent["reason"]["when"] == {"status": "open"}
        assert _at(intent["reason"]["anchor"]) == CREATED
    assert _at(h1["due_at"]) == CREATED + HOUR and _at(h24["due_at"]) == CREATED + 24 * HOUR

    # Graph's answer: the mail is the one in the mailbox that carries the intent's key header
    (mail,) = [m for m in world.mail() if m["subject"] == "1h without action: #1"]
    assert mail["headers"][KEY_HEADER] == h1["key"]
    assert h1["vendor_answer"] == {h1["key"]: {"mailbox": mail["from"]}}
    (prepared,) = [r["detail"]["ops"] for r in explained["audit"]
                   if r["event"] == "prepared" and r["intent"] == h1["key"]]
    assert [(o["system"], o["verb"], o["key"]) for o in prepared] == [
        ("graph", "send_mail", h1["key"])]
    # Zendesk's answer: the ticket update (audit) that holds the comment
    answer = h24["vendor_answer"][h24["key"]]
    assert answer["ticket_id"] == 1
    shown = world.http.get(f"{world.api}/tickets/1/audits/{answer['audit_id']}.json", timeout=30)
    shown.raise_for_status()
    update = shown.json()["audit"]
    assert [e["body"] for e in update["events"] if e["type"] == "Comment"] == [
        "Nobody has answered for 24 hours."]
    assert [(t["rule"], t["step"], _at(t["due_at"])) for t in explained["timers"]] == [
        ("ladder", "h26", CREATED + 26 * HOUR)]

    out = _audit(world)
    order = [
        _line(out, "2026-03-02 11:31:00 CET", "timer_fired", "ladder", "step h1", "→ #4"),
        _line(out, "planned", "ladder", "#4 step h1: notify", "because status=open",
              "anchor 2026-03-02 10:30:00 CET"),
        _line(out, "prepared", "#4 graph send_mail from syncd@contoso.example",
              f"{KEY_HEADER}: {h1['key']}"),
        _line(out, "done", "#4 vendor answered graph send_mail",
              "mailbox=syncd@contoso.example", f"{KEY_HEADER}: {h1['key']}"),
        _line(out, "2026-03-02 13:36:00 CET", "changed", "priority: normal → urgent"),
        _line(out, "2026-03-03 10:31:00 CET", "timer_fired", "step h24", "→ #5"),
        _line(out, "planned", "#5 step h24: comment", "because status=open"),
        _line(out, "done", "#5 vendor answered zendesk comment", "ticket_id=1",
              f"audit_id={answer['audit_id']}"),
    ]
    assert order == sorted(order)
    _line(_section(out, "Intents"), h1["key"], "h1", "done", "status=open", f"{KEY_HEADER}: ")
    _line(_section(out, "Rules"), "ladder", "running", "h1, h24")
    _line(_section(out, "Pending timers"), "2026-03-03 12:30:00 CET", "ladder", "h26")

    # an agent answers; the next cycle after 26h re-reads the ticket before the step fires
    world.advance(10 * MINUTE)
    world.reply(1, ANN, "Sorry for the wait: a technician is on the way.")
    world.advance(CREATED + 26 * HOUR + MINUTE - world.clock.now())
    assert world.cycle().ok
    assert not [s for s in world.subjects() if s.startswith("Stuck")]

    explained = _explained(world)
    assert explained["timers"] == []
    assert [i["step"] for i in explained["intents"] if i["rule"] == "ladder"] == ["h1", "h24"]
    (ladder,) = [r for r in explained["rules"] if r["rule"] == "ladder"]
    assert ladder["memory"]["cancelled"] is True
    (stop,) = [r for r in explained["audit"]
               if r["event"] == "timer_cancelled" and r["detail"]["step"] == "h26"]
    assert stop["at"] == ladder["updated_at"] == (CREATED + 26 * HOUR + MINUTE).isoformat()
    assert stop["detail"]["reason"] == "`until` held when the record was re-read"
    assert {"field": "agent_touched", "at": stop["at"], "old": False, "new": True} in (
        explained["history"]
    )

    out = _audit(world)
    touched = _line(out, "2026-03-03 12:31:00 CET", "changed", "agent_touched: false → true")
    stopped = _line(out, "2026-03-03 12:31:00 CET", "timer_cancelled", "step h26",
                    "due 2026-03-03 12:30:00 CET",
                    "`until` held when the record was re-read")
    assert touched < stopped
    _line(_section(out, "Rules"), "ladder", "stopped (`until` held)", "h1, h24")
    assert "Pending timers" not in out
