"""The rule language stands below the engine: loading and checking rules never loads it.

`syncd check` and the doctor read rule files without evaluating anything, and the engine takes
the language's `RuleSet` as its one input; an import from the language up into the engine or
the daemon would tie the two back together (and loop, since the engine imports the language).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import syncd.rules.language as language

ABOVE = ("syncd.rules.engine", "syncd.daemon", "syncd.connectors", "syncd.store")


def test_no_module_of_the_language_imports_the_engine_or_the_daemon() -> None:
    prefix = "syncd.rules.language."
    modules = [info.name for info in pkgutil.iter_modules(language.__path__, prefix)]
    assert "syncd.rules.language.loader" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({ABOVE!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
