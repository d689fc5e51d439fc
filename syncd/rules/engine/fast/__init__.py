"""Every shortcut of the rule engine, each proven equal to the plain path (semantics.py) by
tests/unit/test_engine_shortcuts.py. `Engine(ruleset, shortcuts=False)` runs without them.

fast/ may import the plain modules (memory, compiled, render, semantics); they never import
fast/ (tests/unit/test_engine_layering.py checks it). What is here (bench/engine.py: 100,000
tickets x 100 rules):
- index.py: a kind's rules indexed on the equality tests of `scope`/`when` over up to three
  fields at once, so a record meets only the rules it can match, plus those with memory for it;
- shortcuts.py: the evaluation loop over those rules, testing the usual gates (no age test,
  the kind's calendar) itself, without the equality tests the record's index key vouches for;
  one context per record;
- ladders.py: a ladder of plain steps computes its due instants in integer microseconds with
  one span-table lookup (`TimeMath.shift_all_micros`); when even its last step is missed
  beyond grace and catch-up, one comparison with the rule's cut settles it;
- plans.py: fixed params precomputed, the others planned per param, templates in the usual
  subset as generated Python (`templates.renderer`); intents built without a setattr per field;
- rule.py: `FastRule`, a compiled rule with the data these need.
Each `when`/`until` is one generated Python function (`conditions.compile_test`) on both
paths: that is the conditions' own business.
"""

from syncd.rules.engine.fast.rule import FastRule
from syncd.rules.engine.fast.shortcuts import Shortcuts

__all__ = ["FastRule", "Shortcuts"]
