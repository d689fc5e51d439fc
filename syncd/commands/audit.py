"""`syncd audit RECORD`: answer "why did this ticket escalate?" from the store alone.

Shows the record's field history as syncd saw it, every audit row (intents planned with the
condition values that made the rule fire, the operations sent, the vendor's answer, failures;
timers scheduled, moved, fired, cancelled) merged into one timeline, every intent for the record
with its state, each rule's state for the record (a timeline stopped by its `until`), and the
pending timers with their due instants, all in the configured time zone. Intents that act in
another system (a Graph folder or mail for a Zendesk ticket) belong to the record that caused
them, so they show here.

"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from itertools import groupby
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from syncd.commands.arguments import CONFIG_HELP, RECORD_HELP, parse_record
from syncd.commands.configured import configured_store
from syncd.commands.format import because, entry_json, iso, pairs, short, show_instant, side
from syncd.commands.output import console, fail, print_json
from syncd.connectors.graph import KEY_HEADER
from syncd.daemon.executor import PREPARED
from syncd.model import FieldChange
from syncd.store.audit import AuditEntry
from syncd.store.ledger import LedgerEntry
from syncd.store.timers import StoredTimer


def audit(
    record: Annotated[str, typer.Argument(metavar="RECORD", help=RECORD_HELP, show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)] = None,
) -> None:
    """Explain a record: its history, intents, audit rows, rule states and pending timers.

    Read from the state database alone; instants in the configured timezone."""
    ref = parse_record(record)
    with configured_store(config) as (settings, store), store.read() as tx:
        snapshot = tx.records.get(ref)
        history = tx.records.history(ref)
        entries = tx.ledger.list(record=ref)
        rows = tx.audit.for_record(ref)
        timers = tx.timers.for_record(ref)
        memories = [_Memory(*m) for m in tx.memory.remembered(ref)]
    if not (snapshot or history or entries or rows or timers):
        fail(f"syncd has no trace of {ref}: never polled, no intents, no audit rows, no timers")
    if as_json:
        print_json(
            {
                "record": str(ref),
                "snapshot": None
                if snapshot is None
                else {
                    "fields": dict(snapshot.fields),
                    "observed_at": iso(snapshot.observed_at),
                    "deleted": snapshot.deleted,
                },
                "history": [
                    {"field": c.field, "at": iso(c.at), "old": c.old, "new": c.new} for c in history
                ],
                "intents": [entry_json(entry) for entry in entries],
                "audit": [
                    {
                        "id": row.id,
                        "at": iso(row.at),
                        "event": row.event,
                        "rule": row.rule_id,
                        "intent": row.intent_key,
                        "detail": dict(row.detail),
                    }
                    for row in rows
                ],
                "rules": [
                    {"rule": m.rule_id, "memory": dict(m.memory), "updated_at": iso(m.updated_at)}
                    for m in memories
                ],
                "timers": [
                    {"key": t.key, "rule": t.rule_id, "step": t.step, "due_at": iso(t.due_at)}
                    for t in timers
                ],
            }
        )
        return
    tz = settings.syncd.tz
    out = console()
    if snapshot is None:
        seen = "never polled by syncd"
    else:
        gone = "deleted at the vendor; " if snapshot.deleted else ""
        seen = f"{gone}last seen {show_instant(snapshot.observed_at, tz)}"
    out.print(Text.assemble((str(ref), "bold"), f"  ({seen})"))
    story = _Story(entries, rows, memories, tz)
    out.print(story.timeline(history))
    if entries:
        out.print(story.intents_table())
    if memories:
        out.print(_rules_table(memories, tz))
    if timers:
        out.print(_timers_table(timers, tz))


@dataclass(frozen=True)
class _Memory:
    """The engine's memory of one rule for the record, and when it last changed."""

    rule_id: str
    memory: Mapping[str, Any]
    updated_at: datetime

    @property
    def halted(self) -> str | None:
        """Why a timeline plans nothing more for now (the engine's RuleMemory fields); None if
        it runs, or if the rule is not a timeline."""
        if self.memory.get("cancelled"):
            return "stopped (`until` held): the steps not fired are cancelled"
        if self.memory.get("anchor") and not self.memory.get("in_when"):
            return "paused (`when` does not hold)"
        return None

    @property
    def state(self) -> str:
        """The rule's state for the record, as the Rules table shows it."""
        if self.halted:
            return self.halted
        if self.memory.get("anchor"):
            return "running"
        return "inside `when`" if self.memory.get("in_when") else "outside `when`"


