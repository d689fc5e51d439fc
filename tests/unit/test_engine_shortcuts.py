"""Every shortcut of the engine (fast/) gives the plain path's answer (semantics.py).

Hypothesis writes rule sets (conditions with field, age and business-time tests, `became` and
`changed`; instant rules; ladders with steps `after`/`every`/`at`, repeats, catch-up, deferral,
`until`; actions whose params need every kind of rendering), records and instants, loads them
as the loader does, and drives one record through versions and instants twice: with
`Engine(ruleset)` and `Engine(ruleset, shortcuts=False)`. Each evaluation (intents with their
rendered params, memory, timers, next wake, errors) must be the same. Each test aims at some
shortcuts: the index and inlined gates, the inlined ladders and the missed-ladder cut, the
render plans; the last mixes them all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from syncd.businesstime.calendars import Calendar
from syncd.model import Record, RecordRef
from syncd.rules.engine import DEFAULT_GRACE, Engine, Evaluation, RuleMemory
from syncd.rules.language import Rule, RuleSet, lint
from syncd.rules.language.loader import load_rules
from syncd.rules.language.vars import substitute_vars
from syncd.vendors.registry import KINDS

BASE = datetime(2026, 3, 12, 12, tzinfo=UTC)  # a Thursday; the records' times are around it
TICKET, RECORD = "zendesk.ticket", "salesforce.record"
CALENDARS = {
    "support": {
        "timezone": "Europe/London",
        "hours": {"mon-fri": ["09:00-12:30", "13:30-18:00"]},
        "holidays": {"country": "GB", "subdiv": "ENG"},
    },
    "night": {"timezone": "America/New_York", "hours": {"mon-sun": ["22:00-23:59"]}},
}
T = TypeVar("T")
PROPERTIES = settings(
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ----------------------------------------------------------------------------- conditions

# the first of each list is the test the records' first values meet (hypothesis draws low)
FIELD_TESTS: dict[str, list[Any]] = {
    "status": [["new", "open"], "new", {"not_in": ["solved", "closed"]}, {"ne": "pending"}],
    "priority": [{"in": ["normal", "low"]}, ["urgent", "high"], "low"],
    "group_id": [1, [1, 2], {"ne": 2}, {"exists": True}],
    "tags": [{"lacks": "routed"}, {"contains": "vip"}],
    "subject": [{"matches": "(?i)down"}],
    "custom.seats": [{"gte": 10}, {"lt": 50, "gt": 1}],
    "custom.pair": [["a", "c"], "b"],
    "agent_touched": [False, True],
}
AGE_TESTS: dict[str, list[Any]] = {
    "created_at": [
        {"older_than": "2h"},
        {"older_than": "1 business_hour"},
        {"newer_than": "3 business_days"},
        {"older_than": "90m", "newer_than": "2d"},
    ],
    "updated_at": [{"newer_than": "30m"}, {"older_than": "1d"}],
}
EDGE_TESTS: dict[str, list[Any]] = {
    "status": [{"became": "open"}, {"changed": True}, {"became": ["pending", "hold"]}],
    "group_id": [{"changed": True}, {"changed": False}],
    "tags": [{"became": {"contains": "vip"}}],
}


# The generators draw integers only (hypothesis caches those strategies): a strategy built
# per draw would cost more than the evaluations compared.


def pick(draw: st.DrawFn, options: Sequence[T]) -> T:
    return options[draw(st.integers(0, len(options) - 1))]


def chance(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (not at 0: hypothesis draws it more often)."""
    return draw(st.integers(0, one_in - 1)) == one_in // 2


def field_tests(
    draw: st.DrawFn, pool: dict[str, list[Any]], least: int = 0, most: int = 2
) -> dict[str, Any]:
    keys = sorted(pool)
    chosen = {pick(draw, keys) for _ in range(draw(st.integers(least, most)))}
    return {key: pick(draw, pool[key]) for key in sorted(chosen)}


EDGES = [(k, v) for k, vs in EDGE_TESTS.items() for v in vs]


def conditions(
    draw: st.DrawFn, ages: bool = True, edges: bool = True, most: int = 2
) -> dict[str, Any]:
    """A condition: field tests, maybe an age or edge test, maybe nested any/not."""
    found = field_tests(draw, FIELD_TESTS, most=most)
    if ages and chance(draw, 2):
        found.update(field_tests(draw, AGE_TESTS, least=1))
    if edges and chance(draw, 4):
        field, test = pick(draw, EDGES)
        found[field] = test
    if chance(draw, 5):
        found["any"] = [field_tests(draw, FIELD_TESTS, least=1) for _ in range(2)]
    if chance(draw, 6):
        found["not"] = field_tests(draw, FIELD_TESTS, least=1)
    return found


