"""Read API Lambda: serves Stripe objects from the store so internal services spend no Stripe rate limit."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.adapters.dynamodb.reconciliation import DynamoReconciliationStore
from stripe_middleware.adapters.dynamodb.signals import SignalStore
from stripe_middleware.read import queries
from stripe_middleware.read.ports import ReadStore, ReconciliationReader, SignalReader
from stripe_middleware.shared import http
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import NotFoundError, RejectedError, UnavailableError

logger = Logger()
metrics = Metrics()


@cache
def store() -> ReadStore:
    return ObjectStore(aws.client("dynamodb"), os.environ["TABLE_NAME"])


@cache
def signals() -> SignalReader:
    return SignalStore(aws.client("dynamodb"), os.environ["TABLE_NAME"])


@cache
def reconciliations() -> ReconciliationReader:
    return DynamoReconciliationStore(aws.client("dynamodb"), os.environ["TABLE_NAME"])


def answer(route: str, params: dict[str, str], query: dict[str, str]) -> dict[str, Any]:
    """The 200 body of a route (RejectedError / UnavailableError otherwise)."""
    customer_id = params.get("customer_id", "")
    if route == "GET /v1/customers/{customer_id}/objects":
        return queries.customer_objects(store(), customer_id, query)
    if route == "GET /v1/customers/{customer_id}/signals":
        return queries.customer_signals(signals(), customer_id, query)
    if route == "GET /v1/signals":
        return queries.list_signals(signals(), query)
    if route == "GET /v1/reconciliation/payouts/{payout_id}":
        return queries.get_reconciliation(reconciliations(), params.get("payout_id", ""), query)
    if route == "GET /v1/reconciliation":
        return queries.list_reconciliations(reconciliations(), query)
    if route == "GET /v1/objects/{object_type}/{object_id}":
        return queries.get_object(store(), params.get("object_type", ""), params.get("object_id", ""), query)
    raise NotFoundError(f"no route {route}")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    params = event.get("pathParameters") or {}
    query = event.get("queryStringParameters") or {}
    route = http.route_key(event)
    try:
        response = http.json_response(200, answer(route, params, query))
    except RejectedError as error:
        response = http.rejected_response(error)
    except UnavailableError as error:
        logger.exception("store unavailable")
        response = http.unavailable_response(error)
    metrics.add_metric(Metric.READ_REQUESTS, MetricUnit.Count, 1)
    logger.info("read", extra={"route": route, "status": response["statusCode"]})
    return response
