"""Dunning step Lambda, one stage of the dunning state machine: check the store, emit, act.

Input `{"case": {...}, "stage": {...}}` (dunning.models.StepRequest); output `{"stopped", "reason",
"step_id"}`, and the state machine ends the workflow when `stopped`. An outage is raised as RetryLaterError,
the name the state machine retries; an input that is not a step request fails the execution at once.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters.dunning import DunningAdapters, step_from_lambda_env
from stripe_middleware.dunning.models import StepRequest
from stripe_middleware.dunning.ports import RetryLaterError
from stripe_middleware.dunning.step import run_step
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import UnavailableError

logger = Logger()
metrics = Metrics()


@cache
def dependencies() -> DunningAdapters:
    return step_from_lambda_env()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = StepRequest.model_validate(event)
    logger.set_correlation_id(request.case.invoice_id)
    deps = dependencies()
    try:
        result = run_step(
            request.case, request.stage, billing=deps.billing, publisher=deps.publisher, now=time.time()
        )
    except UnavailableError as error:
        logger.warning(f"dunning step will be retried: {error}", extra={"reason": error.code})
        raise RetryLaterError(f"{error.code}: {error}") from error
    logger.info(
        "dunning step",
        extra={"stage": request.stage.name, "attempt": request.stage.attempt, **result.output()},
    )
    with single_metric(name=Metric.DUNNING_STEPS, unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="stage", value="stopped" if result.detail is None else request.stage.name)
    for command in result.commands:
        with single_metric(name=Metric.DUNNING_COMMANDS, unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="operation", value=command["operation"])
    return result.output()
