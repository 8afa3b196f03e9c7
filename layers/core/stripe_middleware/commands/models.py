"""A command as producers send it (`CommandRequest`) and as the store keeps it (`Command`)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stripe_middleware.shared.clock import now_iso

Status = Literal["queued", "running", "succeeded", "failed"]


class CommandRequest(BaseModel):
    """`POST /v1/commands` body, SQS message body, or EventBridge `detail`."""

    model_config = ConfigDict(extra="forbid")
    operation: str
    params: dict[str, Any] = {}
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    stripe_account: str | None = Field(default=None, pattern=r"^acct_[A-Za-z0-9]+$")


class Command(BaseModel):
    """The stored command: what to do, and what happened."""

    command_id: str
    operation: str
    params: dict[str, Any]
    idempotency_key: str
    stripe_account: str | None = None
    status: Status = "queued"
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: str
    updated_at: str

    @classmethod
    def new(cls, command_id: str, request: CommandRequest, params: dict[str, Any]) -> Command:
        """A queued command; without a producer's idempotency key, Stripe's is derived from the id."""
        return cls(
            command_id=command_id,
            operation=request.operation,
            params=params,
            idempotency_key=request.idempotency_key or f"stripe-middleware-{command_id}",
            stripe_account=request.stripe_account,
            created_at=now_iso(),
            updated_at=now_iso(),
        )


def new_command_id() -> str:
    return f"cmd_{uuid.uuid4().hex}"


def command_id_for(idempotency_key: str | None, message_id: str) -> str:
    """A stable id for producers that did not get one from the API: same key (or message), same command."""
    seed = idempotency_key or message_id
    return f"cmd_{hashlib.sha256(seed.encode()).hexdigest()[:32]}"
