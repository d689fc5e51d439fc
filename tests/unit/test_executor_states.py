"""The executor's and the planner's state transitions, on the real store (SQLite in a temp dir)
with a small fake of the vendor boundary (the `Connector` protocol, connectors/base.py).

planned -> sent -> done | failed (retried after backoff, verified first) | dead | unknown |
skipped; the kill switch holds everything; a crash between the vendor call and its record is
settled by verifying, never by sending blindly. The planner stores a record, plans its intents
once (a replayed page plans nothing) and settles the record's timers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from syncd.clock import FrozenClock
from syncd.connectors.base import MISS_REFRESH_S, Directory, DirectoryGroup, DirectoryUser, Page
from syncd.daemon.baseline import hold_back
from syncd.daemon.executor import Drained, Executor, backoff
from syncd.daemon.planner import Applied, apply_record, due_by_time, merged
from syncd.daemon.runtime import Runtime
from syncd.model import Operation, Outcome, Record, RecordRef
from syncd.rules.engine import DEFAULT_GRACE, Engine
from syncd.rules.language.loader import load_rules
from syncd.settings import LimitsSection, Settings, SyncdSection
from syncd.store.db import open_store
from syncd.store.ledger import IntentState, LedgerEntry

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
H = timedelta(hours=1)
TICKET = RecordRef("zendesk.ticket", "7")
RULES = """
rules:
  - id: triage
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [triaged]}]
  - id: shadowed
    on: zendesk.ticket
    mode: shadow
    when: {status: new, priority: urgent}
    do: [{tag: [shadow]}]
  - id: label
    on: zendesk.ticket
    when: {status: hold}
    do: [{tag: ["{{ ticket.subject }}"]}]
  - id: ladder
    on: zendesk.ticket
    when: {status: [new, open]}
    since: created_at
    until: {agent_touched: true}
    steps:
      - {id: one, after: 1h, do: [{comment: {body: "still waiting"}}]}
"""


class Crash(BaseException):
    """The process dies in the middle of a vendor call (not an error any handler catches)."""


@dataclass
class FakeZendesk:
    """The vendor boundary: what was sent, what is there, what it answers."""

    system: str = "zendesk"
    kinds: frozenset[str] = frozenset({"zendesk.ticket"})
    extra_fields: frozenset[str] = frozenset()
    answers: list[Outcome] = field(default_factory=list)  # next execute answers, then ok
    applied_anyway: bool = False  # a failed answer whose write happened (a 500 after commit)
    crash: bool = False
    verify_answer: Outcome | None = None
    sent: list[Operation] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    present: set[str] = field(default_factory=set)
    fetched: list[RecordRef] = field(default_factory=list)
    records: dict[RecordRef, Record] = field(default_factory=dict)

    def poll_pages(self, cursor: str | None,
                   kinds: Collection[str] | None = None) -> Iterator[Page]:
        yield Page([], cursor or "")

    def execute(self, op: Operation) -> Outcome:
        self.sent.append(_read(op))
        answer = self.answers.pop(0) if self.answers else Outcome(ok=True, detail={"id": 1})
        if answer.ok or self.applied_anyway or self.crash:
            self.present.add(op.key)
        if self.crash:
            raise Crash
        return answer

    def execute_many(self, ops: Sequence[Operation]) -> list[Outcome]:
        return [self.execute(op) for op in ops]

    def verify(self, op: Operation) -> Outcome:
        self.verified.append(op.key)
        if self.verify_answer is not None:
            return self.verify_answer
        if op.key in self.present:
            return Outcome(ok=True, detail={"found": op.target})
        return Outcome(ok=False, error="absent")

    def fetch(self, ref: RecordRef) -> Record | None:
        self.fetched.append(ref)
        return self.records.get(ref)

    def fetch_many(
        self, refs: Sequence[RecordRef], *, extras: bool = True
    ) -> dict[RecordRef, Record | None]:
        return {ref: self.fetch(ref) for ref in refs}

    def directory(self, max_age_s: float | None = None) -> Directory:
        return Directory()


def _read(op: Operation) -> Operation:
    """`op` as sent: an attachment's file (closed once the call returns) read as it was."""
    attachments = op.payload.get("attachments")
    if not attachments:
        return op
    read = [{"filename": a["filename"], "read": a["file"].read()} if "file" in a else a
            for a in attachments]
    return Operation(op.key, op.system, op.verb, op.target, {**op.payload, "attachments": read})


