"""The rule engine at exact instants: edges, ladders, business time, plans, catch-up, keys."""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import TemplateError

from syncd.model import Intent, Record, RecordRef, intent_key
from syncd.rules.engine import (
    DEFAULT_GRACE,
    EMPTY,
    WAKE_STEP,
    CompiledRule,
    Engine,
    Evaluation,
    RuleMemory,
    evaluate,
    memory_from_json,
    memory_to_json,
)
from syncd.rules.engine.fast.ladders import missed_cut
from syncd.rules.language import templates
from syncd.rules.language.loader import load_rules

CALENDAR = """
calendars:
  support:
    timezone: Europe/London
    hours: {mon-fri: ["09:00-18:00"]}
    holidays: {country: GB, subdiv: ENG}
defaults: {calendar: support}
"""
H = timedelta(hours=1)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def build(tmp_path: Path, rules: str) -> Engine:
    """An engine for `rules` (YAML under `rules:`) loaded through the real loader."""
    path = tmp_path / "rules.yaml"
    path.write_text(CALENDAR + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  "))
    result = load_rules([path])
    assert not result.errors, [str(d) for d in result.errors]
    return Engine(result.ruleset)


class Sim:
    """Drives one record through versions and clock instants as the daemon would."""

    def __init__(self, engine: Engine, kind: str = "zendesk.ticket", rid: str = "1") -> None:
        self.engine = engine
        self.ref = RecordRef(kind, rid)
        self.current: Record | None = None
        self.previous: Record | None = None
        self.memory: dict[str, RuleMemory] = {}
        self.before: dict[str, RuleMemory] = {}  # the memory the last evaluation started from
        self.intents: list[Intent] = []
        self.last: Evaluation | None = None

    def see(self, at: datetime, **fields: Any) -> list[Intent]:
        """A new version observed at `at` (fields merged into the last ones), evaluated then."""
        base = dict(self.current.fields) if self.current else {}
        self.previous = self.current
        self.current = Record(self.ref, {**base, **fields}, at)
        return self.tick(at)

    def tick(self, now: datetime, grace: timedelta | None = None) -> list[Intent]:
        assert self.current is not None
        extra = {} if grace is None else {"grace": grace}
        self.before = self.memory
        result = self.engine.evaluate(self.current, self.previous, self.memory, now, **extra)
        self.last, self.memory = result, result.memory
        self.intents += result.intents
        return result.intents

    def follow(self, until: datetime) -> list[Intent]:
        """Wake at every next_wake up to `until`, as the daemon's timers would."""
        fired: list[Intent] = []
        while self.last and self.last.next_wake and self.last.next_wake <= until:
            fired += self.tick(self.last.next_wake)
        return fired


def steps(intents: list[Intent]) -> list[tuple[str, datetime]]:
    return [(i.step, i.due_at) for i in intents]


# ----------------------------------------------------------------------------- instant rules

TRIAGE = """
- id: triage
  on: zendesk.ticket
  when: {status: new, tags: {lacks: syncd-triaged}}
  do:
    - tag: [syncd-triaged, "{{ 'high' if ticket.priority in ['urgent', 'high'] else 'low' }}"]
    - comment: {body: "Triaged by {{ rule.id }} at {{ now.isoformat() }}"}
"""


def test_instant_rule_fires_once_per_entry_with_the_entry_instant_in_the_key(
    tmp_path: Path,
) -> None:
    sim = Sim(build(tmp_path, TRIAGE))
    t0 = utc(2026, 3, 2, 10)
    first = sim.see(t0, status="new", priority="high", tags=[])
    assert [(i.action, i.params) for i in first] == [
        ("tag", {"tags": ["syncd-triaged", "high"]}),
        ("comment", {"body": f"Triaged by triage at {t0.isoformat()}", "public": False}),
    ]
    assert all(i.due_at == t0 and not i.shadow for i in first)
    assert first[0].reason == {
        "when": {"status": "new", "tags": []},
        "entered_at": t0.isoformat(),
    }
    assert sim.see(t0 + H, subject="still new") == []  # level, not edge: nothing
    assert sim.tick(t0 + 2 * H) == []
    assert sim.see(t0 + 3 * H, status="open") == []  # leaves
    assert sim.memory == {}
    again = sim.see(t0 + 4 * H, status="new")  # re-enters: fires again, new keys
    assert len(again) == 2
    assert {i.key for i in again}.isdisjoint(i.key for i in first)
    assert again[0].reason["entered_at"] == (t0 + 4 * H).isoformat()


def test_same_input_twice_gives_identical_intents(tmp_path: Path) -> None:
    engine = build(tmp_path, TRIAGE)
    record = Record(
        RecordRef("zendesk.ticket", "7"), {"status": "new", "tags": []}, utc(2026, 3, 2)
    )
    now = utc(2026, 3, 2, 0, 1)
    first = engine.evaluate(record, None, {}, now)
    assert first == engine.evaluate(record, None, {}, now)
    assert first.intents == evaluate(engine.ruleset, record, None, {}, now).intents


def test_age_condition_enters_at_the_exact_instant_it_flips(tmp_path: Path) -> None:
    sim = Sim(
        build(
            tmp_path,
            """
        - id: stale-new
          on: zendesk.ticket
          when: {status: new, created_at: {older_than: 1 business_hour}}
          do: [{tag: [stale]}]
    """,
        )
    )
    friday = utc(2026, 3, 6, 17, 30)
    assert sim.see(friday, status="new", created_at=friday.isoformat()) == []
    monday = utc(2026, 3, 9, 9, 30)
    assert sim.last and sim.last.next_wake == monday
    assert sim.last.timers[0].step == WAKE_STEP
    assert sim.tick(monday - timedelta(microseconds=1)) == []
    fired = sim.tick(monday + timedelta(seconds=3))
    assert [i.reason["entered_at"] for i in fired] == [monday.isoformat()]
    assert sim.last.next_wake is None


def test_became_fires_on_the_transition_only(tmp_path: Path) -> None:
    sim = Sim(
        build(
            tmp_path,
            """
        - id: won
          on: salesforce.opportunity
          when: {StageName: {became: Closed Won}}
          do: [{set: {Type: Customer}}]
    """,
        ),
        kind="salesforce.opportunity",
    )
    t0 = utc(2026, 3, 2, 9)
    assert sim.see(t0, StageName="Closed Won") == []  # first sight: no transition
    assert sim.see(t0 + H, StageName="Negotiation") == []
    won = sim.see(t0 + 2 * H, StageName="Closed Won")
    assert [i.params for i in won] == [{"fields": {"Type": "Customer"}}]
    assert won[0].reason["when"] == {
        "StageName": "Closed Won",
        "StageName (previous)": "Negotiation",
    }
    assert sim.see(t0 + 3 * H, Amount=5) == []


def test_shadow_and_disabled_rules(tmp_path: Path) -> None:
    engine = build(
        tmp_path,
        """
        - id: quiet
          on: zendesk.ticket
          mode: shadow
          max_actions_per_hour: 30
          when: {status: new}
          do: [{tag: [seen]}]
        - id: off
          on: zendesk.ticket
          enabled: false
          when: {status: new}
          do: [{tag: [never]}]
    """,
    )
    record = Record(RecordRef("zendesk.ticket", "1"), {"status": "new"}, utc(2026, 3, 2))
    kept = {"off": RuleMemory(in_when=True, entered_at=utc(2026, 1, 1))}
    result = engine.evaluate(record, None, kept, utc(2026, 3, 2))
    assert [(i.rule_id, i.shadow) for i in result.intents] == [("quiet", True)]
    assert result.memory["off"] == kept["off"]
    assert engine.limits("quiet") == ({}, {"any": 30}) and engine.limits("off") == ({}, {})


def test_scope_limits_a_rule_and_a_deleted_record_disarms(tmp_path: Path) -> None:
    sim = Sim(
        build(
            tmp_path,
            """
        - id: canary-ladder
          on: zendesk.ticket
          scope: {tags: {contains: canary}}
          when: {status: open}
          since: created_at
          steps: [{after: 2h, do: [{comment: {body: "ping"}}]}]
    """,
        )
    )
    t0 = utc(2026, 3, 2, 9)
    sim.see(t0, status="open", tags=[], created_at=t0.isoformat())
    assert sim.last is not None and sim.last.timers == [] and sim.memory == {}
    sim.see(t0 + H, tags=["canary"])
    assert sim.last.next_wake == t0 + 2 * H
    assert sim.current is not None
    gone = Record(sim.ref, sim.current.fields, t0 + H, deleted=True)
    result = sim.engine.evaluate(gone, sim.current, sim.memory, t0 + 3 * H)
    assert result.intents == [] and result.next_wake is None
    assert not result.memory["canary-ladder"].in_when


def test_task_dates_are_resolved_from_the_step_anchor(tmp_path: Path) -> None:
    sim = Sim(
        build(
            tmp_path,
            """
        - id: kickoff
          on: salesforce.opportunity
          when: {StageName: Closed Won}
          since: CloseDate
          steps:
            - after: 1d
              at: "10:00"
              do:
                - create_task: {subject: "Call {{ opportunity.Name }}", due: 2 business_days}
                - create_event: {subject: Kickoff, start: 1w, duration: 90m}
    """,
        ),
        kind="salesforce.opportunity",
    )
    fired = sim.see(
        utc(2026, 3, 3, 12), StageName="Closed Won", CloseDate="2026-03-02", Name="Acme"
    )
    assert [i.params for i in fired] == [
        {"subject": "Call Acme", "due": "2026-03-03T18:00:00+00:00"},  # end of 2nd working day
        {"subject": "Kickoff", "start": "2026-03-09T00:00:00+00:00", "duration": "90m"},
    ]
    assert [i.due_at for i in fired] == [utc(2026, 3, 3, 10)] * 2


def test_template_error_is_isolated_to_its_rule_and_retried(tmp_path: Path) -> None:
    sim = Sim(
        build(
            tmp_path,
            """
        - id: broken
          on: zendesk.ticket
          when: {status: new}
          do:
            - tag: [a]
            - comment: {body: "{{ ticket.custom.missing }}"}
        - id: fine
          on: zendesk.ticket
          when: {status: new}
          do: [{tag: [b]}]
    """,
        )
    )
    t0 = utc(2026, 3, 2, 9)
    fired = sim.see(t0, status="new", custom={})
    assert [(i.rule_id, i.action) for i in fired] == [("broken", "tag"), ("fine", "tag")]
    assert sim.last is not None
    [error] = sim.last.errors
    assert error.rule_id == "broken" and "missing" in error.message
    assert sim.memory["broken"].retry  # not done: retried with the same keys
    retried = sim.see(t0 + H, custom={"missing": "now here"})
    assert [(i.rule_id, i.action, i.params) for i in retried] == [
        ("broken", "tag", {"tags": ["a"]}),
        ("broken", "comment", {"body": "now here", "public": False}),
    ]
    assert retried[0].key == fired[0].key  # same entry: the ledger absorbs the repeat


def test_a_steps_template_error_names_the_step(tmp_path: Path) -> None:
    """The daemon logs `rule_error` with the error's step: the admin must learn which step of
    a ladder failed (mutmut, issue 17: the step could be dropped from the error unnoticed)."""
    sim = Sim(build(tmp_path, """
        - id: ladder
          on: zendesk.ticket
          when: {status: new}
          since: created_at
          steps:
            - {id: ok, after: 1h, do: [{tag: [a]}]}
            - {id: nudge, after: 2h, do: [{comment: {body: "{{ ticket.custom.missing }}"}}]}
    """))
    t0 = utc(2026, 3, 2, 9)
    sim.see(t0 + 3 * H, status="new", created_at=t0.isoformat(), custom={})
    assert sim.last is not None
    assert [(e.rule_id, e.step) for e in sim.last.errors] == [("ladder", "nudge")]
    assert str(sim.last.errors[0]).startswith("rule ladder step nudge on zendesk.ticket:")


# ----------------------------------------------------------------------------- ladders

LADDER = """
- id: no-action
  on: zendesk.ticket
  when: {status: [new, open]}
  since: created_at
  until: {agent_touched: true}
  catch_up: {catch}
  steps:
    - id: everyone
      after: 1h
      do: [{notify: {to: [group:Support], subject: "{{ ticket.id }}", body: "b"}}]
    - {id: assignee, after: 24h, do: [{notify: {to: [assignee], subject: "s", body: "b"}}]}
    - id: supervisors
      after: 26h
      do:
        - notify: {to: [group:Supervisors], subject: "s", body: "b"}
        - assign: {group: Engineers, strategy: least_loaded}
"""


def ladder(tmp_path: Path, catch: str = "fire") -> Engine:
    return build(tmp_path, LADDER.replace("{catch}", catch))


def test_ladder_fires_each_step_on_time_until_an_agent_acts(tmp_path: Path) -> None:
    sim = Sim(ladder(tmp_path))
    t0 = utc(2026, 3, 2, 10)
    assert sim.see(t0, id=1, status="new", created_at=t0.isoformat(), agent_touched=False) == []
    assert sim.last is not None
    assert sim.last.next_wake == t0 + H
    assert [(t.step, t.due_at) for t in sim.last.timers] == [
        ("everyone", t0 + H),
        ("assignee", t0 + 24 * H),
        ("supervisors", t0 + 26 * H),
    ]
    assert steps(sim.follow(t0 + 24 * H)) == [("everyone", t0 + H), ("assignee", t0 + 24 * H)]
    assert sim.last.next_wake == t0 + 26 * H
    assert sim.see(t0 + 25 * H, agent_touched=True) == []  # the agent acts: the rest is off
    assert sim.last.next_wake is None and sim.memory["no-action"].cancelled
    assert sim.see(t0 + 27 * H, agent_touched=False) == []  # cancelled stays cancelled
    assert sim.follow(t0 + 100 * H) == []
    assert [i.params["subject"] for i in sim.intents[:1]] == ["1"]


def test_ladder_paused_by_when_never_repeats_a_step(tmp_path: Path) -> None:
    sim = Sim(ladder(tmp_path))
    t0 = utc(2026, 3, 2, 10)
    sim.see(t0, id=1, status="new", created_at=t0.isoformat())
    sim.follow(t0 + 2 * H)
    assert sim.see(t0 + 3 * H, status="pending") == []
    assert sim.last is not None and sim.last.next_wake is None  # disarmed: nothing scheduled
    assert sim.see(t0 + 30 * H, status="open") != []  # back: 24h and 26h catch up, not 1h
    assert steps(sim.intents) == [
        ("everyone", t0 + H),
        ("assignee", t0 + 24 * H),
        ("supervisors", t0 + 26 * H),
        ("supervisors", t0 + 26 * H),
    ]


@pytest.mark.parametrize(
    ("catch", "expected"),
    [
        ("fire", ["everyone", "assignee", "supervisors", "supervisors"]),
        ("skip", []),
        ("{fire_if_within: 5h}", ["supervisors", "supervisors"]),
    ],
)
def test_catch_up_after_downtime(tmp_path: Path, catch: str, expected: list[str]) -> None:
    sim = Sim(ladder(tmp_path, catch))
    t0 = utc(2026, 3, 2, 10)
    late = sim.see(t0 + 30 * H, id=1, status="new", created_at=t0.isoformat())
    assert [i.step for i in late] == expected
    assert all(i.due_at < t0 + 30 * H for i in late)
    if late:
        assert late[-1].reason["caught_up_after_s"] == 4 * 3600
    assert sim.last is not None and sim.last.next_wake is None


def test_on_time_means_within_grace_even_with_skip(tmp_path: Path) -> None:
    sim = Sim(ladder(tmp_path, "skip"))
    t0 = utc(2026, 3, 2, 10)
    sim.see(t0, id=1, status="new", created_at=t0.isoformat())
    assert [i.step for i in sim.tick(t0 + H + timedelta(minutes=4))] == ["everyone"]
    assert sim.tick(t0 + 24 * H + timedelta(minutes=6)) == []  # grace is 5 minutes
    late = sim.tick(t0 + 26 * H + timedelta(minutes=9), grace=timedelta(minutes=10))
    assert [i.step for i in late] == ["supervisors", "supervisors"]  # the daemon's own slack


BUSINESS = """
- id: first-response
  on: zendesk.ticket
  when: {status: new}
  since: created_at
  steps:
    - {after: 1 business_hour, do: [{tag: [late-1bh]}]}
"""


@pytest.mark.parametrize(
    ("created", "due"),
    [
        (utc(2026, 3, 6, 17, 30), utc(2026, 3, 9, 9, 30)),  # Friday 17:30 GMT -> Monday 09:30
        (utc(2026, 5, 1, 16, 30), utc(2026, 5, 5, 8, 30)),  # BST, Monday 4 May bank holiday
        (utc(2026, 3, 27, 17, 30), utc(2026, 3, 30, 8, 30)),  # over the change to BST
    ],
)
def test_business_hour_steps(tmp_path: Path, created: datetime, due: datetime) -> None:
    sim = Sim(build(tmp_path, BUSINESS))
    sim.see(created, status="new", created_at=created.isoformat())
    assert sim.last is not None and sim.last.next_wake == due
    assert sim.tick(due - timedelta(seconds=1)) == []
    assert steps(sim.tick(due)) == [("step-1", due)]


# ----------------------------------------------------------------------------- plans

PLAN = """
- id: onboarding
  on: salesforce.opportunity
  when: {StageName: Closed Won}
  since: Start_Date__c
  steps:
    - {id: welcome, after: -2w, at: "09:00", do: [{notify: {to: [owner], subject: "w", body: "b"}}]}
    - {id: prep, after: -1w, at: "09:00", do: [{create_task: {subject: p, due: 3 business_days}}]}
    - {id: kickoff, after: 0d, at: "09:00", do: [{notify: {to: [owner], subject: "k", body: "b"}}]}
    - {id: review, after: +100d, at: "09:00", do: [{notify: {to: [owner], subject: r, body: b}}]}
    - id: six-monthly
      after: 6 months
      repeat: every 6 months
      at: "09:00"
      do: [{notify: {to: [owner], subject: "review {{ occurrence }}", body: "b"}}]
"""


def test_date_anchored_plan_with_negative_offsets_and_repeats(tmp_path: Path) -> None:
    sim = Sim(build(tmp_path, PLAN), kind="salesforce.opportunity")
    sim.see(utc(2026, 5, 1), StageName="Closed Won", Start_Date__c="2026-06-01")
    sim.follow(utc(2028, 1, 1))
    assert steps(sim.intents) == [
        ("welcome", utc(2026, 5, 18, 8)),  # 09:00 BST
        ("prep", utc(2026, 5, 25, 8)),
        ("kickoff", utc(2026, 6, 1, 8)),
        ("review", utc(2026, 9, 9, 8)),
        ("six-monthly", utc(2026, 12, 1, 9)),  # 09:00 GMT
        ("six-monthly", utc(2027, 6, 1, 8)),
        ("six-monthly", utc(2027, 12, 1, 9)),
    ]
    assert [i.occurrence for i in sim.intents[4:]] == [0, 1, 2]
    assert sim.intents[-1].params["subject"] == "review 2"
    # create_task.due is resolved from the anchor (00:00 on 1 June) in business days
    assert sim.intents[1].params["due"] == "2026-06-03T18:00:00+01:00"
    assert sim.last is not None and sim.last.next_wake == utc(2028, 6, 1, 8)
    assert sim.memory["onboarding"].fired >= {"welcome#0", "six-monthly#2"}
    assert "six-monthly#1" not in sim.memory["onboarding"].fired  # repeats keep the latest


def test_repeat_missed_occurrences_collapse_into_the_latest(tmp_path: Path) -> None:
    sim = Sim(build(tmp_path, PLAN), kind="salesforce.opportunity")
    fired = sim.see(utc(2028, 7, 1), StageName="Closed Won", Start_Date__c="2026-06-01")
    assert [(i.step, i.occurrence) for i in fired if i.step == "six-monthly"] == [
        ("six-monthly", 3)
    ]
    assert sim.last is not None and sim.last.next_wake == utc(2028, 12, 1, 9)


PATTERN = """
- id: si-mails
  on: salesforce.opportunity
  when: {StageName: Closed Won}
  since: Start_Date__c
  steps:
    - id: si-auto-mail
      every: [MON, WED, FRI]
      from: 1w
      to: 6w
      at: "09:00"
      do:
        - notify:
            to: [owner]
            template: "si-week-{{ week }}"
            subject: "{{ date }}"
            body: "#{{ occurrence }}"
"""


def test_weekday_pattern_weeks_one_to_five(tmp_path: Path) -> None:
    pattern = PATTERN.replace('            template: "si-week-{{ week }}"\n', "").replace(
        'subject: "{{ date }}"', 'subject: "si-week-{{ week }} {{ date }}"'
    )
    sim = Sim(build(tmp_path, pattern), kind="salesforce.opportunity")
    sim.see(utc(2026, 5, 1), StageName="Closed Won", Start_Date__c="2026-06-01")
    assert sim.last is not None and len(sim.last.timers) == 15
    sim.follow(utc(2026, 12, 31))
    days = [1 + 7 * w + d for w in range(1, 6) for d in (0, 2, 4)]  # days after 31 May
    expected = [utc(2026, 5, 31, 8) + timedelta(days=n) for n in days]
    assert [i.due_at for i in sim.intents] == expected
    assert expected[0] == utc(2026, 6, 8, 8) and expected[-1] == utc(2026, 7, 10, 8)
    assert [i.params["subject"] for i in sim.intents[:4]] == [
        "si-week-1 2026-06-08",
        "si-week-1 2026-06-10",
        "si-week-1 2026-06-12",
        "si-week-2 2026-06-15",
    ]
    assert sim.intents[-1].params["subject"] == "si-week-5 2026-07-10"
    assert [i.occurrence for i in sim.intents] == list(range(15))


def test_named_template_is_rendered_from_the_rule_directory(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "si-week-1.j2").write_text(
        "Subject: Week {{ week }} for {{ opportunity.Name }}\n\nSee you {{ date }}.\n"
    )
    named = PATTERN.replace(
        '            subject: "{{ date }}"\n            body: "#{{ occurrence }}"\n', ""
    )
    sim = Sim(build(tmp_path, named), kind="salesforce.opportunity")
    fired = sim.see(
        utc(2026, 6, 8, 8), StageName="Closed Won", Start_Date__c="2026-06-01", Name="Acme"
    )
    assert [i.params for i in fired] == [
        {
            "to": ["owner"],
            "cc": [],
            "subject": "Week 1 for Acme",
            "body": "See you 2026-06-08.\n",
            "template": "si-week-1",
            "via": "mail",
        },
    ]
    sim.tick(utc(2026, 6, 15, 8))  # week 2 has no template file: an error, not a crash
    assert sim.last is not None
    assert [e.message for e in sim.last.errors] == [
        "action 1 (notify): no template named 'si-week-2'"
    ]


DEFER = """
- id: si-plan
  on: salesforce.opportunity
  when: {StageName: Closed Won}
  since: Start_Date__c
  defer: {when: {Viable_Project__c: false}, from_step: week6-training, to: Week_B_Date__c}
  steps:
    - {id: week5-call, after: 5w, at: "09:00", do: [{notify: {to: [owner], subject: w5, body: b}}]}
    - {id: week6-training, after: 6w, at: "09:00", do: [{create_task: {subject: w6}}]}
    - {id: week7-followup, after: 7w, at: "09:00", do: [{create_task: {subject: w7}}]}
"""


def test_deferral_moves_the_remaining_steps_to_week_b(tmp_path: Path) -> None:
    sim = Sim(build(tmp_path, DEFER), kind="salesforce.opportunity")
    sim.see(
        utc(2026, 5, 1),
        StageName="Closed Won",
        Start_Date__c="2026-06-01",
        Viable_Project__c=False,
        Week_B_Date__c="2026-08-03",
    )
    sim.follow(utc(2026, 12, 31))
    assert steps(sim.intents) == [
        ("week5-call", utc(2026, 7, 6, 8)),
        ("week6-training", utc(2026, 8, 3, 8)),
        ("week7-followup", utc(2026, 8, 10, 8)),
    ]
    assert sim.intents[1].reason["deferred_anchor"] == "2026-06-21T23:00:00+00:00"


def test_deferral_decided_when_the_step_falls_due_never_fires_twice(tmp_path: Path) -> None:
    sim = Sim(build(tmp_path, DEFER), kind="salesforce.opportunity")
    sim.see(
        utc(2026, 5, 1), StageName="Closed Won", Start_Date__c="2026-06-01", Viable_Project__c=True
    )
    sim.follow(utc(2026, 7, 13, 8))  # week 5 and week 6 on the original plan
    sim.see(utc(2026, 7, 14), Viable_Project__c=False)  # deferred; Week-B not chosen yet
    assert sim.last is not None and sim.last.next_wake is None
    sim.see(utc(2026, 7, 15), Week_B_Date__c="2026-08-03")
    sim.follow(utc(2026, 12, 31))
    sim.see(utc(2027, 1, 1), Viable_Project__c=True)  # back on the original anchor: nothing
    assert steps(sim.intents) == [
        ("week5-call", utc(2026, 7, 6, 8)),
        ("week6-training", utc(2026, 7, 13, 8)),
        ("week7-followup", utc(2026, 8, 10, 8)),
    ]


def test_moved_anchor_moves_pending_steps_and_never_refires(tmp_path: Path) -> None:
    sim = Sim(build(tmp_path, PLAN), kind="salesforce.opportunity")
    sim.see(utc(2026, 5, 1), StageName="Closed Won", Start_Date__c="2026-06-01")
    sim.follow(utc(2026, 5, 20))
    assert steps(sim.intents) == [("welcome", utc(2026, 5, 18, 8))]
    sim.see(utc(2026, 5, 20), Start_Date__c="2026-06-08")  # start moved a week later
    assert sim.last is not None and sim.last.next_wake == utc(2026, 6, 1, 8)  # prep, not welcome
    sim.follow(utc(2026, 6, 30))
    assert steps(sim.intents)[1:] == [("prep", utc(2026, 6, 1, 8)), ("kickoff", utc(2026, 6, 8, 8))]
    assert sim.intents[1].key != sim.intents[0].key
    earlier = sim.see(utc(2026, 7, 1), Start_Date__c="2026-03-01")  # moved back: review is due
    assert [i.step for i in earlier] == ["review"]


def test_cleared_anchor_or_left_scope_schedules_nothing(tmp_path: Path) -> None:
    sim = Sim(build(tmp_path, PLAN), kind="salesforce.opportunity")
    sim.see(utc(2026, 5, 1), StageName="Closed Won", Start_Date__c="2026-06-01")
    sim.see(utc(2026, 5, 2), Start_Date__c=None)
    assert sim.last is not None and sim.last.timers == [] and sim.last.next_wake is None
    assert sim.follow(utc(2027, 1, 1)) == [] and sim.tick(utc(2026, 6, 1, 8)) == []
    sim.see(utc(2026, 5, 3), Start_Date__c="2026-06-01", StageName="Closed Lost")
    assert sim.last.next_wake is None


def test_an_anchor_that_is_not_a_date_is_reported(tmp_path: Path) -> None:
    sim = Sim(build(tmp_path, PLAN), kind="salesforce.opportunity")
    sim.see(utc(2026, 5, 1), StageName="Closed Won", Start_Date__c="next Monday")
    assert sim.last is not None and sim.last.timers == []
    assert [str(e) for e in sim.last.errors] == [
        "rule onboarding on salesforce.opportunity:1: since: Start_Date__c holds 'next Monday',"
        " not a date"
    ]


SINCE = """
- id: pending-reminder
  on: zendesk.ticket
  when: {status: pending}
  since: {became: {status: pending}}
  steps:
    - {after: 24h, do: [{comment: {body: "Any news?", public: true}}]}
    - {after: 72h, do: [{set: {status: solved}}]}
"""


def test_since_became_anchors_on_the_entry_version_and_restarts_on_reentry(
    tmp_path: Path,
) -> None:
    sim = Sim(build(tmp_path, SINCE))
    t0 = utc(2026, 3, 2, 10)
    sim.see(t0, status="open")
    sim.see(t0 + H, status="pending")
    assert sim.last is not None and sim.last.next_wake == t0 + 25 * H
    sim.see(t0 + 2 * H, subject="edited")  # still pending: same anchor
    assert sim.last.next_wake == t0 + 25 * H
    assert steps(sim.follow(t0 + 30 * H)) == [("step-1", t0 + 25 * H)]
    sim.see(t0 + 40 * H, status="open")
    assert sim.last.next_wake is None
    sim.see(t0 + 50 * H, status="pending")  # a new episode: the reminder fires again
    assert steps(sim.follow(t0 + 200 * H)) == [("step-1", t0 + 74 * H), ("step-2", t0 + 122 * H)]
    assert len({i.key for i in sim.intents}) == 3


# ----------------------------------------------------------------------------- memory, keys


def test_memory_round_trips_through_json(tmp_path: Path) -> None:
    memory = {
        "a": RuleMemory(in_when=True, entered_at=utc(2026, 1, 1)),
        "b": RuleMemory(
            anchor=utc(2026, 1, 2),
            fired=frozenset({"x#0", "y#3"}),
            cancelled=True,
            since_in=True,
            since_at=utc(2026, 1, 2),
        ),
    }
    data = memory_to_json(memory)
    assert data["a"] == {"in_when": True, "entered_at": "2026-01-01T00:00:00+00:00"}
    assert memory_from_json(data) == memory
    assert EMPTY.to_json() == {}


STATUSES = st.sampled_from(["new", "open", "pending", "solved"])
EVENTS = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=40 * 60),  # minutes later
        st.one_of(
            st.none(),
            st.tuples(st.just("status"), STATUSES),
            st.tuples(st.just("agent_touched"), st.booleans()),
            st.tuples(st.just("created_at"), st.integers(min_value=-600, max_value=600)),
        ),
    ),
    max_size=25,
)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return build(tmp_path_factory.mktemp("mixed"), TRIAGE + LADDER.replace("{catch}", "fire"))


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=EVENTS)
def test_no_step_fires_twice_and_keys_are_stable(mixed: Engine, events: list[Any]) -> None:
    engine = mixed
    sim = Sim(engine)
    now = utc(2026, 3, 2, 10)
    sim.see(
        now,
        id=1,
        status="new",
        priority="low",
        tags=[],
        created_at=now.isoformat(),
        agent_touched=False,
    )
    for minutes, change in events:
        now += timedelta(minutes=minutes)
        if change is None:
            sim.tick(now)
        elif change[0] == "created_at":
            sim.see(
                now, created_at=(utc(2026, 3, 2, 10) + timedelta(minutes=change[1])).isoformat()
            )
        else:
            sim.see(now, **{change[0]: change[1]})
        assert sim.current is not None
        # evaluating the same input again yields the same keys
        again = engine.evaluate(sim.current, sim.previous, sim.before, now)
        assert [i.key for i in again.intents] == [i.key for i in sim.last.intents]  # type: ignore[union-attr]
    keys = [i.key for i in sim.intents]
    assert len(keys) == len(set(keys))
    ladder_steps = [(i.step, i.action) for i in sim.intents if i.rule_id == "no-action"]
    assert len(ladder_steps) == len(set(ladder_steps))  # moved anchors never re-fire a step


