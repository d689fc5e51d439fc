"""Drain the ledger: every due intent carried out exactly once, across crashes and retries.

For each due intent, in one transaction: work out its operations (actions.py), `mark_sent`, and
freeze the operations in a `prepared` audit row. Only after that commit is the vendor called;
the answer is recorded in a second transaction (`mark_done`, `mark_failed`). So an intent whose
outcome is unknown (still `sent` after a crash, or `failed` after an answer that may hide an
applied write) has its exact operations on record: each is verified at the vendor first and
only the absent ones are sent again, never a fresh choice (round robin would pick someone else).

Shadow intents are skipped, `--dry-run` skips everything it would have executed (a rehearsal:
going live later does not replay it, as with shadow rules); the kill switch file holds
everything (plan and audit go on; execution resumes, in order, when the file is removed).
`max_actions_per_hour` defers the excess, spread over the hour, without counting an attempt.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from syncd.connectors.base import MISS_REFRESH_S
from syncd.connectors.http import RetryableError, VendorError
from syncd.daemon.actions import DRIVE_PATH, ActionContext, operations
from syncd.daemon.people import ActionError, DirectoryMiss, NothingToDo, People
from syncd.daemon.planner import apply_record
from syncd.daemon.runtime import Runtime, log
from syncd.model import Intent, Operation, Outcome
from syncd.store.db import Tx
from syncd.store.ledger import IntentState, LedgerEntry

PREPARED = "prepared"  # audit event holding an intent's frozen operations
BATCH = 100
BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 3600.0
# an earlier action of the same `do:` list in one of these states holds the later ones back
WAITING = (IntentState.PLANNED, IntentState.SENT, IntentState.FAILED)


@dataclass
class Drained:
    """What one pass did, by outcome."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0
    held: int = 0  # due but held by the kill switch


class _Lost(Exception):
    """Another executor claimed the intent first: roll the claim back, do nothing."""


def backoff(attempts: int, outcome: Outcome | None = None) -> timedelta:
    """10 s, 20 s, 40 s ... capped at an hour (the connector has already retried for up to two
    minutes before an intent fails); a vendor's Retry-After wins if longer."""
    wait = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempts, 0))
    asked = (outcome.detail.get("retry_after") if outcome else None) or 0
    return timedelta(seconds=max(wait, float(asked)))


def to_json(ops: Sequence[Operation]) -> list[dict[str, Any]]:
    return [{"key": o.key, "system": o.system, "verb": o.verb, "target": o.target,
             "payload": dict(o.payload)} for o in ops]  # fmt: skip


def frozen(tx: Tx, key: str) -> list[Operation] | None:
    """The operations the intent's last claim froze, None if it was never sent."""
    rows = [row for row in tx.audit.for_intent(key) if row.event == PREPARED]
    if not rows:
        return None
    return [Operation(o["key"], o["system"], o["verb"], o["target"], o["payload"])
            for o in rows[-1].detail["ops"]]  # fmt: skip