def engine_of(tmp_path: Path, rules: str, name: str = "rules") -> Engine:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "rules.yaml").write_text(textwrap.dedent(rules))
    result = load_rules(folder)
    assert not result.errors, [str(d) for d in result.errors]
    return Engine(result.ruleset)


class World:
    """A runtime on a temp state dir, a frozen clock and the fake Zendesk."""

    def __init__(self, tmp_path: Path, max_attempts: int = 8, dry_run: bool = False) -> None:
        self.tmp_path = tmp_path
        self.clock = FrozenClock(T0)
        self.zendesk = FakeZendesk()
        settings = Settings(syncd=SyncdSection(state_dir=tmp_path, max_attempts=max_attempts,
                                               rules_dir=tmp_path / "rules"))
        self.rt = Runtime(settings=settings, clock=self.clock,
                          store=open_store(settings.syncd.store_url, max_attempts=max_attempts),
                          engine=engine_of(tmp_path, RULES), connectors={"zendesk": self.zendesk},
                          dry_run=dry_run)

    def see(self, at: datetime | None = None, ref: RecordRef = TICKET, **fields: Any) -> Applied:
        """A version of a ticket as a poll would store it (fields merged into the last)."""
        at = at or self.clock.now()
        with self.rt.store.transaction() as tx:
            stored = tx.records.get(ref)
            base = dict(stored.fields) if stored else {"created_at": T0.isoformat()}
            return apply_record(tx, self.rt.engine, Record(ref, {**base, **fields}, at), at,
                                DEFAULT_GRACE)

    def drain(self) -> Drained:
        return Executor(self.rt).drain()

    def entry(self, key: str) -> LedgerEntry:
        with self.rt.store.read() as tx:
            found = tx.ledger.get(key)
        assert found is not None
        return found

    def events(self, key: str) -> list[str]:
        with self.rt.store.read() as tx:
            return [row.event for row in tx.audit.for_intent(key)]

    def close(self) -> None:
        self.rt.store.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    found = World(tmp_path)
    yield found
    found.close()


def only(applied: Applied) -> str:
    assert len(applied.planned) == 1, applied
    return applied.planned[0]


# -- executor ------------------------------------------------------------------------------
def test_planned_then_sent_then_done(world: World) -> None:
    key = only(world.see(status="new"))
    assert world.entry(key).state == IntentState.PLANNED
    assert world.drain() == Drained(done=1)
    assert [(o.key, o.verb, o.target, dict(o.payload)) for o in world.zendesk.sent] == [
        (key, "add_tags", "7", {"tags": ["triaged"]})]
    entry = world.entry(key)
    assert (entry.state, entry.attempts, entry.sent_at) == (IntentState.DONE, 0, T0)
    assert entry.vendor_answer == {key: {"id": 1}}
    assert world.events(key) == ["planned", "sent", "prepared", "done"]
    assert world.zendesk.verified == []  # a first send is not verified
    assert world.drain() == Drained()  # done stays done


def test_a_write_no_later_intent_reads_waits_for_the_next_poll(world: World) -> None:
    """Read-your-own-writes costs a read only before an intent that reads the written record
    (one on it, or a dispatch/assign): two unrelated writes read nothing back."""
    other = RecordRef("zendesk.ticket", "8")
    world.zendesk.records[TICKET] = Record(TICKET, {"status": "new", "tags": ["triaged"]}, T0)
    first, second = only(world.see(status="new")), only(world.see(ref=other, status="new"))
    assert world.drain() == Drained(done=2)
    assert [o.key for o in world.zendesk.sent] == [first, second]
    assert world.zendesk.fetched == []


def test_a_retryable_failure_waits_its_backoff_and_is_verified_before_it_is_sent_again(
    world: World,
) -> None:
    key = only(world.see(status="new"))
    world.zendesk.answers = [Outcome(ok=False, retryable=True, error="503")]
    assert world.drain() == Drained(failed=1)
    entry = world.entry(key)
    assert (entry.state, entry.attempts) == (IntentState.FAILED, 1)
    assert entry.last_error == f"{key}: 503"
    assert entry.next_attempt_at == T0 + timedelta(seconds=10)
    world.clock.set(T0 + timedelta(seconds=10) - US)
    assert world.drain() == Drained()  # not yet
    world.clock.set(T0 + timedelta(seconds=10))
    assert world.drain() == Drained(done=1)
    assert world.zendesk.verified == [key]  # absent: sent again, the same operation
    assert [o.key for o in world.zendesk.sent] == [key, key]
    assert world.events(key) == ["planned", "sent", "prepared", "failed", "sent", "done"]


