"""Settings of the commands API and the command gateway, validated at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from stripe_middleware.shared.settings import optional, required


@dataclass(frozen=True)
class CommandsApiSettings:
    table_name: str
    commands_queue_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CommandsApiSettings:
        return cls(
            table_name=required(env, "TABLE_NAME"), commands_queue_url=required(env, "COMMANDS_QUEUE_URL")
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
            table_name=required(env, "TABLE_NAME"),
            commands_queue_url=required(env, "COMMANDS_QUEUE_URL"),
            commands_dead_letter_queue_url=required(env, "COMMANDS_DLQ_URL"),
            event_bus_name=required(env, "EVENT_BUS_NAME"),
            stripe_api_version=required(env, "STRIPE_API_VERSION"),
            stripe_api_key_secret_id=required(env, "STRIPE_API_KEY_SECRET_ID"),
            stripe_api_base=optional(env, "STRIPE_API_BASE"),
        )
