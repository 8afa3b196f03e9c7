"""The Stripe SDK, configured once: pinned API version, explicit retries, optional base URL (local mode)."""

from __future__ import annotations

from typing import Any

import stripe

from stripe_middleware.models import StripeEvent

# Objects the processor may refetch to settle same-second ties: type -> list path of Stripe's API.
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


def make_stripe_client(
    api_key: str, *, api_version: str, api_base: str | None = None, max_network_retries: int = 2
) -> stripe.StripeClient:
    base_addresses: Any = {"api": api_base} if api_base else None
    return stripe.StripeClient(
        api_key,
        stripe_version=api_version,
        base_addresses=base_addresses,
        max_network_retries=max_network_retries,  # the SDK's default (None) means no retry at all
    )


class StripeObjectFetcher:
    """Reads an object's current state from Stripe (read-only key); None when it cannot."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client
        self.failures = 0

    def __call__(self, event: StripeEvent, object_type: str, object_id: str) -> dict[str, Any] | None:
        path = REFETCH_PATHS.get(object_type)
        if path is None:
            return None
        options: dict[str, Any] = {"stripe_account": event.account} if event.account else {}
        try:
            response = self._client.raw_request("get", f"{path}/{object_id}", **options)
        except stripe.StripeError:
            self.failures += 1
            return None
        data = response.data
        return data if isinstance(data, dict) and data.get("id") == object_id else None
