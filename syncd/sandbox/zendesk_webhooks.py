"""Zendesk webhooks connected to a trigger "ticket is created or updated", as the emulator's
outgoing side: each API write that changes a ticket (an audit) invokes every active webhook.

What Zendesk documents and the emulator does:
- Signing (developer.zendesk.com/documentation/webhooks/verifying/): headers
  `X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(signing secret, TIMESTAMP + BODY)) and
  `X-Zendesk-Webhook-Signature-Timestamp` (ISO 8601, from the sandbox clock), plus
  `X-Zendesk-Webhook-Id` and `X-Zendesk-Webhook-Invocation-Id`. A retry resends the same
  request (same timestamp and signature).
- Retries (developer.zendesk.com/api-reference/webhooks/introduction, "Webhook retries"; the
  numbers as recalled, not re-read this session): a 409 answer is retried up to 3 times; a 429
  or 503 with a Retry-After under 60 s is retried after that many seconds (up to 3 times here);
  a request that times out (12 s) is retried up to 5 times. Any other answer, and a refused
  connection, ends the invocation: the webhook is lost, as in Zendesk.
- Triggers do not run on seeded or imported tickets (the Ticket Import API says so).

Seeding (in the `zendesk` section of a fixture):

    webhooks:
      - endpoint: "https://127.0.0.1:8788/webhooks/zendesk"
        signing_secret: "..."          # as Zendesk's "reveal secret" shows it
        id?: "01HV..."                 # default: generated
        status?: active                # active | inactive
        ca_bundle?: /path/ca.pem       # whom to trust for the endpoint's certificate
        name?: "syncd"                 # as the Webhooks API lists it

`GET /api/v2/webhooks` (admins only, as in Zendesk) lists them in the shape of a recorded
answer (zenpy's cassette TestWebhooks.test_list_webhooks-list.json): `{"webhooks": [...],
"meta": {"has_more": false}}`, each with id, name, status, subscriptions
(`conditional_ticket_events`: a trigger's webhook), created_at/by, endpoint, http_method
POST, request_format json; never the signing secret (Zendesk shows it at its own endpoint).
Every webhook is on the one page (Zendesk pages by 100 with `page[after]`).

The body the trigger sends is `{"ticket_id": "<id>", "event": "created"|"updated",
"updated_at": "<ISO 8601>"}`. Webhooks and their secrets are never part of the persisted
state (`--state`): seed them again after a restart.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_S = 12.0
RETRY_409 = 3
RETRY_AFTER = 3  # 429/503 with Retry-After < 60 s
RETRY_TIMEOUT = 5
RETRY_AFTER_MAX_S = 60


class WebhookSeedError(ValueError):
    """A webhook in the fixture cannot be used."""


@dataclass
class Webhook:
    id: str
    endpoint: str
    signing_secret: str = field(repr=False)
    active: bool = True
    ca_bundle: str | None = None
    name: str = "Webhook"
    created_at: str = ""


@dataclass
class Delivery:
    webhook: Webhook
    body: bytes
    timestamp: str
    invocation: str
    tries: dict[str, int] = field(default_factory=dict)  # retry kind -> retries spent
    log: list[int | str] = field(default_factory=list)  # each attempt's status or failure


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def webhook_view(hook: Webhook, created_by: str) -> dict[str, Any]:
    """A webhook as the Webhooks API lists it."""
    return {"id": hook.id, "name": hook.name, "status": "active" if hook.active else "inactive",
            "subscriptions": ["conditional_ticket_events"], "created_at": hook.created_at,
            "created_by": created_by, "endpoint": hook.endpoint, "http_method": "POST",
            "request_format": "json"}


def parse_webhooks(items: Any, created_at: str) -> list[Webhook]:
    if not isinstance(items, list):
        raise WebhookSeedError("zendesk.webhooks: a list")
    found = []
    for index, spec in enumerate(items):
        where = f"zendesk.webhooks[{index}]"
        if not isinstance(spec, Mapping):
            raise WebhookSeedError(f"{where}: a mapping")
        endpoint, secret = spec.get("endpoint"), spec.get("signing_secret")
        if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
            raise WebhookSeedError(f"{where}.endpoint: an http(s) URL")
        if not isinstance(secret, str) or not secret:
            raise WebhookSeedError(f"{where}.signing_secret: a non-empty string")
        status = spec.get("status", "active")
        if status not in ("active", "inactive"):
            raise WebhookSeedError(f"{where}.status: active or inactive")
        found.append(Webhook(str(spec.get("id") or "01" + secrets.token_hex(12).upper()),
                             endpoint, secret, status == "active", spec.get("ca_bundle"),
                             str(spec.get("name") or "Webhook"), created_at))
    return found


class WebhookSender:
    """Delivers invocations on its own thread (never under the emulator's lock), with the
    documented retries; `delivered` keeps each invocation's attempts for tests."""

    def __init__(self, timeout_s: float = TIMEOUT_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.webhooks: list[Webhook] = []
        self.delivered: list[Delivery] = []
        self.timeout_s = timeout_s
        self._now = monotonic
        self._sending = False
        self._queue: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def seed(self, items: Any, created_at: str) -> None:
        hooks = parse_webhooks(items, created_at)
        with self._cond:
            self.webhooks.extend(hooks)

    def reset(self) -> None:
        with self._cond:
            self.webhooks.clear()
            self._queue.clear()
            self.delivered.clear()

    def invoke(self, events: Sequence[tuple[int, str, str]], now: datetime) -> None:
        """Queue one invocation per (ticket id, event, updated_at) for every active webhook."""
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._cond:
            for hook in self.webhooks:
                if not hook.active:
                    continue
                for ticket_id, event, updated_at in events:
                    body = json.dumps({"ticket_id": str(ticket_id), "event": event,
                                       "updated_at": updated_at}).encode()
                    delivery = Delivery(hook, body, stamp, secrets.token_hex(13).upper())
                    heapq.heappush(self._queue, (self._now(), next(self._seq), delivery))
            if self._queue and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sandbox-webhooks",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def listed(self) -> list[Webhook]:
        with self._cond:
            return list(self.webhooks)

    def idle(self) -> bool:
        """Nothing queued (tests wait for it)."""
        with self._cond:
            return not self._queue and not self._sending

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue or self._queue[0][0] > self._now():
                    wait = self._queue[0][0] - self._now() if self._queue else None
                    self._cond.wait(wait)
                _, _, delivery = heapq.heappop(self._queue)
                self._sending = True
            try:
                again = self._attempt(delivery)
            finally:
                with self._cond:
                    self._sending = False
                    if again is not None:
                        heapq.heappush(self._queue, (self._now() + again, next(self._seq),
                                                     delivery))
                    else:
                        self.delivered.append(delivery)

    def _attempt(self, delivery: Delivery) -> float | None:
        """POST once; seconds until the retry, or None when the invocation is over."""
        try:
            status, retry_after = self._post(delivery)
        except TimeoutError:
            delivery.log.append("timeout")
            return 0.0 if _spend(delivery, "timeout", RETRY_TIMEOUT) else None
        except (OSError, http.client.HTTPException) as exc:
            delivery.log.append(type(exc).__name__)
            return None
        delivery.log.append(status)
        if status == 409:
            return 0.0 if _spend(delivery, "409", RETRY_409) else None
        if status in (429, 503) and retry_after is not None and retry_after < RETRY_AFTER_MAX_S:
            return float(retry_after) if _spend(delivery, "retry_after", RETRY_AFTER) else None
        return None

    def _post(self, delivery: Delivery) -> tuple[int, int | None]:
        hook = delivery.webhook
        url = urlsplit(hook.endpoint)
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            tls = ssl.create_default_context(cafile=hook.ca_bundle)
            conn = http.client.HTTPSConnection(url.hostname or "", url.port or 443,
                                               timeout=self.timeout_s, context=tls)
        else:
            conn = http.client.HTTPConnection(url.hostname or "", url.port or 80,
                                              timeout=self.timeout_s)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Zendesk Webhook",
            "X-Zendesk-Webhook-Id": hook.id,
            "X-Zendesk-Webhook-Invocation-Id": delivery.invocation,
            "X-Zendesk-Webhook-Signature-Timestamp": delivery.timestamp,
            "X-Zendesk-Webhook-Signature": signature(hook.signing_secret, delivery.timestamp,
                                                     delivery.body),
        }
        try:
            conn.request("POST", url.path or "/", body=delivery.body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            retry = resp.getheader("Retry-After")
            return resp.status, int(retry) if retry and retry.strip().isdigit() else None
        finally:
            conn.close()


def _spend(delivery: Delivery, kind: str, limit: int) -> bool:
    """Whether a retry of `kind` is left (and spend it)."""
    used = delivery.tries.get(kind, 0)
    if used >= limit:
        return False
    delivery.tries[kind] = used + 1
    return True


def audited(state_audits: Mapping[int, Mapping[str, Any]], first_id: int, next_id: int
            ) -> list[tuple[int, str, str]]:
    """The (ticket id, event, at) of the audits with ids in [first_id, next_id): one request's
    ticket changes, in order (ids only grow)."""
    found: list[tuple[int, str, str]] = []
    for audit_id in range(first_id, next_id):
        audit = state_audits.get(audit_id)
        if audit is None:
            continue
        created = any(e.get("type") == "Create" for e in audit.get("events", []))
        found.append((int(audit["ticket_id"]), "created" if created else "updated",
                      str(audit["created_at"])))
    return found
