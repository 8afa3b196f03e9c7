"""Read API Lambda: serves Stripe objects from the store so internal services spend no Stripe rate limit."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware import apigw, aws, read_api
from stripe_middleware.store import ObjectStore, StoreUnavailableError

logger = Logger()
metrics = Metrics()


@cache
def store() -> ObjectStore:
    return ObjectStore(aws.client("dynamodb"), os.environ["TABLE_NAME"])


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    params = event.get("pathParameters") or {}
    query = event.get("queryStringParameters") or {}
    route = apigw.route_key(event)
    try:
        if route.startswith("GET /v1/customers/"):
            answer = read_api.customer_objects(store(), params.get("customer_id", ""), query)
        elif route.startswith("GET /v1/objects/"):
            answer = read_api.get_object(
                store(), params.get("object_type", ""), params.get("object_id", ""), query
            )
        else:
            answer = read_api.Answer(404, {"error": "not_found", "message": f"no route {route}"})
    except StoreUnavailableError:
        logger.exception("store unavailable")
        answer = read_api.Answer(503, {"error": "store_unavailable", "message": "retry later"})
    metrics.add_metric("ReadRequests", MetricUnit.Count, 1)
    logger.info("read", extra={"route": route, "status": answer.status})
    return apigw.json_response(answer.status, answer.body)
