"""The command gateway's logic: one command message → rate limit → Stripe (idempotent) → record → publish.

Store or rate-limit outages raise StoreUnavailableError: the handler retries that message only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stripe_middleware.commands.config import GatewayConfig
from stripe_middleware.commands.models import Command, command_id_for
from stripe_middleware.commands.operations import Operation, Params
from stripe_middleware.commands.ports import CommandStore, StripeWriter
from stripe_middleware.commands.validation import CommandRejectedError, validate_command
from stripe_middleware.shared.clock import now_iso
from stripe_middleware.shared.contract import DetailType, mode_label
from stripe_middleware.shared.envelope import unwrap_eventbridge
from stripe_middleware.shared.metadata_schema import MetadataSchema
from stripe_middleware.shared.publishing import Publication, Publisher
from stripe_middleware.shared.stripe_calls import RateLimiter, StripeCallError, backoff, is_retryable


@dataclass(frozen=True)
class Outcome:
    """What to do with the message: done (delete it), retry after `retry_after` s, or move it to the DLQ."""

    command_id: str | None
    status: str
    retry_after: float | None = None
    dead_letter: bool = False
    stripe_rate_limited: bool = False  # queued because Stripe answered 429


def parse_command_message(body: str) -> dict[str, Any]:
    """SQS body from the API or a producer, or an EventBridge envelope with the command in `detail`."""
    document = unwrap_eventbridge(json.loads(body))
    if not isinstance(document, dict):
        raise ValueError("a command is a JSON object")
    return document


def run_command(
    body: str,
    *,
    message_id: str,
    receive_count: int,
    store: CommandStore,
    limiter: RateLimiter,
    stripe: StripeWriter,
    livemode: bool,
    config: GatewayConfig,
    schema: MetadataSchema,
    publisher: Publisher,
) -> Outcome:
    prepared = _prepare(
        body, message_id, receive_count, store=store, config=config, schema=schema, publisher=publisher
    )
    if isinstance(prepared, Outcome):
        return prepared
    command, operation, params = prepared
    account_limit, endpoint_limit = config.rate_limit.limits(livemode)
    mode = mode_label(livemode)
    if not limiter.acquire([(mode, account_limit), (f"{mode}:{operation.path}", endpoint_limit)]):
        # The limit is busy: wait in the queue, no attempt used.
        return Outcome(command.command_id, "queued", retry_after=1)
    path, form = operation.request(params)
    command.status, command.attempts, command.updated_at = "running", command.attempts + 1, now_iso()
    store.save(command)
    try:
        call = stripe.delete if operation.method == "delete" else stripe.post
        result = call(
            path, form, idempotency_key=command.idempotency_key, stripe_account=command.stripe_account
        )
    except StripeCallError as error:
        failure = error.failure
        command.error, command.updated_at = failure.record(), now_iso()
        if failure.rate_limited:
            # Stripe did nothing: the attempt does not count; wait in the queue and come back.
            command.status, command.attempts = "queued", command.attempts - 1
            store.save(command)
            return Outcome(
                command.command_id,
                "queued",
                retry_after=backoff(min(receive_count, 6)),
                stripe_rate_limited=True,
            )
        retryable = is_retryable(failure)
        if retryable and command.attempts < config.max_attempts:
            command.status = "queued"
            store.save(command)
            return Outcome(command.command_id, "queued", retry_after=backoff(command.attempts))
        command.status = "failed"
        store.save(command)
        # Out of attempts: kept in the DLQ for a redrive; a card error or invalid request is simply done.
        return _publish_result(command, publisher, receive_count, dead_letter=retryable)
    command.status, command.result, command.error, command.updated_at = "succeeded", result, None, now_iso()
    store.save(command)
    return _publish_result(command, publisher, receive_count)


def _prepare(
    body: str,
    message_id: str,
    receive_count: int,
    *,
    store: CommandStore,
    config: GatewayConfig,
    schema: MetadataSchema,
    publisher: Publisher,
) -> tuple[Command, Operation, Params] | Outcome:
    """Validate (producers on SQS or EventBridge skipped the API) and load or create the command record."""
    try:
        document = parse_command_message(body)
    except ValueError:
        return Outcome(None, "failed")  # not a command at all: nothing to record, nothing to retry
    command_id = document.pop("command_id", None)
    retry_failed = document.pop("retry_failed", False) is True  # a redrive from the DLQ
    try:
        request, operation, params = validate_command(document, config=config, schema=schema)
    except CommandRejectedError as rejected:
        command = Command(
            command_id=command_id or command_id_for(None, message_id),
            operation=str(document.get("operation")),
            params={},
            idempotency_key="-",
            status="failed",
            error={
                "type": "validation_error",
                "code": rejected.code,
                "message": rejected.message,
                "details": rejected.details,
            },
            created_at=now_iso(),
            updated_at=now_iso(),
        )
        store.save(command)
        return _publish_result(command, publisher, receive_count)
    command_id = command_id or command_id_for(request.idempotency_key, message_id)
    command = store.create(Command.new(command_id, request, params.model_dump(exclude_none=True)))
    if command.status == "failed" and retry_failed:
        command.status, command.attempts, command.updated_at = "queued", 0, now_iso()
        store.save(command)
    if command.status in ("succeeded", "failed"):
        # A repeated delivery of a finished command: its result may never have reached the bus (a failed
        # publication, a crash after the save), so publish it again (at-least-once); Stripe is not called.
        return _publish_result(command, publisher, receive_count)
    return command, operation, params


def dead_letter_body(body: str, command_id: str | None) -> str:
    """What the DLQ keeps: the command, marked so that a redrive runs it again with fresh attempts."""
    return json.dumps({**parse_command_message(body), "command_id": command_id, "retry_failed": True})


def _publish_result(
    command: Command, publisher: Publisher, receive_count: int, *, dead_letter: bool = False
) -> Outcome:
    """Done once the result is on the bus; if the bus refused it, the message comes back to publish it."""
    if publisher.publish([result_publication(command)]):
        return Outcome(command.command_id, command.status, retry_after=backoff(min(receive_count, 6)))
    return Outcome(command.command_id, command.status, dead_letter=dead_letter)


def result_publication(command: Command) -> Publication:
    return Publication(
        key=command.command_id,
        detail_type=DetailType.COMMAND_SUCCEEDED
        if command.status == "succeeded"
        else DetailType.COMMAND_FAILED,
        detail=command.model_dump(mode="json", exclude={"params"}),
    )
