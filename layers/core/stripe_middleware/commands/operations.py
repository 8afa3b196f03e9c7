"""The Stripe operations the gateway can run: parameters (pydantic), HTTP route, metadata rules.

Parameters are an allowlist too (`extra="forbid"`): a typo or an unsupported field is refused before it
reaches Stripe, with the field named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StripeId = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_]+$")


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, str] | None = None


class CustomerCreate(Params):
    email: str | None = Field(default=None, max_length=512)
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=350)
    phone: str | None = Field(default=None, max_length=20)
    payment_method: str | None = None


class CustomerUpdate(CustomerCreate):
    id: str = StripeId


class SubscriptionItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    price: str | None = None
    quantity: int | None = Field(default=None, ge=0)
    deleted: bool | None = None


class SubscriptionUpdate(Params):
    id: str = StripeId
    cancel_at_period_end: bool | None = None
    items: list[SubscriptionItem] | None = None
    proration_behavior: Literal["create_prorations", "none", "always_invoice"] | None = None
    default_payment_method: str | None = None


class RefundCreate(Params):
    payment_intent: str | None = None
    charge: str | None = None
    amount: int | None = Field(default=None, gt=0)
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


class InvoicePay(Params):
    id: str = StripeId
    paid_out_of_band: bool | None = None
    payment_method: str | None = None


class InvoiceMarkUncollectible(Params):
    id: str = StripeId
    metadata: None = None  # the endpoint takes no metadata


class SubscriptionCancel(Params):
    """Cancel at once (`DELETE /v1/subscriptions/{id}`); Stripe stops collecting its open invoices."""

    id: str = StripeId
    metadata: None = None  # the endpoint takes no metadata
    invoice_now: bool | None = None
    prorate: bool | None = None


class PaymentIntentCreate(Params):
    amount: int = Field(gt=0)
    currency: str = Field(pattern=r"^[a-z]{3}$")
    customer: str | None = None
    payment_method: str | None = None
    confirm: bool | None = None
    description: str | None = Field(default=None, max_length=1000)
    receipt_email: str | None = None


@dataclass(frozen=True)
class Operation:
    name: str
    params: type[Params]
    path: str  # `{id}` is filled from the params
    object_type: str  # for the metadata schema
    creates: bool  # create operations must carry every required metadata key
    method: Literal["post", "delete"] = "post"

    def request(self, params: Params) -> tuple[str, dict[str, Any]]:
        """(path, form parameters) for the Stripe API."""
        values = params.model_dump(exclude_none=True)
        object_id = values.pop("id", None)
        return self.path.format(id=object_id), values


OPERATIONS = {
    op.name: op
    for op in (
        Operation("customers.create", CustomerCreate, "/v1/customers", "customer", creates=True),
        Operation("customers.update", CustomerUpdate, "/v1/customers/{id}", "customer", creates=False),
        Operation(
            "subscriptions.update",
            SubscriptionUpdate,
            "/v1/subscriptions/{id}",
            "subscription",
            creates=False,
        ),
        Operation("refunds.create", RefundCreate, "/v1/refunds", "refund", creates=True),
        Operation(
            "subscriptions.cancel",
            SubscriptionCancel,
            "/v1/subscriptions/{id}",
            "subscription",
            creates=False,
            method="delete",
        ),
        Operation("invoices.pay", InvoicePay, "/v1/invoices/{id}/pay", "invoice", creates=False),
        Operation(
            "invoices.mark_uncollectible",
            InvoiceMarkUncollectible,
            "/v1/invoices/{id}/mark_uncollectible",
            "invoice",
            creates=False,
        ),
        Operation(
            "payment_intents.create",
            PaymentIntentCreate,
            "/v1/payment_intents",
            "payment_intent",
            creates=True,
        ),
    )
}
