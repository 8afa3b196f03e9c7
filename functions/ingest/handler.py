"""Ingest Lambda: `POST /webhooks/stripe[/connect]` → verify → events queue. Stripe waits on this."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from stripe_middleware import apigw, aws
from stripe_middleware.event_queue import EventQueue, NotDurableError
from stripe_middleware.ingest import RejectedError, Route, WebhookRequest, accept_webhook
from stripe_middleware.observability import EmfMetrics, JsonLogger
from stripe_middleware.secrets import SecretUnavailableError, SigningSecrets
from stripe_middleware.settings import IngestSettings
from stripe_middleware.signature import SignatureError

logger = JsonLogger()
metrics = EmfMetrics()


@dataclass(frozen=True)
class Dependencies:
    settings: IngestSettings
    secrets: SigningSecrets
    queue: EventQueue


@cache
def dependencies() -> Dependencies:
    settings = IngestSettings.from_env()
    return Dependencies(
        settings=settings,
        secrets=SigningSecrets(aws.client("secretsmanager")),
        queue=EventQueue(aws.client("sqs"), settings.events_queue_url),
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return respond(event)
    finally:
        metrics.flush()
        logger.set_correlation_id(None)


def respond(event: dict[str, Any]) -> dict[str, Any]:
    """Map the outcome of `accept_webhook` to the ingest contract; every error is mapped here."""
    deps = dependencies()
    route: Route = "connect" if apigw.route_key(event).endswith("/connect") else "account"
    metrics.add("WebhookReceived", route=route)
    request = WebhookRequest(route=route, headers=apigw.lower_headers(event), body=apigw.raw_body(event))
    secret_id = (
        deps.settings.connect_webhook_secret_id if route == "connect" else deps.settings.webhook_secret_id
    )
    try:
        accepted = accept_webhook(
            request,
            secrets=deps.secrets.get(secret_id),
            enqueue=deps.queue.enqueue,
            now=time.time(),
            tolerance=deps.settings.tolerance_seconds,
            max_body_bytes=deps.settings.max_body_bytes,
        )
    except (RejectedError, SignatureError) as error:
        status = getattr(error, "status", 400)
        metrics.add("WebhookRejected", reason=error.code)
        logger.warning("webhook rejected", route=route, reason=error.code, status=status)
        return apigw.error_response(status, error.code, error.message)
    except (SecretUnavailableError, NotDurableError) as error:
        metrics.add("WebhookNotDurable")
        logger.exception("webhook not made durable; Stripe will retry", route=route, error=str(error))
        return apigw.error_response(503, "not_durable", "The event could not be stored; retry later")
    logger.set_correlation_id(accepted.event_id)
    metrics.add("WebhookEnqueued", route=route)
    metrics.add("StripeToEnqueuedLatency", (time.time() - accepted.created) * 1000, unit="Milliseconds")
    logger.info(
        "webhook enqueued",
        event_type=accepted.event_type,
        account=accepted.account,
        livemode=accepted.livemode,
        message_id=accepted.message_id,
    )
    return apigw.json_response(200, {"received": True, "id": accepted.event_id})
