"""Zendesk webhook requests: verified as Zendesk documents the signature, refused when unsigned,
badly signed, stale or replayed (connectors/zendesk_webhook.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.clock import FrozenClock
from syncd.connectors.zendesk_webhook import SIGNATURE, TIMESTAMP, Refused, Verifier, sign

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SECRET = "dGhpc19zZWNyZXQ"
BODY = b'{"ticket_id":"42"}'
# computed outside syncd, as the docs' formula base64(HMACSHA256(TIMESTAMP + BODY)) reads:
# printf '%s' '2026-03-02T10:00:00Z{"ticket_id":"42"}' \
#   | openssl dgst -sha256 -hmac dGhpc19zZWNyZXQ -binary | base64
KNOWN = "6CPjAFMbPR8Oi23tS33VVwLHXT4hXV0P2V+VsLecRQY="


def headers(stamp: str = "2026-03-02T10:00:00Z", body: bytes = BODY,
            secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE: sign(secret, stamp, body), TIMESTAMP: stamp}


def verifier(clock: FrozenClock | None = None) -> Verifier:
    return Verifier(SECRET, clock or FrozenClock(NOW), max_age_s=300)


def test_the_documented_signature_is_accepted() -> None:
    assert sign(SECRET, "2026-03-02T10:00:00Z", BODY) == KNOWN
    ticket = verifier().check({SIGNATURE: KNOWN, TIMESTAMP: "2026-03-02T10:00:00Z"}, BODY)
    assert ticket == 42


@pytest.mark.parametrize("body", [b'{"ticket_id": 42}', b'{"ticket": {"id": "42"}}'])
def test_the_ticket_id_as_number_or_nested(body: bytes) -> None:
    assert verifier().check(headers(body=body), body) == 42


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        ({}, "unsigned"),
        ({TIMESTAMP: "2026-03-02T10:00:00Z"}, "unsigned"),
        (headers(secret="another-secret-value"), "bad signature"),
        ({**headers(), TIMESTAMP: "2026-03-02T10:00:01Z"}, "bad signature"),  # timestamp moved
        (headers(stamp="2026-03-02T09:54:59Z"), "stale"),
        (headers(stamp="2026-03-02T10:05:01Z"), "stale"),
    ],
)
def test_refused(sent: dict[str, str], why: str) -> None:
    with pytest.raises(Refused, match=why):
        verifier().check(sent, BODY)


def test_a_changed_body_is_refused() -> None:
    with pytest.raises(Refused, match="bad signature"):
        verifier().check(headers(), b'{"ticket_id":"43"}')


def test_a_replay_is_refused_and_a_new_signature_accepted() -> None:
    clock = FrozenClock(NOW)
    v = verifier(clock)
    assert v.check(headers(), BODY) == 42
    with pytest.raises(Refused, match="replayed"):
        v.check(headers(), BODY)
    # the same ticket changed again: a new request, a new timestamp, accepted
    assert v.check(headers(stamp="2026-03-02T10:00:05Z"), BODY) == 42
    # once outside the window the old request is refused as stale, not remembered forever
    clock.advance(timedelta(minutes=6))
    with pytest.raises(Refused, match="stale"):
        v.check(headers(), BODY)


def test_the_secret_is_never_in_a_refusal_or_repr() -> None:
    v = verifier()
    with pytest.raises(Refused) as refused:
        v.check(headers(secret="wrong-secret-value"), BODY)
    assert SECRET not in str(refused.value) and SECRET not in repr(v)


def test_a_body_naming_no_ticket_is_refused() -> None:
    body = b'{"hello": "world"}'
    with pytest.raises(Refused, match="names no ticket"):
        verifier().check(headers(body=body), body)
