"""`backfill.ports.StripeLister` on the Stripe SDK: one page of a list endpoint, or of one object.

A GET of one object (`/v1/payouts/po_1`, what reconciliation reads) answers a page of that object, so single
reads go through the same rate limit and retries as pages (backfill/reading.py)."""

from __future__ import annotations

from typing import Any

import stripe

from stripe_middleware.adapters.stripe.client import stripe_failure
from stripe_middleware.backfill.ports import Page
from stripe_middleware.shared.stripe_calls import StripeCallError


class SdkStripeLister:
    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def list_page(
        self, path: str, params: dict[str, Any], *, starting_after: str | None, stripe_account: str | None
    ) -> Page:
        options: dict[str, Any] = {"stripe_account": stripe_account} if stripe_account else {}
        query = {**params, **({"starting_after": starting_after} if starting_after else {})}
        try:
            response = self._client.raw_request("get", path, **query, **options)
        except stripe.StripeError as error:
            raise StripeCallError(stripe_failure(error)) from error
        body = response.data if isinstance(response.data, dict) else {}
        if body.get("object") != "list":
            return Page(objects=[body] if body else [], has_more=False)
        objects = body.get("data")
        return Page(
            objects=objects if isinstance(objects, list) else [], has_more=body.get("has_more") is True
        )
