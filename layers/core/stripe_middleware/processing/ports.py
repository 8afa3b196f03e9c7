"""What the processor needs from the outside: the store (de-duplication records and the order-guarded
object write), a publisher (shared), and optionally Stripe's current object to settle same-second ties."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stripe_middleware.processing.models import StoredObject, StripeEvent
from stripe_middleware.shared.errors import PoisonError


class InvalidMessageError(PoisonError):
    """The message is neither a Stripe event nor an EventBridge envelope around one."""


class ObjectTooLargeError(PoisonError):
    """Even compressed, the object does not fit in one store item."""


@dataclass(frozen=True)
class UpsertResult:
    applied: bool
    previous_order_key: str | None  # the key of the snapshot the store held before this write


class Store(Protocol):
    """Raises StoreUnavailableError (retry) or ObjectTooLargeError (poison)."""

    def seen_events(self, event_ids: Sequence[str]) -> set[str]: ...
    def upsert_if_newer(self, stored: StoredObject) -> UpsertResult: ...
    def record_events(self, event_ids: Sequence[str]) -> None: ...


# (event, object type, object id) -> Stripe's current object, or None when it cannot be read.
Refetch = Callable[[StripeEvent, str, str], dict[str, Any] | None]
