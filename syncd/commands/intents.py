"""`syncd intents`: the intents ledger as a table (or JSON), `--retry KEY` to take an
intent out of the dead letter once its cause is fixed, and for an `unknown` intent (the vendor
refused to verify it) a person's verdict: `--retry KEY` sends again what still cannot be
verified, and `--mark-done KEY` records that it happened.

Reads go through a read-only snapshot, so listing never blocks the running daemon. A retry
is one ledger transition (audited like the daemon's own); the running daemon picks the
intent up at its next executor pass.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from syncd.clock import SystemClock
from syncd.commands.audit import (
    CONFIG_HELP,
    RECORD_HELP,
    configured_store,
    console,
    entry_json,
    fail,
    parse_record,
    print_json,
    short,
    show_instant,
)
from syncd.store.db import Store
from syncd.store.ledger import CLAIMABLE, IntentState, LedgerEntry

FAILED_STATES = (IntentState.DEAD, IntentState.FAILED, IntentState.UNKNOWN)
RETRY_REASON = "retry requested with `syncd intents --retry`"


def intents(
    failed: Annotated[
        bool,
        typer.Option("--failed", help="Only dead-lettered, failed (awaiting retry) and unknown "
                     "(verification refused) intents."),
    ] = False,
    state: Annotated[
        IntentState | None, typer.Option(help="Only intents in this state.", show_default=False)
    ] = None,
    record: Annotated[
        str | None,
        typer.Option(metavar="RECORD", help="Only intents for this record. " + RECORD_HELP),
    ] = None,
    retry: Annotated[
        str | None,
        typer.Option(
            metavar="KEY",
            help="Plan a dead or failed intent again, to run at the daemon's next pass; an "
            "unknown one: what the vendor still refuses to verify is sent again.",
        ),
    ] = None,
    mark_done: Annotated[
        str | None,
        typer.Option("--mark-done", metavar="KEY",
                     help="Record an unknown intent as done (you saw that it happened)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)] = None,
) -> None:
    """List the intents ledger (planning order), or retry one intent with --retry KEY."""
    if (retry or mark_done) and (failed or state or record or as_json or (retry and mark_done)):
        raise typer.BadParameter("--retry KEY and --mark-done KEY take no other option",
                                 param_hint="--retry")  # fmt: skip
    if failed and state is not None:
        raise typer.BadParameter("use either --failed or --state", param_hint="--state")
    ref = parse_record(record) if record else None
    with configured_store(config) as (settings, store):
        if retry is not None:
            typer.echo(_retry(store, retry, settings.syncd.tz))
            return
        if mark_done is not None:
            typer.echo(_mark_done(store, mark_done))
            return
        with store.read() as tx:
            if failed:
                entries = [e for s in FAILED_STATES for e in tx.ledger.list(state=s, record=ref)]
                entries.sort(key=lambda e: e.created_at)
            else:
                entries = tx.ledger.list(state=state, record=ref)
    if as_json:
        print_json([entry_json(entry) for entry in entries])
        return
    out = console()
    if not entries:
        out.print("no intents match")
        return
    out.print(_table(entries, settings.syncd.tz))
    out.print(f"{len(entries)} intent{'' if len(entries) == 1 else 's'}")


def _retry(store: Store, key: str, tz: tzinfo) -> str:
    """Dead -> planned (attempts reset, due now); failed -> its pending retry brought forward
    to now. Anything else is refused: done, skipped and in-flight intents are not retried."""
    now = SystemClock().now()
    with store.transaction() as tx:
        entry = tx.ledger.get(key)
        if entry is None:
            fail(f"no intent with key {key!r} (list them with `syncd intents`)")
        if entry.state is IntentState.DEAD:
            moved = tx.ledger.retry(key, now)
            message = f"{key}: planned again (attempts reset); it runs at the daemon's next pass"
        elif entry.state is IntentState.UNKNOWN:
            moved = tx.ledger.resend(key, now)
            message = (f"{key}: planned again; at the daemon's next pass what the vendor "
                       "still refuses to verify is sent again")  # fmt: skip
        elif entry.state is IntentState.FAILED:
            moved = tx.ledger.defer(key, now, RETRY_REASON, now)
            waited = show_instant(entry.next_attempt_at, tz)
            message = f"{key}: retry brought forward from {waited} to the daemon's next pass"
        else:
            fail(f"{key} is {entry.state.value}: only dead, failed or unknown intents can be "
                 "retried")
        if not moved:
            fail(f"{key} changed state meanwhile; look again with `syncd intents`")
    return message


def _mark_done(store: Store, key: str) -> str:
    """Unknown -> done: a person saw at the vendor that the effect is there."""
    with store.transaction() as tx:
        entry = tx.ledger.get(key)
        if entry is None:
            fail(f"no intent with key {key!r} (list them with `syncd intents`)")
        if entry.state is not IntentState.UNKNOWN:
            fail(f"{key} is {entry.state.value}: only unknown intents can be marked done")
        if not tx.ledger.mark_done_by_person(key, SystemClock().now()):
            fail(f"{key} changed state meanwhile; look again with `syncd intents`")
    return f"{key}: marked done"


def _table(entries: list[LedgerEntry], tz: tzinfo) -> Table:
    """`due` is when the intent runs next while it can still run (planned, failed), else the
    instant the rule made it due."""
    table = Table()
    for column in ("key", "rule", "record", "action", "state", "attempts", "due", "last error"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        intent = entry.intent
        due = entry.next_attempt_at if entry.state in CLAIMABLE else intent.due_at
        table.add_row(
            intent.key,
            intent.rule_id,
            str(intent.record),
            intent.action,
            entry.state.value + (" (shadow)" if intent.shadow else ""),
            str(entry.attempts),
            show_instant(due, tz),
            short(entry.last_error) if entry.last_error else "",
        )
    return table
