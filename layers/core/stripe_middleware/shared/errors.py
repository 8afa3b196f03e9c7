"""One error hierarchy: callers catch by meaning, and each handler maps meanings to answers in one place.

- `RejectedError`: the caller's input is wrong; it carries its HTTP status and a stable code. Never retried.
- `UnavailableError`: a dependency (DynamoDB, SQS, Secrets Manager, Stripe) failed after retries: try
  again later (HTTP 503, or SQS redelivery of just the affected message).
- `PoisonError`: a message that can never succeed: it ends in a dead-letter queue, kept for a redrive.
"""

from __future__ import annotations

from typing import Any


class MiddlewareError(Exception):
    """Base of every error the middleware raises on purpose."""


class ConfigurationError(MiddlewareError):
    """A setting or config file is missing or invalid: the function cannot start."""


class RejectedError(MiddlewareError):
    """A client error: `status` (4xx), a stable `code`, a message, and optional extra body fields."""

    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or self.status
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.fields}


class NotFoundError(RejectedError):
    status = 404

    def __init__(self, message: str) -> None:
        super().__init__("not_found", message)


class UnavailableError(MiddlewareError):
    """A dependency failed; nothing was lost and the same request or message may be tried again."""

    code = "unavailable"


class StoreUnavailableError(UnavailableError):
    """DynamoDB refused or failed the call after the SDK's retries (throttling, outage)."""

    code = "store_unavailable"


class SecretUnavailableError(UnavailableError):
    """A secret could not be read from Secrets Manager (or is empty)."""

    code = "secret_unavailable"


class PoisonError(MiddlewareError):
    """The message can never be processed as it is; it belongs in a dead-letter queue."""