# ----------------------------------------------------------------------------- actions

TEXTS = [
    "{{ ticket.subject }}",  # the generated renderers' subset
    "#{{ ticket.id }} needs eyes ({{ rule.id }})",
    "{{ 'hot' if ticket.priority == 'urgent' else 'warm' }}",
    "{{ ticket.subject | upper }}",  # beyond the subset: Jinja
    "{{ vars.desk }} / {{ now.year }}",
    "{{ ticket.custom.nope }}",  # fails where the record lacks it: a rule error
    "plain text",
]
RECORD_TEXTS = ["{{ record.Name }}", "Review {{ record.Name | default('?') }}", "plain"]
# what a template may read in a step, by the step's shape (templates.context_names)
STEP_TEXTS = {
    "": [],
    "plain": ["step {{ step.id }}"],
    "repeat": ["step {{ step.id }}", "#{{ occurrence }}"],
    "pattern": ["step {{ step.id }}", "#{{ occurrence }}", "week {{ week }} on {{ date }}"],
}
OFFSETS = ["2 business_days", "0d", "-1w", "3h"]
FIXED_TICKET_ACTIONS = [
    {"set": {"priority": "urgent"}},
    {"assign": {"group": "Tier 1", "strategy": "round_robin"}},
]


def action(draw: st.DrawFn, kind: str, step: str) -> dict[str, Any]:
    """One action for a rule on `kind`; `step`: the shape of the step it is in, if any."""
    texts = (TEXTS if kind == TICKET else RECORD_TEXTS) + STEP_TEXTS[step]
    choice = draw(st.integers(0, 4))
    if kind == TICKET:
        if choice == 0:
            return {"tag": ["routed", pick(draw, ["fixed", *texts[:3]])]}
        if choice == 1:
            return pick(draw, FIXED_TICKET_ACTIONS)
        if choice == 2:
            return {"notify": {"to": ["assignee"], "via": "note", "body": pick(draw, texts)}}
        window = {"deliver": {"within": "support"}} if chance(draw, 2) else {}
        to = ["group:Support", "{{ vars.lead }}"]
        return {"notify": {"to": to, "subject": pick(draw, texts), "body": pick(draw, texts),
                           **window}}
    if choice == 0:
        return {"create_task": {"subject": "Fixed", "owner": "owner"}}
    if choice == 1:
        return {"set": {"Status__c": "Open"}}
    if choice == 2:
        return {"create_event": {"subject": pick(draw, texts), "start": pick(draw, OFFSETS),
                                 "duration": "2h"}}
    return {"create_task": {"subject": pick(draw, texts), "owner": "owner",
                            "due": pick(draw, OFFSETS)}}


def actions(draw: st.DrawFn, kind: str, step: str = "") -> list[dict[str, Any]]:
    return [action(draw, kind, step) for _ in range(draw(st.integers(1, 3)))]


# ----------------------------------------------------------------------------- rules

CATCH_UP = [None, "fire", "skip", {"fire_if_within": "2h"}, {"fire_if_within": "30m"}]
UNITS = ["minutes", "hours", "business_minutes", "business_hours"]


def ladder(draw: st.DrawFn, kind: str, simple: bool) -> list[dict[str, Any]]:
    """Steps in time order (plain `after` steps, then maybe `at`, a weekday pattern, a repeat);
    `simple`: plain steps only, one unit family (the shape `FastRule.simple` takes)."""
    unit = pick(draw, UNITS)
    amounts = sorted({draw(st.integers(-3, 40)) for _ in range(draw(st.integers(1, 4)))})  # < 2d
    if unit.startswith("business") or unit == "minutes":
        amounts = [a for a in amounts if a >= 0] or [0]
    if unit.endswith("minutes"):
        amounts = [a * 20 for a in amounts]
    steps: list[dict[str, Any]] = []
    for n, amount in enumerate(amounts):
        step: dict[str, Any] = {"id": f"s{n}", "after": f"{amount} {unit}"}
        if chance(draw, 4):
            step["catch_up"] = pick(draw, CATCH_UP[1:])
        steps.append(step)
    if not simple:
        if chance(draw, 2):
            days = pick(draw, [["MON", "WED", "FRI"], "mon-fri", "sat"])
            steps.append({"id": "weekly", "every": days, "from": "2d",
                          "to": pick(draw, ["2w", "3w"]),
                          **({"at": "09:00"} if chance(draw, 2) else {})})
        if chance(draw, 2):
            steps.append({"id": "day", "after": "3d", "at": pick(draw, ["09:00", "23:30"])})
        if chance(draw, 2):
            period = pick(draw, ["every 1d", "every 2w", "every 1 month"])
            steps.append({"id": "again", "after": "3w", "repeat": period})
    for step in steps:
        shape = "pattern" if "every" in step else "repeat" if "repeat" in step else "plain"
        step["do"] = actions(draw, kind, shape)
    return steps


