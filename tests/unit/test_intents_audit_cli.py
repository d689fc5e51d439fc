"""`syncd intents` and `syncd audit` through the real command line, over a store built with the
store's own API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from syncd.cli import app
from syncd.commands.arguments import parse_record
from syncd.model import Intent, Record, RecordRef, intent_key
from syncd.store.db import Store, open_store
from syncd.store.ledger import IntentState
from syncd.store.timers import TimerSpec

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=30)
TICKET = RecordRef("zendesk.ticket", "123")
OPPORTUNITY = RecordRef("salesforce.opportunity", "006Ab00000XyZ12")
runner = CliRunner()


@dataclass(frozen=True)
class World:
    config: Path
    db: str
    tag: str  # done
    notify: str  # dead
    task: str  # failed, retry pending
    other: str  # planned, another ticket
    timer: str


def _intent(rule: str, record: RecordRef, index: int, action: str, **params: Any) -> Intent:
    return Intent(
        key=intent_key(rule, record, "", T1, action_index=index),
        rule_id=rule,
        record=record,
        action=action,
        params=params,
        due_at=T1,
        reason={"priority": "urgent", "status": "open"},
    )


@pytest.fixture
def world(tmp_path: Path, store_url: str) -> World:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\nstate_dir = "{tmp_path}"\nstore_url = "{store_url}"\n')
    db = store_url
    store = open_store(db, max_attempts=3)
    tag = _intent("escalate-urgent", TICKET, 0, "tag", tags=["escalated"])
    notify = _intent("escalate-urgent", TICKET, 1, "notify", to=["group:Supervisors"])
    task = _intent("renewal", OPPORTUNITY, 0, "create_task", subject="Call")
    other = _intent("triage", RecordRef("zendesk.ticket", "124"), 0, "assign", group="Tier 1")
    timer = intent_key("sla-breach", TICKET, "remind", T1)
    fields = {"status": "open", "priority": "normal", "subject": "Printer [bold]on[/] fire"}
    with store.transaction() as tx:
        tx.records.upsert(Record(TICKET, fields, T0))
    with store.transaction() as tx:
        tx.records.upsert(Record(TICKET, {**fields, "priority": "urgent"}, T1))
        tx.ledger.plan([tag, notify, task, other], T1)
        tx.timers.replace(
            "sla-breach", TICKET, [TimerSpec(timer, "remind", T1 + timedelta(hours=4))], T1
        )
    with store.transaction() as tx:
        for intent in (tag, notify, task):
            assert tx.ledger.mark_sent(intent.key, T1)
        assert tx.ledger.mark_done(tag.key, {"ticket": 123, "tags": ["escalated"]}, T1)
        assert tx.ledger.mark_failed(notify.key, "550 mailbox unavailable", T1, None)
        assert tx.ledger.mark_failed(task.key, "503 from Salesforce", T1, T1 + timedelta(hours=1))
    store.close()
    return World(config, db, tag.key, notify.key, task.key, other.key, timer)


def _run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def _json(*args: str | Path, code: int = 0) -> Any:
    result = _run(*args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.output)


def _states(world: World) -> dict[str, IntentState]:
    store = open_store(world.db)
    try:
        with store.read() as tx:
            return {entry.intent.key: entry.state for entry in tx.ledger.list()}
    finally:
        store.close()


def test_intents_lists_the_ledger_in_planning_order(world: World) -> None:
    listed = _json("intents", "--config", world.config)
    assert [(i["key"], i["state"]) for i in listed] == [
        (world.tag, "done"),
        (world.notify, "dead"),
        (world.task, "failed"),
        (world.other, "planned"),
    ]
    notify = listed[1]
    assert notify["rule"] == "escalate-urgent"
    assert notify["record"] == "zendesk.ticket:123"
    assert notify["attempts"] == 1
    assert notify["last_error"] == "550 mailbox unavailable"
    assert notify["reason"] == {"priority": "urgent", "status": "open"}
    assert listed[0]["vendor_answer"] == {"ticket": 123, "tags": ["escalated"]}


def test_intents_table_shows_key_rule_record_state_due_and_error(world: World) -> None:
    result = _run("intents", "--config", world.config)
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "last error", world.notify, "escalate-urgent", f"{OPPORTUNITY}", "create_task",
        "550 mailbox unavailable", "2026-03-02 10:30:00 UTC", "4 intents",
    ):
        assert text in out, text
    # failed: the due column shows when it is tried next
    task_line = next(line for line in out.splitlines() if world.task in line)
    assert "2026-03-02 10:30:00 UTC" in task_line


def test_intents_filters(world: World) -> None:
    assert [i["key"] for i in _json("intents", "--failed", "--config", world.config, code=1)] == [
        world.notify,
        world.task,
    ]
    planned = _json("intents", "--state", "planned", "--config", world.config)
    assert [i["key"] for i in planned] == [world.other]
    for ref in ("zendesk:123", "zendesk.ticket:123"):
        on_ticket = _json("intents", "--record", ref, "--config", world.config)
        assert [i["key"] for i in on_ticket] == [world.tag, world.notify]
    assert _json("intents", "--record", "zendesk:999", "--config", world.config) == []
    empty = _run("intents", "--state", "sent", "--config", world.config)
    assert (empty.exit_code, empty.output) == (0, "no intents match\n")


def test_retry_takes_a_dead_intent_out_of_the_dead_letter(world: World) -> None:
    result = _run("intents", "--retry", world.notify, "--config", world.config)
    assert result.exit_code == 0, result.output
    assert "planned again" in result.output
    assert _states(world)[world.notify] is IntentState.PLANNED
    retried = _json("intents", "--record", "zendesk:123", "--config", world.config)[1]
    assert retried["attempts"] == 0
    audit = _json("audit", "zendesk:123", "--config", world.config)["audit"]
    assert audit[-1]["event"] == "retried"


def test_retry_brings_a_failed_intents_next_attempt_forward(world: World) -> None:
    result = _run("intents", "--retry", world.task, "--config", world.config)
    assert result.exit_code == 0, result.output
    assert "brought forward from 2026-03-02 10:30:00 UTC" in result.output
    (task,) = _json("intents", "--record", "salesforce:006Ab00000XyZ12", "--config", world.config)
    assert task["state"] == "failed"
    assert datetime.fromisoformat(task["next_attempt_at"]) <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("escalate-urgent/000000000000000000000000", "no intent with key"),
        ("done", "is done: only dead, failed or unknown intents can be"),
        ("planned", "is planned: only dead, failed or unknown intents can be"),
    ],
)
def test_retry_refuses_unknown_keys_and_live_intents(world: World, key: str, message: str) -> None:
    key = {"done": world.tag, "planned": world.other}.get(key, key)
    before = _states(world)
    result = _run("intents", "--retry", key, "--config", world.config)
    assert result.exit_code == 1
    assert message in result.output
    assert _states(world) == before


def test_retry_takes_no_listing_options(world: World) -> None:
    result = _run("intents", "--retry", world.notify, "--failed", "--config", world.config)
    assert result.exit_code == 2
    assert _states(world)[world.notify] is IntentState.DEAD


def test_audit_json_has_history_intents_audit_rows_and_timers(world: World) -> None:
    explained = _json("audit", "zendesk:123", "--config", world.config)
    assert explained == _json("audit", "zendesk.ticket:123", "--config", world.config)
    assert explained["record"] == "zendesk.ticket:123"
    assert explained["snapshot"]["fields"]["priority"] == "urgent"
    assert {"field": "priority", "at": T1.isoformat(), "old": "normal", "new": "urgent"} in (
        explained["history"]
    )
    assert [i["key"] for i in explained["intents"]] == [world.tag, world.notify]
    assert [(r["event"], r["intent"]) for r in explained["audit"]] == [
        ("planned", world.tag),
        ("planned", world.notify),
        ("timer_scheduled", None),
        ("sent", world.tag),
        ("sent", world.notify),
        ("done", world.tag),
        ("dead", world.notify),
    ]
    assert explained["audit"][0]["detail"]["reason"] == {"priority": "urgent", "status": "open"}
    assert explained["timers"] == [
        {
            "key": world.timer,
            "rule": "sla-breach",
            "step": "remind",
            "due_at": (T1 + timedelta(hours=4)).isoformat(),
        }
    ]


def test_audit_timeline_explains_why_it_escalated(world: World) -> None:
    result = _run("audit", "zendesk:123", "--config", world.config)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("zendesk.ticket:123  (last seen 2026-03-02 09:30:00 UTC)")
    lines = out.splitlines()
    order = [
        next(n for n, line in enumerate(lines) if text in line)
        for text in ("first seen", "priority: normal → urgent", "#1 tag", "#1 vendor answered")
    ]
    assert order == sorted(order)
    for text in (
        "Printer [bold]on[/] fire",  # data, not markup
        "because priority=urgent, status=open",
        "#2 attempt 1 failed: 550 mailbox unavailable",
        "Pending timers",
        "2026-03-02 13:30:00 UTC",
        world.notify,
    ):
        assert text in out, text


def test_audit_of_a_record_syncd_never_saw(world: World) -> None:
    result = _run("audit", "sharepoint:01ABC", "--config", world.config)
    assert result.exit_code == 1
    assert "syncd has no trace of sharepoint.file:01ABC" in result.output


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("zendesk:123", TICKET),
        ("zendesk.ticket:123", TICKET),
        ("salesforce:006Ab00000XyZ12", OPPORTUNITY),
        ("salesforce:001Ab00000XyZ12", RecordRef("salesforce.account", "001Ab00000XyZ12")),
        ("salesforce:00TAb00000XyZ12", RecordRef("salesforce.task", "00TAb00000XyZ12")),
        ("salesforce:500Ab00000XyZ12", RecordRef("salesforce.record", "500Ab00000XyZ12")),
        ("sharepoint:01ABCDEF", RecordRef("sharepoint.file", "01ABCDEF")),
        ("sharepoint.item:7", RecordRef("sharepoint.item", "7")),
    ],
)
def test_record_references(text: str, ref: RecordRef) -> None:
    assert parse_record(text) == ref


@pytest.mark.parametrize("text", ["123", "zendesk:", "jira:1", "zendesk.issue:1"])
def test_bad_record_references(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_record(text)


def test_bad_record_reference_is_a_usage_error(world: World) -> None:
    assert _run("audit", "jira:1", "--config", world.config).exit_code == 2


def test_a_missing_database_is_reported_not_created(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\nstate_dir = "{tmp_path}"\n')
    for args in (["intents"], ["audit", "zendesk:1"]):
        result = _run(*args, "--config", config)
        assert result.exit_code == 1
        assert f"no state database at {tmp_path / 'state.db'}" in result.output
    assert not (tmp_path / "state.db").exists()


def test_bad_settings_are_reported(tmp_path: Path) -> None:
    result = _run("intents", "--config", tmp_path / "absent.toml")
    assert result.exit_code == 1
    assert "no such settings file" in result.output


def _more(world: World) -> Store:
    """The fixture's store, to add to it."""
    return open_store(world.db, max_attempts=3)


