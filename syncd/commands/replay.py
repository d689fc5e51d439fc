"""`syncd replay --rules NEWDIR`: what a candidate rule set would have done differently from the
running rules over the history the store recorded (daemon/replay.py). No vendor is called and
the store is only read. Exit status: 0 no difference, 1 differences, 2 unusable input (so a
review pipeline can gate a rule change on it)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer

from syncd.clock import SystemClock
from syncd.commands.arguments import CONFIG_HELP
from syncd.commands.configured import configured_store
from syncd.commands.format import show_instant
from syncd.commands.output import console, print_json
from syncd.daemon.replay import EXAMPLES, Difference, Replayed, replay
from syncd.model import Intent
from syncd.rules.engine import DEFAULT_GRACE
from syncd.rules.language import RuleSet
from syncd.rules.language.loader import load_rules

SPAN = re.compile(r"^(\d+)\s*([dhm])$")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}
USAGE = 2


def replay_command(
    rules: Annotated[Path, typer.Option("--rules", metavar="NEWDIR",
                                        help="The candidate rules directory.")],
    since: Annotated[str, typer.Option(help="Start of the window: a span back from --until "
                                       "(14d, 36h, 90m) or an ISO instant.")] = "14d",
    until: Annotated[str | None, typer.Option(help="End of the window, an ISO instant "
                                              "(default: now).", show_default=False)] = None,
    against: Annotated[Path | None, typer.Option(
        "--against", metavar="DIR",
        help="The rules to compare with (default: [syncd] rules_dir, the running rules).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)] = None,
) -> None:
    """Replay a candidate rule set over the recorded history; exit 1 if it would act differently."""
    end = _instant(until, "--until") if until else SystemClock().now()
    start = _since(since, end)
    try:
        with configured_store(config) as (settings, store):
            running = _load(against or settings.syncd.rules_dir)
            candidate = _load(rules)
            grace = DEFAULT_GRACE + timedelta(seconds=settings.syncd.poll_interval_s)
            with store.read() as tx:
                found = replay(tx, running, candidate, start, end, grace)
    except typer.Exit as exc:
        raise typer.Exit(USAGE if exc.exit_code == 1 else exc.exit_code) from None
    tz = settings.syncd.tz
    if as_json:
        print_json(_json(found, start, end, tz))
    else:
        _print(found, start, end, tz)
    if found.differences:
        raise typer.Exit(1)


def _refuse(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(USAGE)


def _instant(text: str, option: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _refuse(f"{option}: {text!r} is not an ISO instant") from None
    if at.tzinfo is None:
        raise _refuse(f"{option}: {text!r} has no UTC offset")
    return at


def _since(text: str, end: datetime) -> datetime:
    match = SPAN.match(text.strip())
    if match:
        return end - timedelta(**{UNITS[match[2]]: int(match[1])})
    return _instant(text, "--since")


def _load(directory: Path) -> RuleSet:
    result = load_rules(directory)
    if result.errors:
        for diagnostic in result.diagnostics:
            if diagnostic.is_error:
                typer.echo(str(diagnostic), err=True)
        raise _refuse(f"{directory}: rules refused (`syncd check {directory}`)")
    return result.ruleset


def _local(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).isoformat()


def _example(intent: Intent, tz: tzinfo, **more: Any) -> dict[str, Any]:
    return {"record": str(intent.record), "action": intent.action, "step": intent.step,
            "key": intent.key, **more}


def _json(found: Replayed, start: datetime, end: datetime, tz: tzinfo) -> dict[str, Any]:
    def rule(rule_id: str, diff: Difference) -> dict[str, Any]:
        return {
            "rule": rule_id,
            "added": {"count": len(diff.added), "examples": [
                _example(i, tz, due=_local(i.due_at, tz), values=v)
                for i, v in diff.added[:EXAMPLES]]},
            "removed": {"count": len(diff.removed), "examples": [
                _example(i, tz, due=_local(i.due_at, tz), values=v)
                for i, v in diff.removed[:EXAMPLES]]},
            "moved": {"count": len(diff.moved), "examples": [
                _example(old, tz, **{"from": _local(old.due_at, tz), "to": _local(new.due_at, tz)})
                for old, new in diff.moved[:EXAMPLES]]},
        }

    return {"since": _local(start, tz), "until": _local(end, tz),
            "rules_replayed": found.rules_replayed, "records": found.records,
            "versions": found.versions,
            "rules": [rule(r, d) for r, d in found.differences.items()]}


def _print(found: Replayed, start: datetime, end: datetime, tz: tzinfo) -> None:
    out = console()
    window = f"{show_instant(start, tz)} to {show_instant(end, tz)}"
    if not found.rules_replayed:
        out.print(f"no difference: the two rule sets are the same ({window})")
        return
    out.print(f"replayed {len(found.rules_replayed)} rule(s) that differ over {found.records} "
              f"records ({found.versions} versions), {window}")
    if not found.differences:
        out.print("no difference: the changed rules would have planned the same intents")
        return
    for rule_id, diff in found.differences.items():
        out.print(f"\n{rule_id}: {len(diff.added)} added, {len(diff.removed)} "
                  f"removed, {len(diff.moved)} moved")
        for sign, items in (("+", diff.added), ("-", diff.removed)):
            for intent, values in items[:EXAMPLES]:
                shown = ", ".join(f"{k}={v}" for k, v in values.items())
                out.print(f"  {sign} {intent.record} {intent.action} "
                          f"{show_instant(intent.due_at, tz)} ({shown})", markup=False)
        for old, new in diff.moved[:EXAMPLES]:
            out.print(f"  ~ {old.record} {old.action} {show_instant(old.due_at, tz)} -> "
                      f"{show_instant(new.due_at, tz)}", markup=False)
