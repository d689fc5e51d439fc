"""Zendesk webhook requests: is this one genuine, fresh and new, and which ticket does it name.

Zendesk signs each request (developer.zendesk.com/documentation/webhooks/verifying/):
`X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(signing secret, TIMESTAMP + BODY)) with
TIMESTAMP the `X-Zendesk-Webhook-Signature-Timestamp` header, concatenated with the raw body
byte for byte (no separator). The signature alone does not stop a captured request from being
sent again, so a request is also refused when its timestamp is older (or further ahead) than
`max_age_s`, and when its signature was already accepted within that window: the window
bounds the memory of signatures, since anything older is refused as stale anyway.

The body is whatever the admin's trigger sends; syncd needs only the ticket id:
`{"ticket_id": "{{ticket.id}}"}` (a string or a number; `{"ticket": {"id": ...}}` too).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.clock import Clock
from syncd.errors import Skippable

SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"


class Refused(Skippable, ValueError):
    """The request is not acted on; the message says why (it never holds the secret), and
    `reason` in a word, for metrics: signature, stale, replay or unknown (anything else)."""

    reason = "unknown"


class BadSignature(Refused):
    """Unsigned, or not signed with the secret: a wrong secret in syncd, or a forgery."""

    reason = "signature"


class Stale(Refused):
    """Signed too long ago (or ahead): a clock off, or a captured request sent again later."""

    reason = "stale"


class Replayed(Refused):
    """A request already accepted, sent again. Genuine twins exist: two changes of a ticket
    within one second of the timestamp carry the same body and so the same signature (syncd's
    own tag and assign writes do); the first one's re-read covers them, the export the rest."""

    reason = "replay"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Zendesk's signature of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def parse_timestamp(value: str) -> datetime:
    """The signature timestamp: ISO 8601 as Zendesk sends it (unix seconds accepted too)."""
    text = value.strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise BadSignature("unreadable signature timestamp") from None
    if parsed.tzinfo is None:
        raise BadSignature("signature timestamp without a timezone")
    return parsed.astimezone(UTC)


def ticket_id(body: bytes) -> int:
    """The ticket the trigger's body names."""
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused("body is not JSON") from None
    if isinstance(data, Mapping) and isinstance(data.get("ticket"), Mapping):
        data = data["ticket"]
        found = data.get("id")
    else:
        found = data.get("ticket_id") if isinstance(data, Mapping) else None
    text = str(found).strip() if isinstance(found, (int, str)) else ""
    if not text.isdigit() or int(text) < 1:
        raise Refused("body names no ticket (expected {\"ticket_id\": \"{{ticket.id}}\"})")
    return int(text)


class Verifier:
    """Checks requests against one signing secret; thread-safe (the server is threaded)."""

    def __init__(self, secret: str, clock: Clock, max_age_s: float) -> None:
        self._secret = secret
        self._clock = clock
        self._max_age = timedelta(seconds=max_age_s)
        self._seen: OrderedDict[str, datetime] = OrderedDict()  # signature -> its timestamp
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret
        return f"Verifier(max_age={self._max_age})"

    def check(self, headers: Mapping[str, str], body: bytes) -> int:
        """The ticket id of a genuine, fresh, first-seen request; else `Refused`."""
        signature = (headers.get(SIGNATURE) or "").strip()
        stamp = headers.get(TIMESTAMP) or ""
        if not signature or not stamp:
            raise BadSignature("unsigned: signature or timestamp header missing")
        if not hmac.compare_digest(sign(self._secret, stamp, body).encode(), signature.encode()):
            raise BadSignature("bad signature")
        at = parse_timestamp(stamp)
        now = self._clock.now()
        if abs(now - at) > self._max_age:
            raise Stale(f"stale: signed at {at.isoformat()}, more than "
                          f"{self._max_age.total_seconds():.0f} s from now")
        found = ticket_id(body)
        with self._lock:
            while self._seen and abs(now - next(iter(self._seen.values()))) > self._max_age:
                self._seen.popitem(last=False)
            if signature in self._seen:
                raise Replayed("replayed: this signature was already accepted")
            self._seen[signature] = at
        return found
