"""What syncd ships besides code, found inside the installed package (`importlib.resources`),
so an install from the wheel works without the source checkout.

`syncd/shipped/` holds `rules/` (one file per process, calendars, `templates/`), `schema/`
(the rule files' JSON Schema: their `$schema` comment points at `../schema/`), `config/` (the
example settings, the processes' settings, the sandbox's example company), `sandbox/` (the
Salesforce objects the sandbox models) and `systemd/` (the unit).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

RULES = ("rules",)
SCHEMA = ("schema",)
EXAMPLE_SETTINGS = ("config", "syncd.example.toml")
PROCESS_SETTINGS = ("config", "processes.example.toml")
SANDBOX_SEED = ("config", "sandbox-seed.yaml")
UNIT = ("systemd", "syncd.service")


def shipped(parts: tuple[str, ...]) -> Traversable:
    """A shipped file or directory, e.g. `shipped(SANDBOX_SEED).read_text()`."""
    return files("syncd").joinpath("shipped", *parts)


def copy_tree(source: Traversable, target: Path) -> list[Path]:
    """Copy a shipped directory to `target` (created; existing files are overwritten).
    Works on any Traversable, so a zipped install copies too. Returns the files written."""
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__" or entry.name.endswith(".pyc"):
            continue
        if entry.is_dir():
            written += copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())
            written.append(target / entry.name)
    return written
