"""`registration.ports.WebhookEndpoints` on the Stripe SDK: `/v1/webhook_endpoints`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import stripe

from stripe_middleware.adapters.stripe.client import stripe_failure
from stripe_middleware.registration.models import Endpoint, EndpointSpec
from stripe_middleware.shared.stripe_calls import StripeCallError

PATH = "/v1/webhook_endpoints"


class SdkWebhookEndpoints:
    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def create(self, spec: EndpointSpec, *, idempotency_key: str) -> Endpoint:
        params: dict[str, Any] = {
            "url": spec.url,
            "enabled_events": list(spec.enabled_events),
            "api_version": spec.api_version,
        }
        if spec.description:
            params["description"] = spec.description
        if spec.connect:
            params["connect"] = True
        return Endpoint.from_stripe(
            self._call(
                lambda: self._client.raw_request("post", PATH, **params, idempotency_key=idempotency_key)
            )
        )

    def retrieve(self, endpoint_id: str) -> Endpoint:
        return Endpoint.from_stripe(
            self._call(lambda: self._client.raw_request("get", f"{PATH}/{endpoint_id}"))
        )

    def update(self, endpoint_id: str, changes: Mapping[str, Any]) -> Endpoint:
        return Endpoint.from_stripe(
            self._call(lambda: self._client.raw_request("post", f"{PATH}/{endpoint_id}", **changes))
        )

    def delete(self, endpoint_id: str) -> None:
        self._call(lambda: self._client.raw_request("delete", f"{PATH}/{endpoint_id}"))

    def list_all(self) -> list[Endpoint]:
        """Every endpoint of the account (Stripe allows 16), for `stripe-middleware status`."""
        found: list[Endpoint] = []
        starting_after: dict[str, str] = {}
        while True:
            page = self._call(partial(self._client.raw_request, "get", PATH, limit=100, **starting_after))
            found += [Endpoint.from_stripe(o) for o in page.get("data") or []]
            if page.get("has_more") is not True or not found:
                return found
            starting_after = {"starting_after": found[-1].id}

    @staticmethod
    def _call(request: Callable[[], Any]) -> dict[str, Any]:
        try:
            response = request()
        except stripe.StripeError as error:
            raise StripeCallError(stripe_failure(error)) from error
        body = response.data
        return body if isinstance(body, dict) else {}
