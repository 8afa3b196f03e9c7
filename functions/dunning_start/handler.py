"""Dunning starter Lambda: queued `invoice.payment_failed` details (SQS batch) → one workflow per invoice.

A second `invoice.payment_failed` of the same invoice (Stripe's retries fail again) starts nothing: the
invoice's workflow is named by its id.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters.dunning import scheduler_from_lambda_env
from stripe_middleware.adapters.stepfunctions import StepFunctionsScheduler
from stripe_middleware.dunning.start import Message, start_workflows
from stripe_middleware.shared.contract import Metric

logger = Logger()
metrics = Metrics()


@cache
def dependencies() -> StepFunctionsScheduler:
    return scheduler_from_lambda_env()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    messages = [Message(record["messageId"], record["body"]) for record in event.get("Records", [])]
    outcome = start_workflows(messages, dependencies())
    for case in outcome.started:
        logger.info("dunning started", extra={"invoice_id": case.invoice_id, "event_id": case.event_id})
    for case in outcome.already:
        logger.info(
            "dunning already started", extra={"invoice_id": case.invoice_id, "event_id": case.event_id}
        )
    for message_id, reason in outcome.errors.items():
        logger.warning(
            "message not processed; SQS will redeliver it", extra={"message_id": message_id, "reason": reason}
        )
    metrics.add_metric(Metric.DUNNING_STARTED, MetricUnit.Count, len(outcome.started))
    metrics.add_metric(Metric.DUNNING_START_FAILURES, MetricUnit.Count, len(outcome.errors))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in outcome.errors]}
