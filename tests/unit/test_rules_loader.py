"""`load_rules`: every check error class with its exact position, and partial loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.businesstime.durations import Offset
from syncd.resources import RULES, shipped
from syncd.rules.language import RuleSet, Source
from syncd.rules.language.loader import load_rules

FIXTURES = Path(__file__).parent / "rules_fixtures"

EXPECTED: dict[tuple[str, ...], list[str]] = {
    ("syntax.yaml",): [
        "syntax.yaml:4:30: error: YAML: expected ',' or ']', but got '}'",
    ],
    ("unknown_key.yaml",): [
        "unknown_key.yaml:4:5: error: unknown key 'wen' (did you mean 'when'?)",
        "unknown_key.yaml:6:18: error: missing required key 'body'",
        "unknown_key.yaml:6:19: error: unknown key 'bdy' (did you mean 'body'?)",
    ],
    ("wrong_type.yaml",): [
        "wrong_type.yaml:4:14: error: enabled: input should be a valid boolean, unable to "
        "interpret input, got 'maybe'",
        "wrong_type.yaml:5:27: error: max_actions_per_hour: input should be a valid integer, "
        "unable to parse string as an integer, got 'lots'",
        "wrong_type.yaml:6:11: error: mode: input should be 'live', 'shadow' or 'canary', "
        "got 'dry'",
        "wrong_type.yaml:8:34: error: do.unassign.keep_group: input should be a valid boolean, "
        "unable to interpret input, got 3",
    ],
    ("bad_duration.yaml",): [
        "bad_duration.yaml:6:16: error: invalid offset '1 hr': unknown unit 'hr'; accepted "
        "units: m, h, d, w, months, business_minutes, business_hours, business_days (singular "
        "or plural)",
        "bad_duration.yaml:8:16: error: invalid weekdays ['MON', 'FUN']: unknown day 'FUN' "
        "(use mon, tue, wed, thu, fri, sat, sun)",
        "bad_duration.yaml:11:13: error: invalid time of day '25:00': expected HH:MM, e.g. "
        "'09:00'",
        "bad_duration.yaml:14:17: error: invalid period 'every 0 months': the period must be "
        "positive",
    ],
    ("calendars.yaml",): [
        "calendars.yaml:3:15: error: calendars.london.timezone: unknown timezone "
        "'Europe/Lndon' (expected an IANA name, e.g. Europe/London)",
        "calendars.yaml:8:25: error: calendars.holidays.holidays.country: unknown holiday "
        "country 'XX' (an ISO 3166-1 alpha-2 code supported by the holidays library, e.g. GB, "
        "US, DE)",
        "calendars.yaml:12:5: error: unknown key 'holiday' (did you mean 'holidays'?)",
    ],
    ("unknown_calendar.yaml",): [
        "unknown_calendar.yaml:6:13: error: unknown calendar 'suport' (did you mean "
        "'support'?)",
        "unknown_calendar.yaml:10:15: error: unknown calendar 'supprt' (did you mean "
        "'support'?)",
        "unknown_calendar.yaml:15:11: error: '3 business_days' counts business time but the "
        "rule has no calendar (set 'calendar' on the rule or 'defaults.calendar' in the file)",
    ],
    ("conditions.yaml",): [
        "conditions.yaml:5:7: error: unknown field 'staus' for zendesk.ticket (did you mean "
        "'status'?)",
        "conditions.yaml:6:26: error: invalid regular expression '(unclosed': missing ), "
        "unterminated subpattern at position 0",
        "conditions.yaml:7:18: error: unknown operator 'eqq' (did you mean 'eq'?)",
        "conditions.yaml:8:31: error: 'contains' takes a single value, got ['a', 'b']",
    ],
    ("templates.yaml",): [
        "templates.yaml:6:25: error: template syntax error: unexpected '}'",
        "templates.yaml:7:25: error: template reads unknown variable 'requester'",
        "templates.yaml:7:25: error: template reads unknown field 'ticket.sujbect' of "
        "zendesk.ticket (did you mean 'subject'?)",
        "templates.yaml:9:17: error: template reads private attribute '__class__' (template "
        "line 2)",
        "templates.yaml:12:44: error: no named template 'welcome' (looked for "
        "templates/welcome.j2)",
    ],
    ("dup_a.yaml", "dup_b.yaml"): [
        "dup_b.yaml:5:9: error: duplicate rule id 'same' (first defined at dup_a.yaml:2:5)",
    ],
    ("ladder.yaml",): [
        "ladder.yaml:12:29: error: steps out of order: 'second' (1h) is due before 'first' "
        "(24h) listed above it",
        "ladder.yaml:13:28: warning: step 'third' is shadowed: due at the same offset (1h) as "
        "'second'; merge their actions",
        "ladder.yaml:14:29: warning: steps 'third' (1h) and 'fourth' (3 business_days) mix "
        "business and wall time; their order depends on the calendar",
        "ladder.yaml:16:9: warning: step 'last' follows the repeating step 'review'; list "
        "repeating steps last",
    ],
    ("action_kind.yaml",): [
        "action_kind.yaml:6:9: error: action 'create_task' cannot act on sharepoint.file (it "
        "works on salesforce.opportunity, salesforce.account, salesforce.task, "
        "salesforce.record)",
        "action_kind.yaml:7:9: error: unknown action 'tg' (did you mean 'tag'?)",
    ],
    ("shape.yaml",): [
        "shape.yaml:2:5: error: a rule needs exactly one of 'do' (instant) and 'steps' "
        "(timeline)",
        "shape.yaml:7:5: error: a rule needs exactly one of 'do' (instant) and 'steps' "
        "(timeline)",
        "shape.yaml:13:46: error: defer.from_step 'week-6' names no step (did you mean "
        "'week6'?)",
    ],
    ("recipients.yaml",): [
        "recipients.yaml:5:17: error: recipient 'requester' does not exist on "
        "salesforce.account",
        "recipients.yaml:5:17: error: unknown recipient 'grop:Support' (expected group:Name, "
        "user:email, role:Name, assignee, requester, owner, an address or a template)",
        "recipients.yaml:5:17: error: a mail needs a subject: set 'subject' or start the "
        "named template with 'Subject: ...'",
    ],
    ("warnings.yaml",): [
        "warnings.yaml:4:14: warning: rule 'contradiction' is disabled and will not run",
        "warnings.yaml:5:11: warning: rule 'contradiction' can never fire: 'status' cannot be "
        "'new' and 'solved' at once",
    ],
    ("missing.yaml",): [
        "missing.yaml: error: no such file or directory",
    ],
}


@pytest.mark.parametrize("files", list(EXPECTED), ids=lambda files: files[-1])
def test_every_check_error_class_with_its_position(
    files: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES / "errors")
    result = load_rules(files)
    assert [str(d) for d in result.diagnostics] == EXPECTED[files]


def test_named_templates_are_checked_in_their_own_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "named")
    result = load_rules(["rules.yaml"])
    assert [str(d) for d in result.diagnostics] == [
        "rules.yaml:6:45: error: templates/welcome.j2:4: template reads unknown variable "
        "'tikcet' (did you mean 'ticket'?)",
        "rules.yaml:6:45: error: templates/welcome.j2:5: template reads unknown variable "
        "'opportunity'",
        "rules.yaml:8:45: error: template reads unknown variable 'week'",
        "rules.yaml:8:45: error: no named template 'week-{{ week }}' (looked for "
        "templates/week-{{ week }}.j2)",
        "rules.yaml:9:17: error: a mail needs a subject: set 'subject' or start the named "
        "template with 'Subject: ...'",
        "templates/broken.j2:3:1: error: template syntax error: unexpected '}'",
    ]


def test_clean_rules_load_with_sources_calendars_and_templates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(FIXTURES / "clean")
    result = load_rules(["."])
    assert result.diagnostics == []
    assert result.files == ["calendars.yaml", "plans.yaml", "support.yaml"]
    ruleset = result.ruleset
    assert [r.id for r in ruleset.rules] == [
        "onboarding-plan", "client-folder", "file-transcripts", "dispatch-queue",
        "triage-new-case", "no-action-ladder", "pending-reminder",
    ]
    assert list(ruleset.calendars) == ["support"]
    assert ruleset.sources["no-action-ladder"] == Source("support.yaml", 16, 5)
    by_id = {r.id: r for r in ruleset.rules}
    assert by_id["no-action-ladder"].calendar == "support"  # from the file's defaults
    assert by_id["client-folder"].calendar is None
    welcome = ruleset.template("triage-new-case", "new_case")
    assert welcome is not None
    assert welcome.subject == "New ticket #{{ ticket.id }}: {{ ticket.subject }}"
    assert ruleset.template("onboarding-plan", "si-week-2") is not None
    steps = by_id["no-action-ladder"].steps or []
    assert [s.after for s in steps] == [
        Offset(30, "business_minutes"), Offset(1, "business_hours"), Offset(3, "business_days"),
    ]


def test_a_bad_rule_is_dropped_and_its_neighbours_kept(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(
        "rules:\n  - {id: good, on: zendesk.ticket, do: [{tag: [a]}]}\n"
    )
    (tmp_path / "mixed.yaml").write_text(
        "rules:\n"
        "  - {id: fine, on: zendesk.ticket, do: [{tag: [a]}]}\n"
        "  - {id: bad, on: sharepoint.file, do: [{tag: [a]}]}\n"
        "  - {id: typo, on: zendesk.ticket, do: [{tga: [a]}]}\n"
    )
    (tmp_path / "broken.yaml").write_text("rules: [\n")
    result = load_rules([tmp_path])
    assert sorted(r.id for r in result.ruleset.rules) == ["fine", "good"]
    assert [(Path(d.file).name, d.line) for d in result.errors] == [
        ("broken.yaml", 2), ("mixed.yaml", 3), ("mixed.yaml", 4),
    ]


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    (tmp_path / "empty.yml").write_text("# nothing yet\n")
    (tmp_path / "list.yaml").write_text("- id: x\n")
    (tmp_path / "notes.txt").write_text("not loaded")
    result = load_rules([tmp_path])
    assert [Path(f).name for f in result.files] == ["empty.yml", "list.yaml"]
    assert [d.message for d in result.diagnostics] == [
        "a rules file is a mapping with 'rules' and/or 'calendars'"
    ]


def test_the_shipped_rules_directory_is_clean() -> None:
    result = load_rules([Path(str(shipped(RULES)))])
    assert result.diagnostics == []
    assert {"support", "support_weekend"} <= set(result.ruleset.calendars)


def test_a_ruleset_is_empty_by_default() -> None:
    assert RuleSet().rules == () and RuleSet().calendars == {}


def test_template_variables_depend_on_where_the_action_runs(tmp_path: Path) -> None:
    (tmp_path / "ctx.yaml").write_text(
        "rules:\n"
        "  - id: instant\n"
        "    on: zendesk.ticket\n"
        "    vars: {team: L1, greeting: 'Hi {{ ticket.id }}', bad: '{{ vars.team }}'}\n"
        "    do: [{comment: {body: '{{ step.id }} {{ rule.nme }} {{ vars.tema }}'}}]\n"
        "  - id: timeline\n"
        "    on: salesforce.account\n"
        "    since: CreatedDate__c\n"
        "    steps:\n"
        "      - {after: 1d, do: [{create_task: {subject: '{{ step.id }} {{ week }}'}}]}\n"
        "      - {every: mon, from: 1w, to: 2w, do: [{create_task: {subject: '{{ week }}'}}]}\n"
    )
    result = load_rules([tmp_path / "ctx.yaml"])
    assert [(d.line, d.message) for d in result.diagnostics] == [
        (4, "template reads unknown variable 'vars'"),
        (5, "template reads unknown variable 'step'"),
        (5, "template reads unknown 'rule.nme'"),
        (5, "template reads unknown 'vars.tema' (did you mean 'team'?)"),
        (10, "template reads unknown variable 'week'"),
    ]
    assert [r.id for r in result.ruleset.rules] == []
