"""Every time boundary of the engine and the timers, tested AT the boundary and one microsecond
past it, on each code path a ladder step can take (the simple ladder with its missed-ladder
cut, the general step loop, repeats, weekday patterns, a `since: {became}` anchor).

docs/rules.md: a step is due at its instant (not a microsecond before); it is on time while
`now - due <= grace` (5 minutes by default); later, `catch_up` decides: `skip`, `fire`
(reported as caught up), `fire_if_within: D` (fires while `now - due <= D`). A `>` turned
into `>=` anywhere here fails a test.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.daemon.planner import apply_record, due_by_time
from syncd.model import Record, RecordRef
from syncd.rules.engine import DEFAULT_GRACE, Engine
from syncd.rules.language.loader import load_rules
from syncd.store.db import open_store
from syncd.store.timers import TimerSpec

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
US = timedelta(microseconds=1)
H = timedelta(hours=1)
G = timedelta(minutes=5)  # the engine's default grace (docs/rules.md), not read from the code
DUE = T0 + H  # every variant's step "one" falls due one hour after the anchor
REF = RecordRef("zendesk.ticket", "1")

VARIANTS = {
    # a ladder of plain steps: simple_steps, and Engine.cut when catch-up can give up
    "simple": """
      since: created_at
      steps:
        - {id: one, after: 1h, do: [{tag: [one]}]}
        - {id: two, after: 2h, do: [{tag: [two]}]}
    """,
    # not simple (a repeating step follows): the general step loop, inline branch
    "general": """
      since: created_at
      steps:
        - {id: one, after: 1h, do: [{tag: [one]}]}
        - {id: later, after: 1000h, repeat: every 1000h, do: [{tag: [later]}]}
    """,
    # a repeating step: occurrences, catch_up(), fire()
    "repeat": """
      since: created_at
      steps:
        - {id: one, after: 1h, repeat: every 1000h, do: [{tag: [one]}]}
    """,
    # a weekday pattern: one occurrence on Monday at 11:00 (UTC calendar)
    "pattern": """
      since: created_at
      steps:
        - {id: one, every: [MON], from: 0d, to: 1d, at: "11:00", do: [{tag: [one]}]}
    """,
    # anchored on the instant the record entered a condition
    "became": """
      since: {became: {status: open}}
      steps:
        - {id: one, after: 1h, do: [{tag: [one]}]}
        - {id: two, after: 2h, do: [{tag: [two]}]}
    """,
}


def engine_of(tmp_path: Path, body: str, catch_up: str = "fire") -> Engine:
    rule = textwrap.dedent(body).strip("\n")
    text = ("rules:\n  - id: r\n    on: zendesk.ticket\n    when: {status: [new, open]}\n"
            f"    catch_up: {catch_up}\n" + textwrap.indent(rule, "    ") + "\n")
    path = tmp_path / f"r{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(text)
    result = load_rules([path])
    assert not result.errors, [str(d) for d in result.errors]
    return Engine(result.ruleset)


def fired(engine: Engine, now: datetime,
          grace: timedelta | None = None) -> list[tuple[str, int | None]]:
    """Step "one"'s intents for a record anchored at T0 and first seen at `now`: (step, the
    seconds it was caught up after, None when on time). Evaluated twice at the same `now`, as
    two records of one cycle would be: the second through the remembered missed-ladder cut."""
    record = Record(REF, {"status": "open", "created_at": T0.isoformat()}, T0)
    found = []
    for _ in range(2):
        given = {} if grace is None else {"grace": grace}  # None: the engine's default
        result = engine.evaluate(record, None, {}, now, **given)
        found.append([(i.step, i.reason.get("caught_up_after_s")) for i in result.intents
                      if i.step == "one"])
    assert found[0] == found[1], "the remembered cut changed the answer"
    return found[0]


ON_TIME = [("one", None)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_step_is_due_at_its_instant_not_a_microsecond_before(
    tmp_path: Path, variant: str
) -> None:
    engine = engine_of(tmp_path, VARIANTS[variant])
    assert fired(engine, DUE - US) == []
    record = Record(REF, {"status": "open", "created_at": T0.isoformat()}, T0)
    result = engine.evaluate(record, None, {}, DUE - US)
    assert result.next_wake == DUE
    assert fired(engine, DUE) == ON_TIME


@pytest.mark.parametrize("variant", VARIANTS)
def test_grace_is_inclusive_and_skip_starts_one_microsecond_after(
    tmp_path: Path, variant: str
) -> None:
    engine = engine_of(tmp_path, VARIANTS[variant], "skip")
    assert fired(engine, DUE + G) == ON_TIME
    assert fired(engine, DUE + G + US) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_past_grace_a_fired_step_says_it_was_caught_up(tmp_path: Path, variant: str) -> None:
    engine = engine_of(tmp_path, VARIANTS[variant], "fire")
    assert fired(engine, DUE + G) == ON_TIME
    assert fired(engine, DUE + G + US) == [("one", 300)]
    assert fired(engine, DUE + 30 * 24 * H) == [("one", 30 * 24 * 3600)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_fire_if_within_is_inclusive(tmp_path: Path, variant: str) -> None:
    engine = engine_of(tmp_path, VARIANTS[variant], "{fire_if_within: 2h}")
    assert fired(engine, DUE + 2 * H) == [("one", 7200)]
    assert fired(engine, DUE + 2 * H + US) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_fire_if_within_shorter_than_grace_still_fires_within_grace(
    tmp_path: Path, variant: str
) -> None:
    engine = engine_of(tmp_path, VARIANTS[variant], "{fire_if_within: 1m}")
    assert fired(engine, DUE + G) == ON_TIME
    assert fired(engine, DUE + G + US) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_grace_is_the_daemons_parameter(tmp_path: Path, variant: str) -> None:
    engine = engine_of(tmp_path, VARIANTS[variant], "skip")
    assert fired(engine, DUE, grace=timedelta(0)) == ON_TIME
    assert fired(engine, DUE + US, grace=timedelta(0)) == []
    slack = G + timedelta(seconds=30)  # Runtime.grace: one poll more
    assert fired(engine, DUE + slack, grace=slack) == ON_TIME
    assert fired(engine, DUE + slack + US, grace=slack) == []


def test_the_cut_does_not_swallow_a_later_step_that_catches_up(tmp_path: Path) -> None:
    """Step one is missed beyond catching up, step two (within 2h) still fires: the cut (every
    step given up) must not be reached a microsecond early."""
    engine = engine_of(tmp_path, """
      since: created_at
      steps:
        - {id: one, after: 1h, catch_up: skip, do: [{tag: [one]}]}
        - {id: two, after: 2h, catch_up: {fire_if_within: 2h}, do: [{tag: [two]}]}
    """)
    record = Record(REF, {"status": "open", "created_at": T0.isoformat()}, T0)
    for now, expected in [(T0 + 4 * H, ["two"]), (T0 + 4 * H + US, [])]:
        for _ in range(2):  # the second through the remembered cut
            result = engine.evaluate(record, None, {}, now)
            assert [i.step for i in result.intents] == expected, now


@pytest.mark.parametrize(("weekday", "to", "expected"), [
    ("MON", "1d", 1),  # the anchor's own date: `from` included
    ("TUE", "1d", 0),  # the date of `to`: excluded
    ("TUE", "2d", 1),
])
def test_a_pattern_runs_from_included_to_excluded(
    tmp_path: Path, weekday: str, to: str, expected: int
) -> None:
    engine = engine_of(tmp_path, f"""
      since: created_at
      steps:
        - {{id: one, every: [{weekday}], from: 0d, to: {to}, at: "11:00", do: [{{tag: [a]}}]}}
    """)
    record = Record(REF, {"status": "open", "created_at": T0.isoformat()}, T0)
    result = engine.evaluate(record, None, {}, T0)
    assert len(result.timers) == expected


def test_an_age_test_flips_at_its_instant(tmp_path: Path) -> None:
    path = tmp_path / "age.yaml"
    path.write_text("rules:\n  - id: old\n    on: zendesk.ticket\n"
                    "    when: {status: open, created_at: {older_than: 2h}}\n"
                    "    do: [{tag: [old]}]\n")
    result = load_rules([path])
    assert not result.errors
    engine = Engine(result.ruleset)
    record = Record(REF, {"status": "open", "created_at": T0.isoformat()}, T0)
    before = engine.evaluate(record, None, {}, T0 + 2 * H - US)
    assert before.intents == [] and before.next_wake == T0 + 2 * H
    at = engine.evaluate(record, None, before.memory, T0 + 2 * H)
    assert [i.action for i in at.intents] == ["tag"]
    assert at.intents[0].reason["entered_at"] == (T0 + 2 * H).isoformat()


def test_a_wake_timer_makes_a_record_due_at_its_instant(tmp_path: Path) -> None:
    """The daemon re-reads a record from its vendor before acting on it because time passed
    (planner.due_by_time): an age test's wake-up counts from its instant on."""
    path = tmp_path / "age.yaml"
    path.write_text("rules:\n  - id: old\n    on: zendesk.ticket\n"
                    "    when: {status: open, created_at: {older_than: 2h}}\n"
                    "    do: [{tag: [old]}]\n")
    engine = Engine(load_rules([path]).ruleset)
    record = Record(REF, {"status": "open", "created_at": T0.isoformat()}, T0)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.transaction() as tx:
            apply_record(tx, engine, record, T0, DEFAULT_GRACE)
            assert [t.due_at for t in tx.timers.for_record(REF)] == [T0 + 2 * H]
            assert not due_by_time(tx, engine, record, T0 + 2 * H - US, DEFAULT_GRACE)
            assert due_by_time(tx, engine, record, T0 + 2 * H, DEFAULT_GRACE)
    finally:
        store.close()


