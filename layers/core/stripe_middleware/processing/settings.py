"""The processor's settings, validated at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from stripe_middleware.shared.settings import optional, required


@dataclass(frozen=True)
class ProcessorSettings:
    table_name: str
    event_bus_name: str
    stripe_api_version: str
    stripe_api_key_secret_id: str | None = None  # read-only key; enables refetch of same-second ties
    stripe_api_base: str | None = None  # a Stripe-compatible server (local mode, tests)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ProcessorSettings:
        return cls(
            table_name=required(env, "TABLE_NAME"),
            event_bus_name=required(env, "EVENT_BUS_NAME"),
            stripe_api_version=required(env, "STRIPE_API_VERSION"),
            stripe_api_key_secret_id=optional(env, "STRIPE_API_KEY_SECRET_ID"),
            stripe_api_base=optional(env, "STRIPE_API_BASE"),
        )
