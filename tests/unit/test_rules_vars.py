"""Conditions read the rule's vars: `"{{ vars.NAME }}"` is the var's value once the rules load.

A rule written with vars must behave exactly as the same rule written with the values (same
intents, same instants, same keys), a list var is a whole `in` test, and a reference the loader
cannot resolve is a positioned `check` error naming the var. Any other `{{` in a condition is
an error too: conditions are never rendered.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema

from syncd.doctor.uses import rule_uses
from syncd.model import Intent, Record, RecordRef
from syncd.rules.engine import Engine
from syncd.rules.language import json_schema
from syncd.rules.language.loader import LoadResult, load_rules

H = timedelta(hours=1)
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday

LITERAL = """
- id: stale-case
  on: zendesk.ticket
  vars: {desk: Support, waiting: [new, open], patience: 2h, paused: pending}
  scope: {group_name: Support}
  when: {status: [new, open], created_at: {older_than: 2h}}
  do: [{tag: [stale]}]
- id: chase
  on: zendesk.ticket
  vars: {desk: Support, waiting: [new, open], patience: 2h, paused: pending}
  scope: {group_name: Support}
  when: {status: {in: [new, open]}}
  since: created_at
  until: {status: pending}
  steps:
    - {id: first, after: 1h, do: [{tag: [chased]}]}
    - {id: second, after: 3h, do: [{tag: [chased-again]}]}
"""
WITH_VARS = """
- id: stale-case
  on: zendesk.ticket
  vars: {desk: Support, waiting: [new, open], patience: 2h, paused: pending}
  scope: {group_name: "{{ vars.desk }}"}
  when: {status: "{{ vars.waiting }}", created_at: {older_than: "{{vars.patience}}"}}
  do: [{tag: [stale]}]
- id: chase
  on: zendesk.ticket
  vars: {desk: Support, waiting: [new, open], patience: 2h, paused: pending}
  scope: {group_name: "{{ vars.desk }}"}
  when: {status: {in: "{{ vars.waiting }}"}}
  since: created_at
  until: {status: "{{ vars.paused }}"}
  steps:
    - {id: first, after: 1h, do: [{tag: [chased]}]}
    - {id: second, after: 3h, do: [{tag: [chased-again]}]}