def test_audit_says_why_a_timeline_stopped(world: World) -> None:
    t2 = T1 + timedelta(hours=1)
    store = _more(world)
    with store.transaction() as tx:  # what the planner writes when the rule's `until` holds
        memory = {"in_when": True, "anchor": T0.isoformat(), "fired": ["warn#0"], "cancelled": True}
        tx.memory.put("sla-breach", TICKET, memory, t2)
        tx.timers.replace("sla-breach", TICKET, [], t2, "`until` held when the record changed")
    store.close()
    explained = _json("audit", "zendesk:123", "--config", world.config)
    assert explained["timers"] == []
    assert explained["rules"] == [
        {"rule": "sla-breach", "memory": memory, "updated_at": t2.isoformat()}
    ]
    out = _run("audit", "zendesk:123", "--config", world.config).output
    cancelled = next(line for line in out.splitlines() if "timer_cancelled" in line)
    assert "step remind due 2026-03-02 13:30:00 UTC: `until` held when the record changed" in (
        cancelled
    )
    rules = out[out.index("Rules") :].splitlines()
    assert any(
        "sla-breach" in line and "stopped (`until` held)" in line and "warn" in line
        for line in rules
    )
    assert "Pending timers" not in out


def test_audit_says_a_timer_moved_with_its_anchor(world: World) -> None:
    t2 = T1 + timedelta(hours=1)
    moved = TimerSpec(
        intent_key("sla-breach", TICKET, "remind", t2), "remind", t2 + timedelta(hours=4)
    )
    store = _more(world)
    with store.transaction() as tx:
        tx.timers.replace("sla-breach", TICKET, [moved], t2)
    store.close()
    out = _run("audit", "zendesk:123", "--config", world.config).output
    assert "step remind due 2026-03-02 13:30:00 UTC: replaced by a new due instant" in out
    assert "2026-03-02 14:30:00 UTC" in out[out.index("Pending timers") :]


