"""7. Signals: API calls, DynamoDB write units and CPU per published event, against the processor's for
the same Stripe events in the same run; and the scheduled retraining's memory and CPU per archived event,
against reading the archive's JSON lines alone (`training`).

The processor runs first on the processor bench's stream (30 % duplicate deliveries); everything it
publishes that the stack's rule sends to signals (Stripe events, not the middleware's own detail-types)
goes through the signals handler in batches of 10. Both run in-process on moto, so the ratios compare.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from bench.measure import QUIET, CallCounter, drain_queue, in_process_aws
from bench.processor_bench import _Context, batches, sqs_event

READ_UNITS_PER_READ_CALL = 1.0  # stated, not measured: a subject's facts fit in a 4 KB read (0.5 per 4 KB)


def run(unique: int = 700, duplicate_share: float = 0.3) -> dict[str, Any]:
    in_process_aws()
    import boto3
    from moto import mock_aws

    from stripe_middleware.adapters.dynamodb.table import INDEXED_ATTRIBUTES, INDEXES
    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware_dev import use_repo_config
    from stripe_middleware_dev.tables import create_table_request

    use_repo_config()
    work, unique_count = batches(unique, duplicate_share)
    real_stdout, sys.stdout = sys.stdout, QUIET
    try:
        from functions.processor import handler as processor
        from functions.signals import handler as signals

        with mock_aws():
            dynamodb, events, sqs = boto3.client("dynamodb"), boto3.client("events"), boto3.client("sqs")
            dynamodb.create_table(**create_table_request("store"))
            events.create_event_bus(Name="bus")
            queue_url = sqs.create_queue(QueueName="signals")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
            events.put_rule(Name="signals", EventBusName="bus", EventPattern=json.dumps(_signal_inputs()))
            events.put_targets(
                Rule="signals", EventBusName="bus", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}]
            )
            os.environ.update(TABLE_NAME="store", EVENT_BUS_NAME="bus", STRIPE_API_VERSION=STRIPE_API_VERSION)
            os.environ.pop("STRIPE_API_KEY_SECRET_ID", None)
            processor.dependencies.cache_clear()
            reference = CallCounter({i.partition_key: INDEXED_ATTRIBUTES for i in INDEXES})
            reference.attach(processor.dependencies().store._client)
            start = time.process_time()
            for i, batch in enumerate(work):
                assert processor.handler(sqs_event(batch, i), _Context())["batchItemFailures"] == []
            processor_cpu = time.process_time() - start

            inputs = drain_queue(sqs, queue_url)
            signals.dependencies.cache_clear()
            signals.model_in_use.cache_clear()
            detector = signals.detector()
            ours = CallCounter({i.partition_key: INDEXED_ATTRIBUTES for i in INDEXES})
            ours.attach(detector.keywords["state"]._client)
            ours.attach(detector.keywords["publisher"]._client)
            start = time.process_time()
            for i in range(0, len(inputs), 10):
                assert (
                    signals.handler(sqs_event(inputs[i : i + 10], i), _Context())["batchItemFailures"] == []
                )
            signals_cpu = time.process_time() - start
            raised = len(
                drain_queue(sqs, queue_url)
            )  # (none: the rule keeps the signals out of its own queue)
    finally:
        sys.stdout = real_stdout

    published = len(inputs)
    reads = sum(n for call, n in ours.calls.items() if call in ("Query", "GetItem", "BatchGetItem"))
    result: dict[str, Any] = {
        "published_events": published,
        "signals_requeued": raised,
        "ours": {
            "api_calls_per_event": round(ours.total_calls / published, 3),
            "dynamodb_write_units_per_event": round(ours.write_units / published, 3),
            "dynamodb_read_calls_per_event": round(reads / published, 3),
            "cpu_ms_per_event": round(signals_cpu / published * 1000, 3),
            "calls": dict(ours.calls),
        },
        "processor": {
            "dynamodb_write_units_per_unique_event": round(reference.write_units / unique_count, 3),
            "cpu_ms_per_unique_event": round(processor_cpu / unique_count * 1000, 3),
        },
    }
    result["cpu_ratio_over_processor"] = round(
        result["ours"]["cpu_ms_per_event"] / result["processor"]["cpu_ms_per_unique_event"], 3
    )
    result["write_units_ratio_over_processor"] = round(
        result["ours"]["dynamodb_write_units_per_event"]
        / result["processor"]["dynamodb_write_units_per_unique_event"],
        3,
    )
    result["read_units_per_read_call"] = READ_UNITS_PER_READ_CALL
    return result


def training(customers: int = 1000, months: int = 12) -> dict[str, Any]:
    """Retraining (signals/retraining.py) on a simulated history's archived details: peak Python memory
    per event against the JSON text's size, and CPU against parsing the lines alone (the floor)."""
    import tracemalloc
    from datetime import datetime
    from pathlib import Path

    from stripe_middleware.signals.churn import load_churn_model
    from stripe_middleware.signals.retraining import retrain
    from stripe_middleware.signals.training import detail_of
    from stripe_middleware_dev.simulate import simulate

    events = simulate(customers, months, 7, datetime(2025, 1, 1), attacks={}).events
    lines = [json.dumps(found[1]) for e in events if (found := detail_of(e))]
    now = max(e["created"] for e in events)
    prior = load_churn_model(Path(__file__).parents[1] / "config" / "churn_model.json")

    class Archive:
        skipped = 0

        def events(self, since: int) -> Any:
            return (json.loads(line) for line in lines)

    class Models:
        def read(self, key: str) -> None:
            return None

        def write(self, key: str, text: str) -> None:
            pass

    start = time.process_time()
    parsed = list(Archive().events(0))
    parse_cpu = time.process_time() - start
    del parsed
    tracemalloc.start()
    start = time.process_time()
    outcome = retrain(
        Archive(), Models(), in_use=prior, now=now, window_days=400, horizon_days=60, min_auc=0.6
    )
    train_cpu = time.process_time() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    json_bytes = sum(len(line) + 1 for line in lines)
    return {
        "archived_events": len(lines),
        "status": outcome.status,
        "held_out_roc_auc": outcome.report.get("metrics", {}).get("roc_auc"),
        "peak_bytes_per_event": round(peak / len(lines)),
        "memory_ratio_over_json": round(peak / json_bytes, 2),
        "cpu_ms_per_event": round(train_cpu / len(lines) * 1000, 3),
        "cpu_ratio_over_parsing": round(train_cpu / parse_cpu, 1),
    }


def _signal_inputs() -> dict[str, Any]:
    """The stack's rule (infra/constructs/signals.py), as CloudFormation renders it."""
    return {
        "source": ["stripe-middleware"],
        "detail-type": [
            {"anything-but": {"prefix": "stripe-middleware."}},
            "stripe-middleware.object.backfilled",
        ],
    }
