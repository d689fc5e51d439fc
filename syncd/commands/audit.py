"""`syncd audit RECORD`: answer "why did this ticket escalate?" from the store alone.

Shows the record's field history as syncd saw it, every audit row (intents planned with the
condition values that made the rule fire, sent, answered by the vendor, failed; timers scheduled,
moved, fired, cancelled) merged into one timeline, every intent for the record with its state,
and the pending timers with their due instants. Intents that act in another system (a Graph
folder or mail for a Zendesk ticket) belong to the record that caused them, so they show here.

Also home of what the read-only commands share: record references (`zendesk:123`), opening
the configured store without creating one, and rendering instants and intents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, tzinfo
from itertools import groupby
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from syncd.model import RECORD_KINDS, FieldChange, RecordRef
from syncd.settings import Settings, SettingsError, load_settings
from syncd.store.audit import AuditEntry
from syncd.store.db import Store, StoreError, open_store
from syncd.store.ledger import LedgerEntry
from syncd.store.timers import Timer

# `system:id` shorthands; Salesforce ids tell their object by their first three characters.
SHORT_KINDS = {"zendesk": "zendesk.ticket", "sharepoint": "sharepoint.file"}
SALESFORCE_PREFIXES = {
    "006": "salesforce.opportunity",
    "001": "salesforce.account",
    "00T": "salesforce.task",
}
RECORD_HELP = (
    "A record: zendesk.ticket:123, or zendesk:123, salesforce:006... (object from the id "
    "prefix: 006 opportunity, 001 account, 00T task), sharepoint:ID."
)
CONFIG_HELP = "Settings file (default: $SYNCD_CONFIG, else /etc/syncd/syncd.toml)."
_SHOWN_CHARS = 80


def parse_record(text: str) -> RecordRef:
    """`zendesk.ticket:123` as is; `zendesk:123`, `salesforce:006...`, `sharepoint:ID` expanded."""
    system, sep, rid = text.partition(":")
    if not sep or not rid:
        raise typer.BadParameter(f"{text!r} is not a record (expected e.g. zendesk:123)")
    if "." in system:
        ref = RecordRef.parse(text)
        if ref.kind not in RECORD_KINDS:
            raise typer.BadParameter(
                f"unknown kind {ref.kind!r} (one of {', '.join(RECORD_KINDS)})"
            )
        return ref
    if system == "salesforce":
        return RecordRef(SALESFORCE_PREFIXES.get(rid[:3], "salesforce.record"), rid)
    if system in SHORT_KINDS:
        return RecordRef(SHORT_KINDS[system], rid)
    raise typer.BadParameter(
        f"unknown system {system!r} (zendesk, salesforce, sharepoint, or a full kind)"
    )


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def configured_store(config: Path | None) -> Iterator[tuple[Settings, Store]]:
    """The settings and the store they name. A missing SQLite file is an error rather than
    created: an empty database made by an administrator's shell (possibly as root) would
    hide the real one's absence and could be unwritable for the service."""
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        fail(str(exc))
    url = make_url(settings.syncd.store_url)
    database = url.database
    on_disk = url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    if on_disk and not Path(str(database)).is_file():
        fail(
            f"no state database at {database}: syncd has not run with this configuration "
            "yet (see syncd.state_dir / syncd.store_url)"
        )
    try:
        store = open_store(settings.syncd.store_url, max_attempts=settings.syncd.max_attempts)
    except (StoreError, SQLAlchemyError) as exc:
        fail(f"{url.render_as_string(hide_password=True)}: {exc}")
    try:
        yield settings, store
    finally:
        store.close()


