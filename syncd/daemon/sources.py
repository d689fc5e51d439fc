"""Which record kinds the daemon polls: those its rules read, so that a configured vendor no
rule watches costs no polls (Graph kept for mail has its drive delta left alone; a Salesforce
object no rule is on is not queried).

A kind is read when an enabled rule is `on` it (a shadow rule counts: it plans), or when an
action looks records of it up in the store: `file_transcript` files into the Zendesk ticket a
file names, which syncd must know, and `assign` with `account_owner` reads Salesforce
accounts. A disabled rule reads nothing: it never runs. The rule set is asked at every poll,
so a reload that adds or drops rules changes what the next poll reads.

A kind no rule read for a while has changes nobody acted on; when a rule reads it again, the
catch-up is recorded as a baseline (baseline.py: `unread`, `resuming`), as a first sync is.
"""

from __future__ import annotations

from syncd.connectors.base import Connector
from syncd.rules.engine import Engine

TICKET, ACCOUNT = "zendesk.ticket", "salesforce.account"


def kinds_read(engine: Engine) -> frozenset[str]:
    """The record kinds the rule set needs current in the store."""
    found: set[str] = set()
    for rule in engine.ruleset.rules:
        if not rule.enabled:
            continue
        found.add(rule.on)
        for _, _, action in rule.actions():
            if action.kind == "file_transcript":
                found.add(TICKET)
            elif action.kind == "assign" and getattr(action, "strategy", "") == "account_owner":
                found.add(ACCOUNT)
    return frozenset(found)


def wanted(engine: Engine, connector: Connector) -> frozenset[str]:
    """What a poll of `connector` reads for this rule set (empty: it is not polled)."""
    return connector.kinds & kinds_read(engine)
