"""Compiler-style messages about rule files: `rules/escalation.yaml:14:7: error: ...`.

Every problem the loader and the linter find becomes one `Diagnostic`, so `syncd check`, a
refused reload and the tests all print and compare the same text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at a 1-based line and column of a file (line 0: the whole file)."""

    file: str
    line: int
    col: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.severity}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'when'?)` when a close match exists, else an empty string."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
