"""Drain the ledger: every due intent carried out exactly once, across crashes and retries.

For each due intent, in one transaction: work out its operations (actions.py), `mark_sent`, and
freeze the operations in a `prepared` audit row. Only after that commit is the vendor called;
the answer is recorded in a second transaction (`mark_done`, `mark_failed`). So an intent whose
outcome is unknown (still `sent` after a crash, or `failed` after an answer that may hide an
applied write) has its exact operations on record: each is verified at the vendor first and
only the absent ones are sent again, never a fresh choice (round robin would pick someone else).
A verification the vendor refuses (401/403: the app may not read Sent Items) is not an absence:
the intent goes to `unknown`, logged `intent_unverifiable`, and waits for a person
(`syncd intents --retry KEY` sends again what still cannot be verified, `--mark-done KEY`
records it done).

Shadow intents are skipped, `--dry-run` skips everything it would have executed (a rehearsal:
going live later does not replay it, as with shadow rules); the kill switch file holds
everything (plan and audit go on; execution resumes, in order, when the file is removed).
Past a blast-radius limit (limits.py; `max_actions_per_hour` is one) an intent never sent is
held for a person; one a person released goes past the limits, after its record is re-read:
if the rule no longer acts on it, it is skipped with the values that say why.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from syncd.connectors.base import MISS_REFRESH_S
from syncd.connectors.http import RetryableError, VendorError
from syncd.daemon.actions import (
    DRIVE_PATH,
    FALLBACKS,
    QUEUE_READERS,
    READS_OTHERS,
    ActionContext,
    already_served,
    joins,
    operations,
    served_queue,
    written,
)
from syncd.daemon.limits import Budget
from syncd.daemon.people import ActionError, DirectoryMiss, NothingToDo, People, RecordMiss
from syncd.daemon.planner import apply_record
from syncd.daemon.runtime import Runtime, log
from syncd.errors import Skippable
from syncd.model import Intent, Operation, Outcome, RecordRef
from syncd.store import silences
from syncd.store.db import Tx, connection_lost
from syncd.store.lease import Fenced
from syncd.store.ledger import RELEASED, RESEND, IntentState, LedgerEntry

PREPARED = "prepared"  # audit event holding an intent's frozen operations
REFUSED = "refused"  # audit event: the vendor refused them for good; the `else` path is next
BATCH = 100
SPOOL_BYTES = 1 << 20  # an attachment past this goes to a temporary file while it is sent
SHADOW_SIDE = "canary: shadow side"  # a `mode: canary` rule's intent for a record not chosen
BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 3600.0
UNVERIFIABLE = (401, 403)  # a verify answered so: the effect cannot be seen, not that it is absent
# an earlier action of the same `do:` list in one of these states holds the later ones back
WAITING = (IntentState.PLANNED, IntentState.SENT, IntentState.FAILED)


@dataclass
class Drained:
    """What one pass did, by outcome."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    held: int = 0  # due but held by the kill switch
    limited: int = 0  # held past a blast-radius limit, for a person to release
    unknown: int = 0  # held for a person: the vendor refused to verify
    deferred: int = 0  # waiting for an earlier action of its `do:` list


class _Lost(Skippable):
    """Another executor claimed the intent first: roll the claim back, do nothing."""


class _Refused(Skippable):
    """A vendor refused the read that would show an operation's effect (401/403)."""


def backoff(attempts: int, outcome: Outcome | None = None) -> timedelta:
    """10 s, 20 s, 40 s ... capped at an hour (the connector has already retried for up to two
    minutes before an intent fails); a vendor's Retry-After wins if longer."""
    wait = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempts, 0))
    asked = (outcome.detail.get("retry_after") if outcome else None) or 0
    return timedelta(seconds=max(wait, float(asked)))


def to_json(ops: Sequence[Operation]) -> list[dict[str, Any]]:
    return [{"key": o.key, "system": o.system, "verb": o.verb, "target": o.target,
             "payload": dict(o.payload)} for o in ops]


