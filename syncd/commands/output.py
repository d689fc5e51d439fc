"""Where the commands write: an error and exit status, JSON, and a console that shows data
as text (syncd/printable.py) and, into a pipe or a file, never wraps."""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

import typer
from rich.console import Console

from syncd.printable import SafeConsole
from syncd.redact import redact_strings

UNWRAPPED = 10_000  # columns of a console that is not a terminal


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def print_json(data: Any) -> None:
    """Rows written before a secret was masked (or by an older syncd) are masked here too."""
    typer.echo(json.dumps(redact_strings(data), indent=2, ensure_ascii=False, default=str))


def console() -> Console:
    """A console on the current stdout; data is shown as text, never parsed as rich markup.
    Into a pipe or a file (and no $COLUMNS), lines are as wide as they need: nothing wraps."""
    out = SafeConsole()
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = UNWRAPPED
    return out
