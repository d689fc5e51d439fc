"""The shared retry policy and API budget governor: no real sleeping (FrozenClock)."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import requests
import respx

from syncd.clock import FrozenClock
from syncd.connectors.http import (
    Bucket,
    Governor,
    PermanentError,
    RetryableError,
    RetryPolicy,
    error_from_transport,
    httpx_send,
    lane,
    parse_retry_after,
    redact,
    remaining_quota,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def make(rate: float = 60.0, **kwargs: object) -> tuple[FrozenClock, Governor, RetryPolicy]:
    clock = FrozenClock(T0)
    governor = Governor.per_minute("zendesk", clock, rate)
    return clock, governor, RetryPolicy(governor, rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


def err(status: int, retry_after: float | None = None, maybe_applied: bool = False) -> Exception:
    cls = RetryableError if status in (429, 500, 503) else PermanentError
    return cls("zendesk", status, "x", "boom", retry_after=retry_after, maybe_applied=maybe_applied)


class Flaky:
    """Raises the given errors in turn, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


# -- retry policy ----------------------------------------------------------------------------
def test_retries_5xx_with_jittered_exponential_backoff_on_the_clock() -> None:
    clock, governor, policy = make()
    fn = Flaky(err(503), err(500), err(503))
    started = time.monotonic()
    assert policy.call(fn) == "ok"
    assert fn.calls == 4
    assert governor.stats.retries == 3
    waited = (clock.now() - T0).total_seconds()
    # equal jitter: each wait lies in [step/2, step] for steps 1, 2, 4 seconds
    assert 0.5 + 1 + 2 <= waited <= 1 + 2 + 4
    assert time.monotonic() - started < 1.0  # the FrozenClock waited, not the test


def test_backoff_grows_and_is_capped() -> None:
    _, _, policy = make(cap_s=8.0)
    for attempt, step in ((1, 1), (2, 2), (3, 4), (4, 8), (9, 8)):
        assert step / 2 <= policy.backoff(attempt) <= step


def test_retry_after_seconds_is_honoured_exactly() -> None:
    clock, _, policy = make()
    assert policy.call(Flaky(err(429, retry_after=7))) == "ok"
    assert clock.now() == T0 + timedelta(seconds=7)


def test_retry_after_http_date_is_parsed() -> None:
    later = T0 + timedelta(seconds=42)
    assert parse_retry_after(format_datetime(later, usegmt=True), T0) == 42
    assert parse_retry_after("3", T0) == 3
    assert parse_retry_after(format_datetime(T0 - timedelta(seconds=5), usegmt=True), T0) == 0
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


def test_no_retry_on_a_4xx_that_will_not_change() -> None:
    _, governor, policy = make()
    fn = Flaky(err(422))
    with pytest.raises(PermanentError):
        policy.call(fn)
    assert fn.calls == 1 and governor.stats.retries == 0


def test_attempts_are_capped() -> None:
    _, _, policy = make(max_attempts=3)
    fn = Flaky(*(err(503) for _ in range(10)))
    with pytest.raises(RetryableError):
        policy.call(fn)
    assert fn.calls == 3


def test_total_wait_is_capped() -> None:
    clock, _, policy = make(max_total_wait_s=10.0, max_attempts=100)
    fn = Flaky(*(err(429, retry_after=4) for _ in range(10)))
    with pytest.raises(RetryableError):
        policy.call(fn)
    assert fn.calls == 3  # 4 + 4 waited; a third wait would pass 10 s
    assert clock.now() == T0 + timedelta(seconds=8)


def test_a_long_retry_after_is_handed_back_not_slept() -> None:
    clock, _, policy = make(max_retry_after_s=60.0)
    fn = Flaky(err(429, retry_after=3600))
    with pytest.raises(RetryableError) as caught:
        policy.call(fn)
    assert caught.value.retry_after == 3600
    assert fn.calls == 1 and clock.now() == T0


def test_a_write_that_may_have_been_applied_is_not_repeated() -> None:
    _, _, policy = make()
    fn = Flaky(err(500, maybe_applied=True))
    with pytest.raises(RetryableError):
        policy.call(fn, idempotent=False)
    assert fn.calls == 1
    # a 429 was certainly not applied: retried even for a non-idempotent write
    fn = Flaky(err(429, retry_after=1))
    assert policy.call(fn, idempotent=False) == "ok"


