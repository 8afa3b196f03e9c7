"""`POST /v1/commands` and `GET /v1/commands/{command_id}`: refuse early, queue durably, report status."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from stripe_middleware.command_store import CommandStore
from stripe_middleware.commands import (
    Command,
    CommandRejectedError,
    GatewayConfig,
    idempotency_key_for,
    new_command_id,
    validate_command,
)
from stripe_middleware.gateway import now_iso
from stripe_middleware.metadata_schema import MetadataSchema
from stripe_middleware.read_api import Answer

COMMAND_ID = re.compile(r"^cmd_[0-9a-f]{32}$")


def submit_command(
    body: bytes,
    *,
    store: CommandStore,
    enqueue: Callable[[str], object],
    config: GatewayConfig,
    schema: MetadataSchema,
) -> Answer:
    try:
        document: Any = json.loads(body or b"null")
    except ValueError:
        return Answer(400, {"error": "invalid_json", "message": "the body is not JSON"})
    try:
        request, _, params = validate_command(document, config=config, schema=schema)
    except CommandRejectedError as rejected:
        return Answer(400, {"error": rejected.code, "message": rejected.message, "details": rejected.details})
    command_id = new_command_id()
    command = Command(
        command_id=command_id,
        operation=request.operation,
        params=params.model_dump(exclude_none=True),
        idempotency_key=idempotency_key_for(command_id, request),
        stripe_account=request.stripe_account,
        created_at=now_iso(),
        updated_at=now_iso(),
    )
    store.create(command)
    message = {"command_id": command_id, **request.model_dump(exclude_none=True), "params": command.params}
    if command.idempotency_key != request.idempotency_key:
        message["idempotency_key"] = command.idempotency_key
    try:
        enqueue(json.dumps(message))
    except Exception:
        command.status, command.error = (
            "failed",
            {"type": "not_queued", "message": "the commands queue refused it"},
        )
        store.save(command)
        return Answer(503, {"error": "not_queued", "message": "the command could not be queued; retry later"})
    return Answer(202, {"command_id": command_id, "status": "queued"})


def command_status(store: CommandStore, command_id: str) -> Answer:
    if not COMMAND_ID.match(command_id):
        return Answer(
            400, {"error": "invalid_command_id", "message": "command ids look like cmd_ + 32 hex digits"}
        )
    command = store.get(command_id)
    if command is None:
        return Answer(404, {"error": "not_found", "message": f"no command {command_id}"})
    return Answer(200, command.model_dump(mode="json", exclude={"params"}))