def test_a_failure_that_hid_an_applied_write_is_not_sent_twice(world: World) -> None:
    key = only(world.see(status="new"))
    world.zendesk.answers = [Outcome(ok=False, retryable=True, error="500")]
    world.zendesk.applied_anyway = True
    world.drain()
    world.clock.advance(timedelta(minutes=1))
    assert world.drain() == Drained(done=1)
    assert len(world.zendesk.sent) == 1
    entry = world.entry(key)
    assert entry.state == IntentState.DONE
    assert entry.vendor_answer == {"verified": {key: {"found": "7"}}}


def test_a_refusal_is_a_dead_letter(world: World) -> None:
    key = only(world.see(status="new"))
    world.zendesk.answers = [Outcome(ok=False, retryable=False, error="422 invalid tag")]
    assert world.drain() == Drained(failed=1)
    entry = world.entry(key)
    assert (entry.state, entry.attempts) == (IntentState.DEAD, 1)
    assert "422 invalid tag" in (entry.last_error or "")
    assert len(world.rt.failures) == 1
    world.clock.advance(timedelta(days=1))
    assert world.drain() == Drained() and len(world.zendesk.sent) == 1


def test_the_last_attempt_is_a_dead_letter(tmp_path: Path) -> None:
    world = World(tmp_path, max_attempts=2)
    try:
        key = only(world.see(status="new"))
        world.zendesk.answers = [Outcome(ok=False, retryable=True, error="503")] * 2
        world.drain()
        assert world.entry(key).state == IntentState.FAILED
        world.clock.advance(timedelta(minutes=1))
        world.drain()
        entry = world.entry(key)
        assert (entry.state, entry.attempts) == (IntentState.DEAD, 2)
    finally:
        world.close()


def test_a_refused_verification_holds_the_intent_for_a_person(world: World) -> None:
    key = only(world.see(status="new"))
    world.zendesk.answers = [Outcome(ok=False, retryable=True, error="503")]
    world.drain()
    world.clock.advance(timedelta(minutes=1))
    world.zendesk.verify_answer = Outcome(ok=False, error="forbidden", detail={"status": 403})
    assert world.drain() == Drained(unknown=1)
    assert world.entry(key).state == IntentState.UNKNOWN
    assert len(world.zendesk.sent) == 1  # "refused" is not "absent": never sent blindly
    world.clock.advance(timedelta(days=1))
    assert world.drain() == Drained()


def test_a_verification_that_cannot_tell_retries_later_without_sending(world: World) -> None:
    key = only(world.see(status="new"))
    world.zendesk.answers = [Outcome(ok=False, retryable=True, error="503")]
    world.drain()
    world.clock.set(T0 + timedelta(minutes=1))
    world.zendesk.verify_answer = Outcome(ok=False, retryable=True, error="timeout")
    assert world.drain() == Drained(failed=1)
    entry = world.entry(key)
    assert (entry.state, entry.attempts) == (IntentState.FAILED, 2)
    assert entry.next_attempt_at == T0 + timedelta(minutes=1) + backoff(1)
    assert len(world.zendesk.sent) == 1


@pytest.mark.parametrize("applied", [True, False])
def test_a_crash_mid_call_is_settled_by_verifying(tmp_path: Path, applied: bool) -> None:
    world = World(tmp_path)
    try:
        key = only(world.see(status="new"))
        world.zendesk.crash = True
        with pytest.raises(Crash):
            world.drain()
        assert world.entry(key).state == IntentState.SENT
        world.zendesk.crash = False
        if not applied:
            world.zendesk.present.clear()
        Executor(world.rt).recover()  # the restarted daemon
        entry = world.entry(key)
        if applied:
            assert entry.state == IntentState.DONE
            assert entry.vendor_answer == {"verified": {key: {"found": "7"}}}
            assert world.drain() == Drained()
            assert len(world.zendesk.sent) == 1
        else:
            assert (entry.state, entry.next_attempt_at) == (IntentState.FAILED, T0)
            assert world.drain() == Drained(done=1)
            assert len(world.zendesk.sent) == 2
    finally:
        world.close()


