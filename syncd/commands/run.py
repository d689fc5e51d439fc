"""`syncd run` (the service, or one cycle) and `syncd plan` (what would happen, touching
nothing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from syncd.clock import SystemClock
from syncd.daemon.cycle import run_cycle
from syncd.daemon.preview import Preview, preview
from syncd.daemon.runtime import RulesRefused, open_runtime
from syncd.daemon.service import Service
from syncd.logs import configure_logging, settings_secrets
from syncd.printable import printable
from syncd.settings import Settings, SettingsError, load_settings
from syncd.store.db import StoreError

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file (default: $SYNCD_CONFIG, /etc/syncd/syncd.toml)."),
]


def run(
    config: ConfigOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="One cycle, then exit (1 if anything failed).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and audit; write nothing to a vendor.")
    ] = False,
) -> None:
    """Poll, apply the rules and carry out their actions, exactly once."""
    settings = _settings(config)
    try:
        rt = open_runtime(settings, SystemClock(), dry_run=dry_run)
    except (RulesRefused, StoreError) as exc:
        raise _refused(exc) from None
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
) -> None:
    """Show every intent due now (or by --at), with its rule and reason.

    Polls into a throwaway copy of the state: never writes the real store or a vendor."""
    settings = _settings(config)
    until = _instant(at) if at else None
    try:
        found = preview(settings, SystemClock(), until)
    except (RulesRefused, StoreError) as exc:
        raise _refused(exc) from None
    typer.echo(json.dumps(found.to_json(), indent=2) if as_json else _text(found))


def _settings(config: Path | None) -> Settings:
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.syncd.log_format, "INFO", settings_secrets(settings))
    return settings


def _refused(exc: RulesRefused | StoreError) -> typer.Exit:
    for diagnostic in getattr(exc, "diagnostics", []):
        typer.echo(str(diagnostic), err=True)
    typer.echo(f"syncd: {exc}", err=True)
    return typer.Exit(2)


def _instant(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO-8601 instant: {text!r}", param_hint="--at") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(found: Preview) -> str:
    lines = [f"{len(found.intents)} intent(s) due by {found.at.isoformat()}"]
    for item in found.to_json()["intents"]:
        flags = " [shadow]" if item["shadow"] else ""
        lines.append(f"{item['due_at']}  {item['rule']}  {item['record']}  {item['action']}"
                     f"{flags}  {json.dumps(item['params'], ensure_ascii=False)}")  # fmt: skip
        lines.append(f"    because {json.dumps(item['reason'], ensure_ascii=False)}")
    return "\n".join(printable(line) for line in lines)
