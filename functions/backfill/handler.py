"""Backfill Lambda, one step of the backfill state machine: read pages until the deadline, save cursors.

Input `{"options": {...}}` (see BackfillOptions.from_request); output adds `done` and per-type progress,
and the state machine calls it again until `done`. Invalid options or a key Stripe refuses fail the
execution with the reason; an outage fails the step, which the state machine retries.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters.history import History, from_lambda_env
from stripe_middleware.backfill.options import BackfillOptions
from stripe_middleware.backfill.ports import Cursor, RetryLaterError
from stripe_middleware.backfill.run import run_backfill
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import UnavailableError

logger = Logger()
metrics = Metrics()
DEADLINE_MARGIN_SECONDS = 60  # stop reading this long before Lambda's timeout, to save the cursor


@cache
def dependencies() -> History:
    return from_lambda_env()


def progress(cursors: list[Cursor]) -> list[dict[str, Any]]:
    return [
        {
            "account": c.account,
            "type": c.resource,
            "done": c.done,
            "pages": c.pages,
            "objects": c.objects,
            "stored": c.stored,
            "poison": c.poison,
        }
        for c in cursors
    ]


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One step of a backfill; any outage is raised as RetryLaterError, the name the state machine retries."""
    try:
        return step(event, context)
    except UnavailableError as error:
        logger.warning(f"backfill step will be retried: {error}", extra={"reason": error.code})
        raise RetryLaterError(f"{error.code}: {error}") from error


def step(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = dependencies()
    options = BackfillOptions.from_request(event.get("options") or {})
    logger.set_correlation_id(options.run_id)
    before = {(c.account, c.resource): c for c in deps.cursors.cursors(options.run_id)}
    backfill = deps.backfill(options, time.time())
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN_SECONDS
    cursors = run_backfill(options, backfill, deadline=deadline)
    for name, attribute in (
        (Metric.BACKFILL_PAGES, "pages"),
        (Metric.BACKFILL_OBJECTS, "objects"),
        (Metric.BACKFILL_STORED, "stored"),
        (Metric.BACKFILL_POISON, "poison"),
    ):
        delta = sum(
            getattr(c, attribute) - getattr(before.get((c.account, c.resource)), attribute, 0)
            for c in cursors
        )
        metrics.add_metric(name, MetricUnit.Count, delta)
    metrics.add_metric(Metric.STRIPE_RETRIES, MetricUnit.Count, backfill.reader.retries)
    done = all(c.done for c in cursors)  # run_backfill stops at the deadline on a cursor not done
    logger.info("backfill step", extra={"done": done, "progress": progress(cursors)})
    return {
        "options": options.to_request(),
        "run_id": options.run_id,
        "done": done,
        "progress": progress(cursors),
    }