BECAME = [{"status": "pending"}, {"tags": {"contains": "vip"}}]
UNTIL = [{"agent_touched": True}, {"status": "solved"}, {"updated_at": {"newer_than": "10m"}}]


def timeline_rule(draw: st.DrawFn, n: int, kind: str, simple: bool | None) -> dict[str, Any]:
    simple = draw(st.booleans()) if simple is None else simple
    steps = ladder(draw, kind, simple)
    rule: dict[str, Any] = {"id": f"ladder-{n}", "on": kind, "steps": steps}
    since = pick(draw, ["created_at", "custom.due", "became", "became-age"])
    if since == "became":
        rule["since"] = {"became": pick(draw, BECAME)}
    elif since == "became-age":
        rule["since"] = {"became": {"status": "open", "updated_at": {"older_than": "1h"}}}
    else:
        rule["since"] = since
    when = conditions(draw, ages=chance(draw, 4), edges=False, most=1)
    if when:
        rule["when"] = when
    if draw(st.booleans()):
        rule["until"] = pick(draw, UNTIL)
    catch_up = pick(draw, CATCH_UP)
    if catch_up is not None:
        rule["catch_up"] = catch_up
    if not simple and chance(draw, 3):
        rule["defer"] = {"when": {"custom.viable": False},
                         "from_step": pick(draw, [s["id"] for s in steps]),
                         "to": "custom.week_b"}
    return rule


def instant_rule(draw: st.DrawFn, n: int, kind: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": f"instant-{n}", "on": kind}
    when = conditions(draw)
    if when:  # else the rule fires once for every record in scope
        rule["when"] = when
    if chance(draw, 4):
        rule["scope"] = field_tests(draw, FIELD_TESTS, least=1)
    rule["do"] = actions(draw, kind)
    return rule


@st.composite
def rulesets(
    draw: st.DrawFn, instant: bool = True, timelines: bool = True, simple: bool | None = None
) -> dict[str, Any]:
    """A rule set: rules of both kinds, on one calendar or two, some disabled or in shadow."""
    rules: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 6))):
        kind = RECORD if chance(draw, 4) else TICKET
        if timelines and (not instant or draw(st.booleans())):
            rule = timeline_rule(draw, n, kind, simple)
        else:
            rule = instant_rule(draw, n, kind)
        rule["vars"] = {"desk": "Support", "lead": "lena@support.example"}
        if chance(draw, 5):
            rule["calendar"] = "night"
        if chance(draw, 7):
            rule["mode"] = "shadow"
        if chance(draw, 9):
            rule["enabled"] = False
        rules.append(rule)
    return {"calendars": CALENDARS, "defaults": {"calendar": "support"}, "rules": rules}


# ----------------------------------------------------------------------------- records


