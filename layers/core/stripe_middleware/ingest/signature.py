"""Stripe webhook signature verification, exactly as Stripe specifies it.

`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`; the signed payload is
`f"{t}.{raw_body}"`, HMAC-SHA256 keyed with the endpoint secret. Only `v1` counts. During a secret
roll Stripe sends one `v1` per active secret, and we hold the current and the previous secret: the
event is authentic when any (secret, v1) pair matches.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from stripe_middleware.shared.errors import RejectedError

DEFAULT_TOLERANCE_SECONDS = 300
INVALID_SIGNATURE = "invalid_signature"  # no active secret verifies it (a secret just written, or a forgery)


class SignatureError(RejectedError):
    """The request is not a verified Stripe delivery (400); `code` is the stable error code."""


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """Return (timestamp, v1 signatures). Unknown schemes (v0, future ones) are ignored."""
    timestamp: int | None = None
    v1: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "t":
            if not value.isascii() or not value.isdigit():
                raise SignatureError(
                    "malformed_signature_header", "Stripe-Signature timestamp is not an integer"
                )
            timestamp = int(value)
        elif key == "v1":
            v1.append(value)
    if timestamp is None:
        raise SignatureError("malformed_signature_header", "Stripe-Signature has no timestamp (t=)")
    if not v1:
        raise SignatureError("malformed_signature_header", "Stripe-Signature has no v1 signature")
    return timestamp, v1


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: Iterable[str],
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Raise SignatureError unless `header` proves `payload` came from Stripe; return the signed timestamp.

    Every candidate is compared in constant time, and the loop does not stop early, so timing says
    nothing about which secret or which v1 entry matched.
    """
    if not header:
        raise SignatureError("missing_signature", "Stripe-Signature header is missing")
    timestamp, v1 = parse_signature_header(header)
    # compare_digest on str refuses non-ASCII; compare bytes so any header text is just a mismatch.
    candidates = [value.encode("utf-8", "replace") for value in v1]
    matched = False
    for secret in secrets:
        expected = compute_signature(payload, secret, timestamp).encode()
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError(INVALID_SIGNATURE, "No v1 signature matches the payload for any active secret")
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            "timestamp_outside_tolerance", f"Signature timestamp is more than {tolerance} s from now"
        )
    return timestamp
