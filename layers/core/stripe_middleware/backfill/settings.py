"""Settings of the backfill and catch-up functions, validated at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from stripe_middleware.shared.settings import optional, required


@dataclass(frozen=True)
class HistorySettings:
    table_name: str
    event_bus_name: str
    stripe_api_version: str
    stripe_api_key_secret_id: str  # a restricted key with read access
    dead_letter_queue_url: str  # backfill: objects that cannot be stored
    events_queue_url: str  # catch-up: where recovered events go
    stripe_api_base: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> HistorySettings:
        return cls(
            table_name=required(env, "TABLE_NAME"),
            event_bus_name=required(env, "EVENT_BUS_NAME"),
            stripe_api_version=required(env, "STRIPE_API_VERSION"),
            stripe_api_key_secret_id=required(env, "STRIPE_API_KEY_SECRET_ID"),
            dead_letter_queue_url=required(env, "BACKFILL_DLQ_URL"),
            events_queue_url=required(env, "EVENTS_QUEUE_URL"),
            stripe_api_base=optional(env, "STRIPE_API_BASE"),
        )
