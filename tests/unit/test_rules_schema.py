"""The rule models the engine consumes, and the JSON Schema editors consume."""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, time, timedelta
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from syncd.businesstime.durations import Offset
from syncd.commands.check import schema_text
from syncd.resources import RULES, SCHEMA, shipped
from syncd.rules import language
from syncd.rules.kinds import ACTIONS
from syncd.rules.language import (
    AllOf,
    AnyOf,
    FieldCondition,
    LocatedError,
    Not,
    Rule,
    parse_condition,
)
from syncd.rules.language.templates import Text
from syncd.vendors.registry import KINDS

FIXTURES = Path(__file__).parent / "rules_fixtures"


def _rule(**fields: object) -> Rule:
    return Rule.model_validate({"id": "r", "on": "zendesk.ticket", **fields})


def test_condition_shorthands_become_a_tree() -> None:
    tree = parse_condition(
        {
            "status": "new",
            "priority": ["urgent", "high"],
            "Amount": {"gte": 10, "lt": 20},
            "any": [{"subject": {"matches": "(?i)down"}}, {"not": {"tags": {"contains": "x"}}}],
        }
    )
    assert isinstance(tree, AllOf)
    status, priority, amount, either = tree.all
    assert status == FieldCondition(field="status", op="eq", value="new")
    assert priority == FieldCondition(field="priority", op="in", value=("urgent", "high"))
    assert amount == AllOf(all=(FieldCondition(field="Amount", op="gte", value=10),
                                FieldCondition(field="Amount", op="lt", value=20)))
    assert isinstance(either, AnyOf)
    matches, negated = either.any
    assert isinstance(matches.value, re.Pattern) and matches.value.search("Server DOWN")
    assert negated == Not(not_=FieldCondition(field="tags", op="contains", value="x"))


def test_condition_operands_are_parsed() -> None:
    became = parse_condition({"StageName": {"became": "Closed Won"}})
    assert became == FieldCondition(
        field="StageName", op="became",
        value=FieldCondition(field="StageName", op="eq", value="Closed Won"),
    )
    age = parse_condition({"created_at": {"older_than": "3 business_days"}})
    assert age.value == Offset(3, "business_days")
    when = parse_condition({"CloseDate": {"lt": "2026-03-02T09:00"}})
    assert when.value == datetime(2026, 3, 2, 9, 0)


def test_condition_errors_are_all_collected_with_paths() -> None:
    with pytest.raises(LocatedError) as caught:
        parse_condition({"a": {"eqq": 1}, "b": {"matches": "("}, "all": []})
    assert [(path, at_key) for path, _, at_key in caught.value.problems] == [
        (("a", "eqq"), True), (("b", "matches"), False), (("all",), False),
    ]


def test_actions_are_typed_with_the_intent_kind_and_params() -> None:
    rule = _rule(do=[
        {"tag": ["vip", "{{ ticket.priority }}"]},
        {"set": {"status": "solved", "custom.kind": "Training"}},
        {"notify": {"to": ["group:Support"], "subject": "Hi", "body": "{{ ticket.id }}"}},
        {"unassign": None},
    ])
    assert [a.kind for a in rule.do or []] == ["tag", "set", "notify", "unassign"]
    tag, set_, notify, unassign = rule.do or []
    assert tag.params() == {"tags": ["vip", "{{ ticket.priority }}"]}
    assert isinstance(tag.params()["tags"][1], Text)
    assert set_.params() == {"fields": {"status": "solved", "custom.kind": "Training"}}
    assert notify.params() == {"to": ["group:Support"], "cc": [], "subject": "Hi",
                               "body": "{{ ticket.id }}", "via": "mail"}
    assert unassign.params() == {"keep_group": False}
    assert set(language.ACTIONS) == {"tag", "untag", "set", "assign", "unassign", "comment",
                                   "notify", "create_task", "create_event", "create_ticket",
                                   "ensure_folder", "file_transcript", "dispatch"}


def test_model_form_validates_too() -> None:
    rule = _rule(when={"status": "new"}, do=[{"kind": "tag", "tags": ["a"]}])
    assert rule.do == [language.Tag(tags=["a"])]


