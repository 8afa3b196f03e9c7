"""Gateway Lambda: commands queue → shared rate limit → Stripe (idempotency key, pinned version) → result."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import stripe
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware import aws
from stripe_middleware.command_store import CommandStore
from stripe_middleware.commands import GatewayConfig, load_gateway_config
from stripe_middleware.gateway import is_live, run_command
from stripe_middleware.metadata_schema import MetadataSchema, load_metadata_schema
from stripe_middleware.publisher import EventPublisher
from stripe_middleware.rate_limit import RateLimiter
from stripe_middleware.secrets import read_secret
from stripe_middleware.settings import GatewaySettings
from stripe_middleware.stripe_api import make_stripe_client

logger = Logger()
metrics = Metrics()


@dataclass(frozen=True)
class Dependencies:
    settings: GatewaySettings
    store: CommandStore
    limiter: RateLimiter
    stripe: stripe.StripeClient
    livemode: bool
    publisher: EventPublisher
    sqs: Any
    config: GatewayConfig
    schema: MetadataSchema


@cache
def dependencies() -> Dependencies:
    settings = GatewaySettings.from_env()
    dynamodb = aws.client("dynamodb")
    api_key = read_secret(aws.client("secretsmanager"), settings.stripe_api_key_secret_id)
    return Dependencies(
        settings=settings,
        store=CommandStore(dynamodb, settings.table_name),
        limiter=RateLimiter(dynamodb, settings.table_name),
        # Retries happen through the queue and the shared rate limit, with the same idempotency key;
        # SDK-level retries would spend rate limit the limiter never saw.
        stripe=make_stripe_client(
            api_key,
            api_version=settings.stripe_api_version,
            api_base=settings.stripe_api_base,
            max_network_retries=0,
        ),
        livemode=is_live(api_key),
        publisher=EventPublisher(aws.client("events"), settings.event_bus_name),
        sqs=aws.client("sqs"),
        config=load_gateway_config(),
        schema=load_metadata_schema(),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = dependencies()
    failures = []
    for record in event.get("Records", []):
        outcome = run_command(
            record["body"],
            message_id=record["messageId"],
            receive_count=int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")),
            store=deps.store,
            limiter=deps.limiter,
            stripe_client=deps.stripe,
            livemode=deps.livemode,
            config=deps.config,
            schema=deps.schema,
            publish=deps.publisher.publish,
        )
        logger.set_correlation_id(outcome.command_id)
        logger.info("command handled", extra={"status": outcome.status, "retry_after": outcome.retry_after})
        metrics.add_metric(f"Commands{outcome.status.capitalize()}", MetricUnit.Count, 1)
        if outcome.dead_letter:
            deps.sqs.send_message(
                QueueUrl=deps.settings.commands_dead_letter_queue_url, MessageBody=record["body"]
            )
        elif outcome.retry_after is not None:
            failures.append({"itemIdentifier": record["messageId"]})
            deps.sqs.change_message_visibility(
                QueueUrl=deps.settings.commands_queue_url,
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=int(outcome.retry_after),
            )
    logger.set_correlation_id(None)
    return {"batchItemFailures": failures}