def _op_text(op: Mapping[str, Any]) -> str:
    """One frozen operation in words: system, verb, target (for a mail: its recipients and the
    header that identifies it)."""
    if op["verb"] == "send_mail":
        to = ", ".join(op["payload"].get("to") or [])
        return f"{op['system']} send_mail from {op['target']} to {to}; {KEY_HEADER}: {op['key']}"
    return f"{op['system']} {op['verb']} {op['target']}".rstrip()


def _answer(answer: Any, ops: Mapping[str, Mapping[str, Any]]) -> str:
    """The vendor's answer per frozen operation, named by its system and verb (as is when it
    is not keyed by them). A mail is named by its `x-syncd-key` header: Graph answers sendMail
    with 202 and no message id."""
    verified = isinstance(answer, Mapping) and set(answer) == {"verified"}
    per_op = answer["verified"] if verified else answer
    if not (isinstance(per_op, Mapping) and per_op and set(per_op) <= set(ops)):
        return short(answer)
    parts = []
    for key, detail in per_op.items():
        op = ops[key]
        said = pairs(detail) if isinstance(detail, Mapping) else short(detail)
        mail = f"; {KEY_HEADER}: {key}" if op["verb"] == "send_mail" else ""
        parts.append(f"{op['system']} {op['verb']}: {said}{mail}")
    return ("verified at the vendor: " if verified else "") + "; ".join(parts)


