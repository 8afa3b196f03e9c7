"""Catch-up Lambda, run by EventBridge Scheduler: enqueue the events Stripe's Events API has and the
pipeline has not processed (webhooks that never arrived).

Input `{}` from the schedule, or `{"since": <unix time>}` (`stripe-middleware catchup --since ... --stage`).
A run stops shortly before its timeout with the cursor saved; the next run goes on from there. An outage
fails the invocation, which the scheduler retries. Until a key is put in the StripeReadOnlyKey secret the
function logs a warning and does nothing.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters.history import History, KeyNotConfiguredError, from_lambda_env
from stripe_middleware.backfill.catchup import CatchupResult, run_catchup
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import RejectedError

logger = Logger()
metrics = Metrics()
DEADLINE_MARGIN_SECONDS = 30


@cache
def dependencies() -> History:
    return from_lambda_env()


def since_of(event: dict[str, Any]) -> int | None:
    since = event.get("since")
    if since is None or (isinstance(since, int) and not isinstance(since, bool) and since > 0):
        return since
    raise RejectedError("invalid_since", f"`since` must be a unix time in seconds, not {since!r}")


def summary(result: CatchupResult) -> dict[str, Any]:
    return {
        "since": result.since,
        "until": result.until,
        "done": result.done,
        "listed": result.listed,
        "recovered": result.recovered,
        "gap": result.gap,
    }


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        catchup = dependencies().catchup()
    except KeyNotConfiguredError as error:  # a fresh deploy: idle, not failing every period
        logger.warning(f"catch-up is idle: {error}")
        return {"skipped": str(error)}
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN_SECONDS
    result = run_catchup(catchup, since=since_of(event), deadline=deadline)
    metrics.add_metric(Metric.CATCHUP_EVENTS_LISTED, MetricUnit.Count, result.listed)
    metrics.add_metric(Metric.CATCHUP_EVENTS_RECOVERED, MetricUnit.Count, result.recovered)
    metrics.add_metric(Metric.CATCHUP_GAP, MetricUnit.Count, 1 if result.gap else 0)
    metrics.add_metric(Metric.STRIPE_RETRIES, MetricUnit.Count, catchup.reader.retries)
    if result.gap:
        logger.error("catch-up gap: events older than 30 days were never seen", extra={"gap": result.gap})
    if result.recovered:
        logger.warning("catch-up recovered events webhooks missed", extra=summary(result))
    else:
        logger.info("catch-up", extra=summary(result))
    return summary(result)
