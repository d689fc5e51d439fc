"""`syncd intents`: the intents ledger as a table (or JSON), `--retry KEY` to take an
intent out of the dead letter once its cause is fixed, and for an `unknown` intent (the vendor
refused to verify it) a person's verdict: `--retry KEY` sends again what still cannot be
verified, and `--mark-done KEY` records that it happened. Intents held past a blast-radius
limit are listed by rule with `--held`, and a person lets them go with `--release RULE
[--max N]` or discards them with `--drop RULE` (each audited with who, when and how many).

Reads go through a read-only snapshot, so listing never blocks the running daemon. A retry
is one ledger transition (audited like the daemon's own); the running daemon picks the
intent up at its next executor pass.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from syncd.clock import SystemClock
from syncd.commands.arguments import CONFIG_HELP, RECORD_HELP, parse_record
from syncd.commands.configured import configured_store
from syncd.commands.format import entry_json, iso, short, show_instant, side
from syncd.commands.output import console, fail, print_json
from syncd.store.db import Store
from syncd.store.ledger import CLAIMABLE, IntentState, LedgerEntry
from syncd.store.quarantine import Held

FAILED_STATES = (IntentState.DEAD, IntentState.FAILED, IntentState.UNKNOWN)
RETRY_REASON = "retry requested with `syncd intents --retry`"
EXAMPLES = 5  # held intents shown per rule


def intents(
    failed: Annotated[
        bool,
        typer.Option("--failed", help="Only dead-lettered, failed (awaiting retry) and unknown "
                     "(verification refused) intents; exit 1 if any."),
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
    quarantined: Annotated[
        bool,
        typer.Option("--quarantined",
                     help="List the records held back because evaluating them failed."),
    ] = False,
    held: Annotated[
        bool,
        typer.Option("--held", help="List the intents held past a blast-radius limit, by rule, "
                     "with examples."),
    ] = False,
    release: Annotated[
        str | None,
        typer.Option("--release", metavar="RULE",
                     help="Let the rule's held intents go past its limits (oldest first); each "
                     "record is re-read first, and skipped if the rule no longer holds."),
    ] = None,
    drop: Annotated[
        str | None,
        typer.Option("--drop", metavar="RULE", help="Never carry out the rule's held intents."),
    ] = None,
    most: Annotated[
        int | None,
        typer.Option("--max", min=1, metavar="N", help="With --release or --drop: at most N."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)] = None,
) -> None:
    """List the intents ledger (planning order), or retry one intent with --retry KEY."""
    if release or drop:
        if (release and drop) or retry or mark_done or failed or state or record or as_json \
                or quarantined or held:
            raise typer.BadParameter("--release RULE and --drop RULE take no other option "
                                     "than --max", param_hint="--release")
        with configured_store(config) as (_settings, store):
            typer.echo(_let_go(store, release or "", drop or "", most))
        return
    if most is not None:
        raise typer.BadParameter("--max goes with --release or --drop", param_hint="--max")
    if (retry or mark_done) and (
        failed or state or record or as_json or quarantined or held or (retry and mark_done)
    ):
        raise typer.BadParameter("--retry KEY and --mark-done KEY take no other option",
                                 param_hint="--retry")
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
            back = tx.quarantine.list(ref)
            if quarantined:
                entries = []
            elif held:
                entries = tx.ledger.list(state=IntentState.HELD, record=ref)
            elif failed:
                entries = [e for s in FAILED_STATES for e in tx.ledger.list(state=s, record=ref)]
                entries.sort(key=lambda e: e.created_at)
            else:
                entries = tx.ledger.list(state=state, record=ref)
    if quarantined:
        _show_held(back, as_json, settings.syncd.tz)
        return
    if held:
        _show_limited(entries, as_json, settings.syncd.tz)
        return
    if as_json:
        print_json([entry_json(entry) for entry in entries])
    else:
        out = console()
        if back:
            out.print(f"{len(back)} record(s) held back after an error: "
                      "`syncd intents --quarantined`")
        if entries:
            out.print(_table(entries, settings.syncd.tz))
            out.print(f"{len(entries)} intent{'' if len(entries) == 1 else 's'}")
        else:
            out.print("no intents match")
    if failed and entries:  # as `amtool` and `systemctl is-failed`: scripts test the status
        raise typer.Exit(1)


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
                       "still refuses to verify is sent again")
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


def who() -> str:
    """The person running the command, as the audit names them (`bob via sudo`)."""
    user = getpass.getuser()
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {user}, via sudo)" if sudo and sudo != user else user


def _let_go(store: Store, release: str, drop: str, most: int | None) -> str:
    """Release or drop the rule's held intents, oldest first, one audited transition each and
    one summary audit row (who, when, how many)."""
    rule, by, now = release or drop, who(), SystemClock().now()
    with store.transaction() as tx:
        entries = tx.ledger.list(state=IntentState.HELD, rule_id=rule)[:most]
        if not entries:
            fail(f"nothing of {rule} is held (`syncd intents --held` lists what is)")
        move = tx.ledger.release if release else tx.ledger.drop
        count = sum(move(e.intent.key, by, now) for e in entries)
        left = len(tx.ledger.list(state=IntentState.HELD, rule_id=rule))
        tx.audit.append("release" if release else "drop", now, rule_id=rule,
                        detail={"by": by, "count": count, "left": left})
    if release:
        return (f"{count} intents of {rule} released ({left} still held); the daemon sends "
                "them at its next pass, past the limits, each record re-read first")
    return f"{count} intents of {rule} dropped ({left} still held)"


def _show_limited(entries: Sequence[LedgerEntry], as_json: bool, tz: tzinfo) -> None:
    """Held intents grouped by rule: how many, the limits that held them, five examples."""
    groups: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.intent.rule_id, []).append(entry)
    found = [{
        "rule": rule,
        "count": len(group),
        "limits": sorted({_limit(e) for e in group}),
        "since": iso(min(e.updated_at for e in group)),
        "examples": [{"key": e.intent.key, "record": str(e.intent.record),
                      "action": e.intent.action, "params": dict(e.intent.params),
                      "due": iso(e.intent.due_at), "reason": dict(e.intent.reason)}
                     for e in group[:EXAMPLES]],
    } for rule, group in groups.items()]
    if as_json:
        print_json(found)
        return
    out = console()
    if not found:
        out.print("nothing is held by a limit")
        return
    table = Table()
    for column in ("rule", "held", "limit", "examples (record: action, why)"):
        table.add_column(column, overflow="fold")
    for group in found:
        examples = "\n".join(f"{e['record']}: {e['action']} {short(str(e['params']))}, "
                              f"{short(str(e['reason']))}" for e in group["examples"])
        since = show_instant(min(e.updated_at for e in groups[group["rule"]]), tz)
        table.add_row(group["rule"], f"{group['count']} held since {since}",
                      "\n".join(group["limits"]), examples)
    out.print(table)
    out.print("let them go with `syncd intents --release RULE [--max N]`, or "
              "`--drop RULE` to never carry them out")


def _limit(entry: LedgerEntry) -> str:
    return (entry.last_error or "").removeprefix("held: ")


def _show_held(held: list[Held], as_json: bool, tz: tzinfo) -> None:
    if as_json:
        print_json([{"record": str(h.record), "reason": h.reason, "attempts": h.attempts,
                     "first_at": iso(h.first_at), "next_attempt_at": iso(h.next_attempt_at)}
                    for h in held])
        return
    out = console()
    if not held:
        out.print("no record is held back")
        return
    table = Table()
    for column in ("record", "attempts", "held since", "retry at", "reason"):
        table.add_column(column, overflow="fold")
    for h in held:
        table.add_row(str(h.record), str(h.attempts), show_instant(h.first_at, tz),
                      show_instant(h.next_attempt_at, tz), short(h.reason))
    out.print(table)
    out.print(f"{len(held)} record{'' if len(held) == 1 else 's'} held back")


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
            entry.state.value + side(intent),
            str(entry.attempts),
            show_instant(due, tz),
            short(entry.last_error) if entry.last_error else "",
        )
    return table
