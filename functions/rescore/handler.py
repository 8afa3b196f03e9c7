"""Re-score Lambda, run daily by an EventBridge schedule: every watched one-off buyer scored again as of now
(their risk grows while nothing happens), each level change published as `stripe-middleware.signal.churn_risk`
and recorded for the read API (stripe_middleware.signals.buyer_risk).

Input `{}` from the schedule. It reads the watches' 16 partitions (Query, never Scan) and writes only where a
level changed, each write conditional on the watch it read, so a charge arriving meanwhile wins and a second
run publishes nothing new. A run that leaves buyers behind (a store or bus outage) fails the invocation after
flushing its metrics, and the schedule's retries run it again; one that runs out of time says so, and the
next day's run starts from another shard.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.dynamodb.signals import SignalStore
from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.signals.buyer_risk import rescore_buyers
from stripe_middleware.signals.buyers import load_buyer_model

logger = Logger()
metrics = Metrics()
SAFETY_MS = 30_000  # stop reading watches this long before the function's timeout


class BuyersNotRescoredError(UnavailableError):
    """Some buyers or shards were left for the next run (their publications stay pending in the watch)."""

    code = "buyers_not_rescored"


@dataclass(frozen=True)
class Dependencies:
    watches: SignalStore
    publisher: EventPublisher


@cache
def dependencies() -> Dependencies:
    return Dependencies(
        watches=SignalStore(aws.client("dynamodb", aws.QUEUE_CONSUMER), os.environ["TABLE_NAME"]),
        publisher=EventPublisher(aws.client("events", aws.QUEUE_CONSUMER), os.environ["EVENT_BUS_NAME"]),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    now = int(time.time())
    logger.set_correlation_id(f"rescore-{now}")
    deps = dependencies()
    outcome = rescore_buyers(
        deps.watches,
        deps.publisher,
        model=load_buyer_model(),
        now=now,
        out_of_time=lambda: context.get_remaining_time_in_millis() < SAFETY_MS,
    )
    for risk in outcome.changes:
        logger.info(
            "signal raised", extra={"kind": risk.kind, "signal_id": risk.signal_id, "level": risk.level}
        )
    summary = {
        "rescored": outcome.rescored,
        "changes": len(outcome.changes),
        "failures": outcome.failures,
        "shards": len(outcome.shards),
        "complete": outcome.complete,
    }
    metrics.add_metric(Metric.BUYERS_RESCORED, MetricUnit.Count, outcome.rescored)
    metrics.add_metric(Metric.BUYER_RISK_CHANGES, MetricUnit.Count, len(outcome.changes))
    metrics.add_metric(Metric.BUYER_RESCORE_FAILURES, MetricUnit.Count, outcome.failures)
    logger.info("one-off buyers re-scored", extra=summary)
    if outcome.failures:
        raise BuyersNotRescoredError(f"buyers left for the next run: {summary}")
    if not outcome.complete:  # the next run starts from another shard
        logger.warning("out of time: some shards are left for the next run", extra=summary)
    return summary
