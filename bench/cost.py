"""4. Cost per million events end to end, from bench/prices.json and the figures measured in this run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

PRICES = json.loads((Path(__file__).parent / "prices.json").read_text())
# Latencies the in-process measurements cannot see (answered locally here), stated, not measured:
SQS_SEND_MS = 15.0  # ingest's SendMessage round trip
PROCESSOR_IO_MS_PER_BATCH = 8.0 * 3 + 20.0  # BatchGetItem + BatchWriteItem + PutEvents, plus...
PROCESSOR_PUT_MS = 6.0  # ...one conditional PutItem per unique event
INGEST_MEMORY_MB, PROCESSOR_MEMORY_MB = 256, 512  # as configured in infra/constructs
EVENT_BYTES = 4 * 1024  # a typical Stripe event; one 64 KB chunk for SQS and EventBridge


def per_million(
    ingest: dict[str, Any], processor: dict[str, Any], duplicate_share: float = 0.3
) -> dict[str, Any]:
    """Dollars per million events Stripe delivers (30 % of them duplicates), and per million unique events."""
    deliveries = 1 / (1 - duplicate_share)  # deliveries per unique event
    ingest_ms = ingest["2KB"]["ours_ms"] + SQS_SEND_MS
    ours = processor["ours"]
    batches = deliveries / 10
    processor_ms = batches * PROCESSOR_IO_MS_PER_BATCH + PROCESSOR_PUT_MS + ours["cpu_ms_per_unique_event"]
    gb_s = (
        deliveries * ingest_ms / 1000 * INGEST_MEMORY_MB + processor_ms / 1000 * PROCESSOR_MEMORY_MB
    ) / 1024
    chunks = math.ceil(EVENT_BYTES / (64 * 1024))
    lines = {
        "api_gateway_http_api": deliveries * PRICES["http_api_per_million_requests"],
        "lambda_requests": (deliveries + batches) * PRICES["lambda_per_million_requests"],
        "lambda_compute": gb_s * 1_000_000 * PRICES["lambda_arm64_per_gb_second"],
        "sqs": (deliveries * chunks + 2 * batches) * PRICES["sqs_standard_per_million_requests_64kb"],
        "dynamodb_writes": ours["dynamodb_write_units_per_unique_event"]
        * PRICES["dynamodb_on_demand_per_million_write_units"],
        "dynamodb_reads": batches * 10 * 0.5 * PRICES["dynamodb_on_demand_per_million_read_units"],
        "eventbridge": chunks * PRICES["eventbridge_custom_events_per_million_64kb"],
    }
    total = sum(lines.values())
    per_delivery = total / deliveries  # what a webhook service bills: every event Stripe sends
    return {
        "prices": {"date": PRICES["date"], "region": PRICES["region"], "source": PRICES["source"]},
        "assumptions": {
            "duplicate_share": duplicate_share,
            "event_bytes": EVENT_BYTES,
            "sqs_send_ms": SQS_SEND_MS,
            "processor_io_ms_per_batch": PROCESSOR_IO_MS_PER_BATCH,
            "processor_put_ms": PROCESSOR_PUT_MS,
        },
        "lines_usd_per_million_unique_events": {k: round(v, 3) for k, v in lines.items()},
        "total_usd_per_million_unique_events": round(total, 2),
        "total_usd_per_million": round(per_delivery, 2),
        "anchors_usd_per_million": PRICES["anchors_per_million_events"],
        "target": "<= $4 per million",
        "met": per_delivery <= 4,
    }


SIGNALS_MEMORY_MB = 512  # as configured in infra/constructs/signals.py
DYNAMODB_CALL_MS = 6.0  # stated, not measured: one DynamoDB or EventBridge round trip


def signals_per_million(signals: dict[str, Any]) -> dict[str, Any]:
    """Dollars the signals path adds per million events published on the bus (from bench/signals_bench.py)."""
    ours = signals["ours"]
    batches = 1 / 10
    compute_ms = ours["cpu_ms_per_event"] + ours["api_calls_per_event"] * DYNAMODB_CALL_MS
    read_units = ours["dynamodb_read_calls_per_event"] * signals["read_units_per_read_call"]
    lines = {
        "lambda_requests": batches * PRICES["lambda_per_million_requests"],
        "lambda_compute": compute_ms
        / 1000
        * SIGNALS_MEMORY_MB
        / 1024
        * 1_000_000
        * PRICES["lambda_arm64_per_gb_second"],
        "sqs": (1 + 2 * batches)
        * PRICES["sqs_standard_per_million_requests_64kb"],  # rule → queue, poll, delete
        "dynamodb_writes": ours["dynamodb_write_units_per_event"]
        * PRICES["dynamodb_on_demand_per_million_write_units"],
        "dynamodb_reads": read_units * PRICES["dynamodb_on_demand_per_million_read_units"],
        "eventbridge": ours["calls"].get("PutEvents", 0)
        / signals["published_events"]
        * PRICES["eventbridge_custom_events_per_million_64kb"],
    }
    return {
        "assumptions": {
            "dynamodb_call_ms": DYNAMODB_CALL_MS,
            "read_units_per_read_call": signals["read_units_per_read_call"],
        },
        "lines_usd_per_million_events": {k: round(v, 3) for k, v in lines.items()},
        "total_usd_per_million_events": round(sum(lines.values()), 2),
    }
