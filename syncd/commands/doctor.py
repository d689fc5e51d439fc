"""`syncd doctor`: a checklist of what stands between this configuration and a working daemon,
with the fix for each failure (the checks themselves live in `syncd.doctor`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from syncd.clock import SystemClock
from syncd.commands.arguments import CONFIG_HELP
from syncd.commands.output import console, print_json
from syncd.doctor import Check, examine, settings_failed
from syncd.settings import SettingsError, load_settings

MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "bold red"),
         "skip": ("–", "dim")}


def doctor(
    config: Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)] = None,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="Rules directory (default: syncd.rules_dir, as `run` uses)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a list.")] = False,
) -> None:
    """Check settings, secrets, store, vendors, the names the rules use, and the clock.

    Prints a checklist with the fix for each failure (exit 1 on any)."""
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        checks = [settings_failed(exc)]
    else:
        rules_dir = rules or settings.syncd.rules_dir
        checks = examine(settings, SystemClock(), rules_dir, os.environ)
    ok = all(check.ok for check in checks)
    if as_json:
        print_json({"ok": ok, "checks": [check.to_json() for check in checks]})
    else:
        _print(checks)
    raise typer.Exit(0 if ok else 1)


def _print(checks: list[Check]) -> None:
    out = console()
    width = max(len(check.name) for check in checks)
    for check in checks:
        mark, style = MARKS[check.status]
        detail = check.detail.replace("\n", "\n" + " " * (width + 4))
        out.print(Text.assemble((mark, style), " ", check.name.ljust(width), "  ", detail),
                  soft_wrap=True)
        if check.fix:
            out.print(Text.assemble(" " * (width + 4), ("fix: ", "bold"), check.fix),
                      soft_wrap=True)
    failed = sum(not check.ok for check in checks)
    out.print(f"{failed} problem(s) to fix" if failed else "ready: every check passed")