"""


def load(tmp_path: Path, rules: str, name: str = "rules.yaml", header: str = "") -> LoadResult:
    path = tmp_path / name
    path.write_text(header + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  "))
    return load_rules([path])


def engine(tmp_path: Path, rules: str, name: str = "rules.yaml") -> Engine:
    result = load(tmp_path, rules, name)
    assert result.diagnostics == [], [str(d) for d in result.diagnostics]
    return Engine(result.ruleset)


def play(
    engine: Engine, versions: list[tuple[datetime, dict[str, Any]]], end: datetime
) -> list[Intent]:
    """The intents of one ticket seen at each version's instant, woken at every timer up to
    `end` at its exact instant, as the daemon does."""
    ref = RecordRef("zendesk.ticket", "1")
    fired: list[Intent] = []
    memory: dict[str, Any] = {}
    current: Record | None = None
    previous: Record | None = None
    wake: datetime | None = None
    for at, fields in [*versions, (end, None)]:
        while current is not None and wake is not None and wake <= at:
            result = engine.evaluate(current, previous, memory, wake)
            fired, memory, wake = fired + result.intents, result.memory, result.next_wake
        if fields is None:
            return fired
        base = dict(current.fields) if current else {}
        previous, current = current, Record(ref, {**base, **fields}, at)
        result = engine.evaluate(current, previous, memory, at)
        fired, memory, wake = fired + result.intents, result.memory, result.next_wake
    return fired


def test_a_rule_reading_vars_fires_exactly_as_the_literal_rule(tmp_path: Path) -> None:
    literal = engine(tmp_path, LITERAL, "literal.yaml")
    with_vars = engine(tmp_path, WITH_VARS, "vars.yaml")
    case = [
        (T0, {"group_name": "Support", "status": "new", "created_at": T0.isoformat()}),
        (T0 + 2.5 * H, {"status": "pending"}),  # `until`: the 3h step never comes
    ]
    fired = play(with_vars, case, T0 + 10 * H)
    assert [(i.rule_id, i.step, i.due_at, i.params) for i in fired] == [
        ("chase", "first", T0 + H, {"tags": ["chased"]}),
        ("stale-case", "", T0 + 2 * H, {"tags": ["stale"]}),  # older_than: 2h, to the instant
    ]
    assert fired == play(literal, case, T0 + 10 * H)  # same keys, reasons and instants too

    elsewhere = [(T0, {"group_name": "Sales", "status": "new", "created_at": T0.isoformat()})]
    assert play(with_vars, elsewhere, T0 + 10 * H) == []  # `scope` read the var


def test_a_list_var_is_a_whole_in_test(tmp_path: Path) -> None:
    rules = """
    - id: open-work
      on: zendesk.ticket
      vars: {open_statuses: [new, open], closed_statuses: [solved, closed]}
      when:
        status: "{{ vars.open_statuses }}"
        custom.stage: {not_in: "{{ vars.closed_statuses }}"}
      do: [{tag: [open-work]}]
    """
    run = engine(tmp_path, rules)
    for status, stage, fires in [
        ("new", "review", True),
        ("open", None, True),
        ("pending", "review", False),
        ("open", "closed", False),
    ]:
        fields = {"status": status, "custom": {"stage": stage}}
        assert bool(play(run, [(T0, fields)], T0)) is fires, (status, stage)


def test_unknown_and_templated_vars_are_errors_at_the_reference(tmp_path: Path) -> None:
    rules = """
    - id: bad
      on: zendesk.ticket
      vars: {desk: Support, owner: "{{ ticket.assignee_email }}", open_statuses: [new, open]}
      scope: {group_name: "{{ vars.dsk }}"}
      when:
        assignee_email: "{{ vars.owner }}"
        status: {in: "{{ vars.statuses }}"}
        priority: {eq: "{{ vars.open_statuses }}"}
      do: [{tag: [x]}]
    - id: good
      on: zendesk.ticket
      when: {status: new}
      do: [{tag: [x]}]
    - id: otherwise-valid
      on: zendesk.ticket
      when: {group_name: "{{ vars.desk }}"}
      do: [{tag: [x]}]
    """
    result = load(tmp_path, rules)
    file = str(tmp_path / "rules.yaml")
    assert [str(d) for d in result.diagnostics] == [
        f"{file}:6:25: error: condition reads unknown 'vars.dsk' (did you mean 'desk'?)",
        f"{file}:8:23: error: condition reads 'vars.owner', a template: it is rendered for each "
        "record when an action runs, so a condition can only read a var with a plain value",
        f"{file}:9:20: error: condition reads unknown 'vars.statuses' (did you mean "
        "'open_statuses'?)",  # and not also "'in' takes a non-empty list"
        f"{file}:10:22: error: 'vars.open_statuses' is a list (['new', 'open']) but 'eq' takes "
        "a single value: make it the whole test (one of its values) or the value of "
        "'in'/'not_in'",
        f"{file}:18:24: error: condition reads unknown 'vars.desk'",
    ]
    assert [rule.id for rule in result.ruleset.rules] == ["good"]


def test_other_braces_in_a_condition_are_errors_at_the_value(tmp_path: Path) -> None:
    rules = """
    - id: braces
      on: zendesk.ticket
      vars: {desk: Support}
      when: {subject: "{{ ticket.subject }}", custom.note: "{{ vars.desk | lower }}",
             group_name: {in: [Sales, "{{ var.desk }}"]}, status: "{% if x %}new{% endif %}"}
      do: [{tag: [x]}]
    """
    result = load(tmp_path, rules)
    assert [(d.line, d.col) for d in result.diagnostics] == [(6, 21), (6, 58), (7, 37), (7, 65)]
    assert all("looks like a template" in d.message for d in result.diagnostics)
    assert "'{{ var.desk }}'" in result.diagnostics[2].message
    assert not result.ruleset.rules

    result = load(tmp_path, "- {id: t, on: zendesk.ticket, when: {status: {in: '{{ x }}'}},"
                  " do: [{tag: [x]}]}\n", "still-bad.yaml")
    assert [d.message.split(",")[0] for d in result.diagnostics] == [
        "condition value '{{ x }}' looks like a template"]  # and not also "'in' takes a list"


def test_check_judges_a_var_as_it_judges_its_value(tmp_path: Path) -> None:
    """Lint sees the value: business time without a calendar, a rule that can never fire."""
    rule = """
    - id: odd
      on: zendesk.ticket
      vars: {patience: 3 business_days, done: solved}
      scope: {status: new}
      when: {status: %s, created_at: {older_than: %s}}
      do: [{tag: [x]}]
    """
    literal = load(tmp_path, rule % ("solved", "3 business_days"), "odd.yaml")
    with_vars = load(tmp_path, rule % ('"{{ vars.done }}"', '"{{ vars.patience }}"'), "odd.yaml")
    assert len(literal.diagnostics) == 2
    assert with_vars.diagnostics == literal.diagnostics


def test_json_schema_accepts_a_var_where_a_list_or_boolean_goes() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())

    def errors(when: dict[str, Any]) -> list[str]:
        rule = {"id": "r", "on": "zendesk.ticket", "vars": {"open": ["new"], "flag": True},
                "when": when, "do": [{"tag": ["x"]}]}
        return [e.message for e in validator.iter_errors({"rules": [rule]})]

    assert errors({"status": {"in": "{{ vars.open }}"}, "tags": {"exists": "{{vars.flag}}"}}) == []
    assert errors({"status": {"in": "{{ ticket.status }}"}}) != []


FILE_VARS = "vars: {desk: Support, open_statuses: [new, open]}\n"


def test_a_file_var_is_read_by_every_rule_of_the_file(tmp_path: Path) -> None:
    rules = """
    - id: new-case
      on: zendesk.ticket
      scope: {group_name: "{{ vars.desk }}"}
      when: {status: new}
      do: [{tag: ["new-{{ vars.desk | lower }}"]}]
    - id: open-case
      on: zendesk.ticket
      when: {group_name: "{{ vars.desk }}", status: "{{ vars.open_statuses }}"}
      do: [{tag: ["open-{{ vars.desk | lower }}"]}]
    """
    result = load(tmp_path, rules, header=FILE_VARS)
    assert result.diagnostics == [], [str(d) for d in result.diagnostics]
    assert [rule.vars for rule in result.ruleset.rules] == [
        {"desk": "Support", "open_statuses": ["new", "open"]}
    ] * 2
    run = Engine(result.ruleset)
    fired = play(run, [(T0, {"group_name": "Support", "status": "new"})], T0)
    assert [(i.rule_id, i.params) for i in fired] == [
        ("new-case", {"tags": ["new-support"]}),
        ("open-case", {"tags": ["open-support"]}),
    ]
    assert play(run, [(T0, {"group_name": "Sales", "status": "new"})], T0) == []


def test_a_rule_var_overrides_the_file_var_of_the_same_name(tmp_path: Path) -> None:
    rules = """
    - id: sales-case
      on: zendesk.ticket
      vars: {desk: Sales}
      when: {group_name: "{{ vars.desk }}", status: "{{ vars.open_statuses }}"}
      do: [{tag: ["case-{{ vars.desk | lower }}"]}]
    - id: support-case
      on: zendesk.ticket
      when: {group_name: "{{ vars.desk }}", status: "{{ vars.open_statuses }}"}
      do: [{tag: ["case-{{ vars.desk | lower }}"]}]
    """
    run = Engine(load(tmp_path, rules, header=FILE_VARS).ruleset)
    for desk, fired in [("Sales", ("sales-case", "case-sales")),
                        ("Support", ("support-case", "case-support"))]:
        intents = play(run, [(T0, {"group_name": desk, "status": "open"})], T0)
        assert [(i.rule_id, i.params["tags"][0]) for i in intents] == [fired], desk


def test_file_vars_problems_are_positioned_where_they_are_written(tmp_path: Path) -> None:
    """An unreadable reference points at the reference, a bad file var at the file's `vars`
    (once, though two rules inherit it), the rule's own var overriding it is not blamed."""
    header = """\
vars:
  desk: Support
  owner: "{{ ticket.assignee_email }}"
  broken: "{{ ticket.subject"
"""
    rules = """
    - id: first
      on: zendesk.ticket
      when: {group_name: "{{ vars.dsk }}", assignee_email: "{{ vars.owner }}"}
      do: [{tag: ["{{ vars.desc }}"]}]
    - id: second
      on: zendesk.ticket
      when: {status: new}
      do: [{tag: [x]}]
    - id: own-broken-var
      on: zendesk.ticket
      vars: {broken: fixed}
      when: {group_name: "{{ vars.desk }}"}
      do: [{tag: ["{{ vars.broken }}"]}]
    """
    result = load(tmp_path, rules, header=header)
    file = str(tmp_path / "rules.yaml")
    assert [str(d) for d in result.diagnostics] == [
        f"{file}:4:11: error: template syntax error: unexpected end of template, expected 'end "
        "of print statement'.",
        f"{file}:9:24: error: condition reads unknown 'vars.dsk' (did you mean 'desk'?)",
        f"{file}:9:58: error: condition reads 'vars.owner', a template: it is rendered for each "
        "record when an action runs, so a condition can only read a var with a plain value",
        f"{file}:10:17: error: template reads unknown 'vars.desc' (did you mean 'desk'?)",
    ]
    assert [rule.id for rule in result.ruleset.rules] == ["own-broken-var"]


