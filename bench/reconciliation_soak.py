"""`make soak`, reconciliation: a payout's objects reach the store as Stripe events through the real processor,
but a random share of the events never arrives (a webhook Stripe gave up on); reconciling the payout must
find every object that is missing as `missing_in_store`, repair each one, and name nothing else.

The payout is built from the real fixtures (tests/fakes/payouts.py); every object reconciliation examines
behind it (its charges, refunds, dispute, transfers, application fees, the transfers and fees behind
reversals and fee refunds, the charges behind refunds and disputes, their customers, the payout itself)
is sent as its Stripe event (`charge.succeeded`, `refund.created`, ...) in shuffled SQS batches of 10 to
functions/processor/handler.py on moto, except the dropped share. The fake Stripe serves the payout
over loopback, and the run is wired as the CLI wires it (`History.reconciler`), with Stripe's rate limit
lifted (the limiter still runs). A second run must find the same gaps, all repaired, and store nothing.
Exit code 0 only when every check holds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.measure import QUIET
from bench.reconciliation_bench import roomy_rate_limit

DROP_SHARE = 0.03
BATCH = 10  # SQS messages per processor invocation
REDELIVERIES = 3  # a message the processor reports as failed is delivered again, as SQS does
EVENT_TYPES = {
    "charge": "charge.succeeded",
    "refund": "refund.created",
    "dispute": "charge.dispute.created",
    "transfer": "transfer.created",
    "application_fee": "application_fee.created",
    "customer": "customer.created",
    "payout": "payout.paid",
}


class _Context:
    function_name = "processor"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:processor"
    aws_request_id = "soak"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def behind_payout(world: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The store's objects a payout's reconciliation examines, from the payout's own facts: the payout,
    each transaction's source (a reversal's transfer, a fee refund's fee), the charges behind refunds and
    disputes, and the customers of all those charges."""
    keys: set[tuple[str, str]] = {("payout", world.payout_id)}
    charges: list[dict[str, Any]] = []
    for transaction in world.transactions:
        source = world.objects[transaction["source"]]
        kind = source["object"]
        if kind == "payout":
            continue
        if kind == "transfer_reversal":
            keys.add(("transfer", source["transfer"]))
        elif kind == "fee_refund":
            keys.add(("application_fee", source["fee"]))
        else:
            keys.add((kind, source["id"]))
        if kind == "charge":
            charges.append(source)
        elif kind in ("refund", "dispute"):
            keys.add(("charge", source["charge"]))
            charges.append(world.objects[source["charge"]])
    keys |= {("customer", charge["customer"]) for charge in charges if charge.get("customer")}
    return {key: world.store[key] for key in sorted(keys)}


def event_of(obj: dict[str, Any], n: int) -> dict[str, Any]:
    from events import stripe_event

    created = int(obj.get("created") or 0) or 1_764_000_000
    return stripe_event(EVENT_TYPES[obj["object"]], obj=obj, event_id=f"evt_soak{n:07d}", created=created)


