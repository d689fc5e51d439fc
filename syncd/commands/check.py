"""`syncd check` and `syncd schema`: validate rule files like a compiler, and describe them to
editors.

`check` loads exactly what a reload would load and prints every problem as
`file:line:col: severity: message`; it exits 1 on any error so CI and reloads can refuse it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from ruamel.yaml import YAML, YAMLError

from syncd.commands.configured import configured_store
from syncd.daemon import rulesets
from syncd.rules.language import RuleSet, json_schema
from syncd.rules.language.diagnostics import Diagnostic
from syncd.rules.language.loader import RULE_SUFFIXES, load_rules
from syncd.store.db import shown_url

DEFAULT_PATHS = [Path("rules")]


def check(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Rule files or directories (searched for *.yaml, *.yml).",
            show_default="rules/, or [syncd] rules_dir with --config",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Also compare rule ids with the rule set the daemon of this settings file last "
            "accepted: a changed id makes records go through the rule again.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help='Print {"ok", "errors", "warnings", "rules", "files", '
                     '"calendars", "diagnostics": [{"file", "line", "col", "severity", '
                     '"message"}]}.'),
    ] = False,
) -> None:
    """Validate rule files and report every problem at once (exit 1 on any error)."""
    with contextlib.ExitStack() as stack:
        configured = stack.enter_context(configured_store(config)) if config else None
        # with --config, what the daemon loads (the unit's ExecReload runs this before SIGHUP)
        default = [configured[0].syncd.rules_dir] if configured else DEFAULT_PATHS
        targets = paths or default
        result = load_rules(targets)
        diagnostics = list(result.diagnostics)
        if configured is not None and not result.errors:
            settings, store = configured
            with store.read() as tx:
                state = shown_url(settings.syncd.store_url)
                saved = rulesets.last_accepted(tx)
                accepted = accepted_ids(saved) if saved else set(tx.memory.rules())
                diagnostics += id_changes(result.ruleset, accepted, tx.memory.rules(), state)
    errors = len(result.errors)
    warnings = len(diagnostics) - errors
    if as_json:
        ruleset = result.ruleset
        typer.echo(json.dumps({
            "ok": not errors, "errors": errors, "warnings": warnings,
            "rules": len(ruleset.rules), "files": len(result.files),
            "calendars": len(ruleset.calendars),
            "diagnostics": [dataclasses.asdict(d) for d in diagnostics]}, indent=2))
        raise typer.Exit(1 if errors else 0)
    for diagnostic in diagnostics:
        typer.echo(str(diagnostic))
    if errors:
        typer.echo(f"failed: {_count(errors, 'error')}, {_count(warnings, 'warning')}")
        raise typer.Exit(1)
    ruleset = result.ruleset
    summary = (
        f"ok: {_count(len(ruleset.rules), 'rule')} in {_count(len(result.files), 'file')}, "
        f"{_count(len(ruleset.calendars), 'calendar')}"
    )
    typer.echo(summary + (f", {_count(warnings, 'warning')}" if warnings else ""))


def accepted_ids(saved: rulesets.Saved) -> set[str]:
    """The rule ids of the rule set the daemon last accepted (kept in its store)."""
    ids: set[str] = set()
    for name, text in saved.files.items():
        if name.endswith(RULE_SUFFIXES):
            with contextlib.suppress(YAMLError):  # it loaded when accepted
                document = YAML(typ="safe").load(text)
                rules = document.get("rules") if isinstance(document, dict) else None
                ids |= {r["id"] for r in rules or [] if isinstance(r, dict) and "id" in r}
    return ids


def id_changes(
    ruleset: RuleSet, accepted: set[str], remembered: Mapping[str, int], state: str
) -> list[Diagnostic]:
    """Rule ids not in the rule set the daemon last accepted, and accepted ids that are gone.
    The engine remembers per rule id which records went through a rule, so renaming a rule is
    a new rule: every record still inside its `when` fires again as it next changes,
    timelines start over."""
    gone = sorted(accepted - {rule.id for rule in ruleset.rules})
    found = []
    for rule in ruleset.rules:
        if rule.id in accepted:
            continue
        source = ruleset.sources[rule.id]
        renamed = f"; if it renames {', '.join(map(repr, gone))}, keep the old id" if gone else ""
        found.append(Diagnostic(source.file, source.line, source.col, "warning", (
            f"rule {rule.id!r} is new to the daemon: records inside its condition act on it "
            f"as they next change or fall due{renamed}")))
    found += [
        Diagnostic(state, 0, 0, "warning", (
            f"rule {rule_id!r} went through {_count(remembered.get(rule_id, 0), 'record')} and "
            "is not in these files: a reload stops it and cancels its pending timers"))
        for rule_id in gone
    ]
    return found


def schema() -> None:
    """Print the JSON Schema of rule files (for editors: VS Code's YAML extension)."""
    typer.echo(schema_text(), nl=False)


def schema_text() -> str:
    """The shipped `schema/rules.schema.json` (syncd/shipped/) must equal this text."""
    return json.dumps(json_schema(), indent=2) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
