"""The command gateway's logic: one command message → rate limit → Stripe (idempotent) → record → publish."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

from stripe_middleware.command_store import CommandStore
from stripe_middleware.commands import (
    FAILED,
    SUCCEEDED,
    Command,
    CommandRejectedError,
    GatewayConfig,
    command_id_for,
    idempotency_key_for,
    validate_command,
)
from stripe_middleware.metadata_schema import MetadataSchema
from stripe_middleware.operations import Operation, Params
from stripe_middleware.publisher import Publication
from stripe_middleware.rate_limit import RateLimiter

MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True)
class Outcome:
    """What to do with the message: done (delete it), retry after `retry_after` s, or move it to the DLQ."""

    command_id: str | None
    status: str
    retry_after: float | None = None
    dead_letter: bool = False


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def parse_command_message(body: str) -> dict[str, Any]:
    """SQS body from the API or a producer, or an EventBridge envelope with the command in `detail`."""
    document = json.loads(body)
    if isinstance(document, dict) and "detail-type" in document and "detail" in document:
        document = document["detail"]
    if not isinstance(document, dict):
        raise ValueError("a command is a JSON object")
    return document


def stripe_error(error: stripe.StripeError) -> dict[str, Any]:
    body = error.json_body if isinstance(error.json_body, dict) else {}
    details = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
    return {
        "type": details.get("type") or type(error).__name__,
        "code": error.code or details.get("code"),
        "message": details.get("message") or error.user_message or str(error),
        "http_status": error.http_status,
        "request_id": error.request_id,
    }


def is_retryable(error: stripe.StripeError) -> bool:
    """429, lock_timeout, 5xx and network errors are retried; Stripe-Should-Retry decides when present."""
    headers = {str(k).lower(): v for k, v in (error.headers or {}).items()}  # any HTTP client's casing
    should_retry = headers.get("stripe-should-retry")
    if should_retry == "false":
        return False
    if should_retry == "true":
        return True
    if isinstance(error, stripe.RateLimitError | stripe.APIConnectionError):
        return True
    if error.code in ("lock_timeout", "rate_limit"):
        return True
    return error.http_status is not None and error.http_status >= 500


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: a random delay up to 2^attempt seconds, capped."""
    return random.uniform(1, min(MAX_BACKOFF_SECONDS, 2**attempt))  # noqa: S311 - jitter, not crypto


def is_live(api_key: str) -> bool:
    return api_key.startswith(("sk_live_", "rk_live_"))


def run_command(
    body: str,
    *,
    message_id: str,
    receive_count: int,
    store: CommandStore,
    limiter: RateLimiter,
    stripe_client: stripe.StripeClient,
    livemode: bool,
    config: GatewayConfig,
    schema: MetadataSchema,
    publish: Callable[[list[Publication]], set[str]],
) -> Outcome:
    prepared = _prepare(body, message_id, store=store, config=config, schema=schema, publish=publish)
    if isinstance(prepared, Outcome):
        return prepared
    command, operation, params = prepared
    account_limit, endpoint_limit = config.rate_limit.limits(livemode)
    mode = "live" if livemode else "test"
    if not limiter.acquire([(mode, account_limit), (f"{mode}:{operation.path}", endpoint_limit)]):
        return Outcome(
            command.command_id, "queued", retry_after=1
        )  # limit busy: wait in the queue, no attempt used
    path, form = operation.request(params)
    command.status, command.attempts, command.updated_at = "running", command.attempts + 1, now_iso()
    store.save(command)
    options: dict[str, Any] = {"idempotency_key": command.idempotency_key}
    if command.stripe_account:
        options["stripe_account"] = command.stripe_account
    try:
        response = stripe_client.raw_request("post", path, **form, **options)
    except stripe.StripeError as error:
        command.error, command.updated_at = stripe_error(error), now_iso()
        if isinstance(error, stripe.RateLimitError):
            # Stripe did nothing: the attempt does not count; wait in the queue and come back.
            command.status, command.attempts = "queued", command.attempts - 1
            store.save(command)
            return Outcome(command.command_id, "queued", retry_after=backoff(min(receive_count, 6)))
        retryable = is_retryable(error)
        if retryable and command.attempts < config.max_attempts:
            command.status = "queued"
            store.save(command)
            return Outcome(command.command_id, "queued", retry_after=backoff(command.attempts))
        command.status = "failed"
        store.save(command)
        publish([_result_publication(command)])
        # Out of attempts: kept in the DLQ for a redrive; a card error or invalid request is simply done.
        return Outcome(command.command_id, "failed", dead_letter=retryable)
    command.status, command.result, command.error, command.updated_at = (
        "succeeded",
        response.data,
        None,
        now_iso(),
    )
    store.save(command)
    publish([_result_publication(command)])
    return Outcome(command.command_id, "succeeded")


def _prepare(
    body: str,
    message_id: str,
    *,
    store: CommandStore,
    config: GatewayConfig,
    schema: MetadataSchema,
    publish: Callable[[list[Publication]], set[str]],
) -> tuple[Command, Operation, Params] | Outcome:
    """Validate (producers on SQS or EventBridge skipped the API) and load or create the command record."""
    try:
        document = parse_command_message(body)
    except ValueError:
        return Outcome(None, "failed")  # not a command at all: nothing to record, nothing to retry
    command_id = document.pop("command_id", None)
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
        publish([_result_publication(command)])
        return Outcome(command.command_id, "failed")
    command_id = command_id or command_id_for(request.idempotency_key, message_id)
    command = store.create(
        Command(
            command_id=command_id,
            operation=request.operation,
            params=params.model_dump(exclude_none=True),
            idempotency_key=idempotency_key_for(command_id, request),
            stripe_account=request.stripe_account,
            created_at=now_iso(),
            updated_at=now_iso(),
        )
    )
    if command.status in ("succeeded", "failed"):
        return Outcome(command_id, command.status)  # a repeated delivery of a finished command
    return command, operation, params


def _result_publication(command: Command) -> Publication:
    detail = command.model_dump(mode="json", exclude={"params"})
    return Publication(
        key=command.command_id,
        detail_type=SUCCEEDED if command.status == "succeeded" else FAILED,
        detail=detail,
    )
