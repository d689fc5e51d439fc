"""Injected faults: the sandbox's way of being as unkind as the real vendors on a bad day.

The shapes are a contract (DESIGN.md, "The sandbox"): scripts outside the test suite post them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

KINDS = ("status", "delay", "drop", "apply_then_status", "apply_then_drop")
VENDORS = ("zendesk", "salesforce", "graph", "auth")
ALLOWED_KEYS = frozenset(
    ("vendor", "method", "path", "kind", "status", "retry_after", "delay_s", "times",
     "probability", "seed")
)


class FaultSpecError(ValueError):
    """A fault posted to /_sandbox/faults is malformed."""


@dataclass
class Fault:
    vendor: str
    path: str
    kind: str
    method: str | None = None
    status: int | None = None
    retry_after: int | None = None
    delay_s: float = 0.0
    times: int | None = None
    probability: float = 1.0
    seed: int | None = None
    _pattern: re.Pattern[str] = field(init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)
        self._rng = random.Random(self.seed)

    def matches(self, vendor: str, method: str, path: str) -> bool:
        if self.vendor != vendor or (self.times is not None and self.times <= 0):
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._pattern.search(path) is not None

    def fire(self) -> bool:
        """Roll the dice; when the fault applies, spend one of its `times`."""
        if self.probability < 1.0 and self._rng.random() >= self.probability:
            return False
        if self.times is not None:
            self.times -= 1
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "method": self.method,
            "path": self.path,
            "kind": self.kind,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay_s": self.delay_s,
            "times": self.times,
            "probability": self.probability,
            "seed": self.seed,
        }


def parse_fault(raw: Any) -> Fault:
    if not isinstance(raw, dict):
        raise FaultSpecError("each fault must be an object")
    unknown = set(raw) - ALLOWED_KEYS
    if unknown:
        raise FaultSpecError(f"unknown fault keys: {sorted(unknown)}")
    vendor, kind = raw.get("vendor"), raw.get("kind")
    if vendor not in VENDORS:
        raise FaultSpecError(f"vendor must be one of {list(VENDORS)}, got {vendor!r}")
    if kind not in KINDS:
        raise FaultSpecError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    if kind in ("status", "apply_then_status") and not isinstance(raw.get("status"), int):
        raise FaultSpecError(f"kind {kind!r} needs an integer 'status'")
    path = raw.get("path", "")
    if not isinstance(path, str):
        raise FaultSpecError("'path' must be a regex string")
    try:
        re.compile(path)
    except re.error as exc:
        raise FaultSpecError(f"'path' is not a valid regex: {exc}") from exc
    probability = float(raw.get("probability", 1.0))
    if not 0.0 <= probability <= 1.0:
        raise FaultSpecError("'probability' must be between 0 and 1")
    return Fault(
        vendor=vendor,
        path=path,
        kind=kind,
        method=raw.get("method"),
        status=raw.get("status"),
        retry_after=raw.get("retry_after"),
        delay_s=float(raw.get("delay_s") or 0.0),
        times=raw.get("times"),
        probability=probability,
        seed=raw.get("seed"),
    )


class FaultTable:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, raws: Any) -> None:
        if not isinstance(raws, list):
            raise FaultSpecError("'faults' must be a list")
        parsed = [parse_fault(raw) for raw in raws]  # all or nothing
        self.faults.extend(parsed)

    def clear(self) -> None:
        self.faults.clear()

    def pick(self, vendor: str, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(vendor, method, path) and fault.fire():
                return fault
        return None