def resend_ordered(tx: Tx, key: str) -> bool:
    """A person asked (`syncd intents --retry`) to send an unknown intent again without
    verifying, and it has not been sent since."""
    events = [row.event for row in tx.audit.for_intent(key)]
    last = max((i for i, e in enumerate(events) if e == RESEND), default=-1)
    return last >= 0 and "sent" not in events[last + 1 :]


def released(tx: Tx, key: str) -> bool:
    """A person released the intent from its limit (`syncd intents --release`)."""
    return RELEASED in (row.event for row in tx.audit.for_intent(key))


def frozen(tx: Tx, key: str) -> list[Operation] | None:
    """The operations the intent's last claim froze, None if it was never sent."""
    rows = [row for row in tx.audit.for_intent(key) if row.event == PREPARED]
    if not rows:
        return None
    return [Operation(o["key"], o["system"], o["verb"], o["target"], o["payload"])
            for o in rows[-1].detail["ops"]]


def refusal(tx: Tx, key: str) -> str | None:
    """The vendor's reason when the intent's last operations were refused for good and its
    `else` path (actions.FALLBACKS) is to be prepared next; None otherwise."""
    rows = [row for row in tx.audit.for_intent(key) if row.event in (PREPARED, REFUSED)]
    return str(rows[-1].detail["reason"]) if rows and rows[-1].event == REFUSED else None


def fell_back(tx: Tx, key: str) -> bool:
    """Whether the intent's frozen operations are already its `else` path."""
    rows = [row for row in tx.audit.for_intent(key) if row.event == PREPARED]
    return bool(rows) and bool(rows[-1].detail.get("refused"))


