"""Reading one object's current state from Stripe (the processor's refetch of same-second ties)."""

from __future__ import annotations

from typing import Any

import stripe

from stripe_middleware.processing.models import StripeEvent

# Objects the processor may refetch: type -> list path of Stripe's API.
REFETCH_PATHS = {
    "account": "/v1/accounts",
    "charge": "/v1/charges",
    "checkout.session": "/v1/checkout/sessions",
    "coupon": "/v1/coupons",
    "credit_note": "/v1/credit_notes",
    "customer": "/v1/customers",
    "dispute": "/v1/disputes",
    "invoice": "/v1/invoices",
    "invoiceitem": "/v1/invoiceitems",
    "payment_intent": "/v1/payment_intents",
    "payment_method": "/v1/payment_methods",
    "payout": "/v1/payouts",
    "plan": "/v1/plans",
    "price": "/v1/prices",
    "product": "/v1/products",
    "refund": "/v1/refunds",
    "setup_intent": "/v1/setup_intents",
    "subscription": "/v1/subscriptions",
    "transfer": "/v1/transfers",
}


class StripeObjectFetcher:
    """`processing.ports.Refetch` with a read-only key: the object, or None when it cannot be read."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def __call__(self, event: StripeEvent, object_type: str, object_id: str) -> dict[str, Any] | None:
        path = REFETCH_PATHS.get(object_type)
        if path is None:
            return None
        options: dict[str, Any] = {"stripe_account": event.account} if event.account else {}
        try:
            response = self._client.raw_request("get", f"{path}/{object_id}", **options)
        except stripe.StripeError:
            return None
        data = response.data
        return data if isinstance(data, dict) and data.get("id") == object_id else None
