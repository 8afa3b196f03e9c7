"""Refuse before anything is queued: allowlisted operation, well-formed params, schema-conform metadata."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from stripe_middleware.commands.config import GatewayConfig
from stripe_middleware.commands.models import CommandRequest
from stripe_middleware.commands.operations import OPERATIONS, Operation, Params
from stripe_middleware.shared.errors import RejectedError
from stripe_middleware.shared.metadata_schema import MetadataSchema


class CommandRejectedError(RejectedError):
    """The command is refused before it is queued (HTTP 400); `details` says why, field by field."""

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(code, message, details=details or [])

    @property
    def details(self) -> list[dict[str, Any]]:
        details: list[dict[str, Any]] = self.fields["details"]
        return details


def validate_command(
    body: Any, *, config: GatewayConfig, schema: MetadataSchema
) -> tuple[CommandRequest, Operation, Params]:
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
