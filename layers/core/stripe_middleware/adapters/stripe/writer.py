"""`commands.ports.StripeWriter` on the Stripe SDK: POST (or DELETE) with an idempotency key."""

from __future__ import annotations

from typing import Any

import stripe

from stripe_middleware.adapters.stripe.client import stripe_failure
from stripe_middleware.shared.stripe_calls import StripeCallError


class SdkStripeWriter:
    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def post(
        self, path: str, params: dict[str, Any], *, idempotency_key: str, stripe_account: str | None
    ) -> dict[str, Any]:
        return self._request("post", path, params, idempotency_key, stripe_account)

    def delete(
        self, path: str, params: dict[str, Any], *, idempotency_key: str, stripe_account: str | None
    ) -> dict[str, Any]:
        return self._request("delete", path, params, idempotency_key, stripe_account)

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        idempotency_key: str,
        stripe_account: str | None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {"idempotency_key": idempotency_key}
        if stripe_account:
            options["stripe_account"] = stripe_account
        try:
            response = self._client.raw_request(method, path, **params, **options)
        except stripe.StripeError as error:
            raise StripeCallError(stripe_failure(error)) from error
        result: dict[str, Any] = response.data
        return result
