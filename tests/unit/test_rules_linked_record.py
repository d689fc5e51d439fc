"""`record:` on `set` and `comment`: the language, `check`, and the intents the engine makes."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from syncd.model import Record, RecordRef, intent_key
from syncd.rules.engine import Engine, Evaluation
from syncd.rules.language import Comment, SetFields
from syncd.rules.language.actions import ActionField
from syncd.rules.language.loader import load_rules

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
TASK = RecordRef("zendesk.ticket", "7")
ACTION: TypeAdapter[Any] = TypeAdapter(ActionField)
RULE = """
rules:
  - id: task-closed
    on: zendesk.ticket
    when: {status: solved}
    do:
      - set: {record: "{{ ticket.custom.customer_ticket }}", fields: {custom.dev_stage: done}}
      - comment: {record: "{{ ticket.custom.customer_ticket }}", body: "Task #{{ ticket.id }}"}
      - set: {record: 42, fields: {priority: high}}
      - tag: [linked]
"""


def _load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    return load_rules([path])


def _evaluate(tmp_path: Path, **custom: Any) -> Evaluation:
    loaded = _load(tmp_path, RULE)
    assert not loaded.errors, [str(d) for d in loaded.errors]
    record = Record(TASK, {"id": 7, "status": "solved", "custom": custom}, T0)
    return Engine(loaded.ruleset).evaluate(record, None, {}, T0)


def test_long_form_names_the_linked_record_and_the_short_form_is_unchanged() -> None:
    linked = ACTION.validate_python({"set": {"record": "{{ x }}", "fields": {"status": "open"}}})
    assert isinstance(linked, SetFields) and linked.link == "{{ x }}"
    assert linked.params() == {"fields": {"status": "open"}, "record": "{{ x }}"}
    plain = ACTION.validate_python({"set": {"status": "open"}})
    assert isinstance(plain, SetFields) and plain.link is None
    assert plain.params() == {"fields": {"status": "open"}}
    number = ACTION.validate_python({"comment": {"record": 42, "body": "hi"}})
    assert isinstance(number, Comment) and number.link == "42"  # a YAML number is its text
    with pytest.raises(ValidationError, match="status"):  # the long form needs `fields:`
        ACTION.validate_python({"set": {"record": "1", "status": "open"}})


def test_check_positions_errors_inside_the_long_form(tmp_path: Path) -> None:
    loaded = _load(tmp_path, """\
        rules:
          - id: a
            on: zendesk.ticket
            do:
              - set: {record: "{{ ticket.custm }}", fields: {staus: open}}
          - id: b
            on: salesforce.opportunity
            do:
              - set: {record: "{{ opportunity.AccountId }}", fields: {Name: x}}
        """)
    assert [str(d).removeprefix(f"{tmp_path}/") for d in loaded.errors] == [
        "rules.yaml:5:23: error: template reads unknown field 'ticket.custm' of zendesk.ticket "
        "(did you mean 'custom'?)",
        "rules.yaml:5:54: error: unknown field 'staus' for zendesk.ticket (did you mean 'status'?)",
        "rules.yaml:9:15: error: 'record' (writing to another record) works only in rules on "
        "zendesk.ticket for now, not on salesforce.opportunity",
    ]


def test_the_intent_carries_the_rendered_target_and_stays_the_rules(tmp_path: Path) -> None:
    result = _evaluate(tmp_path, customer_ticket=" 1234 ")
    assert not result.errors
    assert [(i.action, dict(i.params)) for i in result.intents] == [
        ("set", {"record": "1234", "fields": {"custom.dev_stage": "done"}}),
        ("comment", {"record": "1234", "body": "Task #7", "public": False}),
        ("set", {"record": "42", "fields": {"priority": "high"}}),
        ("tag", {"tags": ["linked"]}),
    ]
    for index, intent in enumerate(result.intents):  # the key is the rule record's, as ever
        assert intent.record == TASK
        assert intent.key == intent_key("task-closed", TASK, "", T0, 0, index)


@pytest.mark.parametrize("value", [None, "", "0", "-3", "#12", "12a", "1.5", "٣"])
def test_a_target_that_is_not_a_ticket_id_is_a_rule_error(tmp_path: Path, value: Any) -> None:
    result = _evaluate(tmp_path, customer_ticket=value)
    assert [(i.action, dict(i.params)) for i in result.intents] == [
        ("set", {"record": "42", "fields": {"priority": "high"}}),
        ("tag", {"tags": ["linked"]}),
    ]
    rendered = "None" if value is None else value  # what Jinja makes of it
    assert [str(e) for e in result.errors] == [
        f"rule task-closed on zendesk.ticket:7: action {n} ({kind}): record renders to "
        f"{rendered!r}, not a ticket id (a positive whole number)"
        for n, kind in ((1, "set"), (2, "comment"))
    ]
    assert result.memory["task-closed"].retry  # emitted again (same keys) until it renders
