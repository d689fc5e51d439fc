"""Blast-radius limits: how many intents a rule, and all rules together, may carry out per
executor pass and per hour, by kind (`any`, `write`, `mail`, one system's writes).

A rule broadened by mistake (a forgotten tag test that closes every ticket) must stop at its
limit, not at the end of the queue. Past a limit an intent is *held* (ledger state `held`,
audited with the limit): not sent, not dropped, not retried by itself; a person lists them
(`syncd intents --held`) and releases or drops them. A released intent goes past the limits
(a person decided) but still counts towards them.

The per-hour window is read from the ledger once per pass (`sent_at` in the last 60 minutes)
and counted on in memory while the pass sends; the per-cycle counts start at zero each pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from syncd.model import Intent
from syncd.rules.engine import Engine
from syncd.settings import LimitsSection
from syncd.store.db import Tx
from syncd.vendors.registry import SYSTEM_OF_FAMILY

HOUR = timedelta(hours=1)
ALL = ""  # the scope of the global limits
# actions that write to another system than their record's, and the mail action
SYSTEM_OF_ACTION = {
    "create_task": "salesforce",
    "create_event": "salesforce",
    "create_ticket": "zendesk",
    "ensure_folder": "graph",
    "file_transcript": "graph",
}


def kinds_of(intent: Intent) -> tuple[str, ...]:
    """The limit kinds an intent counts towards: `any`, then `mail` or `write` and the
    system's writes (`zendesk.write`)."""
    if intent.action == "notify" and intent.params.get("via") != "note":
        return ("any", "mail")
    system = SYSTEM_OF_ACTION.get(intent.action) or SYSTEM_OF_FAMILY.get(intent.record.family, "")
    return ("any", "write", f"{system}.write")


@dataclass
class Budget:
    """What one executor pass may still send; `check` before sending, `spend` after."""

    settings: LimitsSection
    engine: Engine
    hour: Counter[tuple[str, str]] = field(default_factory=Counter)  # (scope, kind) -> sent
    cycle: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def load(cls, tx: Tx, settings: LimitsSection, engine: Engine, now: datetime) -> Budget:
        budget = cls(settings, engine)
        for intent in tx.ledger.sent_since(now - HOUR, engine.rules):
            budget._count(budget.hour, intent)
        return budget

    def check(self, intent: Intent) -> str | None:
        """The limit one more such intent would pass, e.g. `rule triage: 50 write per hour`;
        None while every limit has room."""
        own_cycle, own_hour = self.engine.limits(intent.rule_id)
        rule_cycle = {**self.settings.rule_per_cycle, **own_cycle}
        rule_hour = {**self.settings.rule_per_hour, **own_hour}
        for kind in kinds_of(intent):
            for scope, limits, window, per in (
                (intent.rule_id, rule_cycle, self.cycle, "cycle"),
                (intent.rule_id, rule_hour, self.hour, "hour"),
                (ALL, self.settings.per_cycle, self.cycle, "cycle"),
                (ALL, self.settings.per_hour, self.hour, "hour"),
            ):
                limit = limits.get(kind)
                if limit is not None and window[scope, kind] >= limit:
                    who = f"rule {scope}" if scope else "all rules"
                    return f"{who}: {limit} {kind} per {per}"
        return None

    def spend(self, intent: Intent) -> None:
        self._count(self.hour, intent)
        self._count(self.cycle, intent)

    @staticmethod
    def _count(window: Counter[tuple[str, str]], intent: Intent) -> None:
        for kind in kinds_of(intent):
            window[intent.rule_id, kind] += 1
            window[ALL, kind] += 1