# ----------------------------------------------------------------------------- keys


def test_intent_keys_are_deterministic_separated_and_instant_based() -> None:
    ref = RecordRef("zendesk.ticket", "7")
    at = utc(2026, 3, 2, 10)
    key = intent_key("triage", ref, "step", at, 1, 0)
    assert key.startswith("triage/") and len(key) == len("triage/") + 24
    assert key == intent_key("triage", ref, "step", at, 1, 0)
    paris = at.astimezone(timezone(timedelta(hours=1)))
    assert key == intent_key("triage", ref, "step", paris, 1, 0)  # the instant, not its zone
    assert key != intent_key("triage", ref, "step", at + timedelta(microseconds=1), 1, 0)
    assert key != intent_key("triage", ref, "step", at, 1, 1)
    assert key != intent_key("triage", ref, "step", at, 10, 0)
    assert key != intent_key("triage", ref, "step", None, 1, 0)
    assert key != intent_key("triage", ref, "step", at.replace(tzinfo=None), 1, 0)
    # parts holding the separator cannot be shifted into each other
    a = intent_key("r", RecordRef("zendesk.ticket", "1\x1fx"), "", at)
    b = intent_key("r", RecordRef("zendesk.ticket", "1"), "x", at)
    assert a != b and a == intent_key("r", RecordRef("zendesk.ticket", "1\x1fx"), "", at)


