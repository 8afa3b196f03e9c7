"""The Stripe SDK, configured once: pinned API version, explicit retries, optional base URL (local mode)."""

from __future__ import annotations

from typing import Any

import stripe


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


def is_live_key(api_key: str) -> bool:
    """Live or test mode is a property of the key: `sk_live_`/`rk_live_` keys act on live data."""
    return api_key.startswith(("sk_live_", "rk_live_"))
