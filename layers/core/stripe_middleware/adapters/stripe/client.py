"""The Stripe SDK, configured once (pinned API version, explicit retries, optional base URL), and its
errors as `StripeFailure`s the contexts judge."""

from __future__ import annotations

from typing import Any

import stripe

from stripe_middleware.shared.stripe_calls import StripeFailure


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


def is_stripe_key(value: str) -> bool:
    """A secret (`sk_`) or restricted (`rk_`) key, not a placeholder or a publishable key."""
    return value.startswith(("sk_", "rk_"))


def is_live_key(api_key: str) -> bool:
    """Live or test mode is a property of the key: `sk_live_`/`rk_live_` keys act on live data."""
    return api_key.startswith(("sk_live_", "rk_live_"))


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