def test_the_kill_switch_holds_everything_until_removed(world: World) -> None:
    key = only(world.see(status="new"))
    stop = Path(world.rt.settings.syncd.kill_switch_file)
    stop.touch()
    assert world.drain() == Drained(held=1)
    assert world.entry(key).state == IntentState.PLANNED and world.zendesk.sent == []
    stop.unlink()
    assert world.drain() == Drained(done=1)


def test_shadow_intents_are_skipped_never_sent(world: World) -> None:
    world.see(status="new", priority="urgent")
    assert world.drain() == Drained(done=1, skipped=1)
    assert [o.payload["tags"] for o in world.zendesk.sent] == [["triaged"]]


def test_a_dry_run_skips_everything(tmp_path: Path) -> None:
    world = World(tmp_path, dry_run=True)
    try:
        key = only(world.see(status="new"))
        (tmp_path / "STOP").touch()  # the kill switch does not hold a rehearsal
        assert world.drain() == Drained(skipped=1)
        assert world.entry(key).state == IntentState.SKIPPED and world.zendesk.sent == []
    finally:
        world.close()


def test_an_intent_of_a_removed_rule_is_skipped(world: World) -> None:
    key = only(world.see(status="new"))
    world.rt.engine = engine_of(world.tmp_path, "rules: []\n", "other")
    assert world.drain() == Drained(skipped=1)
    assert world.entry(key).state == IntentState.SKIPPED and world.zendesk.sent == []


def test_an_action_with_nothing_to_do_is_skipped(world: World) -> None:
    key = only(world.see(status="hold", subject="  "))
    assert world.drain() == Drained(skipped=1)
    assert world.entry(key).state == IntentState.SKIPPED and world.zendesk.sent == []


def test_a_conflict_rereads_the_record_and_retries_at_once(world: World) -> None:
    key = only(world.see(status="new"))
    world.zendesk.answers = [Outcome(ok=False, error="conflict")]
    assert world.drain() == Drained(failed=1)
    assert world.zendesk.fetched == [TICKET]
    entry = world.entry(key)
    assert (entry.state, entry.next_attempt_at) == (IntentState.FAILED, T0)
    assert world.drain() == Drained(done=1)  # the next pass, at the same instant


def test_an_intent_on_a_deleted_record_is_failed_for_good(world: World) -> None:
    key = only(world.see(status="new"))
    with world.rt.store.transaction() as tx:
        tx.records.upsert(Record(TICKET, {"status": "new"}, T0, deleted=True))
    assert world.drain() == Drained(failed=1)
    entry = world.entry(key)
    assert entry.state == IntentState.DEAD and world.zendesk.sent == []
    assert entry.last_error == "zendesk.ticket:7 is deleted"


@pytest.mark.parametrize(
    ("attempts", "retry_after", "seconds"),
    [(0, None, 10), (1, None, 20), (3, None, 80), (9, None, 3600), (30, None, 3600),
     (0, 25, 25), (0, 5, 10), (-1, None, 10)],
)
def test_backoff(attempts: int, retry_after: float | None, seconds: float) -> None:
    outcome = Outcome(ok=False, retryable=True, detail={"retry_after": retry_after})
    assert backoff(attempts, outcome) == timedelta(seconds=seconds)


# -- planner -------------------------------------------------------------------------------
def test_a_replayed_version_plans_nothing_new(world: World) -> None:
    first = world.see(status="new")
    again = world.see(status="new")
    assert len(first.planned) == 1 and again.planned == []
    with world.rt.store.read() as tx:
        counts = {state: n for state, n in tx.ledger.count_by_state().items() if n}
    assert counts == {IntentState.PLANNED: 1}


def test_a_baseline_records_instant_rules_skipped(world: World) -> None:
    at = T0
    with world.rt.store.transaction() as tx:
        applied = apply_record(tx, world.rt.engine,
                               Record(TICKET, {"status": "new", "created_at": at.isoformat()}, at),
                               at, DEFAULT_GRACE, baseline=True)
        assert hold_back(tx, applied.holding, at) == 1  # the poller's, once per page
    assert world.entry(applied.planned[0]).state == IntentState.SKIPPED