# -- classification --------------------------------------------------------------------------
@respx.mock
def test_httpx_answers_are_classified_with_vendor_fields_and_no_secret() -> None:
    _, governor, _ = make()
    respx.get("https://graph.test/v1.0/x").mock(
        return_value=httpx.Response(
            503,
            headers={"Retry-After": "2", "request-id": "rid-1"},
            json={"error": {"code": "serviceNotAvailable", "message": "later"}},
        )
    )
    respx.get("https://graph.test/v1.0/y").mock(
        return_value=httpx.Response(
            404,
            json={
                "error": {
                    "code": "itemNotFound",
                    "message": "no such item",
                    "innerError": {"request-id": "rid-2"},
                }
            },
        )
    )
    with httpx.Client(headers={"Authorization": "Bearer s3cr3t"}) as client:
        with pytest.raises(RetryableError) as caught:
            httpx_send(governor, client, client.build_request("GET", "https://graph.test/v1.0/x"))
        assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
            503,
            "serviceNotAvailable",
            2.0,
        )
        assert caught.value.request_id == "rid-1"
        assert not caught.value.maybe_applied  # a GET
        with pytest.raises(PermanentError) as missing:
            httpx_send(governor, client, client.build_request("GET", "https://graph.test/v1.0/y"))
        assert missing.value.code == "itemNotFound" and missing.value.request_id == "rid-2"
        assert "s3cr3t" not in str(caught.value) + str(missing.value)
    assert governor.stats.calls == 2 and governor.stats.errors == 2


@respx.mock
def test_httpx_passthrough_statuses_reach_the_caller() -> None:
    _, governor, _ = make()
    respx.get("https://graph.test/delta").mock(
        return_value=httpx.Response(410, headers={"Location": "https://graph.test/fresh"})
    )
    with httpx.Client() as client:
        resp = httpx_send(
            governor,
            client,
            client.build_request("GET", "https://graph.test/delta"),
            passthrough=frozenset({410}),
        )
    assert resp.headers["Location"] == "https://graph.test/fresh"


@respx.mock
def test_httpx_write_dropped_after_sending_may_have_been_applied() -> None:
    _, governor, _ = make()
    respx.post("https://graph.test/send").mock(side_effect=httpx.RemoteProtocolError("gone"))
    respx.post("https://graph.test/refused").mock(side_effect=httpx.ConnectError("refused"))
    with httpx.Client() as client:
        with pytest.raises(RetryableError) as dropped:
            httpx_send(governor, client, client.build_request("POST", "https://graph.test/send"))
        with pytest.raises(RetryableError) as refused:
            httpx_send(governor, client, client.build_request("POST", "https://graph.test/refused"))
    assert dropped.value.maybe_applied and not refused.value.maybe_applied


def test_requests_transport_errors_are_classified() -> None:
    timeout = error_from_transport("salesforce", "POST", requests.exceptions.ReadTimeout("slow"))
    assert isinstance(timeout, RetryableError) and timeout.maybe_applied
    tls = error_from_transport("salesforce", "GET", requests.exceptions.SSLError("bad cert"))
    assert isinstance(tls, PermanentError) and tls.code == "tls"


def test_redact_drops_queries_and_credentials() -> None:
    text = redact("GET https://x/upload?token=abc123&sig=zz failed; Bearer eyJhbGc secret=hunter2")
    assert "abc123" not in text and "eyJhbGc" not in text and "hunter2" not in text


def test_remaining_quota_headers() -> None:
    assert remaining_quota({"x-rate-limit-remaining": "12"}) == 12
    assert remaining_quota({"sforce-limit-info": "api-usage=18/5000"}) == 4982
    assert remaining_quota({"sforce-limit-info": "per-app-api-usage=1/250(appName=x)"}) is None
    assert (
        remaining_quota(
            {
                "X-Rate-Limit-Remaining": "600",
                "zendesk-ratelimit-incremental-exports": "total=10; remaining=3",
            }
        )
        == 3
    )
    assert remaining_quota({}) is None


# -- governor --------------------------------------------------------------------------------
def test_bucket_never_spends_more_than_its_rate_in_any_60_seconds() -> None:
    clock, governor, _ = make(rate=10.0)  # 10 a minute, as the vendor counts: any 60 s
    sent = []
    for n in range(35):
        governor.acquire()
        sent.append(clock.now())
        governor.observe(200, {})  # answered at once
        clock.advance(timedelta(seconds=n % 4))
    assert sent[10] == T0 + timedelta(minutes=1)  # the 11th waits for the first to leave
    busiest = max(sum(start <= t < start + timedelta(minutes=1) for t in sent) for start in sent)
    assert busiest == 10 and sent[-1] < T0 + timedelta(minutes=4)  # and the rate is used


