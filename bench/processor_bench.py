"""3. Processor: API calls, DynamoDB write units and CPU per unique event, ours vs the naive reference.

Both run in-process against moto with the same batches (10 messages, 30 % duplicate deliveries); CPU
includes moto's emulation for both, so the ratio is what compares.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any

from bench.measure import QUIET, CallCounter, in_process_aws


class _Context:
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def batches(unique: int, duplicate_share: float, seed: int = 7) -> tuple[list[list[str]], int]:
    from events import billing_lifecycle

    events: list[dict[str, Any]] = []
    n = 0
    while len(events) < unique:
        events.extend(billing_lifecycle(n))
        n += 1
    events = events[:unique]
    rng = random.Random(seed)
    duplicates = int(unique * duplicate_share / (1 - duplicate_share))
    deliveries = [json.dumps(e) for e in events] + [json.dumps(rng.choice(events)) for _ in range(duplicates)]
    rng.shuffle(deliveries)
    return [deliveries[i : i + 10] for i in range(0, len(deliveries), 10)], len(events)


def sqs_event(bodies: list[str], offset: int) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": f"m{offset}-{i}", "body": b, "attributes": {}} for i, b in enumerate(bodies)
        ]
    }


def run(unique: int = 700, duplicate_share: float = 0.3) -> dict[str, Any]:
    in_process_aws()

    import boto3
    from moto import mock_aws

    from stripe_middleware.adapters.dynamodb.table import INDEXED_ATTRIBUTES, INDEXES
    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware_dev.tables import create_table_request

    work, unique_count = batches(unique, duplicate_share)
    real_stdout, sys.stdout = sys.stdout, QUIET
    try:
        from bench import naive_processor
        from functions.processor import handler as processor

        with mock_aws():
            dynamodb, events = boto3.client("dynamodb"), boto3.client("events")
            dynamodb.create_table(**create_table_request("store"))
            for name, key in (("naive-objects", "pk"), ("naive-idempotency", "id")):
                schema = [{"AttributeName": key, "KeyType": "HASH"}] + (
                    [{"AttributeName": "sk", "KeyType": "RANGE"}] if key == "pk" else []
                )
                dynamodb.create_table(
                    TableName=name,
                    BillingMode="PAY_PER_REQUEST",
                    KeySchema=schema,
                    AttributeDefinitions=[
                        {"AttributeName": a["AttributeName"], "AttributeType": "S"} for a in schema
                    ],
                )
            events.create_event_bus(Name="bus")
            os.environ.update(TABLE_NAME="store", EVENT_BUS_NAME="bus", STRIPE_API_VERSION=STRIPE_API_VERSION)
            os.environ.pop("STRIPE_API_KEY_SECRET_ID", None)
            processor.dependencies.cache_clear()
            deps = processor.dependencies()
            ours = CallCounter({i.partition_key: INDEXED_ATTRIBUTES for i in INDEXES})
            ours.attach(deps.store._client)
            ours.attach(deps.publisher._client)
            start = time.process_time()
            for i, batch in enumerate(work):
                assert processor.handler(sqs_event(batch, i), _Context())["batchItemFailures"] == []
            ours_cpu = time.process_time() - start

            naive_dynamodb, naive_events = boto3.client("dynamodb"), boto3.client("events")
            naive = CallCounter()
            naive.attach(naive_dynamodb)
            naive.attach(naive_events)
            handle = naive_processor.make_processor(
                naive_dynamodb, naive_events, "naive-objects", "naive-idempotency", "bus"
            )
            start = time.process_time()
            for i, batch in enumerate(work):
                handle(sqs_event(batch, i), _Context())
            naive_cpu = time.process_time() - start
    finally:
        sys.stdout = real_stdout

    def per_event(counter: CallCounter, cpu: float) -> dict[str, Any]:
        return {
            "api_calls_per_unique_event": round(counter.total_calls / unique_count, 3),
            "dynamodb_write_units_per_unique_event": round(counter.write_units / unique_count, 3),
            "cpu_ms_per_unique_event": round(cpu / unique_count * 1000, 3),
            "calls": dict(counter.calls),
        }

    result = {
        "unique_events": unique_count,
        "deliveries": sum(len(b) for b in work),
        "batch_size": 10,
        "ours": per_event(ours, ours_cpu),
        "naive": per_event(naive, naive_cpu),
        "target": "<= 1.3 API calls per unique event",
    }
    result["calls_ratio_ours_over_naive"] = round(
        result["ours"]["api_calls_per_unique_event"] / result["naive"]["api_calls_per_unique_event"], 3
    )
    result["cpu_ratio_ours_over_naive"] = round(
        result["ours"]["cpu_ms_per_unique_event"] / result["naive"]["cpu_ms_per_unique_event"], 3
    )
    result["met"] = result["ours"]["api_calls_per_unique_event"] <= 1.3
    return result