def run(transactions: int, seed: int, drop_share: float = DROP_SHARE) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from stripe_middleware.adapters.history import build
    from stripe_middleware.backfill.settings import HistorySettings
    from stripe_middleware.reconciliation.run import reconcile_payout
    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware_dev.tables import create_table_request
    from tests.fakes.payouts import build_payout
    from tests.fakes.stripe_server import fake_stripe

    rng = random.Random(seed)
    world = build_payout(transactions, payout_id="po_1Soak")
    objects = behind_payout(world)
    dropped = set(rng.sample(sorted(objects), max(1, round(len(objects) * drop_share))))
    bodies = [
        json.dumps(event_of(obj, n)) for n, (key, obj) in enumerate(objects.items()) if key not in dropped
    ]
    rng.shuffle(bodies)
    failures: Counter[str] = Counter()
    with environment(), mock_aws(), roomy_rate_limit(), fake_stripe() as stripe_server, muted():
        # Imported here: its Logger and Metrics take stdout and the namespace when the module loads.
        from functions.processor import handler as processor

        dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
        dynamodb.create_table(**create_table_request("store"))
        boto3.client("events").create_event_bus(Name="bus")
        processor.dependencies.cache_clear()
        started = time.monotonic()
        for start in range(0, len(bodies), BATCH):
            batch = bodies[start : start + BATCH]
            for _ in range(REDELIVERIES):
                failed = deliver(processor.handler, batch, start)
                failures["processor_redeliveries"] += len(failed)
                batch = [b for i, b in enumerate(batch) if f"m{start}-{i}" in failed]
                if not batch:
                    break
            failures["not_processed"] += len(batch)
        processing = time.monotonic() - started
        processor.dependencies.cache_clear()
        world.serve_on(stripe_server)
        settings = HistorySettings(
            table_name="store",
            event_bus_name="bus",
            stripe_api_version=STRIPE_API_VERSION,
            stripe_api_key_secret_id="",
            dead_letter_queue_url=sqs.create_queue(QueueName="backfill-dlq")["QueueUrl"],
            events_queue_url=sqs.create_queue(QueueName="events")["QueueUrl"],
            stripe_api_base=stripe_server.url,
        )
        reconciler = build(settings, boto3.client, "rk_test_soak").reconciler(dynamodb, "store")
        started = time.monotonic()
        first = reconcile_payout(reconciler, world.payout_id)
        reconciling = time.monotonic() - started
        second = reconcile_payout(reconciler, world.payout_id)
    assert first.record is not None and second.record is not None
    found = {
        (str(d.object_type), str(d.object_id))
        for d in first.record.discrepancies
        if d.kind == "missing_in_store"
    }
    false = [
        d
        for d in first.record.discrepancies
        if d.kind != "missing_in_store" or (str(d.object_type), str(d.object_id)) not in dropped
    ]
    repaired = set(first.repaired)
    again = {(str(d.object_type), str(d.object_id)): d.repaired for d in second.record.discrepancies}
    report = {
        "transactions": transactions,
        "objects_behind_payout": len(objects),
        "events_sent": len(bodies),
        "dropped_before_processor": len(dropped),
        "dropped_by_type": dict(sorted(Counter(t for t, _ in dropped).items())),
        "found_missing_in_store": len(found & dropped),
        "repaired": len(repaired & dropped),
        "false_discrepancies": len(false),
        "status": first.record.status,
        "stripe_calls": first.counters.stripe_calls,
        "repair_gets": first.counters.stripe_calls - 1 - first.counters.transaction_pages,
        "store_reads": first.counters.store_reads,
        "second_run_status": second.record.status,
        "second_run_repaired": len(second.repaired),
        "second_run_written": second.written,
        "processor_seconds": round(processing, 1),
        "reconcile_seconds": round(reconciling, 1),
        **failures,
    }
    checks = {
        "every dropped object found as missing_in_store": found == dropped,
        "every dropped object repaired": repaired == dropped,
        "0 false discrepancies": not false,
        "the payout is repaired (balanced after the repairs)": first.record.status == "repaired",
        "a second run shows the same gaps repaired and stores nothing": again == dict.fromkeys(dropped, True)
        and not second.repaired
        and second.record.status == "repaired",
        "every event sent was processed": failures["not_processed"] == 0,
    }
    report["checks"] = checks
    return report


def deliver(handler: Any, bodies: list[str], offset: int) -> set[str]:
    """One SQS batch through the processor; the ids of the messages it reports as failed."""
    records = [
        {"messageId": f"m{offset}-{i}", "body": body, "attributes": {"ApproximateReceiveCount": "1"}}
        for i, body in enumerate(bodies)
    ]
    response = handler({"Records": records}, _Context())
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


@contextmanager
def environment() -> Iterator[None]:
    """The processor's settings, and fake AWS credentials for moto; the environment is restored on exit."""
    from stripe_middleware.shared.contract import STRIPE_API_VERSION

    saved = dict(os.environ)
    os.environ.update(
        AWS_ACCESS_KEY_ID="soak",
        AWS_SECRET_ACCESS_KEY="soak",
        AWS_DEFAULT_REGION="us-east-1",
        TABLE_NAME="store",
        EVENT_BUS_NAME="bus",
        STRIPE_API_VERSION=STRIPE_API_VERSION,
        POWERTOOLS_METRICS_NAMESPACE="Soak",
        POWERTOOLS_SERVICE_NAME="soak",
    )
    for name in ("STRIPE_API_KEY_SECRET_ID", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def muted() -> Iterator[None]:
    """The processor's log lines (one per event) off the report."""
    real_stdout, sys.stdout = sys.stdout, QUIET
    try:
        yield
    finally:
        sys.stdout = real_stdout


def main() -> int:
    from stripe_middleware_dev import use_repo_config

    use_repo_config()
    parser = argparse.ArgumentParser(prog="python -m bench.reconciliation_soak")
    parser.add_argument("--transactions", type=int, default=10_000, help="balance transactions in the payout")
    parser.add_argument("--drop", type=float, default=DROP_SHARE, help="share of events never delivered")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    report = run(args.transactions, args.seed, args.drop)
    print(json.dumps(report, indent=2))
    for name, ok in report["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(report["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