def test_stored_timers_are_due_at_their_instant(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.transaction() as tx:
            tx.timers.replace("r", REF, [TimerSpec("k", "one", DUE)], T0)
        with store.read() as tx:
            assert tx.timers.due(DUE - US) == []
            assert [t.key for t in tx.timers.due(DUE)] == ["k"]
            assert tx.timers.next_due() == DUE
    finally:
        store.close()


def test_a_repeat_fired_at_its_instant_schedules_the_next_occurrence(tmp_path: Path) -> None:
    engine = engine_of(tmp_path, VARIANTS["repeat"])
    record = Record(REF, {"status": "open", "created_at": T0.isoformat()}, T0)
    result = engine.evaluate(record, None, {}, DUE)
    assert [(i.step, i.occurrence) for i in result.intents] == [("one", 0)]
    assert result.next_wake == DUE + 1000 * H


@pytest.mark.parametrize("missed", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_missed_repeats_collapse_into_the_one_due_exactly_now(
    tmp_path: Path, missed: int
) -> None:
    """Occurrence `missed` falls due exactly now: it fires on time, the ones before it collapse
    into it, the next one is scheduled."""
    engine = engine_of(tmp_path, """
      since: created_at
      steps:
        - {id: one, after: 1h, repeat: every 1h, do: [{tag: [one]}]}
    """)
    record = Record(REF, {"status": "open", "created_at": T0.isoformat()}, T0)
    now = DUE + missed * H
    result = engine.evaluate(record, None, {}, now)
    assert [(i.occurrence, i.due_at, i.reason.get("caught_up_after_s"))
            for i in result.intents] == [(missed, now, None)]
    assert result.next_wake == now + H
    before = engine.evaluate(record, None, {}, now - US)
    assert [i.occurrence for i in before.intents] == [missed - 1]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_timer_and_the_intent_of_a_step_share_its_key_and_say_why(
    tmp_path: Path, variant: str
) -> None:
    """The timer set a microsecond early names the step's occurrence (its key is the key the
    intent will have); the intent's reason is what the audit shows."""
    engine = engine_of(tmp_path, VARIANTS[variant])
    record = Record(REF, {"status": "open", "created_at": T0.isoformat()}, T0)
    early = engine.evaluate(record, None, {}, DUE - US)
    timers = {t.step: t for t in early.timers}
    assert set(timers) == {"general": {"one", "later"}, "simple": {"one", "two"},
                           "became": {"one", "two"}}.get(variant, {"one"})
    timer = timers["one"]
    assert (timer.rule_id, timer.record, timer.due_at, timer.anchor) == ("r", REF, DUE, T0)
    [intent] = [i for i in engine.evaluate(record, None, {}, DUE).intents if i.step == "one"]
    assert (intent.key, intent.occurrence, intent.due_at) == (timer.key, 0, DUE)
    assert intent.reason["anchor"] == T0.isoformat()
    assert intent.reason["due_at"] == DUE.isoformat()
    assert intent.reason["when"] == {"status": "open"}
    assert "deferred_anchor" not in intent.reason and "caught_up_after_s" not in intent.reason


@pytest.mark.parametrize(("weekday", "due"), [
    ("TUE", [datetime(2026, 3, 2, 20, 0, tzinfo=UTC)]),  # 09:00 NZDT on Tuesday
    ("MON", []),  # Monday is the UTC date, not a local one in [from, to)
])
def test_a_pattern_counts_dates_in_the_calendars_timezone(
    tmp_path: Path, weekday: str, due: list[datetime]
) -> None:
    """12:00 UTC on Monday is 01:00 on Tuesday in Auckland: a pattern from 0d to 1d has that
    local Tuesday only, whatever the host's timezone."""
    path = tmp_path / "nz.yaml"
    path.write_text(textwrap.dedent("""
        calendars:
          nz: {timezone: Pacific/Auckland, hours: {mon-fri: ["09:00-17:00"]}}
        defaults: {calendar: nz}
        rules:
          - id: r
            on: zendesk.ticket
            when: {status: open}
            since: created_at
            steps:
              - {id: one, every: [DAY], from: 0d, to: 1d, at: "09:00", do: [{tag: [a]}]}
    """).replace("DAY", weekday))
    result = load_rules([path])
    assert not result.errors, [str(d) for d in result.errors]
    anchor = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    record = Record(REF, {"status": "open", "created_at": anchor.isoformat()}, anchor)
    found = Engine(result.ruleset).evaluate(record, None, {}, anchor)
    assert [t.due_at for t in found.timers] == due
    assert found.intents == []  # nor a local Monday before the anchor, caught up


@pytest.mark.parametrize("variant", ["simple", "became"])
def test_the_remembered_cut_holds_for_its_instant_and_grace_only(
    tmp_path: Path, variant: str
) -> None:
    """The missed-ladder cut remembered at one `now` (every step given up) must not swallow a
    step at another instant or grace: `syncd replay` and a clock stepped back evaluate earlier
    instants on the same engine, and the daemon widens the grace (mutmut, issue 17)."""
    engine = engine_of(tmp_path, VARIANTS[variant], "skip")
    assert fired(engine, DUE + 30 * 24 * H) == []  # long missed: the cut covers the anchor
    assert fired(engine, DUE) == ON_TIME  # an earlier instant: on time
    assert fired(engine, DUE + 30 * 24 * H) == []
    late = DUE + 30 * 24 * H
    assert fired(engine, late, grace=30 * 24 * H) == ON_TIME  # a grace that reaches it
