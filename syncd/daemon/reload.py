"""Reload the rules of a running daemon (SIGHUP, or a change in the rules directory).

The new rule set must pass the same validation as `syncd check`, or it is refused and the
old rules keep running (`RulesRefused` says where: file:line:col). Once accepted, a rule whose
id disappeared stops: its pending timers are cancelled, each audited (`timer_cancelled`), and
its planned intents are skipped as "rule removed" when their turn comes (executor). An accepted
rule set is saved as the one a restart falls back to (rulesets.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.daemon import rulesets
from syncd.daemon.runtime import Runtime, compile_rules
from syncd.store.lease import Fenced


@dataclass(frozen=True)
class Reloaded:
    rules: int
    removed: list[str]
    timers_cancelled: int


def reload_rules(rt: Runtime) -> Reloaded:
    """Swap in the rules directory's current rule set; raises `RulesRefused`."""
    engine = compile_rules(rt.settings.syncd.rules_dir)
    removed = sorted(set(rt.engine.rules) - set(engine.rules))
    rt.engine = engine  # each job reads it once at its start
    rt.rules_refused = None
    now = rt.clock.now()
    try:
        with rt.store.transaction() as tx:
            cancelled = sum(tx.timers.cancel_rule(rule_id, now) for rule_id in removed)
            rulesets.remember(tx, rt.settings.syncd.rules_dir, now)
    except Fenced:  # a standby runs the new rules when elected; the leader settles the store
        cancelled = 0
    return Reloaded(len(engine.rules), removed, cancelled)
