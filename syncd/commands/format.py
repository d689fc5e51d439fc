"""The words the commands show for what the store holds: instants in the configured time zone,
values on one line, a ledger entry as JSON, and an intent's reason."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from syncd.model import Intent
from syncd.redact import redact
from syncd.store.ledger import LedgerEntry

_SHOWN_CHARS = 80


def show_instant(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z") if at else ""


def short(value: Any) -> str:
    """A value on one table line: compact JSON, cut at a readable length."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(redact(text).split())
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={short(value)}" for name, value in values.items())


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def entry_json(entry: LedgerEntry) -> dict[str, Any]:
    intent = entry.intent
    return {
        "key": intent.key,
        "rule": intent.rule_id,
        "record": str(intent.record),
        "action": intent.action,
        "params": dict(intent.params),
        "reason": dict(intent.reason),
        "step": intent.step,
        "occurrence": intent.occurrence,
        "shadow": intent.shadow,
        "state": entry.state.value,
        "attempts": entry.attempts,
        "due_at": iso(intent.due_at),
        "next_attempt_at": iso(entry.next_attempt_at),
        "sent_at": iso(entry.sent_at),
        "last_error": entry.last_error,
        "vendor_answer": entry.vendor_answer,
        "created_at": iso(entry.created_at),
        "updated_at": iso(entry.updated_at),
    }


# reason entries `because` words itself; `due_at` is the intent's own due instant, shown apart
_REASON_INSTANTS = {
    "entered_at": "entered",
    "anchor": "anchor",
    "deferred_anchor": "deferred anchor",
}
_REASON_SHOWN = {"when", "due_at", "caught_up_after_s", "canary", *_REASON_INSTANTS}


def side(intent: Intent) -> str:
    """` (shadow)`, or for a `mode: canary` rule the side the record fell on."""
    canary = intent.reason.get("canary")
    return f" (canary {canary})" if canary else " (shadow)" if intent.shadow else ""


def because(reason: Mapping[str, Any], tz: tzinfo) -> str:
    """An intent's reason in words: the field values that made `when` hold, then the instants
    (in `tz`) it counted from, and how late a missed step was caught up."""
    parts = [f"{name}={short(value)}" for name, value in (reason.get("when") or {}).items()]
    for name, label in _REASON_INSTANTS.items():
        if isinstance(reason.get(name), str):
            parts.append(f"{label} {show_instant(datetime.fromisoformat(reason[name]), tz)}")
    if reason.get("caught_up_after_s"):
        parts.append(f"caught up {timedelta(seconds=reason['caught_up_after_s'])} late")
    rest = {k: v for k, v in reason.items() if k not in _REASON_SHOWN}
    return "; ".join(parts + ([pairs(rest)] if rest else []))
