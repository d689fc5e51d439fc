"""The import rules the packages' docstrings state: business time is standard library and
`holidays` only (anything may use it, so it may use nothing of syncd's but itself and the
exception tree, `syncd.errors`, which imports nothing); the condition package never imports the
engine, and the language neither of them. Read from the source with `ast`, so an import inside
a function or under TYPE_CHECKING counts too."""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import syncd

ROOT = Path(syncd.__file__).parent


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every module a file imports; `from a import b` yields `a` and
    `a.b` (b may be a module)."""
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def offenders(package: str, allowed: Callable[[str], bool]) -> list[str]:
    """Each import of the package's files (or the module's) that `allowed` refuses."""
    where = ROOT.parent / package.replace(".", "/")
    paths = sorted(where.rglob("*.py")) if where.is_dir() else [where.with_suffix(".py")]
    assert paths[0].is_file(), f"{package} not found"
    found = []
    for path in paths:
        for line, name in imported(path):
            if not allowed(name):
                found.append(f"{path.relative_to(ROOT.parent)}:{line}: imports {name}")
    return found


def test_business_time_imports_only_the_standard_library_holidays_and_itself() -> None:
    def allowed(name: str) -> bool:
        top = name.split(".")[0]
        return (top in sys.stdlib_module_names or top == "holidays" or within(name, "syncd.errors")
                or within(name, "syncd.businesstime"))

    assert offenders("syncd.businesstime", allowed) == []


def test_conditions_never_import_the_engine() -> None:
    forbidden = "syncd.rules.engine"
    assert offenders("syncd.rules.conditions", lambda name: not within(name, forbidden)) == []


def test_the_language_never_imports_conditions_or_the_engine() -> None:
    forbidden = ("syncd.rules.conditions", "syncd.rules.engine", "syncd.daemon")
    assert offenders(
        "syncd.rules.language", lambda name: not any(within(name, f) for f in forbidden)
    ) == []
