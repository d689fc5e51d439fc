"""The pure rule engine (see semantics.py for what a rule means)."""

from syncd.rules.engine.entry import Engine, evaluate
from syncd.rules.engine.memory import (
    DEFAULT_GRACE,
    EMPTY,
    WAKE_STEP,
    Evaluation,
    RuleError,
    RuleMemory,
    Timer,
    memory_from_json,
    memory_to_json,
)

__all__ = [
    "DEFAULT_GRACE",
    "EMPTY",
    "WAKE_STEP",
    "Engine",
    "Evaluation",
    "RuleError",
    "RuleMemory",
    "Timer",
    "evaluate",
    "memory_from_json",
    "memory_to_json",
]
