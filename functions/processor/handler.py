"""Processor Lambda: events queue (SQS batch) → de-duplicate, order, store → EventBridge."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.adapters.secrets import read_secret
from stripe_middleware.adapters.stripe.client import make_stripe_client
from stripe_middleware.adapters.stripe.objects import StripeObjectFetcher
from stripe_middleware.processing.ports import Refetch, Store
from stripe_middleware.processing.processor import Message, process_batch
from stripe_middleware.processing.settings import ProcessorSettings
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.metadata_schema import MetadataSchema, load_metadata_schema
from stripe_middleware.shared.publishing import Publisher

logger = Logger()
metrics = Metrics()


@dataclass(frozen=True)
class Dependencies:
    store: Store
    publisher: Publisher
    schema: MetadataSchema
    refetch: Refetch | None


@cache
def dependencies() -> Dependencies:
    settings = ProcessorSettings.from_env()
    refetch: Refetch | None = None
    if settings.stripe_api_key_secret_id:
        api_key = read_secret(
            aws.client("secretsmanager", aws.QUEUE_CONSUMER), settings.stripe_api_key_secret_id
        )
        client = make_stripe_client(
            api_key, api_version=settings.stripe_api_version, api_base=settings.stripe_api_base
        )
        refetch = StripeObjectFetcher(client)
    return Dependencies(
        store=ObjectStore(aws.client("dynamodb", aws.QUEUE_CONSUMER), settings.table_name),
        publisher=EventPublisher(aws.client("events", aws.QUEUE_CONSUMER), settings.event_bus_name),
        schema=load_metadata_schema(),
        refetch=refetch,
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = dependencies()
    messages = [Message(record["messageId"], record["body"]) for record in event.get("Records", [])]
    # Failures are per message (process_batch maps them): SQS redelivers just those, then the DLQ.
    outcome = process_batch(
        messages, store=deps.store, publisher=deps.publisher, schema=deps.schema, refetch=deps.refetch
    )
    now = time.time()
    for stored in outcome.processed:
        logger.set_correlation_id(stored.event_id)
        logger.info(
            "event stored",
            extra={
                "event_type": stored.event_type,
                "object_type": stored.object_type,
                "object_id": stored.object_id,
            },
        )
        created = datetime.fromisoformat(stored.event_created).timestamp()
        metrics.add_metric(Metric.STRIPE_TO_STORED_LATENCY, MetricUnit.Milliseconds, (now - created) * 1000)
    for message_id, reason in outcome.errors.items():
        logger.set_correlation_id(outcome.event_ids.get(message_id))
        logger.warning(
            "message not processed; SQS will redeliver it", extra={"message_id": message_id, "reason": reason}
        )
    logger.set_correlation_id(None)
    for name, value in (
        (Metric.EVENTS_RECEIVED, len(messages)),
        (Metric.EVENTS_PROCESSED, len(outcome.processed)),
        (Metric.DUPLICATES, outcome.duplicates),
        (Metric.STALE_EVENTS, outcome.stale),
        (Metric.EVENTS_PUBLISHED, outcome.published),
        (Metric.METADATA_VIOLATIONS, outcome.metadata_violations),
        (Metric.PROCESSING_FAILURES, len(outcome.failed_message_ids)),
    ):
        metrics.add_metric(name, MetricUnit.Count, value)
    return {
        "batchItemFailures": [{"itemIdentifier": message_id} for message_id in outcome.failed_message_ids]
    }