def fields(draw: st.DrawFn, at: datetime) -> dict[str, Any]:
    """A record's fields, its times around `at` (its first evaluation)."""

    def instant(minutes: int) -> str:
        return (at + timedelta(minutes=minutes)).isoformat()

    custom: dict[str, Any] = {}
    for name, options in (
        ("seats", [10, 1, 50.5, "12", None]),
        ("pair", ["a", ["a", "b"], "b", "c", None]),
        ("week_b", [str(at.date()), instant(-300), None, str(date(2026, 3, 23))]),
        ("nope", ["here"]),
    ):
        if not chance(draw, 4):
            custom[name] = pick(draw, options)
    custom["viable"] = draw(st.booleans())
    due = draw(st.integers(0, 3))
    if due == 0:
        custom["due"] = str(at.date() + timedelta(days=draw(st.integers(-20, 20))))
    elif due == 1:
        custom["due"] = instant(draw(st.integers(-20 * 24 * 60, 20 * 24 * 60)))
    elif due == 2:
        custom["due"] = pick(draw, [None, "soon"])
    tags = {pick(draw, ["vip", "routed", "x"]) for _ in range(draw(st.integers(0, 3)))}
    return {
        "id": draw(st.integers(1, 9)),
        "Name": pick(draw, ["Acme", ""]),
        "status": pick(draw, ["open", "new", "pending", "hold", "solved", None]),
        "priority": pick(draw, ["normal", "urgent", "high", "low"]),
        "group_id": pick(draw, [1, 2, 3, True, "1", None]),
        "tags": sorted(tags),
        "subject": pick(draw, ["Server down", "hello", ""]),
        "agent_touched": draw(st.booleans()),
        "created_at": instant(-draw(st.integers(0, 4 * 24 * 60))),
        "updated_at": instant(-draw(st.integers(0, 2 * 24 * 60))),
        "custom": custom,
    }


def changes(draw: st.DrawFn) -> dict[str, Any]:
    """What a new version changes: status, agent_touched, tags, group."""
    found: dict[str, Any] = {}
    if draw(st.booleans()):
        found["status"] = pick(draw, ["new", "open", "pending", "solved"])
    if draw(st.booleans()):
        found["agent_touched"] = draw(st.booleans())
    if chance(draw, 3):
        found["tags"] = pick(draw, [[], ["vip"], ["routed", "vip"]])
    if chance(draw, 3):
        found["group_id"] = pick(draw, [1, 2])
    return found


GRACES = [timedelta(0), DEFAULT_GRACE, timedelta(hours=3)]
LATER = [60, 1, 0, 59, 61, 180, 24 * 60, 2 * 24 * 60, 5 * 24 * 60]  # minutes
LATE = [0, 1, 6, 3 * 60, 2 * 24 * 60]  # minutes a wake-up comes after its timer


@dataclass(frozen=True)
class Event:
    """What happens next to the record: a new version `later` minutes on (`changes`, maybe
    deleted), or, with `changes` None, the daemon's wake-up at the next timer, `later` minutes
    late (or `later` minutes on when there is no timer)."""

    changes: dict[str, Any] | None
    deleted: bool
    later: int
    grace: timedelta


@dataclass(frozen=True)
class History:
    ref: RecordRef
    fields: dict[str, Any]
    start: datetime
    events: list[Event]


@st.composite
def histories(draw: st.DrawFn, steps: int = 4) -> History:
    """A record's life: its first version at `start`, then new versions and wake-ups."""
    ref = RecordRef(RECORD if chance(draw, 4) else TICKET, "1")
    start = BASE + timedelta(minutes=draw(st.integers(-2 * 24 * 60, 2 * 24 * 60)))
    events = [Event({}, False, 0, pick(draw, GRACES))]
    for _ in range(draw(st.integers(0, steps - 1))):
        if draw(st.booleans()):
            change = Event(changes(draw), chance(draw, 10), pick(draw, LATER), pick(draw, GRACES))
        else:
            change = Event(None, False, pick(draw, LATE), pick(draw, GRACES))
        events.append(change)
    return History(ref, fields(draw, start), start, events)


# ----------------------------------------------------------------------------- the comparison

@pytest.fixture(scope="module")
def calendars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Calendar]:
    """CALENDARS, loaded once by the real loader."""
    path = tmp_path_factory.mktemp("shortcuts") / "calendars.yaml"
    path.write_text(json.dumps({"calendars": CALENDARS}))  # JSON is YAML 1.2
    loaded = load_rules([path])
    assert not loaded.errors, [str(d) for d in loaded.errors]
    return loaded.ruleset.calendars


def engines(data: dict[str, Any], calendars: dict[str, Calendar]) -> tuple[Engine, Engine]:
    """(with shortcuts, plain) engines for the rule set: each rule validated and checked as
    the loader does, without reading YAML (ruamel would take most of the time)."""
    rules = []
    for node in data["rules"]:
        raw, problems = substitute_vars(node)
        assert not problems
        calendar = raw.get("calendar", data["defaults"]["calendar"])
        env = lint.Env(frozenset(calendars), {}, "", frozenset(), calendar)
        errors = [f for f in lint.lint(raw, KINDS[raw["on"]], env) if f.severity == "error"]
        assert not errors, errors
        rules.append(Rule.model_validate(raw).model_copy(update={"calendar": calendar}))
    ruleset = RuleSet(rules=tuple(rules), calendars=calendars)
    return Engine(ruleset), Engine(ruleset, shortcuts=False)


