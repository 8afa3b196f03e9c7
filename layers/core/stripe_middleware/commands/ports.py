"""What the commands logic needs: the command records, the commands queue, the shared rate limit and a
way to write to Stripe. Adapters raise StoreUnavailableError (retry) and the errors below."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stripe_middleware.commands.models import Command
from stripe_middleware.shared.errors import MiddlewareError, UnavailableError


class NotQueuedError(UnavailableError):
    """The commands queue refused the command: the caller may submit it again later."""

    code = "not_queued"


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
        """The error as the command record and the published result show it."""
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


class CommandStore(Protocol):
    def create(self, command: Command) -> Command:
        """Store a new command; if one with this id exists already, return that one instead."""
        ...

    def save(self, command: Command) -> None: ...
    def get(self, command_id: str) -> Command | None: ...


class CommandQueue(Protocol):
    def send(self, body: str) -> None:
        """Queue one command message durably, else raise NotQueuedError."""
        ...


class RateLimiter(Protocol):
    def acquire(self, limits: Sequence[tuple[str, int]], *, max_wait: float = ...) -> bool:
        """Take a slot for every (key, requests per second), waiting up to `max_wait` s; False if none."""
        ...


class StripeWriter(Protocol):
    def post(
        self, path: str, params: dict[str, Any], *, idempotency_key: str, stripe_account: str | None
    ) -> dict[str, Any]:
        """POST to Stripe and return the object it answered; StripeCallError otherwise."""
        ...
