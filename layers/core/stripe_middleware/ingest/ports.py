"""What the ingest logic needs from the outside: the active signing secrets and a durable queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stripe_middleware.shared.errors import UnavailableError


class NotDurableError(UnavailableError):
    """The queue did not accept the event: answer 5xx so Stripe retries the delivery."""

    code = "not_durable"


@dataclass(frozen=True)
class QueuedEvent:
    body: str
    attributes: dict[str, str]


class EventQueue(Protocol):
    def enqueue(self, event: QueuedEvent) -> str:
        """Return the message id once the queue has durably accepted the event; else NotDurableError."""
        ...


class SigningSecrets(Protocol):
    def get(self, secret_id: str) -> tuple[str, ...]:
        """The active signing secrets (current, then previous); SecretUnavailableError when unreadable."""
        ...

    def refreshed(self, secret_id: str) -> tuple[str, ...] | None:
        """The secrets read again if they may have changed since `get` cached them and did change; None
        otherwise. Asked when no cached secret verifies a signature (the secret was just written)."""
        ...