def test_file_vars_that_are_not_a_mapping_are_an_error(tmp_path: Path) -> None:
    rules = """
    - {id: plain, on: zendesk.ticket, when: {status: new}, do: [{tag: [x]}]}
    """
    result = load(tmp_path, rules, header="calendars: {}\nvars: [desk, Support]\n")
    file = str(tmp_path / "rules.yaml")
    assert [str(d) for d in result.diagnostics] == [f"{file}:2:7: error: 'vars' must be a mapping"]
    assert [rule.id for rule in result.ruleset.rules] == ["plain"]


def test_json_schema_accepts_file_vars() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    assert list(validator.iter_errors({"vars": {"desk": "Support", "open": ["new"]}})) == []
    assert list(validator.iter_errors({"vars": ["desk"]})) != []


def test_doctor_checks_the_groups_a_condition_reads_from_file_vars(tmp_path: Path) -> None:
    """`syncd doctor` reads conditions as written: a reference names the var's values."""
    rules = """
    - id: desk-or-engineers
      on: zendesk.ticket
      vars: {engineers: [Engineers, Senior Engineers]}
      scope: {group_name: ["{{ vars.desk }}", Sales]}
      when: {group_name: "{{ vars.engineers }}"}
      do: [{tag: [x]}]
    """
    uses = rule_uses(load(tmp_path, rules, header=FILE_VARS).ruleset)
    where = f"{tmp_path / 'rules.yaml'}:"
    assert sorted((r.what, r.name, r.where.removeprefix(where)) for r in uses.references) == [
        ("group", "Engineers", "8"),
        ("group", "Sales", "7"),
        ("group", "Senior Engineers", "8"),
        ("group", "Support", "7"),
    ]