def test_timer_keys_match_the_first_intent_of_their_step(tmp_path: Path) -> None:
    sim = Sim(ladder(tmp_path))
    t0 = utc(2026, 3, 2, 10)
    sim.see(t0, id=1, status="new", created_at=t0.isoformat(), agent_touched=False)
    assert sim.last is not None
    timers = {t.step: t.key for t in sim.last.timers}
    firsts: dict[str, str] = {}
    for intent in sim.follow(t0 + 30 * H):
        firsts.setdefault(intent.step, intent.key)  # its action 0
    assert timers == firsts and len(firsts) == 3


# ----------------------------------------------------------------------------- the fast paths

BENCH_LIKE = """
- id: route
  on: zendesk.ticket
  when: {status: new, group_id: 1, tags: {lacks: routed}, priority: [urgent, high]}
  do: [{tag: [routed, "{{ 'hot' if ticket.priority == 'urgent' else 'warm' }}"]}]
- id: triage
  on: zendesk.ticket
  when:
    group_id: 1
    status: {in: [new, open]}
    subject: {matches: "(?i)down"}
    custom.seats: {gte: 10}
    tags: {contains: vip}
  do: [{notify: {to: [group:Incidents], subject: "{{ ticket.subject }}", body: "#{{ ticket.id }}"}}]
- id: pair
  on: zendesk.ticket
  when: {custom.pair: [a, c], status: {not_in: [solved]}, custom.kind: {ne: x}}
  do: [{tag: [pair]}]
- id: idle
  on: zendesk.ticket
  when: {status: [new, open], group_id: 1}
  since: created_at
  until: {agent_touched: true}
  catch_up: skip
  steps:
    - {after: 1 business_hour, do: [{tag: [idle-1]}]}
    - {after: 4 business_hours, do: [{tag: [idle-4]}]}
    - {id: last, after: 16 business_hours, catch_up: {fire_if_within: 2h}, do: [{tag: [idle]}]}
"""
@pytest.fixture(scope="module")
def bench_like(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return build(tmp_path_factory.mktemp("bench-like"), BENCH_LIKE)


def test_the_daemon_sees_a_read_only_view_of_each_rule(bench_like: Engine) -> None:
    """`Engine.rules`: what the planner, executor, reload and limits read, and nothing else."""
    assert set(bench_like.rules) == {"route", "triage", "pair", "idle"}
    idle, route = bench_like.rules["idle"], bench_like.rules["route"]
    assert isinstance(idle, CompiledRule)
    assert (idle.id, idle.kind, idle.timeline, route.timeline) == (
        "idle", "zendesk.ticket", True, False)
    assert idle.math.tz.key == "Europe/London"  # type: ignore[attr-defined]
    # each `do:` list's actions by step (what the timer job and the executor ask of a step)
    assert (dict(route.actions), dict(idle.actions)) == (
        {"": ("tag",)}, {"step-1": ("tag",), "step-2": ("tag",), "last": ("tag",)})
    assert not hasattr(idle, "gate_test")  # the compiled rule's inside stays inside
    with pytest.raises(dataclasses.FrozenInstanceError):
        idle.kind = "salesforce.account"  # type: ignore[misc]
    with pytest.raises(TypeError):
        bench_like.rules["new"] = idle  # type: ignore[index]


def test_a_list_value_meets_the_rules_of_each_element(bench_like: Engine) -> None:
    fields = {"status": "open", "custom": {"pair": ["b", "a"], "kind": "y"}}
    record = Record(RecordRef("zendesk.ticket", "1"), fields, utc(2026, 3, 12, 12))
    result = bench_like.evaluate(record, None, {}, utc(2026, 3, 12, 12))
    assert [i.rule_id for i in result.intents] == ["pair"]


def test_evaluation_and_intents_are_plain_dataclasses(bench_like: Engine) -> None:
    fields = {"id": 3, "status": "new", "group_id": 1, "priority": "urgent", "tags": []}
    record = Record(RecordRef("zendesk.ticket", "3"), fields, utc(2026, 3, 12, 12))
    result = bench_like.evaluate(record, None, {}, utc(2026, 3, 12, 12))
    [intent] = result.intents
    assert intent == Intent(**{f.name: getattr(intent, f.name) for f in dataclasses.fields(Intent)})
    assert intent.params == {"tags": ["routed", "hot"]}
    assert dataclasses.asdict(result)["next_wake"] is None
    assert Evaluation([], {}, [], None) == Evaluation([], {}, [], None, [])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.intents = []  # type: ignore[misc]


# ----------------------------------------------------------------------------- rendering

TEMPLATE_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-2, 9),
        st.sampled_from(["urgent", "x", ""]),
        st.floats(-2, 9, allow_nan=False),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["priority", "id", "items", "a", "0"]), inner, max_size=3),
    ),
    max_leaves=6,
)
EXPRESSIONS = st.recursive(
    st.sampled_from(
        ["ticket", "a", "missing", "range", "self", "'urgent'", "1", "none", "[1, 2]", "x.y"]
    ),
    lambda inner: st.one_of(
        st.builds("{}.{}".format, inner, st.sampled_from(["priority", "id", "items", "a"])),
        st.builds("{}[{}]".format, inner, st.sampled_from(["0", "1", "'a'", "'id'"])),
        st.builds(
            "({} {} {})".format,
            inner,
            st.sampled_from(["==", "!=", "<", ">=", "in", "not in", "and", "or", "~"]),
            inner,
        ),
        st.builds("({} if {} else {})".format, inner, inner, inner),
        st.builds("({} if {})".format, inner, inner),
        st.builds("(not {})".format, inner),
        st.builds("({} | length)".format, inner),
    ),
    max_leaves=5,
)


