"""Signals Lambda: queued bus events (SQS batch) → facts per customer, card, account → signals on the bus."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.dynamodb.signals import SignalStore
from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.adapters.s3 import S3ModelStore
from stripe_middleware.shared.contract import Metric
from stripe_middleware.signals.buyer_risk import BuyerRisk
from stripe_middleware.signals.buyers import BuyerModel, load_buyer_model
from stripe_middleware.signals.churn import ChurnRisk, load_churn_model
from stripe_middleware.signals.config import SignalsConfig, load_signals_config
from stripe_middleware.signals.consume import Detect, Message, consume
from stripe_middleware.signals.detect import detect
from stripe_middleware.signals.ports import Anomaly
from stripe_middleware.signals.retraining import ModelInUse

logger = Logger()
metrics = Metrics()


def unusable_model(message: str) -> None:
    logger.error(message)
    metrics.add_metric(Metric.CHURN_MODEL_UNUSABLE, MetricUnit.Count, 1)


@cache
def model_in_use() -> ModelInUse | None:
    """The approved model in the bucket when retraining is deployed (MODEL_BUCKET_NAME), else None: the
    prior the layer ships (or CHURN_MODEL_PATH) scores."""
    bucket = os.environ.get("MODEL_BUCKET_NAME")
    if not bucket:
        return None
    store = S3ModelStore(aws.client("s3", aws.QUEUE_CONSUMER), bucket)
    return ModelInUse(store, load_churn_model(), time.time, unusable_model)


@dataclass(frozen=True)
class Dependencies:
    state: SignalStore
    publisher: EventPublisher
    config: SignalsConfig
    buyer_model: BuyerModel


@cache
def dependencies() -> Dependencies:
    return Dependencies(
        state=SignalStore(aws.client("dynamodb", aws.QUEUE_CONSUMER), os.environ["TABLE_NAME"]),
        publisher=EventPublisher(aws.client("events", aws.QUEUE_CONSUMER), os.environ["EVENT_BUS_NAME"]),
        config=load_signals_config(),
        buyer_model=load_buyer_model(),
    )


def detector() -> Detect:
    """Detection with the model in use now (a newly approved one within `REFRESH_SECONDS`)."""
    deps, in_use = dependencies(), model_in_use()
    return partial(
        detect,
        state=deps.state,
        publisher=deps.publisher,
        config=deps.config,
        buyer_model=deps.buyer_model,
        model=in_use.get() if in_use else load_churn_model(),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    messages = [Message(record["messageId"], record["body"]) for record in event.get("Records", [])]
    outcome = consume(messages, detector())
    now = time.time()
    raised: Counter[str] = Counter()
    for consumed in outcome.consumed:
        detection = consumed.detection
        logger.set_correlation_id(consumed.event_id)
        found: list[Anomaly | ChurnRisk | BuyerRisk] = [
            *detection.raised,
            *detection.churn_risks,
            *detection.buyer_risks,
        ]
        for signal in found:
            raised[signal.kind] += 1
            logger.info(
                "signal raised",
                extra={"kind": signal.kind, "signal_id": signal.signal_id, "level": signal.level},
            )
        metrics.add_metric(Metric.SIGNAL_FACTS, MetricUnit.Count, detection.facts)
        if consumed.created is not None:
            latency = (now - consumed.created) * 1000
            metrics.add_metric(Metric.STRIPE_TO_SIGNAL_LATENCY, MetricUnit.Milliseconds, latency)
    for message_id, reason in outcome.errors.items():
        logger.set_correlation_id(outcome.event_ids.get(message_id))
        logger.warning(
            "message not processed; SQS will redeliver it", extra={"message_id": message_id, "reason": reason}
        )
    logger.set_correlation_id(None)
    metrics.add_metric(Metric.SIGNAL_EVENTS_RECEIVED, MetricUnit.Count, len(messages))
    metrics.add_metric(Metric.SIGNAL_FAILURES, MetricUnit.Count, len(outcome.errors))
    for kind, count in raised.items():
        with single_metric(name=Metric.SIGNALS_RAISED, unit=MetricUnit.Count, value=count) as metric:
            metric.add_dimension(name="kind", value=kind)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in outcome.errors]}