def same_answers(
    ruleset: dict[str, Any], history: History, calendars: dict[str, Calendar]
) -> list[Evaluation]:
    """Drive the record through its history on both engines, as the daemon would (memory
    carried over, the previous version remembered, woken at its timers); every evaluation
    must be the same."""
    fast, plain = engines(ruleset, calendars)
    memory: dict[str, RuleMemory] = {}
    now, fields = history.start, history.fields
    current: Record | None = None
    previous: Record | None = None
    seen: list[Evaluation] = []
    for event in history.events:
        if event.changes is not None:
            now += timedelta(minutes=event.later)
            fields = {**fields, **event.changes}
            previous = current
            current = Record(history.ref, fields, now, deleted=event.deleted)
        else:
            wake = seen[-1].next_wake if seen else None
            now = max(now, wake or now + timedelta(hours=1)) + timedelta(minutes=event.later)
        assert current is not None
        quick = fast.evaluate(current, previous, memory, now, grace=event.grace)
        slow = plain.evaluate(current, previous, memory, now, grace=event.grace)
        assert quick == slow, (now, event.grace, current.fields)
        seen.append(quick)
        memory = quick.memory
    return seen


@settings(PROPERTIES, max_examples=120)
@given(ruleset=rulesets(timelines=False), history=histories(steps=3))
def test_the_index_and_inlined_gates_change_no_answer(
    calendars: dict[str, Calendar], ruleset: dict[str, Any], history: History
) -> None:
    """Instant rules: the index over equality tests (lists, unhashable and unnamed values
    included), the gates tested inline without what the index key vouches for."""
    same_answers(ruleset, history, calendars)


# a ladder disarmed by `when` and armed again on the same anchor, nothing fired meanwhile
PAUSED = {
    "calendars": CALENDARS,
    "defaults": {"calendar": "support"},
    "rules": [{"id": "ladder-0", "on": TICKET, "since": "created_at",
               "when": {"status": ["new", "open"]},
               "steps": [{"id": "s0", "after": "10 hours", "do": [{"tag": ["idle"]}]},
                         {"id": "s1", "after": "30 hours", "do": [{"tag": ["idle"]}]}]}],
}
PAUSED_HISTORY = History(
    RecordRef(TICKET, "1"),
    {"status": "open", "created_at": BASE.isoformat(), "tags": []},
    BASE,
    [Event({}, False, 0, DEFAULT_GRACE), Event({"status": "pending"}, False, 120, DEFAULT_GRACE),
     Event({"status": "open"}, False, 60, DEFAULT_GRACE)],
)


@settings(PROPERTIES, max_examples=120)
@given(ruleset=rulesets(instant=False, simple=True), history=histories(steps=5))
@example(ruleset=PAUSED, history=PAUSED_HISTORY)
def test_inlined_ladders_and_the_missed_ladder_cut_change_no_answer(
    calendars: dict[str, Calendar], ruleset: dict[str, Any], history: History
) -> None:
    """Ladders of plain steps (wall and business units, catch-up per rule and step, with and
    without `until`), long outages and every grace: `simple_steps`, `field_timeline` and the
    cut answer as `steps` and `timeline` do."""
    same_answers(ruleset, history, calendars)


@settings(PROPERTIES, max_examples=100)
@given(ruleset=rulesets(instant=False, simple=False), history=histories(steps=5))
def test_every_ladder_shape_takes_the_same_way(
    calendars: dict[str, Calendar], ruleset: dict[str, Any], history: History
) -> None:
    """Steps at a time of day, weekday patterns, repeats, deferral, date anchors and anchors
    that are not dates, `since: {became}` with an age test: the shortcuts stand aside alike."""
    same_answers(ruleset, history, calendars)


@settings(PROPERTIES, max_examples=100)
@given(ruleset=rulesets(), history=histories())
def test_render_plans_and_every_shortcut_together_change_no_answer(
    calendars: dict[str, Calendar], ruleset: dict[str, Any], history: History
) -> None:
    """Everything at once: fixed params, planned texts and lists, anchored offsets (`due`,
    `start`), delivery windows, templates beyond the fast subset and templates that fail."""
    same_answers(ruleset, history, calendars)