def test_audit_names_the_vendor_and_the_mail_that_answered(world: World) -> None:
    mail = _intent("escalate-urgent", TICKET, 2, "notify", to=["sue@example.com"])
    op = {"key": mail.key, "system": "graph", "verb": "send_mail", "target": "syncd@example.com",
          "payload": {"to": ["sue@example.com"], "subject": "Urgent", "body": "#123"}}
    store = _more(world)
    with store.transaction() as tx:  # what the executor writes around a vendor call
        tx.ledger.plan([mail], T1)
        assert tx.ledger.mark_sent(mail.key, T1)
        tx.audit.append("prepared", T1, record=TICKET, rule_id=mail.rule_id,
                        intent_key=mail.key, detail={"ops": [op]})
        assert tx.ledger.mark_done(mail.key, {mail.key: {"mailbox": "syncd@example.com"}}, T1)
    store.close()
    out = _run("audit", "zendesk:123", "--config", world.config).output
    for text in (
        f"#3 graph send_mail from syncd@example.com to sue@example.com; x-syncd-key: {mail.key}",
        f"#3 vendor answered graph send_mail: mailbox=syncd@example.com; x-syncd-key: {mail.key}",
    ):
        assert text in out, text
    intent = next(line for line in out.splitlines() if line.startswith("│ 3 "))
    assert "priority=urgent, status=open" in intent


def test_intents_failed_exits_1_when_there_are_failures(world: World) -> None:
    failing = _run("intents", "--failed", "--config", world.config)
    assert failing.exit_code == 1 and "2 intents" in failing.output
    none = _run("intents", "--failed", "--record", "salesforce:001NOPE", "--config", world.config)
    assert (none.exit_code, none.output.strip()) == (0, "no intents match")
    assert _run("intents", "--config", world.config).exit_code == 0  # listing all: not a test
