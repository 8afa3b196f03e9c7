"""What the dunning workflow needs: the current state of the invoice (and its subscription and customer)
from the store, a way to start one workflow per invoice, and the bus (`shared.publishing.Publisher`).
Adapters raise StoreUnavailableError (or another UnavailableError): the step or the start is retried."""

from __future__ import annotations

from typing import Any, Protocol

from stripe_middleware.dunning.models import Case
from stripe_middleware.shared.errors import UnavailableError


class RetryLaterError(UnavailableError):
    """The one error name the state machine retries (with backoff): a dependency was unavailable."""

    code = "retry_later"


class BillingState(Protocol):
    def invoice(self, invoice_id: str, *, account: str | None, livemode: bool) -> dict[str, Any] | None:
        """The newest stored version of the Stripe invoice, or None when the store has none."""
        ...

    def subscription(
        self, subscription_id: str, *, account: str | None, livemode: bool
    ) -> dict[str, Any] | None:
        """The newest stored version of the Stripe subscription, or None."""
        ...

    def churn_risk_level(self, customer_id: str, *, account: str | None, livemode: bool) -> str | None:
        """The customer's churn-risk level as signals last published it (low, medium, high), or None."""
        ...


class Scheduler(Protocol):
    def start(self, case: Case) -> bool:
        """Start the workflow of `case.invoice_id`: True when this start began it (a repeat of the same
        start, such as a redelivered message, included); False when another failure of the invoice began
        one before, running or ended: an invoice is dunned once."""
        ...
