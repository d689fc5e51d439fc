"""Delta queries for driveItems and listItems (graph.md §5, gotcha 14).

Every change to a tracked row takes the next number of its collection's `Feed`. A delta token
records the numbers already delivered, so a later call returns only rows changed since, with
deleted rows carrying a `deleted` facet. Paging fixes an upper bound at the first page: rows that
change mid-enumeration jump past it and come back in the next round, never lost.

Tokens are opaque base64url JSON bound to the feed's epoch (reset makes them unknown) and to the
scope (drive root, folder or list). Unknown, foreign or too old tokens (`delta_token_max_age_s`
on the sandbox clock) answer 410 Gone `resyncRequired` with a `Location` that restarts a full
enumeration, as Graph does.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from syncd.sandbox.core import Request
from syncd.sandbox.graph_common import GraphError, Json, b64url, link, parse_iso, top, unb64url

DEFAULT_PAGE = 200
MAX_PAGE = 1000
_RESYNC_MESSAGE = (
    "Resync required. Replace any local items with the server's version (including deletes) if "
    "you're sure that the service was up to date with your local changes when you last sync'd. "
    "Upload any local changes that the server doesn't know about."
)


class Tracked(Protocol):
    seq: int
    changed: datetime
    deleted: bool


R = TypeVar("R", bound=Tracked)


@dataclass
class Feed:
    """The change counter of one collection (a drive or a list)."""

    epoch: str = field(default_factory=lambda: secrets.token_hex(6))
    seq: int = 0

    def bump(self) -> int:
        self.seq += 1
        return self.seq

    def to_json(self) -> Json:
        return {"epoch": self.epoch, "seq": self.seq}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Feed:
        return cls(epoch=str(data["epoch"]), seq=int(data["seq"]))


@dataclass(frozen=True)
class Cursor:
    since: int  # rows with seq <= since were delivered before this round
    upto: int | None  # bound fixed at the round's first page; None until then
    after: int  # rows with seq <= after were delivered in this round
    issued: float  # sandbox-clock POSIX time the link was handed out

    def encode(self, feed: Feed, scope: str) -> str:
        doc = {
            "e": feed.epoch,
            "k": scope,
            "s": self.since,
            "u": self.upto,
            "a": self.after,
            "t": int(self.issued),
        }
        return b64url(json.dumps(doc, separators=(",", ":")).encode())


def _decode(token: str, feed: Feed, scope: str) -> Cursor | None:
    try:
        doc = json.loads(unb64url(token))
        if doc["e"] != feed.epoch or doc["k"] != scope:
            return None
        cursor = Cursor(int(doc["s"]), doc["u"], int(doc["a"]), float(doc["t"]))
    except (ValueError, KeyError, TypeError):
        return None
    if cursor.upto is not None and not isinstance(cursor.upto, int):
        return None
    if not 0 <= cursor.since <= cursor.after <= feed.seq:
        return None
    return cursor


def _since_instant(rows: Iterable[Tracked], when: datetime, feed: Feed) -> int:
    """`?token=<timestamp>` (SharePoint): the counter just before the first change after it."""
    later = [row.seq for row in rows if row.changed > when]
    return min(later) - 1 if later else feed.seq


def delta(
    req: Request,
    feed: Feed,
    scope: str,
    rows: Iterable[R],
    render: Callable[[R], Json],
    now: datetime,
    max_age_s: float,
) -> Json:
    """One page of a delta query over `rows` (all rows of the scope, tombstones included)."""
    rows = list(rows)
    fresh = Cursor(0, None, 0, now.timestamp()).encode(feed, scope)
    token = req.arg("token")
    if token is None:
        cursor = Cursor(0, None, 0, now.timestamp())
    elif token == "latest":
        latest = Cursor(feed.seq, None, feed.seq, now.timestamp())
        return {
            "value": [],
            "@odata.deltaLink": link(req, req.path, token=latest.encode(feed, scope)),
        }
    else:
        cursor = _cursor_for(token, feed, scope, rows)
        if cursor is None or now.timestamp() - cursor.issued > max_age_s:
            raise GraphError(
                410,
                "resyncRequired",
                _RESYNC_MESSAGE,
                inner_code="resyncChangesApplyDifferences",
                headers={"Location": link(req, req.path, token=fresh)},
            )
    upto = feed.seq if cursor.upto is None else cursor.upto
    pending = sorted(
        (r for r in rows if cursor.after < r.seq <= upto and (cursor.since or not r.deleted)),
        key=lambda r: r.seq,
    )
    size = top(req, DEFAULT_PAGE, MAX_PAGE)
    page = pending[:size]
    body: Json = {"value": [render(r) for r in page]}
    if len(pending) > size:
        nxt = Cursor(cursor.since, upto, page[-1].seq, now.timestamp())
        body["@odata.nextLink"] = link(req, req.path, token=nxt.encode(feed, scope))
    else:
        done = Cursor(upto, None, upto, now.timestamp())
        body["@odata.deltaLink"] = link(req, req.path, token=done.encode(feed, scope))
    return body


def _cursor_for(token: str, feed: Feed, scope: str, rows: list[R]) -> Cursor | None:
    """A stored token, or an ISO timestamp as SharePoint accepts in place of one."""
    if token[:1].isdigit():
        try:
            when = parse_iso(token)
        except ValueError:
            return None
        since = _since_instant(rows, when, feed)
        return Cursor(since, None, since, when.astimezone(UTC).timestamp())
    return _decode(token, feed, scope)