def test_a_dispatch_queue_condition_reads_vars_and_names_known_fields(tmp_path: Path) -> None:
    rules = """
    - id: serve
      on: zendesk.ticket
      vars: {desk: Dispatch, triage_field: impact}
      when: {status: new}
      do:
        - dispatch:
            queue:
              group: "{{ vars.desk }}"
              where: {custom.impact: {exists: true}, priority: "{{ vars.level }}"}
            to: IT Pros
            capacity: 3
    - id: typo
      on: zendesk.ticket
      when: {status: new}
      do:
        - dispatch: {queue: {group: Dispatch, where: {priorty: {exists: true}}}, to: IT Pros,
                     capacity: 3}
    """
    result = load(tmp_path, rules)
    file = str(tmp_path / "rules.yaml")
    assert [str(d) for d in result.diagnostics] == [
        f"{file}:11:62: error: condition reads unknown 'vars.level'",
        f"{file}:18:53: error: unknown field 'priorty' for zendesk.ticket (did you mean "
        "'priority'?)",
    ]
    fixed = load(tmp_path, rules.replace('"{{ vars.level }}"', "urgent"), "fixed.yaml")
    serve = next(r for r in fixed.ruleset.rules if r.id == "serve")
    (action,) = serve.do
    assert action.params()["queue"] == {"group": "{{ vars.desk }}", "where": {
        "custom.impact": {"exists": True}, "priority": "urgent"}}


def test_a_recipient_naming_a_plain_var_is_rule_text_one_reading_data_is_an_address(
    tmp_path: Path,
) -> None:
    """`group:{{ vars.support }}` is the admin's own text (shipped rules name their groups once
    this way): it stays a group. A var rendered from the record is data: only ever an address."""
    rules = """
    - id: announce
      on: zendesk.ticket
      vars:
        support: Support
        cc_list: ["group:Supervisors", ops@example.com]
        asker: "{{ ticket.requester_email }}"
      when: {status: new}
      do:
        - notify:
            to: ["group:{{ vars.support }}", "{{ vars.asker }}"]
            cc: ["{{ vars.cc_list }}"]
            subject: New
            body: New case
    """
    result = load(tmp_path, rules)
    assert result.diagnostics == [], [str(d) for d in result.diagnostics]
    ticket = Record(RecordRef("zendesk.ticket", "1"), {
        "status": "new", "requester_email": "group:Everyone"}, T0)
    (intent,) = Engine(result.ruleset).evaluate(ticket, None, {}, T0).intents
    assert intent.params["to"] == ["group:Support", "address:group:Everyone"]
    assert intent.params["cc"] == ["group:Supervisors", "ops@example.com"]