class Executor:
    def __init__(self, rt: Runtime, stopping: Callable[[], bool] = lambda: False) -> None:
        self.rt = rt
        self.stopping = stopping

    # -- unknown outcomes ----------------------------------------------------------------------
    def recover(self) -> None:
        """Settle intents left `sent` (a crash between the vendor call and its record): done if
        every operation is found at the vendor, else failed and due now (then sent again)."""
        with self.rt.store.read() as tx:
            entries = [(e, frozen(tx, e.intent.key)) for e in tx.ledger.sent_unverified()]
        for entry, ops in entries:
            key = entry.intent.key
            present = self._verify(entry.intent, ops or [])
            now = self.rt.clock.now()
            with self.rt.store.transaction() as tx:
                if present is None:
                    log.warning("intent_unverified", intent=key, rule=entry.intent.rule_id,
                                record=str(entry.intent.record))  # fmt: skip
                elif ops and len(present) == len(ops):
                    tx.ledger.mark_done(key, {"verified": present}, now)
                    _log_done(entry.intent, verified=True)
                else:
                    tx.ledger.mark_failed(key, "sent, not found at the vendor", now, now)

    def _verify(self, intent: Intent, ops: Sequence[Operation]) -> dict[str, Any] | None:
        """Op key -> what the vendor shows, for the operations present; None if a vendor could
        not tell (verify again later)."""
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
        seen: set[str] = set()
        spacing: dict[str, int] = {}
        while not self.stopping():
            with self.rt.store.read() as tx:
                batch = tx.ledger.claim_due(self.rt.clock.now(), len(seen) + BATCH)
            fresh = [e for e in batch if e.intent.key not in seen]
            if not fresh:
                break
            for entry in fresh:
                if self.stopping():
                    break
                seen.add(entry.intent.key)
                try:
                    self._one(entry, people, spacing, result)
                except Exception as exc:  # a bug or bad data: this intent fails, not the others
                    log.exception(
                        "intent_crashed",
                        intent=entry.intent.key,
                        rule=entry.intent.rule_id,
                        record=str(entry.intent.record),
                    )
                    retry = self.rt.clock.now() + backoff(entry.attempts)
                    self._failed(entry.intent, f"{type(exc).__name__}: {exc}", retry, result)
        return result

    def _one(self, entry: LedgerEntry, people: People, spacing: dict[str, int],
             result: Drained) -> None:  # fmt: skip
        intent, now, engine = entry.intent, self.rt.clock.now(), self.rt.engine
        skip = ("shadow mode" if intent.shadow else "dry run" if self.rt.dry_run
                else "rule removed" if intent.rule_id not in engine.rules else None)  # fmt: skip
        if skip:
            with self.rt.store.transaction() as tx:
                result.skipped += tx.ledger.skip(intent.key, skip, now)
            return
        if engine.stops_on_failure(intent.rule_id) and self._waits(entry, now, result):
            return
        limit = engine.limit(intent.rule_id)
        if limit is not None:
            with self.rt.store.read() as tx:
                sent = tx.ledger.actions_in_last_hour(intent.rule_id, now)
            if sent + spacing.get(intent.rule_id, 0) >= limit:
                held = spacing[intent.rule_id] = spacing.get(intent.rule_id, 0) + 1
                until = now + timedelta(hours=1) / limit * held
                with self.rt.store.transaction() as tx:
                    result.deferred += tx.ledger.defer(
                        intent.key, until, f"max_actions_per_hour {limit}", now
                    )
                return
        try:
            ops = self._claim(entry, people, now)
        except _Lost:
            return
        except NothingToDo as exc:
            log.info("intent_skipped", intent=intent.key, rule=intent.rule_id,
                     record=str(intent.record), reason=str(exc))  # fmt: skip
            with self.rt.store.transaction() as tx:
                result.skipped += tx.ledger.skip(intent.key, str(exc), now)
            return
        except (ActionError, VendorError) as exc:
            retry = now + backoff(entry.attempts) if isinstance(exc, RetryableError) else None
            self._failed(intent, str(exc), retry, result, getattr(exc, "request_id", None))
            return
        if ops is None:  # every operation was found done at the vendor
            _log_done(intent, verified=True)
            result.done += 1
        else:
            self._execute(entry, ops, result)

    def _waits(self, entry: LedgerEntry, now: datetime, result: Drained) -> bool:
        """A `do:` list stops at its first failed action for the record: a later action waits
        while an earlier one is retried, and fails (dead, saying which) once one is dead, so
        the "folder ready" mail never follows a folder that was not made."""
        intent = entry.intent
        with self.rt.store.read() as tx:
            earlier = tx.ledger.earlier_in_list(intent)
        dead = next((e for e in earlier if e.state is IntentState.DEAD), None)
        if dead is not None:
            why = (f"not sent: the earlier action {dead.intent.action} of rule "
                   f"{intent.rule_id} failed ({dead.intent.key}: {dead.last_error})")  # fmt: skip
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
            ops = frozen(tx, intent.key)
        if ops is not None:  # sent before: verify, send only what is absent
            present = self._verify(intent, ops)
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
                return self._prepare(intent, people, now)
            except DirectoryMiss as miss:  # read directories outside the transaction, again
                stale = set() if miss.cold else set(miss.systems) - reread
                if not miss.cold and not stale:
                    raise  # read again already: nobody of that name
                for system in miss.systems if miss.cold else stale:
                    age = None if miss.cold else MISS_REFRESH_S  # missing: maybe newer than it
                    people.directories[system] = self.rt.connectors[system].directory(age)
                reread |= stale

    def _prepare(self, intent: Intent, people: People, now: datetime) -> list[Operation]:
        """Work out the intent's operations, mark it sent and freeze them, in one transaction."""
        with self.rt.store.transaction() as tx:
            record = tx.records.get(intent.record)
            if record is None or record.deleted:
                raise ActionError(f"{intent.record} is {'deleted' if record else 'unknown'}")
            ops = operations(self._context(tx, record, people, intent, now), intent)
            if not tx.ledger.mark_sent(intent.key, now):
                raise _Lost
            tx.audit.append(PREPARED, now, record=intent.record, rule_id=intent.rule_id,
                            intent_key=intent.key, detail={"ops": to_json(ops)})  # fmt: skip
        return ops

    def _context(self, tx: Tx, record: Any, people: People, intent: Intent,
                 now: datetime) -> ActionContext:  # fmt: skip
        rule = self.rt.engine.rules.get(intent.rule_id)
        graph = self.rt.settings.graph
        return ActionContext(tx=tx, record=record, people=people,
                             roles=dict(rule.vars) if rule else {},
                             mailbox=(graph.mailbox or "") if graph else "", now=now,
                             max_attachment_bytes=int(
                                 self.rt.settings.syncd.max_attachment_mb * 1000 * 1000),
                             )  # fmt: skip

    def _execute(self, entry: LedgerEntry, ops: Sequence[Operation], result: Drained) -> None:
        intent = entry.intent
        outcomes = self._send_all(ops)
        now = self.rt.clock.now()
        failures = {k: o for k, o in outcomes.items() if not o.ok}
        if not failures:
            with self.rt.store.transaction() as tx:
                tx.ledger.mark_done(intent.key, {k: dict(o.detail) for k, o in outcomes.items()},
                                    now)  # fmt: skip
            _log_done(intent, verified=False)
            result.done += 1
            return
        error = "; ".join(f"{k}: {o.error}" for k, o in failures.items())
        request_id = next((o.detail["request_id"] for o in failures.values()
                           if o.detail.get("request_id")), None)  # fmt: skip
        if any(o.error == "conflict" for o in failures.values()):
            self._replan(intent)  # the record changed under us: re-read it, then try again
            retry: datetime | None = now
        elif all(o.retryable for o in failures.values()):
            retry = now + backoff(entry.attempts, next(iter(failures.values())))
        else:
            retry = None
        self._failed(intent, error, retry, result, request_id)

    def _send_all(self, ops: Sequence[Operation]) -> dict[str, Outcome]:
        """Each operation's outcome, sent in order. Consecutive operations on one system go
        out together (`execute_many`: a dispatch's updates become one Zendesk update_many job),
        each with its own outcome, verified alone after a crash as ever."""
        outcomes: dict[str, Outcome] = {}
        for system, run in groupby(ops, key=lambda op: op.system):
            batch = list(run)
            connector = self.rt.connectors.get(system)
            if len(batch) == 1 or connector is None or any(
                    op.payload.get("attachments") for op in batch):  # fmt: skip
                outcomes.update({op.key: self._send(op) for op in batch})
                continue
            try:
                answers = connector.execute_many(batch)
            except Exception as exc:  # a connector bug: the writes may have happened, verify
                answers = [Outcome(ok=False, retryable=True,
                                   error=f"{type(exc).__name__}: {exc}")] * len(batch)  # fmt: skip
            outcomes.update(zip((op.key for op in batch), answers, strict=True))
        return outcomes

    def _send(self, op: Operation) -> Outcome:
        connector = self.rt.connectors.get(op.system)
        if connector is None:
            return Outcome(ok=False, error=f"{op.system} is not configured")
        try:
            return connector.execute(self._materialize(op))
        except VendorError as exc:  # reading an attachment failed before the write
            return Outcome(ok=False, retryable=isinstance(exc, RetryableError), error=str(exc))
        except Exception as exc:  # a connector bug: the write may have happened, verify later
            return Outcome(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")

    def _materialize(self, op: Operation) -> Operation:
        """Attachments named by a SharePoint path are read now, not frozen in the audit."""
        attachments = op.payload.get("attachments") or []
        if not any(DRIVE_PATH in a for a in attachments):
            return op
        graph: Any = self.rt.connectors["graph"]
        read = [
            {"filename": a["filename"],
             "content_b64": base64.b64encode(graph.download(a[DRIVE_PATH])).decode()}
            if DRIVE_PATH in a else a
            for a in attachments
        ]  # fmt: skip
        return Operation(op.key, op.system, op.verb, op.target, {**op.payload, "attachments": read})

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

    def _failed(self, intent: Intent, error: str, retry: datetime | None, result: Drained,
                request_id: str | None = None) -> None:  # fmt: skip
        with self.rt.store.transaction() as tx:
            tx.ledger.mark_failed(intent.key, error, self.rt.clock.now(), retry)
            entry = tx.ledger.get(intent.key)
        state = entry.state if entry else "?"
        log.warning("intent_failed", intent=intent.key, rule=intent.rule_id,
                    record=str(intent.record), action=intent.action, state=str(state),
                    error=error, request_id=request_id)  # fmt: skip
        result.failed += 1
        self.rt.fail(f"{intent.key}: {error}")


def _log_done(intent: Intent, *, verified: bool) -> None:
    log.info("intent_done", intent=intent.key, rule=intent.rule_id, record=str(intent.record),
             action=intent.action, verified=verified)  # fmt: skip
