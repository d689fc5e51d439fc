"""What one doctor check found: a line of the checklist, and its object in `--json`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]  # warn: works, but look at it


@dataclass(frozen=True)
class Check:
    """One line of the checklist; `fix` says what to do about a failure."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "ok": self.ok,
                "detail": self.detail, "fix": self.fix}