def test_merged_keeps_what_only_a_single_read_returns() -> None:
    stored = Record(TICKET, {"status": "new", "agent_touched": True}, T0)
    polled = Record(TICKET, {"status": "open"}, T0 + US)
    assert merged(polled, stored).fields == {"status": "open", "agent_touched": True}
    assert merged(polled, None) is polled
    assert merged(polled, Record(TICKET, {"x": 1}, T0, deleted=True)) is polled


def test_a_poll_without_a_field_keeps_the_value_a_single_read_stored(world: World) -> None:
    """Polls leave out `agent_touched` (only a single-ticket read has it): the stored value
    stays, so the ladder's `until` still holds and the due step does not fire."""
    world.see(status="open", agent_touched=True)
    polled = Record(TICKET, {"status": "open", "created_at": T0.isoformat()}, T0 + H)
    with world.rt.store.transaction() as tx:
        applied = apply_record(tx, world.rt.engine, polled, T0 + H, DEFAULT_GRACE)
        stored = tx.records.get(TICKET)
        assert due_by_time(tx, world.rt.engine, polled, T0 + H, DEFAULT_GRACE) is False
    assert applied.planned == []
    assert stored is not None and stored.fields["agent_touched"] is True


def test_a_timer_fires_at_its_instant_and_not_a_microsecond_before(world: World) -> None:
    world.see(status="open")
    due = T0 + timedelta(hours=1)
    with world.rt.store.read() as tx:
        assert [(t.step, t.due_at) for t in tx.timers.for_record(TICKET)] == [("one", due)]
        assert not due_by_time(tx, world.rt.engine, tx.records.get(TICKET), due - US,
                               DEFAULT_GRACE)
        assert due_by_time(tx, world.rt.engine, tx.records.get(TICKET), due, DEFAULT_GRACE)
    assert world.see(due - US).planned == []
    with world.rt.store.read() as tx:
        assert len(tx.timers.for_record(TICKET)) == 1
    key = only(world.see(due))
    assert world.entry(key).intent.step == "one"
    with world.rt.store.read() as tx:
        assert tx.timers.for_record(TICKET) == []
        assert "timer_fired" in [row.event for row in tx.audit.for_record(TICKET)]


def test_a_due_timer_that_plans_nothing_is_cancelled_with_the_reason(world: World) -> None:
    world.see(status="open")
    world.see(T0 + timedelta(hours=1), agent_touched=True)
    with world.rt.store.read() as tx:
        assert tx.timers.for_record(TICKET) == []
        cancelled = [row.detail for row in tx.audit.for_record(TICKET)
                     if row.event == "timer_cancelled"]
    assert [d["reason"] for d in cancelled] == ["`until` held when the record was re-read"]


def test_a_record_that_leaves_when_cancels_its_timer_saying_so(world: World) -> None:
    world.see(status="open")
    world.see(T0 + timedelta(minutes=10), status="solved")
    with world.rt.store.read() as tx:
        assert tx.timers.for_record(TICKET) == []
        cancelled = [row.detail for row in tx.audit.for_record(TICKET)
                     if row.event == "timer_cancelled"]
    assert [d["reason"] for d in cancelled] == ["`when` no longer held when the record changed"]


# -- limits, directories, look-ups, the `else` path -----------------------------------------
SUPPORT = Directory(
    users={"11": DirectoryUser("11", "Ann", "ann@example.com")},
    groups={"100": DirectoryGroup("100", "Support", frozenset({"11"}))},
)
MORE_RULES = """
rules:
  - id: route
    on: zendesk.ticket
    when: {status: new}
    do: [{assign: {group: Support}}]
  - id: transcripts
    on: sharepoint.file
    when: {name: {matches: "vtt$"}}
    do: [{file_transcript: {ticket_from: "#(\\\\d+)", else_folder: Unfiled}}]
"""


@dataclass
class FakeGraph(FakeZendesk):
    system: str = "graph"
    kinds: frozenset[str] = frozenset({"sharepoint.file"})

    def download_to(self, path: str, sink: BinaryIO) -> None:
        sink.write(b"WEBVTT")


def test_past_a_limit_an_intent_is_held_not_sent(tmp_path: Path) -> None:
    world = World(tmp_path)
    try:
        settings = world.rt.settings
        world.rt.settings = settings.model_copy(
            update={"limits": LimitsSection(rule_per_cycle={"any": 1})})
        first = only(world.see(status="new"))
        second = only(world.see(ref=RecordRef("zendesk.ticket", "8"), status="new"))
        assert world.drain() == Drained(done=1, limited=1)
        assert world.entry(first).state == IntentState.DONE
        assert world.entry(second).state == IntentState.HELD
        assert world.drain() == Drained()  # held for a person, not retried by itself
    finally:
        world.close()


