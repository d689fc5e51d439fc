"""The plain values that flow between connectors, engine, store and executor.

Connectors turn vendor answers into `Record`s; the engine turns records into `Intent`s; the
store keeps both; the executor hands intents back to connectors. None of these layers imports
another's types: they meet here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from typing import Any

from syncd.vendors.registry import VENDORS

# What a blast-radius limit counts (docs/rules.md, `limits`): every intent (`any`), writes to
# records and folders, mails, or one system's writes (`graph.write`).
LIMIT_KINDS: tuple[str, ...] = ("any", "write", "mail", *(f"{s}.write" for s in VENDORS))


@dataclass(frozen=True, order=True)
class RecordRef:
    """Identity of one record across systems: `zendesk.ticket:123`."""

    kind: str
    id: str

    @property
    def family(self) -> str:
        """The kind's prefix, as rules write it (`sharepoint`); its connector's system is
        `connectors.kinds.SYSTEM_OF_FAMILY[family]` (`graph`)."""
        return self.kind.split(".", 1)[0]

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> RecordRef:
        kind, sep, rid = text.partition(":")
        if not sep or not rid or kind.count(".") != 1:
            raise ValueError(f"not a record reference: {text!r} (expected e.g. zendesk.ticket:123)")
        return cls(kind, rid)


@dataclass(frozen=True)
class Record:
    """One observed version of a vendor record, normalised to a flat-ish mapping of fields."""

    ref: RecordRef
    fields: Mapping[str, Any]
    observed_at: datetime  # when syncd saw this version (the poll's clock instant)
    deleted: bool = False


@dataclass(frozen=True)
class FieldChange:
    field: str
    at: datetime
    old: Any
    new: Any


@dataclass(frozen=True)
class Intent:
    """One side effect the engine wants, identified by a deterministic key so that re-planning
    the same input never duplicates it."""

    key: str
    rule_id: str
    record: RecordRef
    action: str  # "tag", "untag", "set", "assign", "comment", "notify", "create_task", ...
    params: Mapping[str, Any]
    due_at: datetime
    step: str = ""
    occurrence: int = 0
    shadow: bool = False
    reason: Mapping[str, Any] = field(default_factory=dict)  # condition values that made it fire


def intent_key(
    rule_id: str,
    record: RecordRef,
    step: str,
    anchor: datetime | None,
    occurrence: int = 0,
    action_index: int = 0,
) -> str:
    """Deterministic key: (rule id, record, step, anchor instant, occurrence, action index).

    `<rule id>/<24 hex digits>`: a 96-bit BLAKE2b digest of the parts joined by the unit
    separator (U+001F). An aware anchor is written as its integer microseconds since the epoch,
    so the same instant gives the same key whatever its timezone (a naive one, which the engine
    never produces, as its ISO text, which has a "T" and cannot look like an integer). A part
    holding the separator itself switches to a length-prefixed encoding, so no two distinct
    tuples give the same hash input.
    """
    global _last_anchor
    last = _last_anchor  # one read: other threads may replace it meanwhile
    if anchor is None:
        instant = ""
    elif anchor.tzinfo is None:
        instant = anchor.isoformat()
    elif anchor == last[0]:
        instant = last[1]  # the same instant as the last key's (one entry, one poll)
    else:
        instant = str((anchor - _EPOCH) // _MICROSECOND)
        _last_anchor = (anchor, instant)
    kind, rid = record.kind, record.id
    text = f"{rule_id}\x1f{kind}\x1f{rid}\x1f{step}\x1f{instant}\x1f{occurrence}\x1f{action_index}"
    if text.count("\x1f") == 6:
        digest = blake2b(text.encode(), digest_size=12).hexdigest()
    else:  # a separator inside a part: length-prefixed parts, hashed in a domain of their own
        parts = (rule_id, kind, rid, step, instant, str(occurrence), str(action_index))
        text = "".join(f"{len(part)}:{part}" for part in parts)
        digest = blake2b(text.encode(), digest_size=12, person=b"syncd-key-lp").hexdigest()
    return f"{rule_id}/{digest}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_last_anchor: tuple[datetime, str] = (_EPOCH, "0")  # the last aware anchor and its text


@dataclass(frozen=True)
class Operation:
    """One vendor-level write, what a connector executes and verifies.

    The executor turns an Intent into Operations (resolving recipients, owners, folders);
    connectors know nothing of rules or intents, only of these. `key` is the idempotency key
    carried to the vendor where it has a place for one (Zendesk Idempotency-Key, a Salesforce
    key field, an internet message header on mail), so that `verify` can find the effect.
    """

    key: str
    system: str  # "zendesk" | "salesforce" | "graph"
    verb: str  # e.g. "add_tags", "update", "comment", "create", "send_mail", "ensure_folder"
    target: str  # the vendor object the verb applies to: a ticket id, an sObject name, a path
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a vendor answered to an Operation, or what `verify` found."""

    ok: bool
    detail: Mapping[str, Any] = field(default_factory=dict)  # ids created, vendor answer
    retryable: bool = False  # a 429/5xx/timeout: try again later; False + not ok: dead-letter
    error: str = ""
    # the record as the write left it, when the vendor's answer carries it (a Zendesk ticket
    # update answers the ticket as saved): the executor stores it instead of reading it back
    record: Record | None = field(default=None, compare=False)
