"""SQL lives in syncd/store/ alone: a reader who wants to know what the daemon asks of the
database reads one package, and a query's table, index and dialect concerns sit next to the
schema they depend on. Elsewhere the store is used through its table classes (`tx.ledger`,
`tx.timers`, ...), never through SQLAlchemy or the transaction's raw connection."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "syncd" / "store"


def _outside_store() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted((ROOT / "syncd").rglob("*.py"))
        if STORE not in path.parents
    ]


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0:
        return [node.module or ""]
    return []


def test_no_module_outside_the_store_imports_sqlalchemy() -> None:
    importers = [
        f"{path}:{node.lineno} imports {name}"
        for path, tree in _outside_store()
        for node in ast.walk(tree)
        for name in _imported(node)
        if name == "sqlalchemy" or name.startswith("sqlalchemy.")
    ]
    assert importers == []


def test_no_module_outside_the_store_reads_a_raw_connection() -> None:
    """`tx.conn.execute(...)` needs no import: SQL built from `syncd.store.tables` would pass
    the test above."""
    readers = [
        f"{path}:{node.lineno}"
        for path, tree in _outside_store()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "conn"
    ]
    assert readers == []


def test_no_module_outside_the_store_imports_its_tables() -> None:
    importers = [
        f"{path}:{node.lineno}"
        for path, tree in _outside_store()
        for node in ast.walk(tree)
        if "syncd.store.tables" in _imported(node)
    ]
    assert importers == []


def test_the_checks_see_what_they_look_for() -> None:
    """The walk reaches the modules that once held SQL (a wrong root would pass vacuously)."""
    paths = {path for path, _ in _outside_store()}
    assert {"syncd/daemon/meters.py", "syncd/commands/audit.py", "syncd/doctor/local.py",
            "syncd/daemon/rulesets.py", "syncd/daemon/replay.py"} <= paths
    assert not any(path.startswith("syncd/store/") for path in paths)
    sample = ast.parse("import sqlalchemy as sa\nfrom sqlalchemy.exc import SQLAlchemyError")
    assert [name for node in ast.walk(sample) for name in _imported(node)] == [
        "sqlalchemy", "sqlalchemy.exc"]
