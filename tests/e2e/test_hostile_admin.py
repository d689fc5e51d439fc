"""Admin mistakes cannot hang syncd or make it claim what did not happen: a costly template is
refused by `syncd check` (naming it) and fails one render in the daemon; a `do:` list stops at
its first failed action for the record."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from e2e_world import NOW, World, seed
from typer.testing import CliRunner

from syncd.cli import app
from syncd.sandbox.server import SandboxServer

FOLDER_THEN_MAIL = """
rules:
  - id: client-folder
    on: zendesk.ticket
    when: {status: new}
    do:
      - ensure_folder: {path: "Clients/{{ ticket.subject }}"}
      - notify: {to: [hal@example.com], subject: "Folder ready: {{ ticket.subject }}",
                 body: "Clients/{{ ticket.subject }} is there."}
"""


def _states(world: World) -> dict[str, list[tuple[str, str]]]:
    store = world.store()
    try:
        with store.read() as tx:
            found: dict[str, list[tuple[str, str]]] = {}
            for e in tx.ledger.list():
                found.setdefault(e.intent.record.id, []).append(
                    (e.intent.action, e.state.value))
            return found
    finally:
        store.close()


def test_a_do_list_stops_at_its_first_failed_action(sandbox: SandboxServer,
                                                     tmp_path: Path) -> None:
    world = World(sandbox, tmp_path, FOLDER_THEN_MAIL)
    fixture = seed(0, NOW)
    fixture["zendesk"]["tickets"] = [
        {"id": n, "subject": s, "status": "new", "requester": "carl@customer.example",
         "created_at": (NOW - timedelta(minutes=30)).isoformat()}
        for n, s in ((1, ".."), (2, "Kestrel"))]
    sandbox.control("POST", "/_sandbox/seed", fixture)
    world.cycle()
    states = _states(world)
    assert states["1"] == [("ensure_folder", "dead"), ("notify", "dead")]
    assert states["2"] == [("ensure_folder", "done"), ("notify", "done")]
    assert world.subjects() == ["Folder ready: Kestrel"]
    store = world.store()
    with store.read() as tx:
        (mail,) = [e for e in tx.ledger.list() if e.intent.record.id == "1"
                   and e.intent.action == "notify"]
    store.close()
    assert "earlier action ensure_folder" in (mail.last_error or "")

    # a Graph outage past the connector's own retries: the mail waits for its folder
    world.faults({"vendor": "graph", "method": "POST", "path": "children$", "kind": "status",
                  "status": 503, "times": None})
    acme = str(world.new_ticket("Acme"))
    world.cycle()
    assert _states(world)[acme] == [("ensure_folder", "failed"), ("notify", "planned")]
    sandbox.control("DELETE", "/_sandbox/faults")  # Graph is back
    world.advance(timedelta(minutes=5))
    world.cycle()
    assert _states(world)[acme] == [("ensure_folder", "done"), ("notify", "done")]
    assert world.subjects() == ["Folder ready: Acme", "Folder ready: Kestrel"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ 9 ** (9 ** 9) }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "{{ 'x' * 10000000000 }}",
    ],
)
def test_check_finishes_and_names_the_costly_template(tmp_path: Path, template: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "costly.yaml").write_text(
        "rules:\n  - id: costly\n    on: zendesk.ticket\n    when: {status: new}\n"
        f"    do:\n      - comment: {{body: \"{template}\"}}\n")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["check", str(rules)])
    assert time.monotonic() - started < 30  # bounded: it used to run forever
    assert result.exit_code != 0
    assert "costly.yaml:6" in result.output and "too costly" in result.output, result.output


DATA_LOOPS = """
rules:
  - id: loops
    on: zendesk.ticket
    when: {status: new}
    do:
      - comment: {body: "{% for a in ticket.subject %}{% for b in ticket.subject %}{% for c in
          ticket.subject %}{% endfor %}{% endfor %}{% endfor %}"}
  - id: triage
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [seen]}]
"""


def test_a_render_past_its_budget_fails_that_record_and_the_cycle_goes_on(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, DATA_LOOPS)
    sandbox.control("POST", "/_sandbox/seed", seed(0, NOW))
    long = world.new_ticket("y" * 5000)  # 5000 ** 3 iterations: a hang without a budget
    short = world.new_ticket("ok")
    started = time.monotonic()
    report = world.cycle()
    assert time.monotonic() - started < 60
    assert "seen" in world.ticket(long)["tags"] and "seen" in world.ticket(short)["tags"]
    assert any("too costly" in f for f in report.failures), report.failures


BACKTRACKING = """
rules:
  - id: doubled
    on: zendesk.ticket
    when: {status: new, subject: {matches: "^(a|aa)+$"}}
    do: [{tag: [doubled]}]
  - id: triage
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [seen]}]
"""


def test_a_backtracking_regex_on_customer_text_is_bounded(sandbox: SandboxServer,
                                                          tmp_path: Path) -> None:
    world = World(sandbox, tmp_path, BACKTRACKING)
    sandbox.control("POST", "/_sandbox/seed", seed(0, NOW))
    hostile = world.new_ticket("a" * 60 + "b")  # with `re`: about 1.5 trillion steps
    fine = world.new_ticket("aaaa")
    started = time.monotonic()
    report = world.cycle()
    assert time.monotonic() - started < 60
    assert world.ticket(fine)["tags"] == ["doubled", "seen"]
    assert "seen" in world.ticket(hostile)["tags"]  # the other rule still acted on it
    assert any("took over" in f and "matches" in f for f in report.failures), report.failures
