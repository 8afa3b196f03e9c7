"""Pydantic models at the processor's boundaries: the incoming Stripe event, the stored object, the
published detail. The Stripe models allow extra fields: Stripe adds fields every month."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StripeEventData(BaseModel):
    model_config = ConfigDict(extra="allow")
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class StripeEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(pattern=r"^evt_")
    object: str = "event"
    type: str = Field(min_length=1)
    created: int
    livemode: bool = False
    account: str | None = None
    api_version: str | None = None
    request: dict[str, Any] | None = None
    data: StripeEventData


class StoredObject(BaseModel):
    """One Stripe object as the store keeps it: normalized attributes plus the full object."""

    model_config = ConfigDict(frozen=True)
    object_type: str
    object_id: str
    account: str | None
    livemode: bool
    customer_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    status: str | None = None
    created: str | None = None  # ISO 8601
    updated: str | None = None  # ISO 8601
    metadata: dict[str, str] = {}
    metadata_violations: list[dict[str, str]] = []
    deleted_at: str | None = None
    event_id: str
    event_type: str
    event_created: str
    order_key: str
    object: dict[str, Any]
    # billing (see processing/normalize.py; null where the object has no such field)
    subscription_id: str | None = None  # a subscription's own id; an invoice's subscription
    mrr_amount: int | None = None  # subscriptions: monthly recurring revenue, minor unit (None: tiered)
    plan_interval: str | None = None  # subscriptions: the first item's month | year | week | day
    quantity: int | None = None  # subscriptions: the sum of the items' quantities
    cancel_at_period_end: bool | None = None
    trial_end: str | None = None  # ISO 8601
    canceled_at: str | None = None  # ISO 8601
    amount_refunded: int | None = None  # charges
    # The metadata keys revenue is attributed by, each always present (null when the object has none), so
    # a consumer that reads fixed paths (the warehouse's bus rules) finds every one in every detail.
    attribution: dict[str, str | None] = {}


class PublishedFlags(BaseModel):
    stale: bool = False
    duplicate_of: str | None = None
    object_truncated: bool = False


class PublishedDetail(BaseModel):
    """`detail` of every Stripe event the middleware publishes (schemas/stripe-event.schema.json)."""

    id: str
    type: str
    created: int
    livemode: bool
    account: str | None
    api_version: str | None
    request: dict[str, Any] | None
    object: dict[str, Any] | None
    normalized: dict[str, Any]
    previous_attributes: dict[str, Any] | None
    flags: PublishedFlags