def _rendered(text: str, context: dict[str, Any]) -> Any:
    try:
        return templates.render(text, context)
    except Exception as exc:  # both paths must fail alike
        return type(exc), str(exc)


def _jinja(text: str, context: dict[str, Any]) -> Any:
    try:
        return templates.compile(text).render(context)
    except TemplateError as exc:
        return templates.TemplateProblem, str(
            templates.TemplateProblem(f"template error: {exc}", getattr(exc, "lineno", None))
        )
    except Exception as exc:
        return type(exc), str(exc)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    expression=EXPRESSIONS,
    around=st.sampled_from(["{}", "#{} needs eyes", "{}{{{{ a }}}}"]),
    context=st.dictionaries(st.sampled_from(["ticket", "a", "self", "x"]), TEMPLATE_VALUES),
)
def test_fast_rendering_is_jinjas(expression: str, around: str, context: dict[str, Any]) -> None:
    """The generated renderers print what Jinja prints, and fail where Jinja fails."""
    text = around.format("{{ " + expression + " }}")
    try:
        templates.compile(text)
    except Exception:
        return  # not a template Jinja compiles: nothing to compare
    assert _rendered(text, context) == _jinja(text, context)


def test_fast_rendering_keeps_strictness_and_the_sandbox() -> None:
    assert templates.renderer("#{{ ticket.id }} needs eyes") is not None  # on the fast path
    with pytest.raises(templates.TemplateProblem, match="has no attribute 'missing'"):
        templates.render("#{{ ticket.missing }}", {"ticket": {"id": 1}})
    with pytest.raises(templates.TemplateProblem, match="'nope' is undefined"):
        templates.render("{{ nope }}", {})
    with pytest.raises(templates.TemplateProblem, match="unsafe"):
        templates.render("{{ ticket.__class__ }}", {"ticket": {}})
    with pytest.raises(templates.TemplateProblem, match="unsafe"):
        templates.render("{{ ticket.items.__self__ }}", {"ticket": {"items": 1}})
    assert templates.render("{{ ticket.items }}", {"ticket": {"items": 1}}).startswith("<built")
    assert templates.render("{{ t.0 }}{{ t[1] }}", {"t": ["a", "b"]}) == "ab"


