"""`syncd check` and `syncd schema`: validate rule files like a compiler, and describe them to
editors.

`check` loads exactly what a reload would load and prints every problem as
`file:line:col: severity: message`; it exits 1 on any error so CI and reloads can refuse it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from syncd.rules.loader import load_rules
from syncd.rules.schema import json_schema

DEFAULT_PATHS = [Path("rules")]


def check(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Rule files or directories (searched for *.yaml, *.yml).", show_default="rules/"
        ),
    ] = None,
) -> None:
    """Validate rule files and report every problem at once (exit 1 on any error)."""
    result = load_rules(paths or DEFAULT_PATHS)
    for diagnostic in result.diagnostics:
        typer.echo(str(diagnostic))
    errors = len(result.errors)
    warnings = len(result.diagnostics) - errors
    if errors:
        typer.echo(f"failed: {_count(errors, 'error')}, {_count(warnings, 'warning')}")
        raise typer.Exit(1)
    ruleset = result.ruleset
    summary = (
        f"ok: {_count(len(ruleset.rules), 'rule')} in {_count(len(result.files), 'file')}, "
        f"{_count(len(ruleset.calendars), 'calendar')}"
    )
    typer.echo(summary + (f", {_count(warnings, 'warning')}" if warnings else ""))


def schema() -> None:
    """Print the JSON Schema of rule files (for editors: VS Code's YAML extension)."""
    typer.echo(schema_text(), nl=False)


def schema_text() -> str:
    """The committed `schema/rules.schema.json` must equal this text."""
    return json.dumps(json_schema(), indent=2) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
