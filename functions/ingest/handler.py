"""Ingest Lambda: `POST /webhooks/stripe[/connect]` → verify → events queue. Stripe waits on this."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.secrets import SecretsManagerSigningSecrets
from stripe_middleware.adapters.sqs.events import SqsEventQueue
from stripe_middleware.ingest.ports import EventQueue, SigningSecrets
from stripe_middleware.ingest.settings import IngestSettings
from stripe_middleware.ingest.signature import INVALID_SIGNATURE
from stripe_middleware.ingest.webhook import AcceptedEvent, Route, WebhookRequest, accept_webhook
from stripe_middleware.shared import http
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import RejectedError, UnavailableError
from stripe_middleware.shared.observability import EmfMetrics, JsonLogger

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
        secrets=SecretsManagerSigningSecrets(aws.client("secretsmanager")),
        queue=SqsEventQueue(aws.client("sqs"), settings.events_queue_url),
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
    route: Route = "connect" if http.route_key(event).endswith("/connect") else "account"
    metrics.add(Metric.WEBHOOK_RECEIVED, route=route)
    request = WebhookRequest(route=route, headers=http.lower_headers(event), body=http.raw_body(event))
    secret_id = (
        deps.settings.connect_webhook_secret_id if route == "connect" else deps.settings.webhook_secret_id
    )

    def accept(secrets: tuple[str, ...]) -> AcceptedEvent:
        return accept_webhook(
            request,
            secrets=secrets,
            queue=deps.queue,
            now=time.time(),
            tolerance=deps.settings.tolerance_seconds,
            max_body_bytes=deps.settings.max_body_bytes,
        )

    try:
        try:
            accepted = accept(deps.secrets.get(secret_id))
        except RejectedError as error:  # signed with a secret written since it was cached (a registration)?
            if error.code != INVALID_SIGNATURE or (fresh := deps.secrets.refreshed(secret_id)) is None:
                raise
            accepted = accept(fresh)
    except RejectedError as error:
        metrics.add(Metric.WEBHOOK_REJECTED, reason=error.code)
        logger.warning("webhook rejected", route=route, reason=error.code, status=error.status)
        return http.rejected_response(error)
    except UnavailableError as error:
        metrics.add(Metric.WEBHOOK_NOT_DURABLE)
        logger.exception("webhook not made durable; Stripe will retry", route=route, error=str(error))
        return http.error_response(503, "not_durable", "The event could not be stored; retry later")
    logger.set_correlation_id(accepted.event_id)
    metrics.add(Metric.WEBHOOK_ENQUEUED, route=route)
    metrics.add(
        Metric.STRIPE_TO_ENQUEUED_LATENCY, (time.time() - accepted.created) * 1000, unit="Milliseconds"
    )
    logger.info(
        "webhook enqueued",
        event_type=accepted.event_type,
        account=accepted.account,
        livemode=accepted.livemode,
        message_id=accepted.message_id,
    )
    return http.json_response(200, {"received": True, "id": accepted.event_id})
