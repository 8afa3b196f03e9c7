"""How every context treats a Stripe call: what Stripe answered instead of a result, which answers are
retried, with what backoff, and the shared rate limit every call to Stripe goes through."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stripe_middleware.shared.errors import MiddlewareError

MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True)
class StripeFailure:
    """What Stripe (or the network on the way) answered instead of a result."""

    type: str
    code: str | None
    message: str
    http_status: int | None
    request_id: str | None
    should_retry: bool | None = None  # the `Stripe-Should-Retry` header, when Stripe sent one
    rate_limited: bool = False  # 429: Stripe did nothing
    network: bool = False  # the request may or may not have reached Stripe

    def record(self) -> dict[str, Any]:
        """The error as records and published results show it."""
        return {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "http_status": self.http_status,
            "request_id": self.request_id,
        }


class StripeCallError(MiddlewareError):
    def __init__(self, failure: StripeFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def is_retryable(failure: StripeFailure) -> bool:
    """429, lock_timeout, 5xx and network errors are retried; Stripe-Should-Retry decides when present."""
    if failure.should_retry is not None:
        return failure.should_retry
    if failure.rate_limited or failure.network:
        return True
    if failure.code in ("lock_timeout", "rate_limit"):
        return True
    return failure.http_status is not None and failure.http_status >= 500


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: a random delay up to 2^attempt seconds, capped."""
    return random.uniform(1, min(MAX_BACKOFF_SECONDS, 2**attempt))  # noqa: S311 - jitter, not crypto


class RateLimiter(Protocol):
    def acquire(self, limits: Sequence[tuple[str, int]], *, max_wait: float = ...) -> bool:
        """Take a slot for every (key, requests per second), waiting up to `max_wait` s; False if none."""
        ...
