"""`commands.ports.StripeWriter` on the Stripe SDK: POST with an idempotency key; errors as StripeFailure."""

from __future__ import annotations

from typing import Any

import stripe

from stripe_middleware.shared.stripe_calls import StripeCallError, StripeFailure


def stripe_failure(error: stripe.StripeError) -> StripeFailure:
    body = error.json_body if isinstance(error.json_body, dict) else {}
    details = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
    headers = {str(k).lower(): v for k, v in (error.headers or {}).items()}  # any HTTP client's casing
    should_retry = headers.get("stripe-should-retry")
    return StripeFailure(
        type=details.get("type") or type(error).__name__,
        code=error.code or details.get("code"),
        message=details.get("message") or error.user_message or str(error),
        http_status=error.http_status,
        request_id=error.request_id,
        should_retry={"true": True, "false": False}.get(str(should_retry)),
        rate_limited=isinstance(error, stripe.RateLimitError),
        network=isinstance(error, stripe.APIConnectionError),
    )


class SdkStripeWriter:
    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def post(
        self, path: str, params: dict[str, Any], *, idempotency_key: str, stripe_account: str | None
    ) -> dict[str, Any]:
        options: dict[str, Any] = {"idempotency_key": idempotency_key}
        if stripe_account:
            options["stripe_account"] = stripe_account
        try:
            response = self._client.raw_request("post", path, **params, **options)
        except stripe.StripeError as error:
            raise StripeCallError(stripe_failure(error)) from error
        result: dict[str, Any] = response.data
        return result
