"""`syncd silence`: hold back one rule's actions for a while, as `amtool silence` does. While a
silence holds, the rule's intents (on one record, or all) that fall due are skipped with the
silence as their reason (`syncd audit` shows it); it ends by itself, or with `expire`."""

from __future__ import annotations

import getpass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from syncd.businesstime.durations import DurationError, apply_offset, parse_offset
from syncd.clock import SystemClock
from syncd.commands.arguments import CONFIG_HELP, RECORD_HELP, parse_record
from syncd.commands.configured import configured_store
from syncd.commands.format import show_instant
from syncd.commands.output import fail, print_json
from syncd.commands.run import instant
from syncd.store import silences

app = typer.Typer(no_args_is_help=True, help=__doc__, rich_markup_mode="markdown")
Config = Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)]


def _now() -> datetime:
    return SystemClock().now()


@app.command("add")
def add(
    rule: Annotated[str, typer.Option("--rule", help="The rule to silence.")],
    duration: Annotated[str, typer.Option("--for", help="How long: 30m, 2h, 3d, 1w.")],
    comment: Annotated[str, typer.Option("--comment", help="Why (shown in audit and list).")],
    record: Annotated[str | None, typer.Option("--record", help=RECORD_HELP)] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="From this instant (ISO-8601; default: now).")
    ] = None,
    config: Config = None,
) -> None:
    """Silence a rule (on one record with --record) for a while."""
    ref = parse_record(record) if record else None
    begins = instant(start, "--start") if start else _now()
    try:
        offset = parse_offset(duration)
    except DurationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--for") from None
    if offset.is_business or offset.amount <= 0:
        raise typer.BadParameter("a silence lasts a positive wall time (30m, 2h, 3d)",
                                 param_hint="--for")
    with configured_store(config) as (settings, store), store.transaction() as tx:
        made = silences.add(tx, rule, ref, begins, apply_offset(begins, offset), comment,
                            getpass.getuser(), _now())
    typer.echo(f"silence {made.id}: rule {rule}{f' on {ref}' if ref else ''} until "
               f"{show_instant(made.ends_at, settings.syncd.tz)}")


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Expired ones too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: Config = None,
) -> None:
    """The silences holding now (--all: every one kept)."""
    with configured_store(config) as (settings, store), store.read() as tx:
        found = silences.every(tx) if all_ else silences.active(tx, _now())
    if as_json:
        print_json([s.to_json() for s in found])
        return
    tz = settings.syncd.tz
    for s in found:
        typer.echo(f"{s.id}  {s.rule_id}  {s.record or 'every record'}  "
                   f"{show_instant(s.starts_at, tz)} … {show_instant(s.ends_at, tz)}  "
                   f"{s.created_by}: {s.comment}")
    if not found:
        typer.echo("no silences")


@app.command("expire")
def expire(
    silence_id: Annotated[str, typer.Argument(metavar="ID", help="As `syncd silence list` shows.")],
    config: Config = None,
) -> None:
    """End a silence now."""
    with configured_store(config) as (_, store), store.transaction() as tx:
        ended = silences.expire(tx, silence_id, _now())
    if ended is None:
        fail(f"no silence {silence_id!r} holds now (see `syncd silence list --all`)")
    typer.echo(f"silence {silence_id} expired")

