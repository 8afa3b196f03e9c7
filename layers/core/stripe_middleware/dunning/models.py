"""A workflow's identity (`Case`, from the `invoice.payment_failed` that started it) and one invocation of
the step function (`StepRequest`): the boundaries of the dunning context, in pydantic."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stripe_middleware.dunning.config import Stage
from stripe_middleware.shared.errors import PoisonError


class NotAFailedInvoiceError(PoisonError):
    """The message is not a published `invoice.payment_failed` (the bus rule sends nothing else)."""


class Case(BaseModel):
    """One invoice in dunning: what the workflow needs to find it in the store and to address its events.
    The invoice id names the workflow (its Step Functions execution), so an invoice has one at a time."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # An execution name is at most 80 characters of letters, digits, `-` and `_`; Stripe's ids are shorter.
    invoice_id: str = Field(pattern=r"^in_[A-Za-z0-9_]{1,76}$")
    customer_id: str | None
    subscription_id: str | None
    account: str | None
    livemode: bool
    failed_at: int  # the `created` of the invoice.payment_failed event that started the workflow
    event_id: str
    # The invoice as that failure left it: Stripe's count of attempts, and its next one (set: Stripe retries).
    # A stored snapshot with fewer attempts is older than the failure (it lost a same-second tie, e.g. to
    # `invoice.finalized`), and then these say what Stripe is doing.
    attempt_count: int = 0
    next_payment_attempt: int | None = None


def case_from_detail(detail: dict[str, Any]) -> Case:
    """The case of a published `invoice.payment_failed` detail (its normalized part: the object itself may
    have been left out of a detail too large for EventBridge)."""
    normalized = detail.get("normalized")
    if detail.get("type") != "invoice.payment_failed" or not isinstance(normalized, dict):
        raise NotAFailedInvoiceError(f"not an invoice.payment_failed detail: {detail.get('type')!r}")
    if normalized.get("object_type") != "invoice":
        raise NotAFailedInvoiceError(f"object of type {normalized.get('object_type')!r}, not an invoice")
    obj = detail.get("object")
    obj = obj if isinstance(obj, dict) else {}  # None when the detail was too large for the object
    try:
        return Case(
            invoice_id=normalized["object_id"],
            customer_id=normalized.get("customer_id"),
            subscription_id=normalized.get("subscription_id"),
            account=detail.get("account"),
            livemode=bool(detail.get("livemode")),
            failed_at=int(detail["created"]),
            event_id=str(detail["id"]),
            attempt_count=obj.get("attempt_count") or 0,
            next_payment_attempt=obj.get("next_payment_attempt"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise NotAFailedInvoiceError(f"cannot read the invoice of the detail: {error}") from error


class StepRequest(BaseModel):
    """What the state machine passes to the step function: the case, and the stage to run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    case: Case
    stage: Stage