def test_a_directory_is_read_outside_the_claim_then_the_intent_prepared(tmp_path: Path) -> None:
    world = World(tmp_path)
    try:
        world.rt.engine = engine_of(tmp_path, MORE_RULES, "more")
        reads: list[float | None] = []

        def directory(max_age_s: float | None = None) -> Directory:
            reads.append(max_age_s)
            return SUPPORT

        world.zendesk.directory = directory  # type: ignore[method-assign]
        key = only(world.see(status="new"))
        assert world.drain() == Drained(done=1)
        assert reads == [None]  # read once, when the action first asked for it
        assert [dict(o.payload) for o in world.zendesk.sent] == [{"group_id": 100}]
        assert world.entry(key).state == IntentState.DONE
    finally:
        world.close()


def test_somebody_missing_from_the_directory_is_looked_for_once_more(tmp_path: Path) -> None:
    world = World(tmp_path)
    try:
        world.rt.engine = engine_of(tmp_path, MORE_RULES, "more")
        reads: list[float | None] = []

        def directory(max_age_s: float | None = None) -> Directory:
            reads.append(max_age_s)
            return Directory()  # no group Support, however fresh

        world.zendesk.directory = directory  # type: ignore[method-assign]
        key = only(world.see(status="new"))
        assert world.drain() == Drained(failed=1)
        assert reads == [None, MISS_REFRESH_S]
        entry = world.entry(key)
        assert entry.state == IntentState.DEAD and "no zendesk group named 'Support'" in (
            entry.last_error or "")
    finally:
        world.close()


def transcript_world(tmp_path: Path) -> tuple[World, FakeGraph, str]:
    world = World(tmp_path)
    graph = FakeGraph()
    world.rt.connectors = {"zendesk": world.zendesk, "graph": graph}
    world.rt.engine = engine_of(tmp_path, MORE_RULES, "more")
    file = RecordRef("sharepoint.file", "f1")
    with world.rt.store.transaction() as tx:
        applied = apply_record(tx, world.rt.engine,
                               Record(file, {"name": "call #7.vtt", "path": "Calls/call #7.vtt"},
                                      T0), T0, DEFAULT_GRACE)
    return world, graph, only(applied)


def test_a_ticket_not_read_yet_is_looked_up_once_then_the_file_attached(tmp_path: Path) -> None:
    world, _, key = transcript_world(tmp_path)
    try:
        world.zendesk.records[TICKET] = Record(TICKET, {"status": "open"}, T0)
        assert world.drain() == Drained(done=1)
        assert world.zendesk.fetched[:1] == [TICKET]
        [op] = world.zendesk.sent
        assert (op.verb, op.target, op.payload["public"]) == ("comment", "7", False)
        assert op.payload["attachments"] == [{"filename": "call #7.vtt",
                                              "read": b"WEBVTT"}]  # streamed from a file
        with world.rt.store.read() as tx:  # the frozen operation names the file, not its bytes
            prepared = [r.detail for r in tx.audit.for_intent(key) if r.event == "prepared"]
        assert prepared[0]["ops"][0]["payload"]["attachments"] == [
            {"filename": "call #7.vtt", "drive_path": "Calls/call #7.vtt"}]
    finally:
        world.close()


def test_a_refused_attachment_takes_the_else_path_in_the_same_pass(tmp_path: Path) -> None:
    world, graph, key = transcript_world(tmp_path)
    try:
        with world.rt.store.transaction() as tx:
            tx.records.upsert(Record(TICKET, {"status": "closed"}, T0))
        world.zendesk.answers = [Outcome(ok=False, error="422 ticket closed")]
        assert world.drain() == Drained(done=1)
        assert [(o.key, o.verb, dict(o.payload)) for o in graph.sent] == [
            (key + "#copy", "copy_file", {"destination": "Unfiled"})]
        assert world.entry(key).state == IntentState.DONE
        assert world.events(key) == ["planned", "sent", "prepared", "refused", "failed", "sent",
                                     "prepared", "done"]
    finally:
        world.close()


