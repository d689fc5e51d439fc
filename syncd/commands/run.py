"""`syncd run` (the service, or one cycle) and `syncd plan` (what would happen, touching
nothing)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer

from syncd.clock import SystemClock
from syncd.commands.arguments import parse_record
from syncd.commands.format import because, short, show_instant
from syncd.daemon import progress
from syncd.daemon.cycle import run_cycle
from syncd.daemon.preview import Preview, preview
from syncd.daemon.runtime import RulesRefused, open_runtime
from syncd.daemon.service import Service
from syncd.logs import configure_logging, settings_secrets
from syncd.printable import printable
from syncd.settings import Settings, SettingsError, load_settings
from syncd.store.db import StoreError
from syncd.store.ledger import LedgerEntry

LEVELS = ("debug", "info", "warning", "error")
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file (default: $SYNCD_CONFIG, /etc/syncd/syncd.toml)."),
]


LogLevel = Annotated[
    str | None,
    typer.Option("--log-level", help="debug, info, warning or error (default: [syncd] log_level)."),
]


def run(
    config: ConfigOption = None,
    log_level: LogLevel = None,
    once: Annotated[
        bool, typer.Option("--once", help="One cycle, then exit (1 if anything failed).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and audit; write nothing to a vendor.")
    ] = False,
) -> None:
    """Poll, apply the rules and carry out their actions, exactly once."""
    settings = _settings(config, log_level)
    try:
        rt = open_runtime(settings, SystemClock(), dry_run=dry_run)
    except (RulesRefused, StoreError) as exc:
        raise _refused(exc) from None
    rt.progress = progress.for_stream(sys.stderr)  # a bar on a terminal, not in the journal
    try:
        if once:
            report = run_cycle(rt)
            for failure in report.failures:
                typer.echo(f"failed: {printable(failure)}", err=True)  # one line each
            raise typer.Exit(0 if report.ok else 1)
        Service(rt).serve()
    finally:
        rt.close()


def plan(
    config: ConfigOption = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Show what is due by this instant (ISO-8601; default: now)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="Only this rule's intents (repeatable).")
    ] = None,
    record: Annotated[
        str | None, typer.Option("--record", help="Only this record's intents (zendesk:123).")
    ] = None,
    tsv: Annotated[
        bool, typer.Option("--tsv", help="One tab-separated line per intent, with a header.")
    ] = False,
) -> None:
    """Show every intent due now (or by --at), with its rule and reason.

    Polls into a throwaway copy of the state: never writes the real store or a vendor.
    Repeats of one rule's step on one record are shown as one line (first, last, count)."""
    ref = parse_record(record) if record else None
    settings = _settings(config)
    until = instant(at) if at else None
    try:
        found = preview(settings, SystemClock(), until)
    except (RulesRefused, StoreError) as exc:
        raise _refused(exc) from None
    found = Preview(found.at, [e for e in found.intents
                               if (not rule or e.intent.rule_id in rule)
                               and (ref is None or e.intent.record == ref)])
    tz = settings.syncd.tz
    if as_json:
        typer.echo(json.dumps(found.to_json(), indent=2))
    elif tsv:
        typer.echo(_tsv(found, tz))
    else:
        typer.echo(_text(found, tz))


def _settings(config: Path | None, log_level: str | None = None) -> Settings:
    if log_level is not None and log_level.lower() not in LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LEVELS)}", param_hint="--log-level")
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    level = (log_level or settings.syncd.log_level).upper()
    configure_logging(settings.syncd.log_format, level, settings_secrets(settings))
    return settings


def _refused(exc: RulesRefused | StoreError) -> typer.Exit:
    for diagnostic in getattr(exc, "diagnostics", []):
        typer.echo(str(diagnostic), err=True)
    typer.echo(f"syncd: {exc}", err=True)
    return typer.Exit(2)


def instant(text: str, option: str = "--at") -> datetime:
    """An option's ISO-8601 instant (UTC when it names no offset)."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO-8601 instant: {text!r}", param_hint=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _due(entry: LedgerEntry) -> datetime:
    return max(entry.intent.due_at, entry.next_attempt_at)


def _text(found: Preview, tz: tzinfo) -> str:
    """One line per rule, record, action and step (a repeat's occurrences together), with
    audit's time and reason formats."""
    groups: dict[tuple[Any, ...], list[LedgerEntry]] = {}
    for entry in sorted(found.intents, key=_due):
        i = entry.intent
        groups.setdefault((i.rule_id, str(i.record), i.action, i.step, i.shadow), []).append(entry)
    lines = [f"{len(found.intents)} intent(s) due by {show_instant(found.at, tz)}"
             + (f", in {len(groups)} lines" if len(groups) != len(found.intents) else "")]
    for (rule, record, action, step, shadow), entries in groups.items():
        first, last = _due(entries[0]), _due(entries[-1])
        when = show_instant(first, tz)
        if len(entries) > 1:
            when += f" … {show_instant(last, tz)} ({len(entries)}x)"
        flags = f" step {step}" if step else ""
        flags += " [shadow]" if shadow else ""
        params = json.dumps(dict(entries[0].intent.params), ensure_ascii=False)
        lines.append(f"{when}  {rule}  {record}  {action}{flags}  {short(params)}")
        lines.append(f"    because {because(entries[0].intent.reason, tz)}")
    return "\n".join(printable(line) for line in lines)


def _tsv(found: Preview, tz: tzinfo) -> str:
    """For scripts and pipes: nothing wraps, one intent per line."""
    head = ["due", "rule", "record", "action", "step", "shadow", "params", "reason"]
    rows = ["\t".join(head)]
    for entry in sorted(found.intents, key=_due):
        i = entry.intent
        cells = [show_instant(_due(entry), tz), i.rule_id, str(i.record), i.action, i.step,
                 str(i.shadow).lower(), json.dumps(dict(i.params), ensure_ascii=False),
                 because(i.reason, tz)]
        rows.append("\t".join(printable(" ".join(c.split())) for c in cells))
    return "\n".join(rows)
