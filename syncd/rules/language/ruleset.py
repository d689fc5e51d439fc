"""The rule set: everything a reload installs, and the one input the engine takes.

The loader builds it from rule files (only rules without errors); the engine compiles it, the
daemon, `check`, `replay` and `doctor` read it. Frozen, so a running engine and a candidate
reload never share a mutable rule set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from syncd.businesstime.calendars import Calendar
from syncd.rules.language.rule import Rule
from syncd.rules.language.templates import NamedTemplate

TEMPLATE_DIR = "templates"  # named templates: <rules file's directory>/templates/<name>.j2


@dataclass(frozen=True)
class Source:
    """Where a rule is defined (1-based)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class RuleSet:
    """Everything a reload installs: sound rules, calendars, named templates."""

    rules: tuple[Rule, ...] = ()
    calendars: dict[str, Calendar] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)  # rule id -> definition
    templates: dict[Path, dict[str, NamedTemplate]] = field(default_factory=dict)  # by dir

    def template(self, rule_id: str, name: str) -> NamedTemplate | None:
        """The named template `name` as seen from the directory holding rule `rule_id`."""
        directory = Path(self.sources[rule_id].file).parent / TEMPLATE_DIR
        return self.templates.get(directory, {}).get(name)
