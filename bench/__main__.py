"""`make bench`: the hot paths against references measured in the same run; writes bench/results.json."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from bench import (
    backfill_bench,
    cdnow,
    cold_import,
    cost,
    detectors_bench,
    dunning_bench,
    gateway_bench,
    ingest_bench,
    processor_bench,
    reconciliation_bench,
    signals_bench,
    warehouse_bench,
)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test, not a measurement)")
    args = parser.parse_args()
    runs, iterations, unique, commands, customers = (
        (3, 200, 140, 60, 30) if args.quick else (7, 2000, 700, 250, 300)
    )
    results = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "ingest_cold_start": ingest_bench.cold_start(runs),
        "cold_import": cold_import.run(runs),
        "ingest_warm_cpu": ingest_bench.warm_cpu(iterations),
        "processor": processor_bench.run(unique),
    }
    results["cost_per_million"] = cost.per_million(results["ingest_warm_cpu"], results["processor"])
    results["gateway"] = gateway_bench.run(commands)
    results["backfill"] = backfill_bench.run(customers)
    results["signals"] = signals_bench.run(unique)
    results["signals"]["cost_per_million"] = cost.signals_per_million(results["signals"])
    results["signals"]["retraining"] = signals_bench.training(*((300, 8) if args.quick else (1000, 12)))
    results["detectors"] = detectors_bench.run()
    results["cdnow"] = cdnow.run(2000 if args.quick else None)
    results["warehouse"] = warehouse_bench.run(1000, 12) if args.quick else warehouse_bench.run()
    warehouse = results["warehouse"]
    results["export_cost"] = cost.export_per_million(warehouse["parquet_mb"] * 1e6 / warehouse["rows"])
    results["reconciliation"] = reconciliation_bench.run(2000 if args.quick else 10_000)
    results["dunning"] = dunning_bench.run(50 if args.quick else 500, dunning_bench.synthesized_definition())
    results["dunning"]["cost"] = cost.dunning_per_thousand(results["dunning"], results["cost_per_million"])
    Path(__file__).with_name("results.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    return 0


def table(r: dict) -> str:  # type: ignore[type-arg]
    cold, warm, proc, costs, gw, bf = (
        r[k]
        for k in (
            "ingest_cold_start",
            "ingest_warm_cpu",
            "processor",
            "cost_per_million",
            "gateway",
            "backfill",
        )
    )
    rows = [
        (
            "1 ingest cold start (median)",
            f"{cold['ours_ms']} ms; floor {cold['floor_ms']}, naive {cold['naive_ms']}",
            f"floor + {cold['ours_minus_floor_ms']} ms; {cold['ours_over_naive']}x naive",
            cold["met"],
        ),
        *(
            (
                f"2 ingest warm CPU {size}",
                f"{warm[size]['ours_ms']} ms; floor {warm[size]['floor_ms']}",
                f"floor + {warm[size]['ours_minus_floor_ms']} ms",
                warm[size]["met"],
            )
            for size in ("2KB", "50KB")
        ),
        (
            "3 processor API calls / unique event",
            f"{proc['ours']['api_calls_per_unique_event']}; naive {proc['naive']['api_calls_per_unique_event']}",
            f"{proc['calls_ratio_ours_over_naive']}x naive",
            proc["met"],
        ),
        (
            "3 processor write units / unique event",
            f"{proc['ours']['dynamodb_write_units_per_unique_event']}; naive {proc['naive']['dynamodb_write_units_per_unique_event']}",
            "",
            None,
        ),
        (
            "3 processor CPU / unique event (incl. moto)",
            f"{proc['ours']['cpu_ms_per_unique_event']} ms; naive {proc['naive']['cpu_ms_per_unique_event']} ms",
            f"{proc['cpu_ratio_ours_over_naive']}x naive",
            None,
        ),
        (
            "4 cost per million events",
            f"${costs['total_usd_per_million']}",
            f"Hookdeck ${costs['anchors_usd_per_million']['Hookdeck']}, Svix ${costs['anchors_usd_per_million']['Svix (overage)']}",
            costs["met"],
        ),
        (
            "5 gateway throughput / limit",
            f"{gw['achieved_per_second']} of {gw['limit_per_second']} req/s",
            f"{gw['throughput_over_limit']}; failed {gw['failed_commands']}, duplicates {gw['duplicate_creations']}",
            gw["met"],
        ),
        (
            "6 backfill throughput / read limit",
            f"{bf['achieved_per_second']} of {bf['allowed_read_per_second']} req/s ({bf['objects_per_second']} objects/s)",
            f"{bf['throughput_over_limit']}; lost {bf['lost_objects']}, Stripe 429s {bf['stripe_429s']}",
            bf["met"],
        ),
        *signal_rows(r["signals"]),
        *(
            (
                f"8 detector {name}: precision / recall",
                f"{d['precision']} / {d['recall']} ({d['found']} of {d['attacks']} attacks, {d['findings']} findings)",
                "labeled stream: 4 weeks, 3 accounts, hard negatives",
                None,
            )
            for name, d in r["detectors"]["detectors"].items()
        ),
        cdnow_row(r["cdnow"]),
        *warehouse_rows(r["warehouse"], r["export_cost"]),
        *reconciliation_rows(r["reconciliation"]),
        *dunning_rows(r["dunning"]),
    ]
    imports = r["cold_import"]
    rows[1:1] = [
        (
            f"1 cold import: {name}",
            f"{imports[name]['ms']} ms; floor (import boto3) {imports['floor_ms']}",
            f"floor + {imports[name]['over_floor_ms']} ms; {imports[name]['over_floor_ratio']}x floor",
            None,
        )
        for name in cold_import.FUNCTIONS
    ]
    width = max(len(row[0]) for row in rows)
    lines = [f"{'measure':<{width}} | result | versus reference | target met", "-" * (width + 60)]
    for name, result, versus, met in rows:
        verdict = "-" if met is None else ("yes" if met else "NO")
        lines.append(f"{name:<{width}} | {result} | {versus} | {verdict}")
    return "\n".join(lines)


def signal_rows(sig: dict) -> list[tuple[str, str, str, bool | None]]:  # type: ignore[type-arg]
    ours, proc = sig["ours"], sig["processor"]
    return [
        (
            "7 signals CPU / event (incl. moto)",
            f"{ours['cpu_ms_per_event']} ms; processor {proc['cpu_ms_per_unique_event']} ms",
            f"{sig['cpu_ratio_over_processor']}x processor",
            None,
        ),
        (
            "7 signals write units / event",
            f"{ours['dynamodb_write_units_per_event']}; processor {proc['dynamodb_write_units_per_unique_event']}",
            f"{sig['write_units_ratio_over_processor']}x processor; {ours['dynamodb_read_calls_per_event']} reads",
            None,
        ),
        (
            "7 signals added cost per million events",
            f"${sig['cost_per_million']['total_usd_per_million_events']}",
            "",
            None,
        ),
        (
            "7 retraining memory / archived event",
            f"{sig['retraining']['peak_bytes_per_event']} B ({sig['retraining']['archived_events']} events)",
            f"{sig['retraining']['memory_ratio_over_json']}x its JSON; "
            f"CPU {sig['retraining']['cpu_ratio_over_parsing']}x parsing it",
            None,
        ),
    ]


def warehouse_rows(w: dict, export: dict) -> list[tuple[str, str, str, bool | None]]:  # type: ignore[type-arg]
    return [
        (
            f"9 warehouse: mrr_movements on {w['customers']} customers x {w['months']} months",
            f"{w['parquet_ms']} ms on Parquet; {w['json_ms']} ms from JSON (DuckDB, median of {w['runs']})",
            f"JSON {w['json_over_parquet']}x slower; same rows: {w['identical']}",
            None,
        ),
        (
            "9 export cost per million events",
            f"${export['writing_usd_per_million_events']} to write; "
            f"${export['querying_usd_per_month']} a month of saved queries",
            "Firehose + format conversion + S3 + Glue + Athena (bench/prices.json)",
            None,
        ),
    ]


def reconciliation_rows(rc: dict) -> list[tuple[str, str, str, bool | None]]:  # type: ignore[type-arg]
    size = f"{rc['transactions']:,}-transaction payout"
    return [
        (
            f"10 reconciliation of a {size}: Stripe calls",
            f"{rc['stripe_calls']} ({rc['transaction_pages']} pages); floor {rc['floor_pages']} pages",
            f"{rc['stripe_calls_over_floor']}x floor; at the live read rate {rc['projected_live_seconds']} s "
            f"vs {rc['projected_live_floor_seconds']} s",
            None,
        ),
        (
            "10 reconciliation: DynamoDB reads",
            f"{rc['store_reads']} BatchGetItems, {rc['store_keys']} keys ({rc['keys_per_store_read']} a read)",
            f"re-run writes {int(rc['rerun_written'])}, publishes {rc['rerun_published']}",
            None,
        ),
        (
            "10 reconciliation: time (moto + fake Stripe on loopback)",
            f"{rc['seconds']} s; floor {rc['floor_seconds']} s; re-run {rc['rerun_seconds']} s",
            f"{rc['seconds_over_floor']}x floor ({rc['seconds_but_store_reads_over_floor']}x without moto's "
            f"{rc['store_read_seconds']} s of BatchGetItems); re-run {rc['rerun_over_floor']}x",
            None,
        ),
        (
            "10 reconciliation: gaps found / repaired / false",
            f"{rc['gaps_found']} of {rc['gaps_injected']} / {rc['repaired']} / {rc['false_discrepancies']}",
            "one gap of every kind a payout's check finds",
            None,
        ),
    ]


def dunning_rows(d: dict) -> list[tuple[str, str, str, bool | None]]:  # type: ignore[type-arg]
    steps, starter, price = d["steps"], d["starter"], d["cost"]
    return [
        (
            f"11 dunning: workflows for {d['invoices']} invoices failing twice",
            f"{starter['executions']} executions from {d['published_failures']} published failures "
            f"({d['failure_deliveries']} deliveries)",
            f"{starter['executions_per_invoice']} per invoice",
            starter["executions_per_invoice"] == 1,
        ),
        (
            "11 dunning: one step (incl. moto)",
            f"{steps['cpu_ms_per_step']} ms CPU, {steps['dynamodb_reads_per_step']} reads, "
            f"{steps['put_events_entries_per_step']} PutEvents entries",
            f"{d['step_cpu_over_processor_event']}x the processor's CPU per event "
            f"({d['step_cpu_but_store_reads_over_processor_event']}x without the store reads' "
            f"{round(steps['cpu_ms_per_step'] - steps['cpu_ms_per_step_but_store_reads'], 3)} ms on moto)",
            None,
        ),
        (
            "11 dunning: cost per 1,000 failed invoices (whole policy)",
            f"${price['total_usd_per_thousand_invoices']} ({d['transitions']['whole_policy']} state transitions "
            f"each, {d['transitions']['stopped_by_the_first_step']} when paid by the first step)",
            f"{price['over_the_pipeline']}x the pipeline's ${price['pipeline_usd_per_thousand_invoices']} "
            "for their failure events",
            None,
        ),
    ]


def cdnow_row(c: dict) -> tuple[str, str, str, bool | None]:  # type: ignore[type-arg]
    return (
        "8 CDNOW one-off buyers AUC (any purchase 1997-10..1998-06)",
        f"{c['ours']['mbgnbd']['auc']} ours (MBG/NBD, fit {c['ours']['fit_seconds']} s); "
        f"BG/NBD lifetimes {c['bgnbd_lifetimes']['auc']} (fit {c['bgnbd_lifetimes']['fit_seconds']} s)",
        f"{c['auc_ours_minus_bgnbd']:+} vs BG/NBD; RFM ceiling {c['rfm_ceiling_auc']}",
        c["met"],
    )


if __name__ == "__main__":
    raise SystemExit(main())