def test_timeline_rule() -> None:
    rule = Rule.model_validate({
        "id": "plan", "on": "salesforce.opportunity", "since": "CloseDate",
        "catch_up": {"fire_if_within": "2h"},
        "defer": {"when": {"Viable_Project__c": False}, "from_step": "week6", "to": "Week_B__c"},
        "steps": [
            {"after": "-2w",
             "do": [{"create_task": {"subject": "Prep", "due": "2 business_days"}}]},
            {"every": ["MON", "wed"], "from": "1w", "to": "6w", "at": "09:00",
             "do": [{"create_task": {"subject": "Week {{ week }}"}}]},
            {"id": "week6", "after": "6w", "repeat": "every 6 months", "catch_up": "skip",
             "do": [{"create_event": {"subject": "Training", "start": "0d"}}]},
        ],
    })
    first, pattern, review = rule.steps or []
    assert [s.id for s in rule.steps or []] == ["step-1", "step-2", "week6"]
    assert first.after == Offset(-2, "weeks")
    assert pattern.every == frozenset({0, 2}) and pattern.at == time(9, 0) and pattern.is_pattern
    assert (pattern.from_, pattern.to) == (Offset(1, "weeks"), Offset(6, "weeks"))
    assert review.repeat == Offset(6, "months") and review.catch_up.policy == "skip"
    assert rule.catch_up == language.CatchUp(policy="fire_if_within", within=timedelta(hours=2))
    assert rule.is_timeline and rule.since == "CloseDate"
    assert [(s.id if s else None, i, a.kind) for s, i, a in rule.actions()] == [
        ("step-1", 0, "create_task"), ("step-2", 0, "create_task"), ("week6", 0, "create_event"),
    ]
    assert review.do[0].duration == Offset(1, "hours")


def test_since_became_anchor() -> None:
    rule = _rule(since={"became": {"status": "pending"}}, steps=[{"after": "2d", "do": [
        {"tag": ["chased"]}]}])
    assert rule.since == language.BecameAnchor(
        became=FieldCondition(field="status", op="eq", value="pending")
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"do": [{"tag": ["a"]}], "steps": [{"after": "1h", "do": [{"tag": ["b"]}]}],
          "since": "created_at"}, "exactly one of 'do' (instant) and 'steps'"),
        ({"steps": [{"after": "1h", "do": [{"tag": ["b"]}]}]}, "needs 'since'"),
        ({"do": [{"tag": ["a"]}], "until": {"status": "solved"}}, "belongs to a timeline rule"),
        ({"since": "created_at", "defer": {"when": {"a": 1}, "from_step": "x", "to": "b"},
          "steps": [{"after": "1h", "do": [{"tag": ["b"]}]}]}, "names no step"),
        ({"since": "created_at", "steps": [{"id": "a", "after": "1h", "do": [{"tag": ["b"]}]},
                                           {"id": "a", "after": "2h", "do": [{"tag": ["c"]}]}]},
         "duplicate step id 'a'"),
        ({"do": [{"notify": {"to": ["assignee"]}}]}, "exactly one of 'body' and 'template'"),
        ({"do": [{"assign": {"strategy": "round_robin"}}]}, "needs 'group'"),
        ({"do": [{"tag": ["{{ x "]}]}, "template syntax error"),
        ({"since": "a", "steps": [{"every": "mon", "from": "1w", "do": [{"tag": ["b"]}]}]},
         "needs 'from' and 'to'"),
    ],
)
def test_invariants_the_engine_relies_on(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        _rule(**fields)


def test_models_are_immutable() -> None:
    rule = _rule(do=[{"tag": ["a"]}])
    with pytest.raises(ValidationError):
        rule.id = "other"  # type: ignore[misc]


def test_kinds_cover_every_record_kind() -> None:
    assert set(ACTIONS) == set(KINDS)
    ticket = KINDS["zendesk.ticket"]
    assert ticket.has_field("status") and ticket.has_field("custom.anything")
    assert not ticket.has_field("staus") and not ticket.has_field("status.x")
    assert KINDS["salesforce.opportunity"].has_field("Week_B_Date__c")
    assert "create_task" not in ACTIONS["sharepoint.file"]


def test_committed_schema_equals_generated() -> None:
    committed = shipped(SCHEMA).joinpath("rules.schema.json").read_text()
    assert committed == schema_text(), "run: syncd schema > syncd/shipped/schema/rules.schema.json"


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    document = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


def _yaml(path: Path) -> object:
    return json.loads(json.dumps(YAML(typ="safe").load(path.read_text()), default=str))


@pytest.mark.parametrize(
    "path",
    [*sorted((FIXTURES / "clean").glob("*.yaml")), Path(str(shipped(RULES))) / "calendars.yaml"],
    ids=lambda p: p.name,
)
def test_json_schema_accepts_full_examples(path: Path) -> None:
    assert list(_validator().iter_errors(_yaml(path))) == []


def test_json_schema_rejects_mistakes() -> None:
    errors = {
        (tuple(e.absolute_path), e.validator)
        for e in _validator().iter_errors(_yaml(FIXTURES / "bad_schema.yaml"))
    }
    assert errors == {
        (("rules", 0), "additionalProperties"),  # wen
        (("rules", 0, "id"), "pattern"),
        (("rules", 0, "on"), "enum"),
        (("rules", 0, "do"), "anyOf"),  # unknown action tg
    }


def test_json_schema_has_descriptions_for_editors() -> None:
    document = json.loads(schema_text())
    rule = document["$defs"]["Rule"]
    assert rule["properties"]["max_actions_per_hour"]["description"]
    assert "notify" in json.dumps(document["$defs"]["Action"])