class _Story:
    """The record's audit rows read together: intents by number, their frozen operations,
    what each fired timer planned, and each rule's memory (why a timeline stopped)."""

    def __init__(
        self,
        entries: list[LedgerEntry],
        rows: list[AuditEntry],
        memories: list[_Memory],
        tz: tzinfo,
    ) -> None:
        self.entries = entries
        self.rows = rows
        self.tz = tz
        self.numbers = {entry.intent.key: n for n, entry in enumerate(entries, 1)}
        self.ops: dict[str, dict[str, Mapping[str, Any]]] = {}
        self.planned: dict[tuple[str | None, str, datetime], list[int]] = {}
        self.scheduled: set[tuple[str | None, str, datetime]] = set()
        for row in rows:
            if row.event == PREPARED and row.intent_key:
                self.ops[row.intent_key] = {op["key"]: op for op in row.detail.get("ops", [])}
            elif row.event == "planned" and row.intent_key in self.numbers:
                step = (row.rule_id, row.detail.get("step") or "", row.at)
                self.planned.setdefault(step, []).append(self.numbers[row.intent_key])
            elif row.event == "timer_scheduled":
                self.scheduled.add((row.rule_id, row.detail.get("step") or "", row.at))
        self.memories = {m.rule_id: m for m in memories}

    def timeline(self, history: list[FieldChange]) -> Table:
        """Field changes (grouped per observed version) and audit rows in the order they
        happened; at one instant, the change comes before what it caused. Intents are referred
        to by their number in the Intents table."""
        items: list[tuple[datetime, int, int, str, str, str]] = []
        for n, (at, group) in enumerate(groupby(history, key=lambda c: c.at)):
            changes = list(group)
            if n == 0:
                detail = ", ".join(
                    f"{c.field}={short(c.new)}" for c in changes if c.new is not None
                )
                items.append((at, 0, n, "first seen", "", detail))
            else:
                detail = "; ".join(f"{c.field}: {short(c.old)} → {short(c.new)}" for c in changes)
                items.append((at, 0, n, "changed", "", detail))
        for row in self.rows:
            number = self.numbers.get(row.intent_key or "")
            ref = f"#{number} " if number else f"{row.intent_key} " if row.intent_key else ""
            detail = (ref + self.describe(row)).strip()
            items.append((row.at, 1, row.id, row.event, row.rule_id or "", detail))
        table = Table(title="Timeline", title_justify="left")
        for column in ("when", "what", "rule", "detail"):
            table.add_column(column, overflow="fold")
        for at, _, _, what, rule, detail in sorted(items):
            table.add_row(show_instant(at, self.tz), what, rule, detail)
        return table

    def describe(self, row: AuditEntry) -> str:
        """One audit row's detail in words; other events as key=value pairs."""
        d = dict(row.detail)
        for name in ("due_at", "retry_at", "until"):
            if isinstance(d.get(name), str):
                d[name] = show_instant(datetime.fromisoformat(d[name]), self.tz)
        attempts = d.get("attempts")
        match row.event:
            case "planned":
                step = f"step {d['step']}: " if d.get("step") else ""
                action = f"{d.get('action')} {short(d.get('params', {}))}"
                text = f"{step}{action}, due {d.get('due_at')}"
                if d.get("reason"):
                    text += f", because {because(d['reason'], self.tz)}"
                canary = (d.get("reason") or {}).get("canary")
                return text + (f" (canary {canary})" if canary else
                               " (shadow)" if d.get("shadow") else "")
            case "sent":
                return f"after {attempts} failed attempts" if attempts else ""
            case "prepared":
                return "; ".join(_op_text(op) for op in d.get("ops", []))
            case "done":
                return "vendor answered " + _answer(
                    d.get("answer"), self.ops.get(row.intent_key or "", {})
                )
            case "failed" | "dead":
                retry = f", retry at {d['retry_at']}" if d.get("retry_at") else ""
                return f"attempt {attempts} failed: {short(d.get('error'))}{retry}"
            case "retried":
                return "planned again, attempts reset"
            case "quarantined":
                return (f"record held back (attempt {attempts}), retry at {d.get('retry_at')}: "
                        f"{short(d.get('reason'))}")
            case "released":
                return "record evaluated without error: no longer held back"
            case "unknown":
                return f"outcome unknown, held for a person: {short(d.get('error'))}"
            case "resend":
                return "planned again on a person's word: what cannot be verified is sent again"
            case "deferred":
                return f"held until {d.get('until')}: {d.get('reason')}"
            case "timer_fired":
                text = f"step {d.get('step')} due {d.get('due_at')}"
                made = self.planned.get((row.rule_id, d.get("step") or "", row.at))
                if made:
                    return text + " → " + ", ".join(f"#{n}" for n in made)
                return text + (f": {d['reason']}" if d.get("reason") else "")
            case "timer_cancelled":
                text = f"step {d.get('step')} due {d.get('due_at')}"
                if (row.rule_id, d.get("step") or "", row.at) in self.scheduled:
                    return text + ": replaced by a new due instant (the anchor moved)"
                return text + (f": {d['reason']}" if d.get("reason") else "")
            case "timer_scheduled" | "timer_rescheduled":
                return f"step {d.get('step')} due {d.get('due_at')}"
        return pairs(d)

    def intents_table(self) -> Table:
        table = Table(title="Intents", title_justify="left")
        columns = ("#", "key", "rule", "step", "action", "state", "attempts", "due", "because",
                   "answer")
        for column in columns:
            table.add_column(column, overflow="fold")
        for n, entry in enumerate(self.entries, 1):
            intent = entry.intent
            if entry.last_error:
                outcome = short(entry.last_error)
            elif entry.vendor_answer is not None:
                outcome = _answer(entry.vendor_answer, self.ops.get(intent.key, {}))
            else:
                outcome = ""
            table.add_row(
                str(n),
                intent.key,
                intent.rule_id,
                intent.step,
                f"{intent.action} {short(dict(intent.params))}",
                entry.state.value + side(intent),
                str(entry.attempts),
                show_instant(intent.due_at, self.tz),
                because(intent.reason, self.tz),
                outcome,
            )
        return table


def _rules_table(memories: list[_Memory], tz: tzinfo) -> Table:
    table = Table(title="Rules", title_justify="left")
    for column in ("rule", "state", "anchor", "steps fired", "since"):
        table.add_column(column, overflow="fold")
    for m in memories:
        anchor = m.memory.get("anchor")
        table.add_row(
            m.rule_id,
            m.state,
            show_instant(datetime.fromisoformat(anchor), tz) if anchor else "",
            ", ".join(token.partition("#")[0] for token in m.memory.get("fired", [])),
            show_instant(m.updated_at, tz),
        )
    return table


def _timers_table(timers: list[StoredTimer], tz: tzinfo) -> Table:
    table = Table(title="Pending timers", title_justify="left")
    for column in ("due", "rule", "step"):
        table.add_column(column, overflow="fold")
    for timer in timers:
        table.add_row(show_instant(timer.due_at, tz), timer.rule_id, timer.step)
    return table
