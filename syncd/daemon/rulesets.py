"""The last rule set the daemon accepted, kept in the state database.

A reload that fails `syncd check` is refused and the previous rules keep running; the files on
disk are still the broken ones. Without this, the next restart (a reboot, an upgrade, a crash
restarted by systemd) would find them and run nothing at all: one typo would stop every good
rule. So each accepted rule set is saved (its rule files and templates, as text), and a start
whose rules directory is refused runs the saved one, saying so loudly (log, STATUS=, a failed
`run --once`) until the files are fixed. A first start with broken rules has nothing to fall
back to and is refused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from syncd.rules.language.loader import RULE_SUFFIXES
from syncd.rules.language.templates import SUFFIX
from syncd.store.db import Tx

KEY = "last_accepted_rules"
SAVED = (*RULE_SUFFIXES, SUFFIX)


@dataclass(frozen=True)
class Saved:
    at: datetime
    files: dict[str, str]  # path relative to the rules directory -> text


def files_of(rules_dir: Path) -> dict[str, str]:
    """What a load of `rules_dir` reads: rule files and templates."""
    return {
        path.relative_to(rules_dir).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(rules_dir.rglob("*"))
        if path.is_file() and path.suffix in SAVED
    }


def remember(tx: Tx, rules_dir: Path, now: datetime) -> None:
    """Save the rule set just accepted (nothing is written when it is the one saved)."""
    files = files_of(rules_dir)
    saved = last_accepted(tx)
    if saved is not None and saved.files == files:
        return
    value = json.dumps({"at": now.isoformat(), "files": files})
    if saved is None:
        tx.meta.insert(KEY, value)
    else:
        tx.meta.update(KEY, value)


def last_accepted(tx: Tx) -> Saved | None:
    value = tx.meta.get(KEY)
    if value is None:
        return None
    data = json.loads(value)
    return Saved(datetime.fromisoformat(data["at"]), dict(data["files"]))


def restore(saved: Saved, into: Path) -> Path:
    """Write the saved files into `into` (emptied first) and return it, to be loaded."""
    shutil.rmtree(into, ignore_errors=True)
    for name, text in saved.files.items():
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return into
