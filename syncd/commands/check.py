"""`syncd check` and `syncd schema`: validate rule files like a compiler, and describe them to
editors.

`check` loads exactly what a reload would load and prints every problem as
`file:line:col: severity: message`; it exits 1 on any error so CI and reloads can refuse it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from syncd.commands.audit import configured_store
from syncd.rules.diagnostics import Diagnostic
from syncd.rules.loader import RuleSet, load_rules
from syncd.rules.schema import json_schema

DEFAULT_PATHS = [Path("rules")]


def check(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Rule files or directories (searched for *.yaml, *.yml).", show_default="rules/"
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Also compare rule ids with what the daemon of this settings file remembers: "
            "a changed id makes records go through the rule again.",
        ),
    ] = None,
) -> None:
    """Validate rule files and report every problem at once (exit 1 on any error)."""
    result = load_rules(paths or DEFAULT_PATHS)
    diagnostics = list(result.diagnostics)
    if config is not None and not result.errors:
        with configured_store(config) as (settings, store), store.read() as tx:
            state = make_url(settings.syncd.store_url).render_as_string(hide_password=True)
            diagnostics += id_changes(result.ruleset, tx.memory.rules(), state)
    for diagnostic in diagnostics:
        typer.echo(str(diagnostic))
    errors = len(result.errors)
    warnings = len(diagnostics) - errors
    if errors:
        typer.echo(f"failed: {_count(errors, 'error')}, {_count(warnings, 'warning')}")
        raise typer.Exit(1)
    ruleset = result.ruleset
    summary = (
        f"ok: {_count(len(ruleset.rules), 'rule')} in {_count(len(result.files), 'file')}, "
        f"{_count(len(ruleset.calendars), 'calendar')}"
    )
    typer.echo(summary + (f", {_count(warnings, 'warning')}" if warnings else ""))


def id_changes(ruleset: RuleSet, remembered: Mapping[str, int], state: str) -> list[Diagnostic]:
    """Rule ids the daemon has never run, and ids it ran that are gone. The engine remembers
    per rule id which records went through a rule, so renaming a rule is a new rule: every
    record still inside its `when` fires again as it next changes, timelines start over."""
    gone = sorted(set(remembered) - {rule.id for rule in ruleset.rules})
    found = []
    for rule in ruleset.rules:
        if rule.id in remembered:
            continue
        source = ruleset.sources[rule.id]
        renamed = f"; if it renames {', '.join(map(repr, gone))}, keep the old id" if gone else ""
        found.append(Diagnostic(source.file, source.line, source.col, "warning", (
            f"rule {rule.id!r} is new to the daemon: records inside its condition act on it "
            f"as they next change or fall due{renamed}")))  # fmt: skip
    found += [
        Diagnostic(state, 0, 0, "warning", (
            f"rule {rule_id!r} went through {_count(remembered[rule_id], 'record')} and is not "
            "in these files: a reload stops it and cancels its pending timers"))
        for rule_id in gone
    ]  # fmt: skip
    return found


def schema() -> None:
    """Print the JSON Schema of rule files (for editors: VS Code's YAML extension)."""
    typer.echo(schema_text(), nl=False)


def schema_text() -> str:
    """The shipped `schema/rules.schema.json` (syncd/shipped/) must equal this text."""
    return json.dumps(json_schema(), indent=2) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
