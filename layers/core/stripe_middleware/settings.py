"""Function configuration, read from the environment once per container and validated there.

The ingest settings use a dataclass rather than pydantic to keep the ingest cold start small.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from stripe_middleware.ingest import DEFAULT_MAX_BODY_BYTES
from stripe_middleware.signature import DEFAULT_TOLERANCE_SECONDS


class ConfigurationError(Exception):
    """A required setting is missing or invalid: the function cannot start."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigurationError(f"environment variable {name} must be a positive integer, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class IngestSettings:
    events_queue_url: str
    webhook_secret_id: str
    connect_webhook_secret_id: str
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> IngestSettings:
        return cls(
            events_queue_url=_required(env, "EVENTS_QUEUE_URL"),
            webhook_secret_id=_required(env, "WEBHOOK_SECRET_ID"),
            connect_webhook_secret_id=_required(env, "CONNECT_WEBHOOK_SECRET_ID"),
            tolerance_seconds=_positive_int(env, "SIGNATURE_TOLERANCE_SECONDS", DEFAULT_TOLERANCE_SECONDS),
            max_body_bytes=_positive_int(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        )


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
            table_name=_required(env, "TABLE_NAME"),
            event_bus_name=_required(env, "EVENT_BUS_NAME"),
            stripe_api_version=_required(env, "STRIPE_API_VERSION"),
            stripe_api_key_secret_id=env.get("STRIPE_API_KEY_SECRET_ID", "").strip() or None,
            stripe_api_base=env.get("STRIPE_API_BASE", "").strip() or None,
        )


@dataclass(frozen=True)
class GatewaySettings:
    table_name: str
    commands_queue_url: str
    commands_dead_letter_queue_url: str
    event_bus_name: str
    stripe_api_version: str
    stripe_api_key_secret_id: str
    stripe_api_base: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GatewaySettings:
        return cls(
            table_name=_required(env, "TABLE_NAME"),
            commands_queue_url=_required(env, "COMMANDS_QUEUE_URL"),
            commands_dead_letter_queue_url=_required(env, "COMMANDS_DLQ_URL"),
            event_bus_name=_required(env, "EVENT_BUS_NAME"),
            stripe_api_version=_required(env, "STRIPE_API_VERSION"),
            stripe_api_key_secret_id=_required(env, "STRIPE_API_KEY_SECRET_ID"),
            stripe_api_base=env.get("STRIPE_API_BASE", "").strip() or None,
        )
