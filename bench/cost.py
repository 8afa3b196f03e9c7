"""4. Cost per million events end to end, from bench/prices.json and the figures measured in this run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from infra.constructs.warehouse import BUFFER_MIB, BUFFER_SECONDS
from stripe_middleware_dev.analytics import VIEWS

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


# -- the warehouse export (issue 12): bus rules → Firehose (Parquet, partitioned) → S3 → Glue → Athena ----
GIB = 1024**3
TIB = 1024**4
SECONDS_PER_MONTH = 30 * 86_400
FIREHOSE_BUFFER_SECONDS = BUFFER_SECONDS  # the stack's, so the model cannot drift from what is deployed
FIREHOSE_BUFFER_BYTES = BUFFER_MIB * 1024**2


def export_per_million(
    event_bytes_parquet: float = 250.0,
    *,
    row_json_bytes: float = 800.0,  # the rows of tests/infra/test_warehouse_stack.py: 670 to 850
    events_per_month: float = 1_000_000.0,
    rows_per_event: float = 1.0,
    active_partitions: int = 2,  # today's event rows, and a late event or a signal
    jq_ms_per_row: float = 0.05,
    glue_requests_per_object: float = 1.0,
    warehouse_months: float = 12.0,
    saved_queries: int = len(VIEWS),  # one saved query per analytics view
    query_runs_per_month: float = 30.0,
    table_scans_per_query: float = 2.0,
    gets_per_file_scan: float = 1.0,  # a small file's tail read holds its footer and its data
    scanned_share: float = 0.5,
    projected_partitions: int = 3 * 3 * 365,
    glue_requests_per_query: float = 10.0,
    archive_json_bytes: float = 3000.0,  # a Stripe event's published detail (the archive's line)
    archive_gzip_ratio: float = 0.15,
) -> dict[str, Any]:
    """Dollars per million published events for the warehouse, at `events_per_month`.

    - Firehose bills ingestion and format conversion on the JSON rows, each rounded up to 5 KB; dynamic
      partitioning on the Parquet delivered, on every S3 object (each active partition closes a file at
      every buffer interval or 128 MiB) and on JQ time.
    - S3: one PUT per object, a month of storage of the month's Parquet (it accrues for as long as it is
      kept: multiply by the months kept).
    - Athena: the saved queries (`saved_queries` views) run `query_runs_per_month` times on a warehouse of
      `warehouse_months` months of rows, each scanning `table_scans_per_query` times the `scanned_share` of
      the Parquet (10 MB minimum); each scan lists every projected partition (`projected_partitions`:
      record kinds times days since the projection's first date), each LIST billed like a PUT, and reads
      every file kept (`gets_per_file_scan` GETs each): small files, not bytes, are what cost at low volume.
    - Glue: Firehose's schema reads (per object) and the queries' table reads.
    - The event archive (the churn model's retraining input): Firehose ingestion of each Stripe event's
      detail (rounded up to 5 KB), one gzipped object per buffer interval, a month of its storage.
    """
    rows = events_per_month * rows_per_event
    rounding = PRICES["firehose_record_rounding_bytes"]
    ingested_gb = rows * math.ceil(row_json_bytes / rounding) * rounding / GIB
    parquet_gb = rows * event_bytes_parquet / GIB
    intervals = SECONDS_PER_MONTH / FIREHOSE_BUFFER_SECONDS
    objects = max(active_partitions * intervals, parquet_gb * GIB / FIREHOSE_BUFFER_BYTES)
    queries = saved_queries * query_runs_per_month
    warehouse_bytes = parquet_gb * GIB * warehouse_months
    scanned_per_query = max(
        PRICES["athena_min_bytes_per_query"], warehouse_bytes * scanned_share * table_scans_per_query
    )
    lists = queries * table_scans_per_query * projected_partitions
    files_kept = objects * warehouse_months
    gets = queries * table_scans_per_query * files_kept * gets_per_file_scan
    monthly = {
        "firehose_ingestion": ingested_gb * PRICES["firehose_direct_put_per_gb"],
        "firehose_format_conversion": ingested_gb * PRICES["firehose_format_conversion_per_gb"],
        "firehose_dynamic_partitioning_gb": parquet_gb * PRICES["firehose_dynamic_partitioning_per_gb"],
        "firehose_dynamic_partitioning_objects": objects
        / 1000
        * PRICES["firehose_dynamic_partitioning_per_1000_objects"],
        "firehose_dynamic_partitioning_jq": rows
        * jq_ms_per_row
        / 3_600_000
        * PRICES["firehose_dynamic_partitioning_per_jq_hour"],
        "s3_puts": objects / 1000 * PRICES["s3_put_list_per_1000_requests"],
        "s3_storage_one_month": parquet_gb * PRICES["s3_standard_per_gb_month"],
        "glue_catalog_requests": (objects * glue_requests_per_object + queries * glue_requests_per_query)
        / 1_000_000
        * PRICES["glue_catalog_per_million_requests"],
        "athena_scanned": queries * scanned_per_query / TIB * PRICES["athena_per_tb_scanned"],
        "s3_lists_for_queries": lists / 1000 * PRICES["s3_put_list_per_1000_requests"],
        "s3_gets_for_queries": gets / 1000 * PRICES["s3_get_per_1000_requests"],
        "archive_firehose_ingestion": events_per_month
        * math.ceil(archive_json_bytes / rounding)
        * rounding
        / GIB
        * PRICES["firehose_direct_put_per_gb"],
        "archive_s3_puts": intervals / 1000 * PRICES["s3_put_list_per_1000_requests"],
        "archive_s3_storage_one_month": events_per_month
        * archive_json_bytes
        * archive_gzip_ratio
        / GIB
        * PRICES["s3_standard_per_gb_month"],
    }
    millions = events_per_month / 1_000_000
    lines = {k: v / millions for k, v in monthly.items()}
    querying = ("athena_scanned", "s3_lists_for_queries", "s3_gets_for_queries")
    return {
        "prices": {"date": PRICES["date"], "region": PRICES["region"], "source": PRICES["export_source"]},
        "assumptions": {
            "events_per_month": events_per_month,
            "rows_per_event": rows_per_event,
            "row_json_bytes": row_json_bytes,
            "event_bytes_parquet": event_bytes_parquet,
            "active_partitions": active_partitions,
            "buffer_seconds": FIREHOSE_BUFFER_SECONDS,
            "jq_ms_per_row": jq_ms_per_row,
            "warehouse_months": warehouse_months,
            "warehouse_gb": round(warehouse_bytes / GIB, 3),
            "saved_queries": saved_queries,
            "query_runs_per_month": query_runs_per_month,
            "table_scans_per_query": table_scans_per_query,
            "scanned_share": scanned_share,
            "projected_partitions": projected_partitions,
            "gets_per_file_scan": gets_per_file_scan,
            "archive_json_bytes": archive_json_bytes,
            "archive_gzip_ratio": archive_gzip_ratio,
        },
        "objects_per_month": round(objects),
        "lines_usd_per_million_events": {k: round(v, 4) for k, v in lines.items()},
        "total_usd_per_million_events": round(sum(lines.values()), 4),
        "total_usd_per_month": round(sum(monthly.values()), 2),
        # Writing grows with the events; querying with the runs of the saved queries and the files kept.
        "writing_usd_per_million_events": round(sum(v for k, v in lines.items() if k not in querying), 4),
        "querying_usd_per_month": round(sum(monthly[k] for k in querying), 2),
    }


DUNNING_MEMORY_MB = 256  # the step and starter functions' memory (infra/constructs/python_function.py)
READ_UNITS_PER_STEP_READ = (
    1.0  # stated, not measured: an invoice or subscription under 8 KB, eventually consistent
)


def dunning_per_thousand(dunning: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, Any]:
    """Dollars per 1,000 failed invoices that run the whole dunning policy (from bench/dunning_bench.py),
    against what the pipeline costs for the events that started them (its two failures each, with the
    deliveries' duplicates: `pipeline` is `per_million`'s result)."""
    steps, starter = dunning["steps"], dunning["starter"]
    stages = dunning["stages"]
    messages = dunning["published_failures"] / dunning["invoices"]  # starter messages per invoice
    reads = steps["dynamodb_reads_per_step"]
    # The step's own CPU (moto's scans left out) and a round trip for each read and the PutEvents.
    step_ms = steps["cpu_ms_per_step_but_store_reads"] + (reads + 1) * DYNAMODB_CALL_MS
    starter_ms = starter["cpu_ms_per_message"] + DYNAMODB_CALL_MS  # one StartExecution
    gb_s = (stages * step_ms + messages * starter_ms) / 1000 * DUNNING_MEMORY_MB / 1024
    per_invoice = {
        "step_functions": dunning["transitions"]["whole_policy"]
        * PRICES["stepfunctions_standard_per_1000_state_transitions"]
        / 1000,
        "lambda_requests": (stages + messages / 10) * PRICES["lambda_per_million_requests"] / 1e6,
        "lambda_compute": gb_s * PRICES["lambda_arm64_per_gb_second"],
        "sqs": messages * (1 + 2 / 10) * PRICES["sqs_standard_per_million_requests_64kb"] / 1e6,
        "dynamodb_reads": stages
        * reads
        * READ_UNITS_PER_STEP_READ
        * PRICES["dynamodb_on_demand_per_million_read_units"]
        / 1e6,
        "eventbridge": stages
        * steps["put_events_entries_per_step"]
        * PRICES["eventbridge_custom_events_per_million_64kb"]
        / 1e6,
    }
    lines = {k: v * 1000 for k, v in per_invoice.items()}
    total = sum(lines.values())
    failures = dunning["failure_events"] / dunning["invoices"]  # unique `invoice.payment_failed` events
    pipeline_per_thousand = failures * pipeline["total_usd_per_million_unique_events"] / 1000
    return {
        "assumptions": {
            "dynamodb_call_ms": DYNAMODB_CALL_MS,
            "read_units_per_step_read": READ_UNITS_PER_STEP_READ,
            "memory_mb": DUNNING_MEMORY_MB,
            "stepfunctions_source": PRICES["stepfunctions_source"],
        },
        "lines_usd_per_thousand_invoices": {k: round(v, 4) for k, v in lines.items()},
        "total_usd_per_thousand_invoices": round(total, 3),
        "pipeline_usd_per_thousand_invoices": round(pipeline_per_thousand, 4),
        "over_the_pipeline": round(total / pipeline_per_thousand, 1) if pipeline_per_thousand else None,
    }
