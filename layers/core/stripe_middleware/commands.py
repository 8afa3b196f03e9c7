"""Commands: validation before anything is queued, the command record, and how a Stripe error is judged."""

from __future__ import annotations

import hashlib
import os
import uuid
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stripe_middleware.metadata_schema import MetadataSchema
from stripe_middleware.operations import OPERATIONS, Operation, Params

GATEWAY_CONFIG_ENV = "GATEWAY_CONFIG_PATH"
REPO_GATEWAY_CONFIG = Path(__file__).resolve().parents[3] / "config" / "gateway.yaml"
PACKAGED_GATEWAY_CONFIG = Path(__file__).resolve().parent / "gateway.yaml"
COMMAND_EVENT = "stripe-middleware.command"
SUCCEEDED, FAILED = "stripe-middleware.command.succeeded", "stripe-middleware.command.failed"
Status = Literal["queued", "running", "succeeded", "failed"]


class CommandRejectedError(Exception):
    """The command is refused before it is queued (HTTP 400); `details` says why, field by field."""

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []


class RateLimitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    share: float = Field(gt=0, le=1)
    live_per_second: int = Field(gt=0)
    test_per_second: int = Field(gt=0)
    per_endpoint_per_second: int = Field(gt=0)

    def limits(self, livemode: bool) -> tuple[int, int]:
        """(account-wide, per-endpoint) requests per second the gateway may use."""
        account = self.live_per_second if livemode else self.test_per_second
        return max(1, int(account * self.share)), max(1, int(self.per_endpoint_per_second * self.share))


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(ge=1)
    operations: tuple[str, ...]
    rate_limit: RateLimitConfig
    max_attempts: int = Field(ge=1, le=50)

    @field_validator("operations")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(names) - set(OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operations {unknown}; known: {sorted(OPERATIONS)}")
        return names


class GatewayConfigError(Exception):
    pass


@cache
def load_gateway_config(path: Path | None = None) -> GatewayConfig:
    if path is None:
        configured = os.environ.get(GATEWAY_CONFIG_ENV)
        path = (
            Path(configured)
            if configured
            else (PACKAGED_GATEWAY_CONFIG if PACKAGED_GATEWAY_CONFIG.exists() else REPO_GATEWAY_CONFIG)
        )
    try:
        return GatewayConfig.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise GatewayConfigError(f"gateway config {path} is invalid:\n{error}") from error


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


def new_command_id() -> str:
    return f"cmd_{uuid.uuid4().hex}"


def command_id_for(idempotency_key: str | None, message_id: str) -> str:
    """A stable id for producers that did not get one from the API: same key (or message), same command."""
    seed = idempotency_key or message_id
    return f"cmd_{hashlib.sha256(seed.encode()).hexdigest()[:32]}"


def idempotency_key_for(command_id: str, request: CommandRequest) -> str:
    return request.idempotency_key or f"stripe-middleware-{command_id}"


def validate_command(
    body: Any, *, config: GatewayConfig, schema: MetadataSchema
) -> tuple[CommandRequest, Operation, Params]:
    """Refuse anything that is not an allowed, well-formed command with schema-conform metadata."""
    try:
        request = CommandRequest.model_validate(body)
    except ValidationError as error:
        raise CommandRejectedError("invalid_command", "the command is malformed", _details(error)) from error
    if request.operation not in config.operations:
        raise CommandRejectedError(
            "operation_not_allowed",
            f"operation {request.operation!r} is not allowed; allowed: {', '.join(config.operations)}",
        )
    operation = OPERATIONS[request.operation]
    try:
        params = operation.params.model_validate(request.params)
    except ValidationError as error:
        raise CommandRejectedError(
            "invalid_params", f"invalid params for {operation.name}", _details(error)
        ) from error
    if params.metadata is not None or operation.creates:
        violations = schema.check(operation.object_type, params.metadata or {})
        if not operation.creates:  # an update need not repeat keys the object already has
            violations = [v for v in violations if v.code != "missing"]
        if violations:
            raise CommandRejectedError(
                "metadata_violation",
                f"metadata breaks the schema for {operation.object_type}",
                [v.model_dump() for v in violations],
            )
        if params.metadata is not None:
            params.metadata = schema.normalize(operation.object_type, params.metadata)
    return request, operation, params


def _details(error: ValidationError) -> list[dict[str, Any]]:
    return [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in error.errors()]
