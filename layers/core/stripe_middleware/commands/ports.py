"""What the commands logic needs: the command records, the commands queue and a way to write to Stripe
(the shared rate limit and Stripe's failures are in shared/stripe_calls.py). Adapters raise
StoreUnavailableError (retry) and the errors below."""

from __future__ import annotations

from typing import Any, Protocol

from stripe_middleware.commands.models import Command
from stripe_middleware.shared.errors import UnavailableError


class NotQueuedError(UnavailableError):
    """The commands queue refused the command: the caller may submit it again later."""

    code = "not_queued"


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


class StripeWriter(Protocol):
    def post(
        self, path: str, params: dict[str, Any], *, idempotency_key: str, stripe_account: str | None
    ) -> dict[str, Any]:
        """POST to Stripe and return the object it answered; else `shared.stripe_calls.StripeCallError`."""
        ...

    def delete(
        self, path: str, params: dict[str, Any], *, idempotency_key: str, stripe_account: str | None
    ) -> dict[str, Any]:
        """DELETE (a subscription's cancel), like `post`. Stripe ignores idempotency keys on DELETE: the
        command record keeps a command from running twice."""
        ...
