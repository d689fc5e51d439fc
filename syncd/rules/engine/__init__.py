"""The pure rule engine: (rules, one record's versions, its rule memory, now) -> intents, the
new memory, timers and the exact next wake-up instant. No I/O, no clock, no threads.

    engine = Engine(ruleset)                        # compile once per (re)load
    result = engine.evaluate(current, previous, memory, now, grace=poll_slack)
    # store, in ONE transaction: result.intents (unique key), memory_to_json(result.memory)
    # as the record's rule memory, result.timers as the record's timers; log result.errors;
    # sleep until result.next_wake at the latest.

The layout, the plain path first:
- memory.py: RuleMemory (what the engine remembers per rule and record), Timer, Evaluation;
- compiled.py: a rule compiled once per (re)load (`_Rule`, `_Step`, `_Action`), and
  `CompiledRule`, the read-only view the daemon reads (`Engine.rules`);
- render.py: an action's params rendered for one record;
- semantics.py: what a rule means, stated once (`Plain`, `_Run`); read it first;
- fast/: every shortcut (the rule index, inlined gates and ladders, the missed-ladder cut,
  render plans), each proven equal to the plain path by property tests;
- entry.py: `Engine(ruleset, shortcuts=True)`, the one switch between the two paths.
The import rule: the plain modules never import fast/ (tests/unit/test_engine_layering.py);
fast/ may import them; only entry.py imports both. Outside this package, import from here.
"""

from syncd.rules.engine.compiled import CompiledRule
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
    "CompiledRule",
    "Engine",
    "Evaluation",
    "RuleError",
    "RuleMemory",
    "Timer",
    "evaluate",
    "memory_from_json",
    "memory_to_json",
]
