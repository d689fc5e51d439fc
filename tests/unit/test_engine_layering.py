"""The engine's import rule: the plain path (what a rule means) never imports its shortcuts.

fast/ may import the plain modules; the plain modules import nothing of fast/, at run time or
for type checking, so the plain path can be read, and run (`Engine(ruleset, shortcuts=False)`),
on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import syncd.rules.engine as engine_package

PACKAGE = Path(engine_package.__file__).parent
NAME = "syncd.rules.engine"
FAST = f"{NAME}.fast"
BOTH = {"__init__.py", "entry.py"}  # the entry: the switch between the two paths


def imported(path: Path, source: str | None = None) -> set[str]:
    """Every module `path` (or `source`, as if at `path`) imports: absolute names, relative
    imports resolved, TYPE_CHECKING ones included."""
    package = f"{NAME}.{'.'.join(path.relative_to(PACKAGE).parent.parts)}".rstrip(".")
    found: set[str] = set()
    text = path.read_text() if source is None else source
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def plain_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.glob("*.py") if p.name not in BOTH)


def test_the_plain_path_never_imports_fast() -> None:
    plain = plain_modules()
    assert {p.name for p in plain} >= {"memory.py", "compiled.py", "render.py", "semantics.py"}
    offenders = {
        p.name: sorted(m for m in imported(p) if m == FAST or m.startswith(FAST + "."))
        for p in plain
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_fast_never_imports_the_entry() -> None:
    """fast/ builds on the plain modules, never on the switch that chooses it (no cycle)."""
    for path in sorted((PACKAGE / "fast").glob("*.py")):
        entry = {m for m in imported(path) if m in (NAME, f"{NAME}.entry")}
        assert not entry, (path.name, entry)


def test_the_check_sees_an_import_of_fast() -> None:
    """The walk finds an import of fast/ however it is written (the check can fail)."""
    at = PACKAGE / "semantics.py"
    lazy = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .fast import ladders\n"
    assert f"{FAST}.ladders" in imported(at, lazy)
    assert FAST in imported(at, "def f():\n    from syncd.rules.engine import fast\n")
    assert f"{FAST}.plans" in imported(at, "import syncd.rules.engine.fast.plans\n")


def test_no_module_of_the_engine_passes_650_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 650} == {}


def test_outside_the_engine_only_its_public_entry_is_read() -> None:
    """The daemon (and the rest of syncd) imports the package's public names only, and never
    reaches the compiled rules themselves (`Engine.compiled`): `Engine.rules` is its view."""
    root = PACKAGE.parents[1]
    found = []
    for path in sorted(root.rglob("*.py")):
        if PACKAGE in path.parents:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(NAME):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if node.module != NAME or private:
                    found.append(f"{path.relative_to(root)}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                found += [f"{path.relative_to(root)}: import {a.name}" for a in node.names
                          if a.name.startswith(NAME + ".")]
            elif isinstance(node, ast.Attribute) and node.attr == "compiled":
                found.append(f"{path.relative_to(root)}:{node.lineno}: .compiled")
    assert found == []
