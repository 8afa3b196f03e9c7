"""`POST /v1/commands` and `GET /v1/commands/{command_id}`: refuse early, queue durably, report status.

Each returns the success body or raises RejectedError (4xx) / UnavailableError (503) for the handler.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stripe_middleware.commands.config import GatewayConfig
from stripe_middleware.commands.models import Command, new_command_id
from stripe_middleware.commands.ports import CommandQueue, CommandStore, NotQueuedError
from stripe_middleware.commands.validation import validate_command
from stripe_middleware.shared.errors import NotFoundError, RejectedError
from stripe_middleware.shared.metadata_schema import MetadataSchema

COMMAND_ID = re.compile(r"^cmd_[0-9a-f]{32}$")


def submit_command(
    body: bytes,
    *,
    store: CommandStore,
    queue: CommandQueue,
    config: GatewayConfig,
    schema: MetadataSchema,
) -> dict[str, Any]:
    try:
        document: Any = json.loads(body or b"null")
    except ValueError as error:
        raise RejectedError("invalid_json", "the body is not JSON") from error
    request, _, params = validate_command(document, config=config, schema=schema)
    command = store.create(Command.new(new_command_id(), request, params.model_dump(exclude_none=True)))
    message = {
        "command_id": command.command_id,
        **request.model_dump(exclude_none=True),
        "params": command.params,
        "idempotency_key": command.idempotency_key,
    }
    try:
        queue.send(json.dumps(message))
    except NotQueuedError:
        command.status = "failed"
        command.error = {"type": "not_queued", "message": "the commands queue refused it"}
        store.save(command)
        raise
    return {"command_id": command.command_id, "status": "queued"}


def command_status(store: CommandStore, command_id: str) -> dict[str, Any]:
    if not COMMAND_ID.match(command_id):
        raise RejectedError("invalid_command_id", "command ids look like cmd_ + 32 hex digits")
    command = store.get(command_id)
    if command is None:
        raise NotFoundError(f"no command {command_id}")
    return command.model_dump(mode="json", exclude={"params"})
