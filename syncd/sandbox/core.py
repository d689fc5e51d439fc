"""The seam between the sandbox's HTTPS server and its vendor emulators.

Each emulator (Zendesk, Salesforce, Graph, the identity platform) is a `Vendor`: it receives a
parsed `Request` and returns a `Response`. The server owns sockets, TLS, the control API, fault
injection and the request log, so emulators stay plain functions of their state. The server
holds `SandboxContext.lock` around every `handle` call: emulators need no locking of their own.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs


class BadJson(ValueError):
    """The request body is not the JSON the emulator expects."""


@dataclass
class Request:
    method: str
    path: str  # percent-decoded path, without the query string
    raw_path: str  # as received, query string included
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # case-insensitive (http.client.HTTPMessage)
    body: bytes
    base_url: str  # "https://127.0.0.1:PORT": emulators build absolute URLs from it

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        if not self.body:
            raise BadJson("empty body")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadJson(str(exc)) from exc

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        value = self.headers.get(name)
        return default if value is None else value


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
        hdrs = {"Content-Type": "application/json; charset=utf-8"}
        hdrs.update(headers or {})
        return cls(status, json.dumps(obj).encode(), hdrs)

    @classmethod
    def text(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Response:
        hdrs = {"Content-Type": "text/plain; charset=utf-8"}
        hdrs.update(headers or {})
        return cls(status, text.encode(), hdrs)

    @classmethod
    def empty(cls, status: int, headers: dict[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


class SandboxClock:
    """Follows real time until set; once set it stands still until set or advanced again.

    In-process only (no control call): `follow(source)` reads the time from `source`, so that
    a benchmark running syncd on an accelerated clock has the sandbox on the same instants
    without setting it in steps; a `set`, `advance` or `reset` ends it."""

    def __init__(self) -> None:
        self._fixed: datetime | None = None
        self._source: Callable[[], datetime] | None = None

    def now(self) -> datetime:
        if self._source is not None:
            return self._source()
        return self._fixed if self._fixed is not None else datetime.now(UTC)

    def follow(self, source: Callable[[], datetime]) -> None:
        self._source = source

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self._source = None
        self._fixed = when.astimezone(UTC)

    def advance(self, seconds: float) -> None:
        self._fixed = self.now() + timedelta(seconds=seconds)
        self._source = None

    @property
    def is_set(self) -> bool:
        return self._fixed is not None or self._source is not None

    def reset(self) -> None:
        self._fixed = None
        self._source = None


class RateLimiter:
    """Sliding one-minute windows on real elapsed time, so a standing sandbox clock never
    locks a client out. `now` (seconds) is replaceable: a benchmark whose simulated day moves
    the sandbox clock with every wait of its client counts the windows on that clock."""

    def __init__(self, window_s: float = 60.0, now: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.now = now
        self._hits: dict[str, deque[float]] = {}

    def take(self, key: str, limit: int) -> tuple[bool, int, int]:
        """Spend one request from `key`'s budget: (allowed, remaining, seconds until reset)."""
        now = self.now()
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= self.window_s:
            hits.popleft()
        reset = int(self.window_s - (now - hits[0])) + 1 if hits else int(self.window_s)
        if len(hits) >= limit:
            return False, 0, max(reset, 1)
        hits.append(now)
        return True, limit - len(hits), reset

    def reset(self) -> None:
        self._hits.clear()


@dataclass
class SandboxContext:
    """What every emulator shares: the clock, the state lock and the credentials it accepts."""

    clock: SandboxClock
    # sandbox.json: "url", "ca_bundle" and the "zendesk"/"salesforce"/"graph" credentials
    credentials: dict[str, Any]
    base_url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)
    limiter: RateLimiter = field(default_factory=RateLimiter)


class Vendor:
    """One emulated API. Subclasses override the methods below; the server does the rest."""

    name: ClassVar[str]  # "zendesk" | "salesforce" | "graph" | "auth": the fault `vendor` key

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx

    def matches(self, path: str) -> bool:
        raise NotImplementedError

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def error_response(self, status: int, retry_after: int | None = None) -> Response:
        """The vendor's own error answer for `status`, used by injected faults."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget all data (the server also resets the clock, faults and request log)."""

    def seed(self, data: Mapping[str, Any]) -> None:
        """Load this vendor's section of a fixture (see README, "Seeding the sandbox")."""

    def snapshot(self) -> dict[str, Any]:
        """JSON-serialisable state for `--state`; never includes a secret or token."""
        return {}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Inverse of `snapshot`."""

    def mail(self) -> list[dict[str, Any]]:
        """Mail sent through this vendor, in `/_sandbox/mail` shape (only Graph sends mail)."""
        return []
