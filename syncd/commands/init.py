"""`syncd init DIR`: a starting configuration from what the package ships, so an install from
the wheel needs no source checkout: the example settings (with the settings the shipped
processes need), the shipped rules with the JSON Schema their `$schema` comments point at, a
credentials directory only its owner can read, and the unit adjusted to DIR."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from syncd.resources import (
    EXAMPLE_SETTINGS,
    PROCESS_SETTINGS,
    RULES,
    SCHEMA,
    UNIT,
    copy_tree,
    shipped,
)
from syncd.settings import SECRET_FILES

PRODUCTION_DIR = "/etc/syncd"
PRODUCTION_EXE = "/opt/syncd/bin/syncd"


def init(
    directory: Annotated[Path, typer.Argument(help="Where to write (e.g. /etc/syncd).")],
    force: Annotated[bool, typer.Option(help="Overwrite files that are already there.")] = False,
) -> None:
    """Write a starting configuration: syncd.toml, the shipped rules and their schema, a
    credentials directory (0700) and the systemd unit; then print the next steps."""
    directory = directory.absolute()
    toml, unit = directory / "syncd.toml", directory / "syncd.service"
    present = [p for p in (toml, unit, directory / "rules") if p.exists()]
    if present and not force:
        typer.echo(f"{present[0]}: already there; --force overwrites", err=True)
        raise typer.Exit(1)
    directory.mkdir(parents=True, exist_ok=True)
    credentials = directory / "credentials"
    credentials.mkdir(mode=0o700, exist_ok=True)
    credentials.chmod(0o700)  # mkdir's mode is masked by the umask; an old one may be wider
    copy_tree(shipped(RULES), directory / "rules")
    copy_tree(shipped(SCHEMA), directory / "schema")
    toml.write_text(settings_text(directory))
    executable = Path(sys.executable).parent / "syncd"  # this installation's
    unit.write_text(unit_text(directory, executable))
    typer.echo(next_steps(directory, executable))


def settings_text(directory: Path) -> str:
    """The example settings with rules and credentials under `directory`, and the values the
    shipped processes need (lists, folders, objects) instead of the example's empty ones."""
    text = shipped(EXAMPLE_SETTINGS).read_text(encoding="utf-8")
    text = text.replace(f'"{PRODUCTION_DIR}/rules"', json.dumps(f"{directory}/rules"))
    text = text.replace(f'# dir = "{PRODUCTION_DIR}/credentials"',
                        f"dir = {json.dumps(f'{directory}/credentials')}")
    needed: dict[str, dict[str, Any]] = tomllib.loads(shipped(PROCESS_SETTINGS).read_text())
    for section, values in needed.items():
        for key, value in values.items():
            text = _set_value(text, section, key, value)
    return text


def _set_value(text: str, section: str, key: str, value: Any) -> str:
    """`key = ...` inside `[section]` set to `value`, its comment kept."""
    head = re.search(rf"^\[{re.escape(section)}\]$", text, re.M)
    if head is None:
        raise ValueError(f"the example settings have no [{section}]")
    end = re.compile(r"^\[", re.M).search(text, head.end())
    stop = end.start() if end else len(text)
    line = re.compile(rf"^{re.escape(key)} = (\[[^\]]*\]|\"[^\"]*\"|\S+)", re.M)
    found = line.search(text, head.end(), stop)
    if found is None:
        raise ValueError(f"the example settings have no [{section}] {key}")
    new = f"{key} = {json.dumps(value)}"
    return text[: found.start()] + new + text[found.end() :]


def unit_text(directory: Path, executable: Path) -> str:
    """The shipped unit, reading its settings and credentials from `directory` and running
    this installation's `syncd`."""
    text = shipped(UNIT).read_text(encoding="utf-8")
    return text.replace(PRODUCTION_EXE, str(executable)).replace(
        f"{PRODUCTION_DIR}/", f"{directory}/"
    )


def next_steps(directory: Path, syncd: Path) -> str:
    secrets = "\n".join(f"       {name}" for name in dict.fromkeys(SECRET_FILES.values()))
    return f"""wrote {directory}: syncd.toml, rules/ (with templates/), schema/,
  credentials/ (0700), syncd.service

next steps:
  1. edit {directory}/syncd.toml: your Zendesk subdomain and API user, Salesforce and Graph
     app ids, the SharePoint site and drive, the service mailbox (delete a vendor's section
     you do not use); every setting is documented there
  2. put each secret in its own file in {directory}/credentials/ (one line, readable by root):
{secrets}
     e.g.  sh -c 'umask 077; printf %s "$TOKEN" > {directory}/credentials/zendesk_token'
  3. adapt the rules' vars (people, groups, mailing lists) in {directory}/rules/, then
       {syncd} check {directory}/rules
  4. check settings, secrets, vendors and every name the rules use:
       {syncd} doctor --config {directory}/syncd.toml
  5. rehearse against the sandbox first if you like: {syncd} demo
  6. install and start the service:
       sudo cp {directory}/syncd.service /etc/systemd/system/
       sudo systemctl daemon-reload && sudo systemctl enable --now syncd"""