def _both_ways(
    engine: Engine, record: Record, now: datetime, grace: timedelta
) -> tuple[Evaluation, Evaluation]:
    """(evaluation, evaluation on the plain path: `Engine(ruleset, shortcuts=False)`)"""
    plain = Engine(engine.ruleset, shortcuts=False)
    fast = engine.evaluate(record, None, {}, now, grace=grace)
    return fast, plain.evaluate(record, None, {}, now, grace=grace)


@pytest.mark.parametrize("grace", [timedelta(0), DEFAULT_GRACE, timedelta(hours=3)])
def test_the_missed_ladder_cut_is_exact(bench_like: Engine, grace: timedelta) -> None:
    """Anchors around the cut (the latest anchor whose every step is missed beyond catching
    up) behave as without it: the last step (catch_up within 2h) fires just after it."""
    rule = bench_like.compiled["idle"]
    fired = 0
    for now in (
        utc(2026, 3, 9, 9),
        utc(2026, 3, 13, 17, 59),
        utc(2026, 3, 14, 12),
        utc(2026, 3, 10, 14, 7),
    ):
        cut = missed_cut(rule, now, grace)[2]  # type: ignore[arg-type]
        assert cut is not None
        for delta in (-3600, -60, -1, 0, 1, 60, 3600, 7200, 4 * 3600):
            anchor = cut + timedelta(seconds=delta) if delta else cut
            fields = {"status": "open", "group_id": 1, "agent_touched": False, "tags": []}
            fields["created_at"] = anchor.isoformat()
            record = Record(RecordRef("zendesk.ticket", "1"), fields, now)
            fast, slow = _both_ways(bench_like, record, now, grace)
            assert fast == slow, (now, delta)
            fired += bool(fast.intents)
    assert fired  # the boundary was really crossed
