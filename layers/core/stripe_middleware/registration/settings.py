"""Settings of the registration function, validated at cold start (the rest comes with each request)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from stripe_middleware.shared.settings import optional


@dataclass(frozen=True)
class RegistrationSettings:
    stripe_api_base: str | None = None  # a Stripe-compatible server instead of api.stripe.com (tests)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RegistrationSettings:
        return cls(stripe_api_base=optional(env, "STRIPE_API_BASE"))
