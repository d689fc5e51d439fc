"""The intents ledger: the state machine that makes every side effect happen exactly once.

    planned | failed  --mark_sent-->   sent     (committed before the vendor is called)
    sent              --mark_done-->   done     (with the vendor's answer)
    sent | planned | failed --mark_failed--> failed   (claimable again at retry_at)
                                         `--> dead     (max_attempts reached, or not retryable)
    dead              --retry-->       planned  (`syncd intents --retry KEY`)
    sent | planned | failed --mark_unknown--> unknown (the vendor refused the verifying read)
    unknown           --resend-->      planned  (`--retry KEY`: the unverifiable is sent again)
    unknown           --mark_done_by_person--> done (`--mark-done KEY`)
    planned | failed  --skip-->        skipped  (shadow, dry run, catch-up policy)
    planned | failed  --defer-->       same state, later next_attempt_at
    planned | failed  --hold-->        held     (past a blast-radius limit: daemon/limits.py)
    held              --release-->     planned  (`syncd intents --release RULE`: sent past it)
    held              --drop-->        skipped  (`syncd intents --drop RULE`)

The unique key absorbs re-planning of the same input. Every transition is a guarded UPDATE
(`WHERE state IN (expected)`) whose loser gets False, so two executors never both send, and
every transition writes an audit row in the same transaction. The executor commits `sent`
before calling the vendor; a `sent` (or `failed`) intent found later has an unknown outcome
and must be verified at the vendor before it is executed again.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Insert, Row, bindparam, case, func, select, update

from syncd.model import Intent, RecordRef
from syncd.redact import redact, redact_strings
from syncd.store.audit import Audit
from syncd.store.tables import insert_ignoring_duplicates, intents


class IntentState(StrEnum):
    PLANNED = "planned"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"  # waiting for a retry at next_attempt_at
    DEAD = "dead"  # dead letter: needs `syncd intents --retry KEY`
    SKIPPED = "skipped"
    UNKNOWN = "unknown"  # sent, and the vendor refused to show whether it happened: a person
    HELD = "held"  # past a blast-radius limit, never sent: a person releases or drops it


CLAIMABLE = (IntentState.PLANNED, IntentState.FAILED)
CHUNK = 500  # keys in one IN (...)
_SKIP = (  # built once: a go-live's baseline skips thousands
    update(intents)
    .where(
        intents.c.key.in_(bindparam("keys", expanding=True)),
        intents.c.state.in_([state.value for state in CLAIMABLE]),
    )
    .values(updated_at=bindparam("at"), state=IntentState.SKIPPED.value)
    .returning(intents.c.key, intents.c.rule_id, intents.c.record_kind, intents.c.record_id,
               intents.c.state, intents.c.attempts)
)
_EARLIER = (  # built once: asked for each due intent of a rule whose `do:` list stops on failure
    select(intents)
    .where(
        intents.c.rule_id == bindparam("rule"),
        intents.c.record_kind == bindparam("kind"),
        intents.c.record_id == bindparam("id"),
        intents.c.step == bindparam("step"),
        intents.c.occurrence == bindparam("occurrence"),
        intents.c.due_at == bindparam("due"),
        intents.c.id < select(intents.c.id).where(intents.c.key == bindparam("key"))
        .scalar_subquery(),
    )
    .order_by(intents.c.id)
)
RESEND = "resend"  # audit event: a person asked to send an unknown intent again, unverified
RELEASED = "released"  # audit event: a person let a held intent go past its limit


def _values(states: Sequence[IntentState]) -> list[str]:
    return [state.value for state in states]


@dataclass(frozen=True)
class LedgerEntry:
    """An intent with its ledger bookkeeping."""

    intent: Intent
    state: IntentState
    attempts: int
    last_error: str | None
    vendor_answer: Any
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


class Ledger:
    def __init__(self, conn: Connection, audit: Audit, max_attempts: int) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._conn = conn
        self._audit = audit
        self.max_attempts = max_attempts
        self._plan: Insert | None = None

    def plan(self, planned: Iterable[Intent], now: datetime) -> builtins.list[str]:
        """Insert intents not seen before; returns the keys actually inserted (repeats of a
        replayed page are absorbed by the unique key and audited nowhere)."""
        fresh = {intent.key: intent for intent in planned}
        if not fresh:
            return []
        rows = [
            {
                "key": i.key,
                "rule_id": i.rule_id,
                "record_kind": i.record.kind,
                "record_id": i.record.id,
                "action": i.action,
                "params": dict(i.params),
                "due_at": i.due_at,
                "step": i.step,
                "occurrence": i.occurrence,
                "shadow": i.shadow,
                "reason": dict(i.reason),
                "state": IntentState.PLANNED.value,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
                "next_attempt_at": i.due_at,
            }
            for i in fresh.values()
        ]
        if self._plan is None:  # built once: a page plans for most of its records
            self._plan = insert_ignoring_duplicates(self._conn, intents, "key").returning(
                intents.c.key)
        inserted = {row.key for row in self._conn.execute(self._plan, rows)}
        new_keys = [key for key in fresh if key in inserted]
        for key in new_keys:
            intent = fresh[key]
            self._audit.append(
                "planned",
                now,
                record=intent.record,
                rule_id=intent.rule_id,
                intent_key=key,
                detail={
                    "action": intent.action,
                    "params": dict(intent.params),
                    "due_at": intent.due_at.isoformat(),
                    "step": intent.step,
                    "occurrence": intent.occurrence,
                    "shadow": intent.shadow,
                    "reason": dict(intent.reason),
                },
            )
        return new_keys

    def claim_due(self, now: datetime, limit: int = 100) -> builtins.list[LedgerEntry]:
        """Planned or failed intents whose time has come, oldest due first. Claiming reserves
        nothing: `mark_sent` is the guarded step that wins or loses the race. Shadow intents
        come back too, so the executor can `skip` them at the instant they would have run."""
        query = (
            select(intents)
            .where(
                intents.c.state.in_(_values(CLAIMABLE)),
                intents.c.due_at <= now,
                intents.c.next_attempt_at <= now,
            )
            .order_by(intents.c.next_attempt_at, intents.c.id)
            .limit(limit)
        )
        return [_entry(row) for row in self._conn.execute(query)]

    def next_attempt_at(self) -> datetime | None:
        """When the earliest planned or failed intent becomes claimable (the daemon's wake-up)."""
        return self._conn.scalar(
            select(func.min(intents.c.next_attempt_at)).where(
                intents.c.state.in_(_values(CLAIMABLE))
            )
        )

    def mark_sent(self, key: str, now: datetime) -> bool:
        """Claim the intent for one vendor call. Commit before calling the vendor. False if
        another executor won, it is not due, or it is a shadow intent (never executed)."""
        return self._transition(
            key,
            CLAIMABLE,
            now,
            {"state": IntentState.SENT.value, "sent_at": now},
            guards=(
                intents.c.due_at <= now,
                intents.c.next_attempt_at <= now,
                intents.c.shadow.is_(False),
            ),
        )

    def mark_done(self, key: str, answer: Any, now: datetime) -> bool:
        """Record the vendor's answer (or what `verify` found) for a sent intent."""
        answer = redact_strings(answer)
        return self._transition(
            key,
            (IntentState.SENT,),
            now,
            {"state": IntentState.DONE.value, "vendor_answer": answer},
            detail={"answer": answer},
        )

    def mark_failed(self, key: str, error: str, now: datetime, retry_at: datetime | None) -> bool:
        """Count a failed attempt. The intent waits in `failed` until `retry_at`, or goes to
        `dead` when `retry_at` is None (not retryable) or attempts reach `max_attempts`.

        Also valid from `planned`/`failed` (the intent could not even be prepared, e.g. a field
        a template reads is missing). A `failed` intent that had been sent has an unknown
        outcome: verify it before sending it again.
        """
        error = redact(error)  # vendor error text may echo a credential
        attempts = intents.c.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if retry_at is None:
            values["state"] = IntentState.DEAD.value
        else:
            values["state"] = case(
                (attempts >= self.max_attempts, IntentState.DEAD.value),
                else_=IntentState.FAILED.value,
            )
            values["next_attempt_at"] = retry_at
        return self._transition(
            key,
            (IntentState.SENT, *CLAIMABLE),
            now,
            values,
            detail={"error": error, "retry_at": retry_at.isoformat() if retry_at else None},
        )

    def mark_unknown(self, key: str, error: str, now: datetime) -> bool:
        """The outcome cannot be verified (the vendor refused the read, 401/403): hold the
        intent, never claimable again until a person resolves it. Reading "refused" as
        "absent" would send a mail twice."""
        return self._transition(
            key,
            (IntentState.SENT, *CLAIMABLE),
            now,
            {"state": IntentState.UNKNOWN.value, "last_error": error},
            detail={"error": error},
        )

    def resend(self, key: str, now: datetime) -> bool:
        """A person says an unknown intent did not happen: planned again, and what the vendor
        still refuses to verify is sent (audited `resend`; the executor honours it once). Its
        `next_attempt_at` is already past (it was due when it was held), so it goes at the
        daemon's next pass, whatever the daemon's clock."""
        return self._transition(
            key,
            (IntentState.UNKNOWN,),
            now,
            {"state": IntentState.PLANNED.value, "attempts": 0},
            event=RESEND,
        )

    def mark_done_by_person(self, key: str, now: datetime) -> bool:
        """A person says an unknown intent did happen."""
        answer = {"marked_done": "by a person (`syncd intents --mark-done`)"}
        return self._transition(
            key,
            (IntentState.UNKNOWN,),
            now,
            {"state": IntentState.DONE.value, "vendor_answer": answer},
            detail={"answer": answer},
        )

    def sent_unverified(self) -> builtins.list[LedgerEntry]:
        """Intents left in `sent` (a crash or a lost answer): verify each before any retry."""
        query = (
            select(intents).where(intents.c.state == IntentState.SENT.value).order_by(intents.c.id)
        )
        return [_entry(row) for row in self._conn.execute(query)]

    def retry(self, key: str, now: datetime) -> bool:
        """Take an intent out of the dead letter: planned again, attempts reset, due now."""
        return self._transition(
            key,
            (IntentState.DEAD,),
            now,
            {"state": IntentState.PLANNED.value, "attempts": 0, "next_attempt_at": now},
            event="retried",
        )

    def skip(self, key: str, reason: str, now: datetime) -> bool:
        """Never execute this intent (shadow mode, dry run, catch-up policy, rule removed)."""
        return self.skip_many({key: reason}, now) == 1

    def skip_many(self, reasons: Mapping[str, str], now: datetime) -> int:
        """`skip` of many intents (key -> reason), in a statement per 500 (a go-live's baseline
        skips thousands); audited in the order given. Returns how many were skipped."""
        keys = list(reasons)
        shown = {reason: redact(reason) for reason in set(reasons.values())}
        skipped = 0
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            rows = self._conn.execute(_SKIP, {"keys": chunk, "at": now}).all()
            found = {row.key: row for row in rows}
            for key in (k for k in chunk if k in found):
                row = found[key]
                self._audit.append(row.state, now, record=RecordRef(row.record_kind,
                                   row.record_id), rule_id=row.rule_id, intent_key=key,
                                   detail={"attempts": row.attempts,
                                           "reason": shown[reasons[key]]})
            skipped += len(rows)
        return skipped

    def defer(self, key: str, until: datetime, reason: str, now: datetime) -> bool:
        """Hold a claimable intent until `until` without counting an attempt (for example
        `max_actions_per_hour`: held, not dropped)."""
        return self._transition(
            key,
            CLAIMABLE,
            now,
            {"next_attempt_at": until},
            detail={"reason": reason, "until": until.isoformat()},
            event="deferred",
        )

    def hold(self, key: str, limit: str, now: datetime) -> bool:
        """Past a blast-radius limit: never claimed again until a person releases or drops it;
        its key (and so its idempotency at the vendor) stays the same."""
        return self._transition(
            key,
            CLAIMABLE,
            now,
            {"state": IntentState.HELD.value, "last_error": f"held: {limit}"},
            guards=(intents.c.sent_at.is_(None),),
            detail={"limit": limit},
        )

    def release(self, key: str, by: str, now: datetime) -> bool:
        """A person lets a held intent go past its limit: planned again with its own key (its
        `next_attempt_at` is already past, so it goes at the daemon's next pass)."""
        return self._transition(
            key, (IntentState.HELD,), now, {"state": IntentState.PLANNED.value},
            detail={"by": by}, event=RELEASED,
        )

    def drop(self, key: str, by: str, now: datetime) -> bool:
        """A person decides a held intent must never be carried out."""
        return self._transition(
            key, (IntentState.HELD,), now, {"state": IntentState.SKIPPED.value},
            detail={"reason": f"dropped by {by}"},
        )

    def sent_since(self, since: datetime, rule_ids: Iterable[str]) -> builtins.list[Intent]:
        """The rules' intents sent after `since` (their last claim), for the per-hour limits
        (by rule: the (rule_id, sent_at) index answers it without reading the whole ledger)."""
        query = select(intents).where(intents.c.rule_id.in_(sorted(rule_ids)),
                                      intents.c.sent_at > since)
        return [_entry(row).intent for row in self._conn.execute(query)]

    def held_by_rule(self) -> dict[str, int]:
        """Rule id -> intents held by a limit (for metrics)."""
        query = (
            select(intents.c.rule_id, func.count())
            .where(intents.c.state == IntentState.HELD.value)
            .group_by(intents.c.rule_id)
        )
        return {rule_id: count for rule_id, count in self._conn.execute(query)}

    def needing_a_look(self, now: datetime) -> dict[tuple[str, str], int]:
        """(rule, state) -> count of intents that need a look: failed, dead, and held (planned,
        due, not carried out: the kill switch, max_actions_per_hour, a backlog)."""
        held = (intents.c.state == IntentState.PLANNED.value) & (intents.c.due_at <= now)
        state = case((held, "held"), else_=intents.c.state)
        query = (
            select(intents.c.rule_id, state, func.count())
            .where(held | intents.c.state.in_([IntentState.FAILED.value, IntentState.DEAD.value]))
            .group_by(intents.c.rule_id, state)
        )
        return {(rule, str(kind)): count for rule, kind, count in self._conn.execute(query)}

    def count_by_state(self) -> dict[IntentState, int]:
        """Every state with its count, zeros included (for metrics)."""
        counts = dict.fromkeys(IntentState, 0)
        query = select(intents.c.state, func.count()).group_by(intents.c.state)
        for state, count in self._conn.execute(query):
            counts[IntentState(state)] = count
        return counts

    def get(self, key: str) -> LedgerEntry | None:
        row = self._conn.execute(select(intents).where(intents.c.key == key)).first()
        return _entry(row) if row is not None else None

    def earlier_in_list(self, intent: Intent) -> builtins.list[LedgerEntry]:
        """The intents planned before `intent` by the same `do:` list: same rule, record, step,
        occurrence and due instant, in planning order."""
        rows = self._conn.execute(_EARLIER, {
            "key": intent.key, "rule": intent.rule_id, "kind": intent.record.kind,
            "id": intent.record.id, "step": intent.step, "occurrence": intent.occurrence,
            "due": intent.due_at})
        return [_entry(row) for row in rows]

    def list(
        self,
        state: IntentState | str | None = None,
        record: RecordRef | None = None,
        rule_id: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[LedgerEntry]:
        """Intents in planning order, filtered (for `syncd intents` and `syncd audit`)."""
        query = select(intents).order_by(intents.c.id).limit(limit)
        if state is not None:
            query = query.where(intents.c.state == IntentState(state).value)
        if record is not None:
            query = query.where(
                intents.c.record_kind == record.kind, intents.c.record_id == record.id
            )
        if rule_id is not None:
            query = query.where(intents.c.rule_id == rule_id)
        return [_entry(row) for row in self._conn.execute(query)]

    def _transition(
        self,
        key: str,
        expected: Sequence[IntentState],
        now: datetime,
        values: Mapping[str, Any],
        *,
        guards: Sequence[Any] = (),
        detail: Mapping[str, Any] | None = None,
        event: str | None = None,
    ) -> bool:
        """UPDATE the intent only if it is in one of `expected` states (False: lost the race or
        not applicable) and audit the transition as `event`, by default the new state."""
        row = self._conn.execute(
            update(intents)
            .where(intents.c.key == key, intents.c.state.in_(_values(expected)), *guards)
            .values(updated_at=now, **values)
            .returning(
                intents.c.rule_id,
                intents.c.record_kind,
                intents.c.record_id,
                intents.c.state,
                intents.c.attempts,
            )
        ).first()
        if row is None:
            return False
        self._audit.append(
            event or row.state,
            now,
            record=RecordRef(row.record_kind, row.record_id),
            rule_id=row.rule_id,
            intent_key=key,
            detail={"attempts": row.attempts, **(detail or {})},
        )
        return True


def _entry(row: Row[Any]) -> LedgerEntry:
    intent = Intent(
        key=row.key,
        rule_id=row.rule_id,
        record=RecordRef(row.record_kind, row.record_id),
        action=row.action,
        params=row.params,
        due_at=row.due_at,
        step=row.step,
        occurrence=row.occurrence,
        shadow=row.shadow,
        reason=row.reason,
    )
    return LedgerEntry(
        intent=intent,
        state=IntentState(row.state),
        attempts=row.attempts,
        last_error=row.last_error,
        vendor_answer=row.vendor_answer,
        created_at=row.created_at,
        updated_at=row.updated_at,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
    )