def test_an_instant_rule_fires_once_per_entry_across_versions(world: World) -> None:
    """Rule memory is read and written by the planner: a later version still in `when` (a new
    observed_at, so a new entry instant if the memory were lost) plans nothing."""
    assert len(world.see(status="new").planned) == 1
    minutes = timedelta(minutes=10)  # before the ladder's step falls due
    assert world.see(T0 + minutes, status="new", subject="more").planned == []
    assert world.see(T0 + 2 * minutes, status="open").planned == []
    assert len(world.see(T0 + 3 * minutes, status="new").planned) == 1  # a new entry


def test_a_step_due_on_first_sight_makes_the_record_due_by_time(world: World) -> None:
    """No timer exists yet for a record first read late: the engine says a step is due."""
    record = Record(TICKET, {"status": "open", "created_at": (T0 - 2 * H).isoformat()}, T0)
    fresh = Record(TICKET, {"status": "open", "created_at": T0.isoformat()}, T0)
    with world.rt.store.read() as tx:
        assert due_by_time(tx, world.rt.engine, record, T0, DEFAULT_GRACE)
        assert not due_by_time(tx, world.rt.engine, fresh, T0, DEFAULT_GRACE)


def test_a_baseline_past_due_skips_the_steps_already_due(world: World) -> None:
    old = Record(TICKET, {"status": "open", "created_at": (T0 - 2 * H).isoformat()}, T0)
    with world.rt.store.transaction() as tx:
        kept = apply_record(tx, world.rt.engine, old, T0, DEFAULT_GRACE, baseline=True)
        assert hold_back(tx, kept.holding, T0) == 0
    assert world.entry(only(kept)).state == IntentState.PLANNED
    other = Record(RecordRef("zendesk.ticket", "8"), old.fields, T0)
    with world.rt.store.transaction() as tx:
        skipped = apply_record(tx, world.rt.engine, other, T0, DEFAULT_GRACE, baseline=True,
                               past_due=True)
        assert hold_back(tx, skipped.holding, T0) == 1
    assert world.entry(only(skipped)).state == IntentState.SKIPPED


