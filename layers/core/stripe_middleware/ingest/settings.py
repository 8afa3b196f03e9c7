"""The ingest function's settings, validated at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from stripe_middleware.ingest.signature import DEFAULT_TOLERANCE_SECONDS
from stripe_middleware.ingest.webhook import DEFAULT_MAX_BODY_BYTES
from stripe_middleware.shared.settings import positive_int, required


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
            events_queue_url=required(env, "EVENTS_QUEUE_URL"),
            webhook_secret_id=required(env, "WEBHOOK_SECRET_ID"),
            connect_webhook_secret_id=required(env, "CONNECT_WEBHOOK_SECRET_ID"),
            tolerance_seconds=positive_int(env, "SIGNATURE_TOLERANCE_SECONDS", DEFAULT_TOLERANCE_SECONDS),
            max_body_bytes=positive_int(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        )