def show_instant(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z") if at else ""


def short(value: Any) -> str:
    """A value on one table line: compact JSON, cut at a readable length."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={short(value)}" for name, value in values.items())


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def entry_json(entry: LedgerEntry) -> dict[str, Any]:
    intent = entry.intent
    return {
        "key": intent.key,
        "rule": intent.rule_id,
        "record": str(intent.record),
        "action": intent.action,
        "params": dict(intent.params),
        "reason": dict(intent.reason),
        "step": intent.step,
        "occurrence": intent.occurrence,
        "shadow": intent.shadow,
        "state": entry.state.value,
        "attempts": entry.attempts,
        "due_at": iso(intent.due_at),
        "next_attempt_at": iso(entry.next_attempt_at),
        "sent_at": iso(entry.sent_at),
        "last_error": entry.last_error,
        "vendor_answer": entry.vendor_answer,
        "created_at": iso(entry.created_at),
        "updated_at": iso(entry.updated_at),
    }


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def console() -> Console:
    """A console on the current stdout; data is shown as text, never parsed as rich markup."""
    return Console(highlight=False, markup=False, emoji=False)


def audit(
    record: Annotated[str, typer.Argument(metavar="RECORD", help=RECORD_HELP, show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)] = None,
) -> None:
    """Explain a record: its history as syncd saw it, every intent, audit row and pending timer."""
    ref = parse_record(record)
    with configured_store(config) as (settings, store), store.read() as tx:
        snapshot = tx.records.get(ref)
        history = tx.records.history(ref)
        entries = tx.ledger.list(record=ref)
        rows = tx.audit.for_record(ref)
        timers = tx.timers.for_record(ref)
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
    numbers = {entry.intent.key: n for n, entry in enumerate(entries, 1)}
    out.print(_timeline(history, rows, numbers, tz))
    if entries:
        out.print(_intents_table(entries, tz))
    if timers:
        out.print(_timers_table(timers, tz))


def _timeline(
    history: list[FieldChange], rows: list[AuditEntry], numbers: dict[str, int], tz: tzinfo
) -> Table:
    """Field changes (grouped per observed version) and audit rows in the order they happened;
    at one instant, the change comes before what it caused. Intents are referred to by their
    number in the Intents table."""
    items: list[tuple[datetime, int, int, str, str, str]] = []
    for n, (at, group) in enumerate(groupby(history, key=lambda c: c.at)):
        changes = list(group)
        if n == 0:
            detail = ", ".join(f"{c.field}={short(c.new)}" for c in changes if c.new is not None)
            items.append((at, 0, n, "first seen", "", detail))
        else:
            detail = "; ".join(f"{c.field}: {short(c.old)} → {short(c.new)}" for c in changes)
            items.append((at, 0, n, "changed", "", detail))
    for row in rows:
        number = numbers.get(row.intent_key or "")
        ref = f"#{number} " if number else f"{row.intent_key} " if row.intent_key else ""
        detail = (ref + _describe(row, tz)).strip()
        items.append((row.at, 1, row.id, row.event, row.rule_id or "", detail))
    table = Table(title="Timeline", title_justify="left")
    for column in ("when", "what", "rule", "detail"):
        table.add_column(column, overflow="fold")
    for at, _, _, what, rule, detail in sorted(items):
        table.add_row(show_instant(at, tz), what, rule, detail)
    return table


def _describe(row: AuditEntry, tz: tzinfo) -> str:
    """One audit row's detail in words; other events as key=value pairs."""
    d = dict(row.detail)
    for name in ("due_at", "retry_at", "until"):
        if isinstance(d.get(name), str):
            d[name] = show_instant(datetime.fromisoformat(d[name]), tz)
    attempts = d.get("attempts")
    match row.event:
        case "planned":
            text = f"{d.get('action')} {short(d.get('params', {}))}, due {d.get('due_at')}"
            if d.get("reason"):
                text += f", because {pairs(d['reason'])}"
            return text + (" (shadow)" if d.get("shadow") else "")
        case "sent":
            return f"after {attempts} failed attempts" if attempts else ""
        case "done":
            return f"vendor answered {short(d.get('answer'))}"
        case "failed" | "dead":
            retry = f", retry at {d['retry_at']}" if d.get("retry_at") else ""
            return f"attempt {attempts} failed: {short(d.get('error'))}{retry}"
        case "retried":
            return "planned again, attempts reset"
        case "deferred":
            return f"held until {d.get('until')}: {d.get('reason')}"
        case "timer_scheduled" | "timer_rescheduled" | "timer_fired" | "timer_cancelled":
            return f"step {d.get('step')} due {d.get('due_at')}"
    return pairs(d)


def _intents_table(entries: list[LedgerEntry], tz: tzinfo) -> Table:
    table = Table(title="Intents", title_justify="left")
    columns = ("#", "key", "rule", "action", "state", "attempts", "due", "because", "answer")
    for column in columns:
        table.add_column(column, overflow="fold")
    for n, entry in enumerate(entries, 1):
        intent = entry.intent
        outcome = entry.last_error if entry.last_error else entry.vendor_answer
        table.add_row(
            str(n),
            intent.key,
            intent.rule_id,
            f"{intent.action} {short(dict(intent.params))}",
            entry.state.value + (" (shadow)" if intent.shadow else ""),
            str(entry.attempts),
            show_instant(intent.due_at, tz),
            pairs(intent.reason),
            "" if outcome is None else short(outcome),
        )
    return table


def _timers_table(timers: list[Timer], tz: tzinfo) -> Table:
    table = Table(title="Pending timers", title_justify="left")
    for column in ("due", "rule", "step"):
        table.add_column(column, overflow="fold")
    for timer in timers:
        table.add_row(show_instant(timer.due_at, tz), timer.rule_id, timer.step)
    return table
