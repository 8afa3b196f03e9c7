from __future__ import annotations

import json

import pytest
import stripe

from events import stripe_event
from stripe_middleware.ingest.signature import SignatureError, parse_signature_header, verify_signature

SECRET = "whsec_current_0123456789"
PREVIOUS = "whsec_previous_9876543210"
NOW = 1_795_502_445


def body() -> bytes:
    return json.dumps(stripe_event("invoice.paid")).encode()


def header(payload: bytes, secret: str = SECRET, timestamp: int = NOW) -> str:
    # The real Stripe SDK signs, so our verifier is checked against Stripe's own definition.
    return stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp)


def test_valid_signature_returns_timestamp_and_agrees_with_the_stripe_sdk() -> None:
    payload = body()
    h = header(payload)
    assert verify_signature(payload, h, [SECRET], now=NOW) == NOW
    stripe.WebhookSignature.verify_header(payload.decode(), h, SECRET, tolerance=None)


def test_previous_secret_is_accepted_during_rotation() -> None:
    payload = body()
    assert verify_signature(payload, header(payload, PREVIOUS), [SECRET, PREVIOUS], now=NOW) == NOW


def test_two_v1_entries_match_when_either_is_right() -> None:
    payload = body()
    good = header(payload).split("v1=")[1]
    h = f"t={NOW},v1={'0' * 64},v1={good}"
    assert verify_signature(payload, h, [SECRET], now=NOW) == NOW


def test_v0_only_is_refused() -> None:
    payload = body()
    good = header(payload).split("v1=")[1]
    with pytest.raises(SignatureError) as error:
        verify_signature(payload, f"t={NOW},v0={good}", [SECRET], now=NOW)
    assert error.value.code == "malformed_signature_header"


def test_v0_next_to_a_valid_v1_is_ignored() -> None:
    payload = body()
    h = header(payload) + ",v0=deadbeef"
    assert verify_signature(payload, h, [SECRET], now=NOW) == NOW


@pytest.mark.parametrize("skew", [301, -301, 3600])
def test_timestamp_outside_tolerance_is_refused_past_and_future(skew: int) -> None:
    payload = body()
    with pytest.raises(SignatureError) as error:
        verify_signature(payload, header(payload, timestamp=NOW - skew), [SECRET], now=NOW)
    assert error.value.code == "timestamp_outside_tolerance"


def test_tolerance_is_configurable() -> None:
    payload = body()
    h = header(payload, timestamp=NOW - 600)
    assert verify_signature(payload, h, [SECRET], now=NOW, tolerance=900) == NOW - 600


def test_edge_of_tolerance_is_accepted() -> None:
    payload = body()
    assert verify_signature(payload, header(payload, timestamp=NOW - 300), [SECRET], now=NOW) == NOW - 300


def test_tampered_body_is_refused() -> None:
    payload = body()
    h = header(payload)
    tampered = payload.replace(b'"livemode": false', b'"livemode": true', 1)
    assert tampered != payload
    with pytest.raises(SignatureError) as error:
        verify_signature(tampered, h, [SECRET], now=NOW)
    assert error.value.code == "invalid_signature"


def test_whitespace_around_header_parts_is_tolerated_but_body_whitespace_is_not() -> None:
    payload = body()
    sig = header(payload).split("v1=")[1]
    assert verify_signature(payload, f" t={NOW} , v1={sig} ", [SECRET], now=NOW) == NOW
    with pytest.raises(SignatureError):
        verify_signature(payload + b"\n", header(payload), [SECRET], now=NOW)


def test_wrong_secret_is_refused() -> None:
    payload = body()
    with pytest.raises(SignatureError) as error:
        verify_signature(payload, header(payload, "whsec_other"), [SECRET, PREVIOUS], now=NOW)
    assert error.value.code == "invalid_signature"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "missing_signature"),
        ("", "missing_signature"),
        ("garbage", "malformed_signature_header"),
        ("t=abc,v1=00", "malformed_signature_header"),
        ("v1=00", "malformed_signature_header"),
        (f"t={NOW}", "malformed_signature_header"),
        (f"t={NOW},v1=é", "invalid_signature"),
    ],
)
def test_missing_or_malformed_header(value: str | None, code: str) -> None:
    with pytest.raises(SignatureError) as error:
        verify_signature(body(), value, [SECRET], now=NOW)
    assert error.value.code == code


def test_parse_keeps_every_v1_and_drops_other_schemes() -> None:
    assert parse_signature_header("t=1,v1=a,v0=b,v1=c,v2=d") == (1, ["a", "c"])