class Executor:
    def __init__(self, rt: Runtime, stopping: Callable[[], bool] = lambda: False) -> None:
        self.rt = rt
        self.stopping = stopping
        self.stale: set[RecordRef] = set()  # records this pass wrote, not read back yet
        self._silences: list[silences.Silence] = []  # read at the start of each drain
        self._served: list[Intent] = []  # queue readers whose queue this pass has served
        self._joined: list[LedgerEntry] = []  # the intents the current `_one` has claimed

    # -- unknown outcomes ----------------------------------------------------------------------
    def recover(self) -> None:
        """Settle intents left `sent` (a crash between the vendor call and its record): done if
        every operation is found at the vendor, else failed and due now (then sent again)."""
        with self.rt.store.read() as tx:
            entries = [(e, frozen(tx, e.intent.key)) for e in tx.ledger.sent_unverified()]
        for entry, ops in entries:
            key = entry.intent.key
            try:
                present = self._verify(entry.intent, ops or [])
            except _Refused as exc:
                self._hold(entry.intent, str(exc), Drained())
                continue
            now = self.rt.clock.now()
            with self.rt.store.transaction() as tx:
                if present is None:
                    log.warning("intent_unverified", intent=key, rule=entry.intent.rule_id,
                                record=str(entry.intent.record))
                elif ops and len(present) == len(ops):
                    tx.ledger.mark_done(key, {"verified": present}, now)
                    _log_done(entry.intent, verified=True)
                else:
                    tx.ledger.mark_failed(key, "sent, not found at the vendor", now, now)

    def _verify(self, intent: Intent, ops: Sequence[Operation], *,
                refused_is_absent: bool = False) -> dict[str, Any] | None:
        """Op key -> what the vendor shows, for the operations present; None if a vendor could
        not tell (verify again later). A refused read raises `_Refused`, unless a person said
        to send again (`refused_is_absent`): then what can be verified is still not resent."""
        present: dict[str, Any] = {}
        for op in ops:
            connector = self.rt.connectors.get(op.system)
            if connector is None:
                return None
            try:
                outcome = connector.verify(op)
            except Exception as exc:  # a connector bug must not stop the other intents
                log.warning("verify_failed", intent=intent.key, op=op.key, error=repr(exc))
                return None
            if outcome.ok:
                present[op.key] = dict(outcome.detail)
            elif outcome.detail.get("status") in UNVERIFIABLE and not refused_is_absent:
                raise _Refused(f"{op.key}: verify refused: {outcome.error}")
            elif outcome.retryable:
                return None
        return present

    # -- due intents ---------------------------------------------------------------------------
    def drain(self) -> Drained:
        """Carry out every intent due now (each at most once per pass)."""
        result = Drained()
        if not self.rt.dry_run and self.rt.kill_switch:
            with self.rt.store.read() as tx:
                result.held = len(tx.ledger.claim_due(self.rt.clock.now(), BATCH))
            if result.held:
                switch = self.rt.settings.syncd.kill_switch_file
                log.warning("kill_switch_holding", file=str(switch), due=result.held)
            return result
        people = People(self.rt.connectors)
        self.stale = set()
        with self.rt.store.read() as tx:
            self._silences = silences.active(tx, self.rt.clock.now())
        seen: set[str] = set()
        with self.rt.store.read() as tx:
            budget = Budget.load(tx, self.rt.settings.limits, self.rt.engine, self.rt.clock.now())
        limited: dict[str, tuple[int, str]] = {}  # rule -> (held this pass, the first limit)
        while not self.stopping():
            with self.rt.store.read() as tx:
                batch = tx.ledger.claim_due(self.rt.clock.now(), len(seen) + BATCH)
            fresh = [e for e in batch if e.intent.key not in seen]
            if not fresh:
                break
            fresh.sort(key=lambda e: e.intent.action in QUEUE_READERS)  # queue readers last
            for index, entry in enumerate(fresh):
                if self.stopping():
                    break
                if entry.intent.key in seen:
                    continue  # went out with an earlier action of its `do:` list
                seen.add(entry.intent.key)
                followers = _followers(fresh, index)
                if entry.intent.record in self.stale or any(
                        e.intent.action in READS_OTHERS for e in (entry, *followers)):
                    self._read_back()
                self._joined = [entry]
                try:
                    if self._one(entry, people, budget, limited, result, followers, seen):
                        seen.discard(entry.intent.key)  # refused: its `else` path, now
                except Exception as exc:  # a bug or bad data: these intents fail, not the others
                    if isinstance(exc, Fenced) or connection_lost(exc):
                        raise  # not this intent's doing: the whole pass stops
                    log.exception(
                        "intent_crashed",
                        intent=entry.intent.key,
                        rule=entry.intent.rule_id,
                        record=str(entry.intent.record),
                    )
                    retry = self.rt.clock.now() + backoff(entry.attempts)
                    for crashed in self._joined:
                        self._failed(crashed.intent, f"{type(exc).__name__}: {exc}", retry,
                                     result)
            self._skip_served(result)
        for rule_id, (count, limit) in sorted(limited.items()):
            log.warning("intents_held", rule=rule_id, held=count, limit=limit,
                        fix=f"`syncd intents --held`, then `--release {rule_id}` or "
                            f"`--drop {rule_id}`")
        return result

    def _one(self, entry: LedgerEntry, people: People, budget: Budget,
             limited: dict[str, tuple[int, str]], result: Drained,
             followers: Sequence[LedgerEntry], seen: set[str]) -> bool:
        """Carry the intent out, with those of `followers` (the next actions of its `do:` list,
        writing to its record) that may go in the same request (`_joins`; joined ones are
        added to `seen`); True when the vendor refused it and its `else` path is due."""
        intent, now, engine = entry.intent, self.rt.clock.now(), self.rt.engine
        skip = self._skip_reason(intent, now)
        if skip is None and engine.stops_on_failure(intent.rule_id) and self._waits(
                entry, now, result):
            return False
        if (skip is None and entry.sent_at is None and intent.action in QUEUE_READERS
                and served_queue(intent) in people.served):
            self._served.append(intent)  # nothing to do: skipped with the others, at once
            return False
        if skip is None and entry.sent_at is None:  # never sent: the limits apply
            with self.rt.store.read() as tx:
                let_go = released(tx, intent.key)
            if let_go:
                skip = self._stopped(intent)
            elif (limit := budget.check(intent)) is not None:
                with self.rt.store.transaction() as tx:
                    if tx.ledger.hold(intent.key, limit, now):
                        result.limited += 1
                        count, first = limited.get(intent.rule_id, (0, limit))
                        limited[intent.rule_id] = (count + 1, first)
                return False
        if skip:
            with self.rt.store.transaction() as tx:
                result.skipped += tx.ledger.skip(intent.key, skip, now)
            return False
        budget.spend(intent)
        ops = self._claimed(entry, people, now, result)
        if ops is None:
            return False
        joined = [(entry, ops)]
        for follower in followers:
            if not self._joins(follower, joined, budget, now):
                break
            budget.spend(follower.intent)
            seen.add(follower.intent.key)
            self._joined.append(follower)
            more = self._claimed(follower, people, now, result)
            if more is None:  # settled alone (skipped, failed): the rest take their turn
                break
            joined.append((follower, more))
        return self._execute(joined, result)

    def _skip_reason(self, intent: Intent, now: datetime) -> str | None:
        """Why the intent is skipped without being sent (shadow, dry run, a silence), if it is."""
        skip = (SHADOW_SIDE if intent.shadow and intent.reason.get("canary")
                else "shadow mode" if intent.shadow else "dry run" if self.rt.dry_run
                else "rule removed" if intent.rule_id not in self.rt.engine.rules else None)
        return skip or next((s.reason() for s in self._silences
                             if s.holds(intent.rule_id, intent.record, now)), None)

    def _joins(self, entry: LedgerEntry, joined: Sequence[tuple[LedgerEntry, Sequence[Operation]]],
               budget: Budget, now: datetime) -> bool:
        """Whether `entry`, the next action of the `do:` list `joined` belongs to, is claimed
        with them and sent in the same request: never sent before, nothing to skip or hold it,
        and every earlier action of its list done or in `joined` (which `_waits` would ask of
        it: they succeed or fail together, in one request)."""
        intent = entry.intent
        if entry.sent_at is not None or self._skip_reason(intent, now) is not None:
            return False
        keys = {e.intent.key for e, _ in joined}
        with self.rt.store.read() as tx:
            if released(tx, intent.key):
                return False
            earlier = tx.ledger.earlier_in_list(intent)
        if any(e.state is not IntentState.DONE and e.intent.key not in keys for e in earlier):
            return False
        return budget.check(intent) is None

    def _claimed(self, entry: LedgerEntry, people: People, now: datetime,
                 result: Drained) -> list[Operation] | None:
        """The operations to send for the intent, claimed (`_claim`); None when it is settled
        without a call: lost to another executor, held, skipped, failed, or found done."""
        intent = entry.intent
        try:
            ops = self._claim(entry, people, now)
        except _Lost:
            return None
        except _Refused as exc:
            self._hold(intent, str(exc), result)
            return None
        except NothingToDo as exc:
            log.info("intent_skipped", intent=intent.key, rule=intent.rule_id,
                     record=str(intent.record), reason=str(exc))
            with self.rt.store.transaction() as tx:
                result.skipped += tx.ledger.skip(intent.key, str(exc), now)
            return None
        except (ActionError, VendorError) as exc:
            retry = now + backoff(entry.attempts) if isinstance(exc, RetryableError) else None
            self._failed(intent, str(exc), retry, result, getattr(exc, "request_id", None))
            return None
        if ops is None:  # every operation was found done at the vendor
            _log_done(intent, verified=True)
            result.done += 1
        return ops

    def _skip_served(self, result: Drained) -> None:
        """Skip, in one transaction, the queue readers whose queue this pass served already
        (every ticket waiting in a queue asks for it to be served; one dispatch serves it)."""
        served, self._served = self._served, []
        if not served:
            return
        now = self.rt.clock.now()
        with self.rt.store.transaction() as tx:
            result.skipped += tx.ledger.skip_many({i.key: already_served(i) for i in served}, now)
        for rule_id, count in Counter(intent.rule_id for intent in served).items():
            log.info("intents_skipped", rule=rule_id, count=count, reason="queue served")

    def _waits(self, entry: LedgerEntry, now: datetime, result: Drained) -> bool:
        """A `do:` list stops at its first failed action for the record: a later action waits
        while an earlier one is retried, and fails (dead, saying which) once one is dead, so
        the "folder ready" mail never follows a folder that was not made."""
        intent = entry.intent
        rule = self.rt.engine.rules.get(intent.rule_id)
        if rule is not None and len(rule.actions.get(intent.step, ())) == 1:
            return False  # the only action of its list: nothing before it
        with self.rt.store.read() as tx:
            earlier = tx.ledger.earlier_in_list(intent)
        dead = next((e for e in earlier if e.state is IntentState.DEAD), None)
        if dead is not None:
            why = (f"not sent: the earlier action {dead.intent.action} of rule "
                   f"{intent.rule_id} failed ({dead.intent.key}: {dead.last_error})")
            self._failed(intent, why, None, result)
            return True
        pending = [e for e in earlier if e.state in WAITING]
        if not pending:
            return False
        until = max(now, min(e.next_attempt_at for e in pending)) + timedelta(seconds=1)
        with self.rt.store.transaction() as tx:
            result.deferred += tx.ledger.defer(
                intent.key, until, f"waits for the earlier action {pending[0].intent.key}", now)
        return True

    def _claim(self, entry: LedgerEntry, people: People, now: datetime) -> list[Operation] | None:
        """mark_sent with the operations to send (committed before any vendor call); None when
        verification found every frozen operation already done (then it is marked done). The
        directories the action asks for are read between attempts, outside the transaction
        (people.py)."""
        intent = entry.intent
        with self.rt.store.read() as tx:
            ops, refused = frozen(tx, intent.key), refusal(tx, intent.key)
            resend = ops is not None and resend_ordered(tx, intent.key)
        if ops is not None and refused is None:  # sent before: verify, send only what is absent
            present = self._verify(intent, ops, refused_is_absent=resend)
            if present is None:
                raise RetryableError("syncd", None, "unverified", "a vendor could not verify")
            with self.rt.store.transaction() as tx:
                if not tx.ledger.mark_sent(intent.key, now):
                    raise _Lost
                if len(present) == len(ops):
                    tx.ledger.mark_done(intent.key, {"verified": present}, now)
                    return None
            return [op for op in ops if op.key not in present]
        reread: set[str] = set()
        while True:
            try:
                return self._prepare(intent, people, now, refused)
            except RecordMiss as miss:  # look it up at its vendor, outside the transaction
                if miss.ref in people.looked_up:
                    raise
                people.looked_up.add(miss.ref)
                self._look_up(miss.ref)
            except DirectoryMiss as miss:  # read directories outside the transaction, again
                stale = set() if miss.cold else set(miss.systems) - reread
                if not miss.cold and not stale:
                    raise  # read again already: nobody of that name
                for system in miss.systems if miss.cold else stale:
                    age = None if miss.cold else MISS_REFRESH_S  # missing: maybe newer than it
                    people.directories[system] = self.rt.connectors[system].directory(age)
                reread |= stale

    def _prepare(self, intent: Intent, people: People, now: datetime,
                 refused: str | None = None) -> list[Operation]:
        """Work out the intent's operations (its `else` path's, after a refusal), mark it sent
        and freeze them, in one transaction."""
        with self.rt.store.transaction() as tx:
            record = tx.records.get(intent.record)
            if record is None or record.deleted:
                raise ActionError(f"{intent.record} is {'deleted' if record else 'unknown'}")
            ops = operations(self._context(tx, record, people, intent, now), intent, refused)
            if not tx.ledger.mark_sent(intent.key, now):
                raise _Lost
            detail: dict[str, Any] = {"ops": to_json(ops)}
            if refused is not None:
                detail["refused"] = refused
            tx.audit.append(PREPARED, now, record=intent.record, rule_id=intent.rule_id,
                            intent_key=intent.key, detail=detail)
        return ops

    def _read_back(self) -> None:
        """Read your own writes: the records this pass wrote are read again from their vendors
        and stored as a poll would (the engine sees them), before an intent that reads them is
        planned (one on a written record, or an action reading others: a dispatch, an assign).
        So two requests triaged in one poll are dispatched by the priorities syncd just set.
        What no later intent reads waits for the next poll. The fields that cost a call per
        record (Zendesk's audits, for `agent_touched`) are left out: they tell what agents did,
        which syncd's own writes never change, and the stored ones are kept."""
        stale, self.stale = self.stale, set()
        for kind in sorted({ref.kind for ref in stale}):
            connector = self.rt.connector_for(kind)
            refs = sorted((ref for ref in stale if ref.kind == kind), key=lambda r: r.id)
            if connector is None:
                continue
            try:
                found = connector.fetch_many(refs, extras=False)
            except VendorError as exc:  # the next poll reads them anyway
                log.warning("read_back_failed", kind=kind, records=len(refs), error=str(exc))
                continue
            with self.rt.store.transaction() as tx:
                for record in (r for r in found.values() if r is not None):
                    apply_record(tx, self.rt.engine, record, self.rt.clock.now(), self.rt.grace)

    def _store_answers(self, outcomes: Iterable[Outcome]) -> None:
        """Store the records the vendor answered as saved (a Zendesk ticket update's answer)
        as a poll would: read back for free, so they are no longer stale."""
        records = {o.record.ref: o.record for o in outcomes if o.ok and o.record is not None}
        if not records:
            return
        with self.rt.store.transaction() as tx:
            for record in records.values():
                apply_record(tx, self.rt.engine, record, self.rt.clock.now(), self.rt.grace)
        self.stale -= records.keys()

    def _look_up(self, ref: RecordRef) -> None:
        """Read one record syncd has not seen (a ticket younger than the export) and store it
        as a poll would; a record the vendor does not have stays unknown."""
        connector = self.rt.connector_for(ref.kind)
        if connector is None:
            return
        try:
            fresh = connector.fetch(ref)
        except VendorError as exc:
            log.warning("lookup_failed", record=str(ref), error=str(exc))
            return
        if fresh is not None:
            with self.rt.store.transaction() as tx:
                apply_record(tx, self.rt.engine, fresh, self.rt.clock.now(), self.rt.grace)

    def _context(self, tx: Tx, record: Any, people: People, intent: Intent,
                 now: datetime) -> ActionContext:
        rule = self.rt.engine.rules.get(intent.rule_id)
        graph = self.rt.settings.graph
        return ActionContext(tx=tx, record=record, people=people,
                             roles=dict(rule.vars) if rule else {},
                             mailbox=(graph.mailbox or "") if graph else "", now=now,
                             math=rule.math if rule else None,
                             max_attachment_bytes=int(
                                 self.rt.settings.syncd.max_attachment_mb * 1000 * 1000),
                             )

    def _execute(self, joined: Sequence[tuple[LedgerEntry, Sequence[Operation]]],
                 result: Drained) -> bool:
        """Send the claimed intents' operations, in order, in as few requests as their
        connectors allow (`_send_all`), and settle each intent on its own operations'
        outcomes. The records the vendor answered as saved are stored as a poll would
        (`_store_answers`); the others written are read back before an intent reads them.
        True when the vendor refused a lone intent for good and its `else` path is due."""
        outcomes = self._send_all([op for _, ops in joined for op in ops])
        refused, replanned = False, set[RecordRef]()
        for entry, ops in joined:
            refused |= self._settle(entry, ops, {op.key: outcomes[op.key] for op in ops},
                                    result, replanned)
        self._store_answers(outcomes.values())
        return refused

    def _settle(self, entry: LedgerEntry, ops: Sequence[Operation],
                outcomes: dict[str, Outcome], result: Drained,
                replanned: set[RecordRef]) -> bool:
        """Record the intent's outcome; True when the vendor refused its operations for good
        and the action has an `else` path (actions.FALLBACKS), to be prepared next with the
        vendor's reason. A conflict re-reads the record, once for the intents sent together
        (`replanned`)."""
        intent = entry.intent
        now = self.rt.clock.now()
        failures = {k: o for k, o in outcomes.items() if not o.ok}
        if not failures:
            with self.rt.store.transaction() as tx:
                tx.ledger.mark_done(intent.key, {k: dict(o.detail) for k, o in outcomes.items()},
                                    now)
            self.stale |= {ref for op in ops
                           if (ref := written(op)) is not None and outcomes[op.key].record is None}
            _log_done(intent, verified=False)
            result.done += 1
            return False
        error = "; ".join(f"{k}: {o.error}" for k, o in failures.items())
        request_id = next((o.detail["request_id"] for o in failures.values()
                           if o.detail.get("request_id")), None)
        if any(o.error == "conflict" for o in failures.values()):
            if intent.record not in replanned:  # it changed under us: re-read, try again
                replanned.add(intent.record)
                self._replan(intent)
            retry: datetime | None = now
        elif all(o.retryable for o in failures.values()):
            retry = now + backoff(entry.attempts, next(iter(failures.values())))
        else:
            retry = None
            if intent.action in FALLBACKS:
                with self.rt.store.transaction() as tx:
                    if not fell_back(tx, intent.key):
                        tx.audit.append(REFUSED, now, record=intent.record,
                                        rule_id=intent.rule_id, intent_key=intent.key,
                                        detail={"reason": "; ".join(
                                            str(o.error) for o in failures.values())})
                        tx.ledger.mark_failed(intent.key, error, now, now)
                        log.warning("intent_refused", intent=intent.key, rule=intent.rule_id,
                                    record=str(intent.record), error=error)
                        return True
        self._failed(intent, error, retry, result, request_id)
        return False

    def _send_all(self, ops: Sequence[Operation]) -> dict[str, Outcome]:
        """Each operation's outcome, sent in order. Consecutive operations on one system go
        out together (`execute_many`: a dispatch's updates become one Zendesk update_many job),
        each with its own outcome, verified alone after a crash as ever."""
        outcomes: dict[str, Outcome] = {}
        for system, run in groupby(ops, key=lambda op: op.system):
            if not self.rt.may_send():  # paused past the lease's term: another may lead now
                raise Fenced("the leader lease's term ran out before a vendor call: not sent")
            batch = list(run)
            connector = self.rt.connectors.get(system)
            if len(batch) == 1 or connector is None or any(
                    op.payload.get("attachments") for op in batch):
                outcomes.update({op.key: self._send(op) for op in batch})
                continue
            try:
                answers = connector.execute_many(batch)
            except Exception as exc:  # a connector bug: the writes may have happened, verify
                answers = [Outcome(ok=False, retryable=True,
                                   error=f"{type(exc).__name__}: {exc}")] * len(batch)
            outcomes.update(zip((op.key for op in batch), answers, strict=True))
        return outcomes

    def _send(self, op: Operation) -> Outcome:
        connector = self.rt.connectors.get(op.system)
        if connector is None:
            return Outcome(ok=False, error=f"{op.system} is not configured")
        with contextlib.ExitStack() as files:
            try:
                return connector.execute(self._materialize(op, files))
            except VendorError as exc:  # reading an attachment failed before the write
                return Outcome(ok=False, retryable=isinstance(exc, RetryableError),
                               error=str(exc))
            except Exception as exc:  # a connector bug: the write may have happened, verify
                return Outcome(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")

    def _materialize(self, op: Operation, files: contextlib.ExitStack) -> Operation:
        """Attachments named by a SharePoint path are read now, not frozen in the audit, and
        streamed through a spooled file (`files` closes it): a transcript of hundreds of MB
        never sits whole in memory."""
        attachments = op.payload.get("attachments") or []
        if not any(DRIVE_PATH in a for a in attachments):
            return op
        graph: Any = self.rt.connectors["graph"]
        read = []
        for attachment in attachments:
            if DRIVE_PATH in attachment:
                spool = files.enter_context(tempfile.SpooledTemporaryFile(SPOOL_BYTES))  # noqa: SIM115 (the ExitStack closes it)
                graph.download_to(attachment[DRIVE_PATH], spool)
                spool.seek(0)
                attachment = {"filename": attachment["filename"], "file": spool}
            read.append(attachment)
        return Operation(op.key, op.system, op.verb, op.target, {**op.payload, "attachments": read})

    def _stopped(self, intent: Intent) -> str | None:
        """A released intent's record, re-read from its vendor (and stored as a poll would): why
        its rule no longer acts on it, or None to send it. Held for hours, the record may have
        changed; a failed read sends on what the store knows."""
        connector = self.rt.connector_for(intent.record.kind)
        fresh, read = None, False
        try:
            fresh = connector.fetch(intent.record) if connector else None
            read = connector is not None
        except VendorError as exc:
            log.warning("refetch_failed", record=str(intent.record), error=str(exc))
        now = self.rt.clock.now()
        with self.rt.store.transaction() as tx:
            if fresh is not None:
                apply_record(tx, self.rt.engine, fresh, now, self.rt.grace)
            record = tx.records.get(intent.record)
        if record is None or (read and fresh is None):
            return "released, but the record is gone at its vendor"
        why = self.rt.engine.stopped(intent.rule_id, record, now)
        if why is None:
            return None
        return f"released, but the rule no longer holds when the record was re-read: {why}"

    def _replan(self, intent: Intent) -> None:
        connector = self.rt.connector_for(intent.record.kind)
        try:
            fresh = connector.fetch(intent.record) if connector else None
        except VendorError as exc:
            log.warning("refetch_failed", record=str(intent.record), error=str(exc))
            return
        if fresh is not None:
            with self.rt.store.transaction() as tx:
                apply_record(tx, self.rt.engine, fresh, self.rt.clock.now(), self.rt.grace)

    def _hold(self, intent: Intent, error: str, result: Drained) -> None:
        """Unknown outcome, and the vendor will not say: held for a person, alerted."""
        with self.rt.store.transaction() as tx:
            held = tx.ledger.mark_unknown(intent.key, error, self.rt.clock.now())
        if held:
            log.error("intent_unverifiable", intent=intent.key, rule=intent.rule_id,
                      record=str(intent.record), action=intent.action, error=error,
                      fix="grant the permission verification needs (syncd doctor), then "
                          "`syncd intents --retry KEY` to send it again or `--mark-done KEY` "
                          "if it happened")
            result.unknown += 1
            self.rt.fail(f"{intent.key}: outcome unknown, {error}")

    def _failed(self, intent: Intent, error: str, retry: datetime | None, result: Drained,
                request_id: str | None = None) -> None:
        with self.rt.store.transaction() as tx:
            tx.ledger.mark_failed(intent.key, error, self.rt.clock.now(), retry)
            entry = tx.ledger.get(intent.key)
        state = entry.state if entry else "?"
        log.warning("intent_failed", intent=intent.key, rule=intent.rule_id,
                    record=str(intent.record), action=intent.action, state=str(state),
                    error=error, request_id=request_id)
        result.failed += 1
        self.rt.fail(f"{intent.key}: {error}")


def _followers(entries: Sequence[LedgerEntry], index: int) -> list[LedgerEntry]:
    """The intents after `entries[index]` that may share its request (`Executor._joins` has the
    last word): the next actions of the same `do:` list (rule, record, step, occurrence, due
    instant), each one that `joins` (actions.py), the first one too."""
    lead = entries[index].intent
    if not joins(lead):
        return []
    found = []
    for entry in entries[index + 1:]:
        intent = entry.intent
        if not joins(intent) or (intent.rule_id, intent.record, intent.step, intent.occurrence,
                                 intent.due_at) != (lead.rule_id, lead.record, lead.step,
                                                    lead.occurrence, lead.due_at):
            break
        found.append(entry)
    return found


def _log_done(intent: Intent, *, verified: bool) -> None:
    log.info("intent_done", intent=intent.key, rule=intent.rule_id, record=str(intent.record),
             action=intent.action, verified=verified)