def test_a_call_counts_from_its_answer_not_only_from_when_it_was_sent() -> None:
    clock, governor, _ = make(rate=2.0)
    governor.acquire()
    clock.advance(timedelta(seconds=20))  # the answer takes 20 s: the vendor saw it later
    governor.observe(200, {})
    governor.acquire()
    governor.observe(200, {})
    assert clock.now() == T0 + timedelta(seconds=20)
    governor.acquire()  # a minute after the first answer, not after the first request
    assert clock.now() == T0 + timedelta(seconds=80)


def test_separate_buckets_do_not_share_tokens() -> None:
    clock = FrozenClock(T0)
    governor = Governor.per_minute(
        "zendesk", clock, 600.0, incremental=Bucket(per_minute=10, capacity=1)
    )
    governor.acquire("incremental")
    governor.acquire("incremental")
    assert clock.now() == T0 + timedelta(seconds=6)
    before = clock.now()
    governor.acquire()
    assert clock.now() == before
    assert governor.remaining() == 600 - 3  # an endpoint's calls count in the vendor's quota


def test_remaining_quota_header_slows_down_before_a_429() -> None:
    clock = FrozenClock(T0)
    governor = Governor.per_minute("zendesk", clock, 60.0, share=0.5)
    governor.observe(200, {"X-Rate-Limit-Remaining": "2"})  # half of 2: one call left for us
    governor.acquire()
    assert clock.now() == T0
    governor.acquire()
    assert clock.now() == T0 + timedelta(minutes=1)


def test_salesforce_per_app_usage_caps_the_budget() -> None:
    """The connected app's own allocation (documented example header): 233 left of it, while
    the org has 4,975; the share applies to the org's quota, not to the app's own."""
    clock = FrozenClock(T0)
    governor = Governor.per_minute("salesforce", clock, 600.0, share=0.5, burst_minutes=60)
    header = "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"
    governor.observe(200, {"Sforce-Limit-Info": header})
    bucket = governor.buckets["default"]
    assert bucket.per_minute == 250 / 1440  # the app's day, spread over the day
    assert bucket.capacity == pytest.approx(250 / 24)  # an hour's burst at that pace
    assert bucket.available(clock.now()) == bucket.capacity
    governor.observe(200, {"Sforce-Limit-Info": "api-usage=26/5000; per-app-api-usage=250/250"})
    before = clock.now()
    governor.acquire()
    assert clock.now() > before  # spent: wait for the refill instead of earning a 403


def test_a_429_blocks_every_lane_until_retry_after() -> None:
    clock, governor, _ = make()
    governor.observe(429, {}, retry_after=5)
    with lane("escalation"):
        governor.acquire()
    assert clock.now() == T0 + timedelta(seconds=5)
    assert governor.stats.throttled == 1


def test_backfill_keeps_a_reserve_for_higher_lanes() -> None:
    clock, governor, _ = make(rate=10.0)
    with lane("backfill"):
        for _ in range(5):
            governor.acquire()
    with lane("escalation"):  # the other half of the minute is kept for higher lanes
        for _ in range(5):
            governor.acquire()
    assert clock.now() == T0
    with lane("backfill"):
        governor.acquire()  # waits until half the window has room again
    assert clock.now() == T0 + timedelta(minutes=1)


def test_backfill_spends_an_endpoints_own_quota_whole() -> None:
    """Go-live reads Zendesk's export (10 a minute, its own quota, read by nobody else
    meanwhile) at the export's pace; the reserve is kept in the vendor's quota only."""
    clock = FrozenClock(T0)
    governor = Governor.per_minute("zendesk", clock, 20.0, incremental=Bucket(10, 10))
    with lane("backfill"):
        for _ in range(10):
            governor.acquire("incremental")
        assert clock.now() == T0
        governor.acquire()  # the vendor's quota: 10 used of 20, half kept for higher lanes
        assert clock.now() == T0 + timedelta(minutes=1)


class ScaledClock(FrozenClock):
    """Simulated time that really passes, 100 times faster, so threads interleave."""

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / 100)
        super().sleep(seconds)


def test_lower_lane_waits_while_a_higher_lane_has_demand() -> None:
    clock = ScaledClock(T0)
    governor = Governor.per_minute("zendesk", clock, 60.0)
    governor.observe(429, {}, retry_after=10)  # nobody may call for 10 s
    order: list[str] = []
    lock = threading.Lock()

    def run(name: str) -> None:
        with lane(name):
            governor.acquire()
            with lock:
                order.append(name)

    low = threading.Thread(target=run, args=("backfill",))
    low.start()
    time.sleep(0.03)  # backfill has been waiting for a while when escalation arrives
    high = threading.Thread(target=run, args=("escalation",))
    high.start()
    high.join(5)
    low.join(5)
    assert order == ["escalation", "backfill"]


def test_unknown_lane_is_refused() -> None:
    with pytest.raises(ValueError), lane("urgent"):
        pass
