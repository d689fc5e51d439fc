"""One retry policy and one API budget governor for every vendor.

Three pieces, shared by the Zendesk, Salesforce and Graph connectors:

- Errors. Every failed vendor call becomes a `RetryableError` (429, 5xx, timeouts, dropped
  connections, and the few 4xx that change by themselves) or a `PermanentError` (any other
  4xx, TLS failures). Both carry the vendor's status, error code, message and request id, and
  never a URL query, header or token: messages end up in logs and in the intents ledger.
  `maybe_applied` says whether the vendor may have carried out a write despite the error (a
  5xx or a broken connection after the request left): such writes are not repeated blindly,
  the executor verifies them first.
- `Governor`: a sliding-window limit per vendor quota (the configured share of it in any
  60 s), spent in priority lanes (`escalation` > `poll` > `backfill`). It also
  reads the vendors' remaining-quota headers to slow down before the vendor says 429.
- `RetryPolicy`: tenacity, with jittered exponential backoff, `Retry-After` honoured, a cap
  on attempts and on total waiting. All waiting goes through the injected Clock.

Clients meet these through the transport: `MeteredSession` (a `PinnedSession` for zenpy and
simple-salesforce) and `httpx_send` (for httpx) spend the budget before each request and turn
error answers into the errors above. So zenpy's own 429 loop (which sleeps in real
time) never runs, and pagination requests hidden inside the client libraries are governed too.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
import requests
import tenacity

from syncd.clock import Clock
from syncd.connectors.tls import PinnedSession
from syncd.errors import Retryable, Skippable, SyncdError

T = TypeVar("T")

LANES: tuple[str, ...] = ("escalation", "poll", "backfill")  # priority order, highest first
DEFAULT_BUCKET = "default"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# 4xx answers that change by themselves (lock contention, a daily quota that rolls over).
RETRYABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED"})
THROTTLE_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED"})

_lane: ContextVar[str | None] = ContextVar("syncd_api_lane", default=None)
_extra_headers: ContextVar[Mapping[str, str] | None] = ContextVar(
    "syncd_extra_headers", default=None
)


# -- lanes and per-call headers ------------------------------------------------------------
@contextlib.contextmanager
def lane(name: str) -> Iterator[None]:
    """Spend the API budget of the calls inside in lane `name` (the caller decides)."""
    if name not in LANES:
        raise ValueError(f"unknown lane {name!r}; lanes are {LANES}")
    token = _lane.set(name)
    try:
        yield
    finally:
        _lane.reset(token)


@contextlib.contextmanager
def default_lane(name: str) -> Iterator[None]:
    """Like `lane`, unless a caller already chose one (a connector's default for a method)."""
    if _lane.get() is not None:
        yield
        return
    with lane(name):
        yield


def current_lane() -> str:
    return _lane.get() or "poll"


@contextlib.contextmanager
def request_headers(headers: Mapping[str, str]) -> Iterator[None]:
    """Add headers to every request a `MeteredSession` sends inside (in this thread/context).

    Client libraries such as zenpy take no per-call headers; this is how `Idempotency-Key`
    reaches exactly the one request it belongs to, without touching the shared session.
    """
    token = _extra_headers.set({**(_extra_headers.get() or {}), **headers})
    try:
        yield
    finally:
        _extra_headers.reset(token)


# -- errors ----------------------------------------------------------------------------------
class VendorError(SyncdError):
    """A vendor call that failed; safe to log (no URL query, header or token)."""

    def __init__(
        self,
        vendor: str,
        status: int | None,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
        maybe_applied: bool = False,
    ) -> None:
        self.vendor = vendor
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied
        super().__init__(str(self))

    def __str__(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        rid = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.vendor}{status} {self.code}: {self.message}{rid}"

    def detail(self) -> dict[str, Any]:
        """The fields an `Outcome.detail` carries."""
        return {
            "status": self.status,
            "code": self.code,
            "request_id": self.request_id,
            "retry_after": self.retry_after,
            "maybe_applied": self.maybe_applied,
        }


class RetryableError(VendorError, Retryable):
    """Try again later: a 429, a 5xx, a timeout, a dropped connection."""


class PermanentError(VendorError, Skippable):
    """Will not change by retrying: a 4xx (validation, not found, forbidden), a TLS failure."""


_URL_QUERY = re.compile(r"\?[^\s'\")]*")
_BEARER = re.compile(r"(?i)(bearer|token|secret|password|assertion)([\s=:\"']+)[^\s&\"',]+")


def redact(text: str, limit: int = 300) -> str:
    """Drop URL queries and anything that looks like a credential; keep it short."""
    text = _BEARER.sub(r"\1\2***", _URL_QUERY.sub("?…", text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, (when - now).total_seconds())


def _error_fields(body: bytes) -> tuple[str, str, str | None]:
    """(code, message, request id) from any of the three vendors' error bodies."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", body.decode("utf-8", "replace").strip(), None
    if isinstance(data, list) and data and isinstance(data[0], dict):  # Salesforce
        first = data[0]
        return str(first.get("errorCode", "")), str(first.get("message", "")), None
    if not isinstance(data, dict):
        return "", "", None
    err = data.get("error")
    if isinstance(err, dict):  # Graph, and Zendesk's {"error": {"title", "message"}}
        inner = err.get("innerError") or err.get("innererror") or {}
        code = str(err.get("code") or err.get("title") or "")
        return code, str(err.get("message", "")), inner.get("request-id")
    # Zendesk {"error": "RecordNotFound", "description": ...}; OAuth {"error", "error_description"}
    message = data.get("description") or data.get("error_description") or data.get("message")
    if data.get("details"):
        message = f"{message or ''} {json.dumps(data['details'], sort_keys=True)}"
    return str(err or ""), str(message or ""), None


class _Response(Protocol):
    """What requests' and httpx's responses share."""

    status_code: int
    headers: Any
    content: bytes


def error_from_response(vendor: str, method: str, resp: _Response, now: datetime) -> VendorError:
    """Classify an error answer (status >= 400)."""
    code, message, request_id = _error_fields(resp.content)
    headers = resp.headers
    request_id = (
        request_id
        or headers.get("x-request-id")
        or headers.get("x-zendesk-request-id")
        or headers.get("request-id")
    )
    status = resp.status_code
    retryable = status in RETRYABLE_STATUSES or code in RETRYABLE_CODES
    cls = RetryableError if retryable else PermanentError
    return cls(
        vendor,
        status,
        code or f"http_{status}",
        redact(message or f"HTTP {status}"),
        request_id=request_id,
        retry_after=parse_retry_after(headers.get("retry-after"), now),
        maybe_applied=retryable and status >= 500 and method.upper() not in SAFE_METHODS,
    )


def error_from_transport(vendor: str, method: str, exc: Exception) -> VendorError:
    """Classify a requests/httpx exception raised before any answer arrived."""
    unsafe = method.upper() not in SAFE_METHODS
    name = type(exc).__name__
    message = redact(str(exc))
    if _is_tls_failure(exc):
        return PermanentError(vendor, None, "tls", message)
    if isinstance(exc, requests.exceptions.ConnectTimeout | httpx.ConnectTimeout):
        return RetryableError(vendor, None, name, message)  # never reached the vendor
    if isinstance(exc, httpx.ConnectError) or (
        isinstance(exc, requests.exceptions.ConnectionError)
        and "NewConnectionError" in repr(exc.args)
    ):
        return RetryableError(vendor, None, name, message)
    return RetryableError(vendor, None, name, message, maybe_applied=unsafe)


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | requests.exceptions.SSLError):
            return True
        if any(isinstance(arg, ssl.SSLError) for arg in getattr(seen, "args", ())):
            return True
        seen = seen.__cause__ or seen.__context__
    return isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)


# -- the budget governor ---------------------------------------------------------------------
@dataclass
class ApiStats:
    """Counters per vendor, read by the metrics module."""

    calls: int = 0
    throttled: int = 0  # 429s and quota-exhausted answers
    retries: int = 0
    errors: int = 0  # failed answers and transport errors, retried or not
    budget_wait_s: float = 0.0


class Bucket:
    """One quota: at most `capacity` calls in any window of `capacity / per_minute` minutes
    (60 s when the capacity is a minute's rate), counted as the vendors count: a sliding window.

    A token bucket that saves up a minute and refills another spends twice its rate in some
    60 s; this one never does. A call counts from when it is sent; once answered, from its
    answer (`done`), which is no earlier than the vendor saw it, so the vendor's own window
    never holds more than `capacity` of them. `share` is the fraction of a vendor-reported
    remaining quota syncd may spend: when the vendor says only N calls remain, the bucket lets
    at most share * N more go out in the next window.
    """

    def __init__(self, per_minute: float, capacity: float, share: float = 1.0) -> None:
        if per_minute <= 0 or capacity < 1:
            raise ValueError("a bucket needs a positive rate and room for at least one call")
        self.per_minute = per_minute
        self.capacity = capacity
        self.share = share
        self.window = timedelta(minutes=capacity / per_minute)
        self._open: deque[datetime] = deque()  # sent, not answered yet: when sent
        self._closed: deque[datetime] = deque()  # answered (or held back): when

    def _expire(self, now: datetime) -> None:
        start = now - self.window
        for stamps in (self._open, self._closed):
            while stamps and stamps[0] <= start:
                stamps.popleft()

    def available(self, now: datetime) -> float:
        """Calls that may go out at `now`."""
        self._expire(now)
        return self.capacity - len(self._open) - len(self._closed)

    def take(self, now: datetime) -> None:
        self._open.append(now)

    def done(self, now: datetime) -> None:
        """A call was answered (or failed): it counts from now on, for a window."""
        if self._open:
            self._open.popleft()
            self._closed.append(max(now, self._closed[-1]) if self._closed else now)

    def hold(self, calls: int, now: datetime) -> None:
        """Let at most `calls` more go out in the next window (the vendor's remaining quota)."""
        extra = int(self.available(now) - max(calls, 0))
        if extra > 0:
            stamp = max(now, self._closed[-1]) if self._closed else now
            self._closed.extend([stamp] * extra)

    def pace(self, per_minute: float) -> None:
        """Slow to `per_minute` (a daily allocation spread over the day), keeping the window:
        the burst shrinks with the rate."""
        if per_minute < self.per_minute:
            self.capacity = max(1.0, per_minute * self.window.total_seconds() / 60.0)
            self.per_minute = per_minute
            self.window = timedelta(minutes=self.capacity / per_minute)

    def seconds_until(self, free: float, now: datetime) -> float:
        """How long until `free` calls may go out (0 if they may now)."""
        missing = math.ceil(free - self.available(now))
        if missing <= 0:
            return 0.0
        stamps = sorted([*self._open, *self._closed])
        if missing > len(stamps):
            return self.window.total_seconds()
        return max(0.0, (stamps[missing - 1] + self.window - now).total_seconds())


_SF_USAGE = re.compile(r"(?:^|[^-])api-usage=(\d+)/(\d+)")
_SF_APP_USAGE = re.compile(r"per-app-api-usage=(\d+)/(\d+)")


_ZD_ENDPOINT_LIMIT = re.compile(r"remaining=(\d+)")


def remaining_quota(headers: Mapping[str, str]) -> int | None:
    """Calls left according to the vendor, the smallest of: Zendesk `X-Rate-Limit-Remaining`
    and its endpoint budgets (`zendesk-ratelimit-*: total=10; remaining=9; resets=41`),
    Salesforce `Sforce-Limit-Info: api-usage=used/total`, the IETF `RateLimit-Remaining`."""
    found: list[int] = []
    for name, value in headers.items():
        name = name.lower()
        if name in ("x-rate-limit-remaining", "ratelimit-remaining") and value.strip().isdigit():
            found.append(int(value))
        elif name.startswith("zendesk-ratelimit-") and (m := _ZD_ENDPOINT_LIMIT.search(value)):
            found.append(int(m.group(1)))
        elif name == "sforce-limit-info" and (usage := _SF_USAGE.search(value)):
            found.append(max(0, int(usage.group(2)) - int(usage.group(1))))
    return min(found) if found else None


def app_quota(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """(used, total) of the connected app's own daily allocation (Salesforce `Sforce-Limit-Info:
    ...; per-app-api-usage=17/250(appName=x)`): syncd's alone, so no share applies."""
    for name, value in headers.items():
        if name.lower() == "sforce-limit-info" and (usage := _SF_APP_USAGE.search(value)):
            return int(usage.group(1)), int(usage.group(2))
    return None


class Governor:
    """The API budget of one vendor: buckets (one per quota) spent in priority lanes.

    A caller in a lower lane waits while a caller in a higher lane waits for the same bucket,
    and `backfill` only spends tokens above `backfill_reserve` of the bucket, so a long
    initial import never delays polling or due escalations. A 429 blocks every lane until its
    `Retry-After` has passed. All waiting is `clock.sleep`.
    """

    def __init__(
        self,
        vendor: str,
        clock: Clock,
        buckets: Mapping[str, Bucket],
        *,
        backfill_reserve: float = 0.5,
        idle_wait_s: float = 0.05,
    ) -> None:
        if DEFAULT_BUCKET not in buckets:
            raise ValueError(f"a governor needs a {DEFAULT_BUCKET!r} bucket")
        self.vendor = vendor
        self.clock = clock
        self.buckets = dict(buckets)
        self.backfill_reserve = backfill_reserve
        self.idle_wait_s = idle_wait_s
        self.stats = ApiStats()
        self.blocked_until: datetime | None = None
        self.vendor_date: datetime | None = None  # the latest answer's `Date` (syncd doctor)
        self._waiting = {name: [0] * len(LANES) for name in self.buckets}
        self._lock = threading.Lock()

    @classmethod
    def per_minute(
        cls,
        vendor: str,
        clock: Clock,
        rate: float,
        share: float = 1.0,
        burst_minutes: float = 1.0,
        **extra: Bucket,
    ) -> Governor:
        """A governor whose default bucket allows `rate` a minute (the share already applied),
        counted over windows of `burst_minutes`: one minute for per-minute quotas (Zendesk,
        Graph), more for daily ones (Salesforce), where spending in bursts is fine."""
        bucket = Bucket(rate, max(1.0, rate * burst_minutes), share)
        return cls(vendor, clock, {DEFAULT_BUCKET: bucket, **extra})

    def acquire(self, bucket: str = DEFAULT_BUCKET) -> None:
        """Take one call's token in the current lane, waiting (on the clock) as needed."""
        rank = LANES.index(current_lane())
        name = bucket if bucket in self.buckets else DEFAULT_BUCKET
        with self._lock:
            self._waiting[name][rank] += 1
        waited = 0.0
        try:
            while (delay := self._try_take(name, rank)) > 0:
                self.clock.sleep(delay)
                waited += delay
        finally:
            with self._lock:
                self._waiting[name][rank] -= 1
                self.stats.calls += 1
                self.stats.budget_wait_s += waited

    def _try_take(self, name: str, rank: int) -> float:
        with self._lock:
            now = self.clock.now()
            if self.blocked_until is not None and now < self.blocked_until:
                return (self.blocked_until - now).total_seconds()
            if any(self._waiting[name][:rank]):
                return self.idle_wait_s
            # a named bucket is an endpoint's quota within the vendor's: both are spent. The
            # backfill reserve is kept in the vendor's quota, which every lane shares; an
            # endpoint's (Zendesk's export) is read by one source, backfill or poll, not both
            names = list(dict.fromkeys((name, DEFAULT_BUCKET)))
            backfill = LANES[rank] == "backfill"

            def room(n: str) -> float:
                kept = self.backfill_reserve if backfill and n == DEFAULT_BUCKET else 0.0
                return 1 + self.buckets[n].capacity * kept

            wait = max(self.buckets[n].seconds_until(room(n), now) for n in names)
            if wait <= 0:
                for n in names:
                    self.buckets[n].take(now)
                return 0.0
            return max(wait, 1e-3)

    def observe(
        self,
        status: int,
        headers: Mapping[str, str],
        bucket: str = DEFAULT_BUCKET,
        code: str = "",
        retry_after: float | None = None,
    ) -> None:
        """Learn from an answer: remaining quota, and 429s that block every lane for a while."""
        with self._lock:
            with contextlib.suppress(KeyError, TypeError, ValueError, IndexError):
                self.vendor_date = parsedate_to_datetime(headers["date"])
            target = self.buckets.get(bucket, self.buckets[DEFAULT_BUCKET])
            now = self.clock.now()
            self._answered(bucket, now)
            own = app_quota(headers)
            if own is not None:  # a daily allocation: pace the bucket to it, keep its window
                used, total = own
                target.pace(max(total, 1) / 1440.0)
                target.hold(total - used, now)
            remaining = remaining_quota(headers)
            if remaining is not None:
                target.hold(int(target.share * remaining), now)
            if status >= 400:
                self.stats.errors += 1
            if status == 429 or code in THROTTLE_CODES:
                self.stats.throttled += 1
                if retry_after:
                    until = self.clock.now() + timedelta(seconds=retry_after)
                    if self.blocked_until is None or until > self.blocked_until:
                        self.blocked_until = until

    def remaining(self, bucket: str = DEFAULT_BUCKET) -> float:
        """Calls the bucket would let go out now (the budget left, for metrics)."""
        with self._lock:
            return self.buckets[bucket].available(self.clock.now())

    def transport_failed(self, bucket: str = DEFAULT_BUCKET) -> None:
        with self._lock:
            self._answered(bucket, self.clock.now())
            self.stats.errors += 1

    def _answered(self, bucket: str, now: datetime) -> None:
        name = bucket if bucket in self.buckets else DEFAULT_BUCKET
        for n in dict.fromkeys((name, DEFAULT_BUCKET)):
            self.buckets[n].done(now)


# -- the retry policy ------------------------------------------------------------------------
class RetryPolicy:
    """Retry `RetryableError`s with jittered exponential backoff, honouring `Retry-After`.

    `call(fn, idempotent=False)` retries only errors where the vendor certainly did not act
    (429, connection refused): a write that may have been applied is handed back to the
    executor, which verifies before it repeats anything. Waiting stops at `max_attempts`, at
    `max_total_wait_s` of total sleep, or when a vendor asks for more than
    `max_retry_after_s`; the last error is raised then.
    """

    def __init__(
        self,
        governor: Governor,
        *,
        max_attempts: int = 5,
        max_total_wait_s: float = 120.0,
        max_retry_after_s: float = 120.0,
        base_s: float = 1.0,
        cap_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.governor = governor
        self.max_attempts = max_attempts
        self.max_total_wait_s = max_total_wait_s
        self.max_retry_after_s = max_retry_after_s
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng or random.Random()

    def backoff(self, attempt: int) -> float:
        """Equal jitter: half of the exponential step, plus a random part of the other half."""
        step = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        return step / 2 + self.rng.uniform(0, step / 2)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, VendorError) and exc.retry_after is not None:
            return exc.retry_after
        return self.backoff(state.attempt_number)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        too_long = isinstance(exc, VendorError) and (exc.retry_after or 0) > self.max_retry_after_s
        return (
            too_long
            or state.attempt_number >= self.max_attempts
            or state.idle_for + state.upcoming_sleep > self.max_total_wait_s
        )

    def _count(self, state: tenacity.RetryCallState) -> None:
        self.governor.stats.retries += 1

    def call(
        self,
        fn: Callable[[], T],
        *,
        idempotent: bool = True,
        reauth: Callable[[], None] | None = None,
    ) -> T:
        """`fn()` under the policy. With `reauth`, a 401 (an expired session or token: the
        vendor did nothing) renews the credentials once and runs the policy again."""

        def should_retry(exc: BaseException) -> bool:
            return isinstance(exc, RetryableError) and (idempotent or not exc.maybe_applied)

        retrying = tenacity.Retrying(
            sleep=self.governor.clock.sleep,
            retry=tenacity.retry_if_exception(should_retry),
            wait=self._wait,
            stop=self._stop,
            before_sleep=self._count,
            reraise=True,
        )
        try:
            return retrying(fn)
        except PermanentError as exc:
            if reauth is None or exc.status != 401:
                raise
        reauth()
        return retrying.copy()(fn)


# -- transports ------------------------------------------------------------------------------
BucketOf = Callable[[str], str]


def _default_bucket(path: str) -> str:
    return DEFAULT_BUCKET


class MeteredSession(PinnedSession):
    """A `PinnedSession` that spends the governor's budget on every request (redirects and
    the client library's own pagination included), adds `request_headers`, and raises
    `RetryableError` / `PermanentError` for error answers instead of handing them back."""

    def __init__(
        self,
        governor: Governor,
        verify: str | bool = True,
        proxies: dict[str, str] | None = None,
        bucket_of: BucketOf = _default_bucket,
    ) -> None:
        super().__init__(verify=verify, proxies=proxies)
        self.governor = governor
        self.bucket_of = bucket_of

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        method = request.method or "GET"
        bucket = self.bucket_of(urlsplit(request.url or "").path)
        request.headers.update(_extra_headers.get() or {})
        self.governor.acquire(bucket)
        try:
            resp = super().send(request, **kwargs)
        except requests.RequestException as exc:
            self.governor.transport_failed(bucket)
            raise error_from_transport(self.governor.vendor, method, exc) from None
        error = check_response(self.governor, method, resp, bucket)
        if error is not None:
            raise error
        return resp


def check_response(
    governor: Governor, method: str, resp: _Response, bucket: str = DEFAULT_BUCKET
) -> VendorError | None:
    """Feed the governor from an answer; the classified error for a status >= 400, else None."""
    error = (
        error_from_response(governor.vendor, method, resp, governor.clock.now())
        if resp.status_code >= 400
        else None
    )
    governor.observe(
        resp.status_code,
        resp.headers,
        bucket,
        code=error.code if error else "",
        retry_after=error.retry_after if error else None,
    )
    return error


def httpx_send(
    governor: Governor,
    client: httpx.Client,
    request: httpx.Request,
    *,
    passthrough: frozenset[int] = frozenset(),
    sink: BinaryIO | None = None,
) -> httpx.Response:
    """Send one httpx request within the budget; raise the classified error for an error
    answer, except for the statuses in `passthrough`, which the caller handles itself (Graph's
    410 with a `Location`). With `sink`, a successful answer's body is streamed into it (from
    its start: a retry writes it again) instead of being held in memory."""
    governor.acquire()
    try:
        resp = client.send(request, stream=sink is not None)
        try:
            if sink is None or not resp.is_success:
                resp.read()
            else:
                sink.seek(0)
                sink.truncate()
                for chunk in resp.iter_bytes():
                    sink.write(chunk)
        finally:
            resp.close()
    except httpx.HTTPError as exc:
        governor.transport_failed()
        raise error_from_transport(governor.vendor, request.method, exc) from None
    error = check_response(governor, request.method, resp)
    if error is not None and resp.status_code not in passthrough:
        raise error
    return resp
