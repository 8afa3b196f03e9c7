"""Retraining Lambda, run by an EventBridge schedule: the churn model learned again from the archive of
events, written under `models/churn/` in the warehouse bucket, and approved for the signals Lambda when it
beats the model in use on held-out customers (stripe_middleware.signals.retraining).

Input `{}` from the schedule, or `{"cutoff": <unix time>}` to train on the events up to an earlier time.
Too little history is not a failure: the run says why it skipped and the prior (or the model in use) goes
on scoring. An S3 outage fails the invocation, which the schedule runs again next period.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.s3 import S3EventArchive, S3ModelStore
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import RejectedError
from stripe_middleware.signals.churn import load_churn_model
from stripe_middleware.signals.config import load_signals_config
from stripe_middleware.signals.retraining import ModelInUse, retrain

logger = Logger()
metrics = Metrics()


def cutoff_of(event: dict[str, Any], now: float) -> int:
    cutoff = event.get("cutoff", int(now))
    if isinstance(cutoff, int) and not isinstance(cutoff, bool) and 0 < cutoff <= now:
        return cutoff
    raise RejectedError("invalid_cutoff", f"`cutoff` must be a past unix time in seconds, not {cutoff!r}")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    client, bucket = aws.client("s3", aws.QUEUE_CONSUMER), os.environ["MODEL_BUCKET_NAME"]
    settings = load_signals_config().retraining
    models = S3ModelStore(client, bucket)
    in_use = ModelInUse(models, load_churn_model(), time.time, logger.warning).get()
    archive = S3EventArchive(client, bucket)
    cutoff = cutoff_of(event, time.time())
    logger.set_correlation_id(f"retrain-{cutoff}")
    outcome = retrain(
        archive,
        models,
        in_use=in_use,
        now=cutoff,
        window_days=settings.window_days,
        horizon_days=settings.horizon_days,
        min_auc=settings.min_auc,
    )
    summary = {
        "status": outcome.status,
        "reason": outcome.reason,
        "events": outcome.events,
        "files": archive.files,
        "skipped_lines": outcome.skipped_lines,
        "candidate": outcome.version,
        "in_use": outcome.in_use,
        "cutoff": cutoff,
    }
    metrics.add_dimension("outcome", outcome.status)
    metrics.add_metric(Metric.CHURN_MODEL_RETRAININGS, MetricUnit.Count, 1)
    metrics.add_metric(Metric.CHURN_MODEL_TRAINING_EVENTS, MetricUnit.Count, outcome.events)
    metrics.add_metric(Metric.CHURN_MODEL_SKIPPED_LINES, MetricUnit.Count, outcome.skipped_lines)
    if outcome.skipped_lines:
        logger.warning("archive lines or files that are not events were skipped", extra=summary)
    logger.info("churn model retraining", extra={**summary, "metrics": outcome.report.get("metrics")})
    return summary
