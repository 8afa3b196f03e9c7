"""6. Backfill throughput against the read rate it may use, and pages lost.

A fake Stripe with Stripe's test-mode limit (25 req/s, 429 beyond) serves customers with one card each;
the backfill reads `customers` and `payment_methods` (one list call per customer, the shape that makes a
backfill rate-bound). The limit it may use is the repository's config/gateway.yaml: test_per_second x
share x read_share (10 req/s). Reported: Stripe calls answered per second over that limit (target >= 0.9),
Stripe 429s (the shared limiter should leave none), and objects lost (listed by Stripe, not in the store).
AWS is moto's server on loopback.
"""

from __future__ import annotations

import time
from typing import Any

from bench.measure import moto_server

STRIPE_TEST_LIMIT = 25  # requests per second, Stripe's test-mode default


def run(customers: int = 200) -> dict[str, Any]:
    import boto3

    from events import stripe_object
    from stripe_middleware.adapters.history import build
    from stripe_middleware.backfill.options import BackfillOptions
    from stripe_middleware.backfill.run import run_backfill
    from stripe_middleware.backfill.settings import HistorySettings
    from stripe_middleware.commands.config import load_gateway_config
    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware_dev.tables import create_table_request
    from tests.fakes.stripe_server import fake_stripe

    load_gateway_config.cache_clear()  # an earlier measure (the gateway's) may have cached its own
    allowed = load_gateway_config().rate_limit.read_limits(False, "/v1/customers")[1][1]  # the reads' share
    with moto_server(), fake_stripe() as stripe_server:
        stripe_server.rate_limit = STRIPE_TEST_LIMIT
        created = int(time.time()) - 86_400
        for n in range(customers):
            customer = f"cus_bench{n:06d}"
            stripe_server.objects[f"/v1/customers/{customer}"] = stripe_object(
                "customer", id=customer, created=created - n
            )
            stripe_server.objects[f"/v1/payment_methods/pm_bench{n:06d}"] = stripe_object(
                "payment_method", id=f"pm_bench{n:06d}", customer=customer, created=created - n
            )
        dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
        dynamodb.create_table(**create_table_request("store"))
        boto3.client("events").create_event_bus(Name="bus")
        settings = HistorySettings(
            table_name="store",
            event_bus_name="bus",
            stripe_api_version=STRIPE_API_VERSION,
            stripe_api_key_secret_id="",
            dead_letter_queue_url=sqs.create_queue(QueueName="backfill-dlq")["QueueUrl"],
            events_queue_url=sqs.create_queue(QueueName="events")["QueueUrl"],
            stripe_api_base=stripe_server.url,
        )
        history = build(settings, boto3.client, "rk_test_bench")
        options = BackfillOptions.from_request({"types": ["customers", "payment_methods"]})
        backfill = history.backfill(options, time.time())
        started = time.monotonic()
        cursors = run_backfill(options, backfill)
        wall = time.monotonic() - started
        gets = [r for r in stripe_server.requests if r.method == "GET"]
        answered = sorted(r.at for r in gets if r.status == 200)
        throughput = (len(answered) - 1) / (answered[-1] - answered[0]) if len(answered) > 1 else 0.0
        stored = _stored_objects(dynamodb)
        lost = 2 * customers - stored
        result = {
            "objects": 2 * customers,
            "stripe_calls": len(answered),
            "allowed_read_per_second": allowed,
            "achieved_per_second": round(throughput, 2),
            "throughput_over_limit": round(throughput / allowed, 3),
            "stripe_429s": sum(1 for r in gets if r.status == 429),
            "lost_objects": lost,
            "poison": sum(c.poison for c in cursors),
            "objects_per_second": round(2 * customers / wall, 1),
            "wall_seconds": round(wall, 1),
            "target": ">= 0.9 of the allowed read rate, 0 lost",
        }
        result["met"] = result["throughput_over_limit"] >= 0.9 and lost == 0
        return result


def _stored_objects(dynamodb: Any) -> int:
    count = 0
    for page in dynamodb.get_paginator("scan").paginate(
        TableName="store",
        FilterExpression="begins_with(pk, :obj)",
        ExpressionAttributeValues={":obj": {"S": "OBJ#"}},
        Select="COUNT",
    ):
        count += page["Count"]
    return count