def test_an_instant_rule_that_fails_on_a_record_plans_nothing_and_fires_once_fixed(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    try:
        world.rt.engine = engine_of(tmp_path, """
rules:
  - id: first-letter
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [ok]}, {tag: ["{{ ticket.subject[0] }}"]}]
  - id: other
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [other]}]
""", "failing")
        failed = world.see(status="new", subject="")
        assert [e.rule_id for e in failed.errors] == ["first-letter"]
        assert [world.entry(k).intent.rule_id for k in failed.planned] == ["other"]
        with world.rt.store.read() as tx:
            assert list(tx.memory.of_record(["first-letter", "other"], TICKET)) == ["other"]
        fixed = world.see(T0 + H, subject="Printer")
        assert fixed.errors == []
        assert [world.entry(k).intent.rule_id for k in fixed.planned] == ["first-letter"] * 2
    finally:
        world.close()


def held_world(tmp_path: Path) -> tuple[World, str, str]:
    """Two tickets triaged in one pass under a limit of one: the second is held."""
    world = World(tmp_path)
    world.rt.settings = world.rt.settings.model_copy(
        update={"limits": LimitsSection(rule_per_cycle={"any": 1})})
    first = only(world.see(status="new"))
    second = only(world.see(ref=RecordRef("zendesk.ticket", "8"), status="new"))
    world.drain()
    assert world.entry(second).state == IntentState.HELD
    with world.rt.store.transaction() as tx:
        assert tx.ledger.release(second, "ops@example.com", T0)
    return world, first, second


def test_a_released_intent_goes_past_its_limit_after_its_record_is_re_read(
    tmp_path: Path,
) -> None:
    world, _, second = held_world(tmp_path)
    try:
        eight = RecordRef("zendesk.ticket", "8")
        world.zendesk.records[eight] = Record(eight, {"status": "new", "subject": "fresh"}, T0)
        assert world.drain() == Drained(done=1)
        assert world.zendesk.fetched[-1] == eight
        assert world.entry(second).state == IntentState.DONE
        with world.rt.store.read() as tx:
            stored = tx.records.get(eight)
        assert stored is not None and stored.fields["subject"] == "fresh"
    finally:
        world.close()


@pytest.mark.parametrize(("fresh", "why"), [
    ({"status": "solved"}, "released, but the rule no longer holds when the record was re-read"),
    (None, "released, but the record is gone at its vendor"),
])
def test_a_released_intent_whose_rule_no_longer_acts_is_skipped(
    tmp_path: Path, fresh: dict[str, Any] | None, why: str
) -> None:
    world, _, second = held_world(tmp_path)
    try:
        eight = RecordRef("zendesk.ticket", "8")
        if fresh is not None:
            world.zendesk.records[eight] = Record(eight, fresh, T0)
        sent = len(world.zendesk.sent)
        assert world.drain() == Drained(skipped=1)
        assert len(world.zendesk.sent) == sent
        with world.rt.store.read() as tx:
            skipped = [r.detail for r in tx.audit.for_intent(second) if r.event == "skipped"]
        assert skipped[0]["reason"].startswith(why)
    finally:
        world.close()


def test_a_crash_then_a_refused_verification_is_held_for_a_person(world: World) -> None:
    key = only(world.see(status="new"))
    world.zendesk.crash = True
    with pytest.raises(Crash):
        world.drain()
    world.zendesk.crash = False
    world.zendesk.verify_answer = Outcome(ok=False, error="forbidden", detail={"status": 403})
    Executor(world.rt).recover()
    entry = world.entry(key)
    assert entry.state == IntentState.UNKNOWN and "verify refused" in (entry.last_error or "")
    assert world.rt.failures and len(world.zendesk.sent) == 1


def test_a_crash_before_the_write_landed_is_failed_saying_so(world: World) -> None:
    key = only(world.see(status="new"))
    world.zendesk.crash = True
    with pytest.raises(Crash):
        world.drain()
    world.zendesk.crash = False
    world.zendesk.present.clear()
    Executor(world.rt).recover()
    assert world.entry(key).last_error == "sent, not found at the vendor"


def test_an_else_path_refused_too_is_a_dead_letter_not_a_loop(tmp_path: Path) -> None:
    world, graph, key = transcript_world(tmp_path)
    try:
        with world.rt.store.transaction() as tx:
            tx.records.upsert(Record(TICKET, {"status": "closed"}, T0))
        world.zendesk.answers = [Outcome(ok=False, error="422 ticket closed")]
        graph.answers = [Outcome(ok=False, error="403 no access to Unfiled")]
        assert world.drain() == Drained(failed=1)
        assert len(world.zendesk.sent) == 1 and len(graph.sent) == 1
        entry = world.entry(key)
        assert entry.state == IntentState.DEAD and "403 no access" in (entry.last_error or "")
    finally:
        world.close()


def test_a_conflict_stores_the_record_as_re_read(world: World) -> None:
    only(world.see(status="new"))
    world.zendesk.records[TICKET] = Record(TICKET, {"status": "new", "subject": "edited"}, T0)
    world.zendesk.answers = [Outcome(ok=False, error="conflict")]
    world.drain()
    with world.rt.store.read() as tx:
        stored = tx.records.get(TICKET)
    assert stored is not None and stored.fields["subject"] == "edited"


def test_a_connector_that_raises_is_a_retryable_failure_verified_before_a_resend(
    world: World,
) -> None:
    key = only(world.see(status="new"))

    def broken(op: Operation) -> Outcome:
        world.zendesk.sent.append(op)
        raise RuntimeError("socket closed")

    world.zendesk.execute = broken  # type: ignore[method-assign]
    assert world.drain() == Drained(failed=1)
    entry = world.entry(key)
    assert entry.state == IntentState.FAILED
    assert entry.last_error == f"{key}: RuntimeError: socket closed"


def test_a_person_orders_an_unknown_intent_sent_again_once(world: World) -> None:
    """`intents --retry` on an unknown intent: verified once more, and what the vendor still
    refuses to verify is sent again, once."""
    key = only(world.see(status="new"))
    world.zendesk.answers = [Outcome(ok=False, retryable=True, error="503")]
    world.drain()
    world.clock.advance(timedelta(minutes=1))
    world.zendesk.verify_answer = Outcome(ok=False, error="forbidden", detail={"status": 403})
    world.drain()
    assert world.entry(key).state == IntentState.UNKNOWN
    with world.rt.store.transaction() as tx:
        assert tx.ledger.resend(key, world.clock.now())
    verified = len(world.zendesk.verified)
    assert world.drain() == Drained(done=1)
    assert len(world.zendesk.verified) == verified + 1  # refused again: sent on the person's word
    assert len(world.zendesk.sent) == 2
