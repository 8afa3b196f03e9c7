"""Command gateway Lambda: commands queue → shared rate limit → Stripe (idempotency key, pinned version).

Errors are mapped per message, here: a store or rate-limit outage retries that message only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.dynamodb.commands import DynamoCommandStore
from stripe_middleware.adapters.dynamodb.rate_limit import DynamoRateLimiter
from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.adapters.secrets import read_secret
from stripe_middleware.adapters.stripe.client import is_live_key, make_stripe_client
from stripe_middleware.adapters.stripe.writer import SdkStripeWriter
from stripe_middleware.commands.config import GatewayConfig, load_gateway_config
from stripe_middleware.commands.execute import Outcome, dead_letter_body, run_command
from stripe_middleware.commands.ports import CommandStore, StripeWriter
from stripe_middleware.commands.settings import GatewaySettings
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.shared.metadata_schema import MetadataSchema, load_metadata_schema
from stripe_middleware.shared.publishing import Publisher
from stripe_middleware.shared.stripe_calls import RateLimiter, backoff

logger = Logger()
metrics = Metrics()
OUTCOME_METRICS = {
    "queued": Metric.COMMANDS_QUEUED,
    "succeeded": Metric.COMMANDS_SUCCEEDED,
    "failed": Metric.COMMANDS_FAILED,
    "unavailable": Metric.GATEWAY_UNAVAILABLE,
}


@dataclass(frozen=True)
class Dependencies:
    settings: GatewaySettings
    store: CommandStore
    limiter: RateLimiter
    stripe: StripeWriter
    livemode: bool
    publisher: Publisher
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
        store=DynamoCommandStore(dynamodb, settings.table_name),
        limiter=DynamoRateLimiter(dynamodb, settings.table_name),
        # Retries happen through the queue and the shared rate limit, with the same idempotency key;
        # SDK-level retries would spend rate limit the limiter never saw.
        stripe=SdkStripeWriter(
            make_stripe_client(
                api_key,
                api_version=settings.stripe_api_version,
                api_base=settings.stripe_api_base,
                max_network_retries=0,
            )
        ),
        livemode=is_live_key(api_key),
        publisher=EventPublisher(aws.client("events"), settings.event_bus_name),
        sqs=aws.client("sqs"),
        config=load_gateway_config(),
        schema=load_metadata_schema(),
    )


def execute(record: dict[str, Any], deps: Dependencies) -> Outcome:
    """Run one command message; an outage of the store or the rate limit retries this message only."""
    receive_count = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    try:
        return run_command(
            record["body"],
            message_id=record["messageId"],
            receive_count=receive_count,
            store=deps.store,
            limiter=deps.limiter,
            stripe=deps.stripe,
            livemode=deps.livemode,
            config=deps.config,
            schema=deps.schema,
            publisher=deps.publisher,
        )
    except UnavailableError as error:
        logger.exception(
            "command deferred: a dependency is unavailable",
            extra={"reason": error.code, "message_id": record["messageId"]},
        )
        return Outcome(None, "unavailable", retry_after=backoff(min(receive_count, 6)))


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = dependencies()
    failures = []
    for record in event.get("Records", []):
        logger.set_correlation_id(None)  # not the previous record's command id while this one runs
        outcome = execute(record, deps)
        logger.set_correlation_id(outcome.command_id)
        logger.info("command handled", extra={"status": outcome.status, "retry_after": outcome.retry_after})
        metrics.add_metric(OUTCOME_METRICS[outcome.status], MetricUnit.Count, 1)
        if outcome.stripe_rate_limited:
            metrics.add_metric(Metric.STRIPE_RATE_LIMITED, MetricUnit.Count, 1)
        if outcome.dead_letter:
            deps.sqs.send_message(
                QueueUrl=deps.settings.commands_dead_letter_queue_url,
                MessageBody=dead_letter_body(record["body"], outcome.command_id),
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
