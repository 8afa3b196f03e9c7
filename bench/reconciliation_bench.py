"""10. Reconciliation of one payout of 10,000 balance transactions, against the floor of reading them.

A payout built from the real fixtures (tests/fakes/payouts.py: charges, refunds, a dispute, transfers and
their reversals, application fees and their refunds, each with fees) with one gap of every kind a single
payout's check finds is served by the fake Stripe over loopback; the store (moto's server on loopback)
holds everything behind it the way a backfill writes it, but the gaps. The run is wired as the CLI and the
Lambda wire it (`History.reconciler`: the backfill's StripeReader and the shared rate limiter). The shared
limit is lifted so the wall time measures the work and not the waiting; in production reads are
rate-bound, so Stripe calls over the floor's are the ratio that decides time there (projected at the
live-mode read rate of config/gateway.yaml).

The reference, measured in the same run: listing the same payout's balance transactions (the same pages,
sources expanded) through the same StripeReader, i.e. the floor of reading them. Reported: Stripe calls
and pages against the floor's, DynamoDB requests (BatchGetItems of at most 100 keys) and keys read, time
against the floor, a re-run of the unchanged payout (writes and publishes nothing), and gaps found,
repaired and false. Ratios, no absolute targets.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from bench.measure import CallCounter, moto_server

T = TypeVar("T")
LOADERS = 8  # threads putting the payout's objects in the store before the measure


def run(transactions: int = 10_000) -> dict[str, Any]:
    import boto3

    from stripe_middleware.adapters.dynamodb.objects import ObjectStore
    from stripe_middleware.adapters.history import build
    from stripe_middleware.backfill.settings import HistorySettings
    from stripe_middleware.commands.config import load_gateway_config
    from stripe_middleware.reconciliation.run import reconcile_payout
    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware.shared.metadata_schema import load_metadata_schema
    from stripe_middleware_dev.tables import create_table_request
    from tests.fakes.payouts import Gap, build_payout
    from tests.fakes.stripe_server import fake_stripe

    load_gateway_config.cache_clear()
    live_read_rate = load_gateway_config().rate_limit.read_limits(True, "/v1/balance_transactions")[1][1]
    schema = load_metadata_schema()
    world = build_payout(transactions, payout_id="po_1Bench")
    injected = set(world.inject_every_gap())
    with moto_server(), roomy_rate_limit(), fake_stripe() as stripe_server:
        counter = CallCounter()
        dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
        dynamodb.create_table(**create_table_request("store"))
        boto3.client("events").create_event_bus(Name="bus")
        world.serve_on(stripe_server)
        load_store(world, ObjectStore(dynamodb, "store"), schema)
        settings = HistorySettings(
            table_name="store",
            event_bus_name="bus",
            stripe_api_version=STRIPE_API_VERSION,
            stripe_api_key_secret_id="",
            dead_letter_queue_url=sqs.create_queue(QueueName="backfill-dlq")["QueueUrl"],
            events_queue_url=sqs.create_queue(QueueName="events")["QueueUrl"],
            stripe_api_base=stripe_server.url,
        )

        def counted(service: str) -> Any:
            client = boto3.client(service)
            counter.attach(client)
            return client

        history = build(settings, counted, "rk_test_bench")
        reconciler = history.reconciler(counted("dynamodb"), "store")
        reads = TimedReads(reconciler.objects)
        reconciler.objects = reads

        def measured(work: Callable[[], T]) -> tuple[float, T, dict[str, int]]:
            """Seconds, result and AWS calls (by operation) of `work`."""
            before = counter.calls.copy()
            started = time.perf_counter()
            result = work()
            return time.perf_counter() - started, result, dict(counter.calls - before)

        def floor() -> tuple[float, int, dict[str, int]]:
            return measured(lambda: list_transactions(reconciler.stripe.transactions_page, world.payout_id))

        floor_before = floor()
        ours_seconds, first, ours_calls = measured(lambda: reconcile_payout(reconciler, world.payout_id))
        read_seconds = reads.seconds
        rerun_seconds, again, rerun_calls = measured(lambda: reconcile_payout(reconciler, world.payout_id))
        floor_after = floor()
    load_gateway_config.cache_clear()

    assert first.record is not None and again.record is not None
    found = {Gap(d.kind, str(d.object_type), str(d.object_id)) for d in first.record.discrepancies}
    floor_seconds, floor_pages, floor_calls = min(floor_before, floor_after, key=lambda f: f[0])
    counters = first.counters
    result = {
        "transactions": transactions,
        "gaps_injected": len(injected),
        "gaps_found": len(found & injected),
        "false_discrepancies": len(found - injected),
        "repaired": len(first.repaired),
        "status": first.record.status,
        "stripe_calls": counters.stripe_calls,
        "transaction_pages": counters.transaction_pages,
        "floor_pages": floor_pages,
        "stripe_calls_over_floor": round(counters.stripe_calls / floor_pages, 3),
        "store_reads": counters.store_reads,
        "store_keys": counters.store_keys,
        "keys_per_store_read": round(counters.store_keys / max(counters.store_reads, 1), 1),
        "aws_calls": ours_calls,  # incl. the shared rate limiter's UpdateItems (3 per Stripe call)
        "floor_aws_calls": floor_calls,
        "seconds": round(ours_seconds, 2),
        "floor_seconds": round(floor_seconds, 2),
        "seconds_over_floor": round(ours_seconds / floor_seconds, 2),
        "store_read_seconds": round(read_seconds, 2),  # moto's BatchGetItem: slower than DynamoDB's
        "seconds_but_store_reads_over_floor": round((ours_seconds - read_seconds) / floor_seconds, 2),
        "rerun_seconds": round(rerun_seconds, 2),
        "rerun_over_floor": round(rerun_seconds / floor_seconds, 2),
        "rerun_written": again.written,
        "rerun_published": len(again.published),
        "rerun_aws_calls": rerun_calls,
        "live_read_per_second": live_read_rate,
        "projected_live_seconds": round(counters.stripe_calls / live_read_rate, 1),
        "projected_live_floor_seconds": round(floor_pages / live_read_rate, 1),
        "reference": "listing the payout's transactions (sources expanded) through the same StripeReader",
    }
    result["met"] = None  # ratios against the floor, not a target
    return result


class TimedReads:
    """The run's StoredObjects, timing its BatchGetItems (the emulator's share of the run's time)."""

    def __init__(self, objects: Any) -> None:
        self._objects, self.seconds = objects, 0.0

    def entries(self, keys: Any, *, account: str | None, livemode: bool) -> Any:
        started = time.perf_counter()
        try:
            return self._objects.entries(keys, account=account, livemode=livemode)
        finally:
            self.seconds += time.perf_counter() - started

    def succeeded_page(self, *args: Any, **kwargs: Any) -> Any:
        return self._objects.succeeded_page(*args, **kwargs)


def list_transactions(page: Callable[..., Any], payout_id: str) -> int:
    """Read every page of the payout's transactions as the run does; return how many pages it took."""
    pages, starting_after = 0, None
    while True:
        listed = page(payout_id, account=None, starting_after=starting_after)
        pages += 1
        if not listed.has_more or not listed.objects:
            return pages
        starting_after = listed.objects[-1]["id"]


def load_store(world: Any, store: Any, schema: Any) -> None:
    """The store holds what a backfill wrote (world.load_store), put by a few threads: setup, not measured."""
    from stripe_middleware.processing.normalize import normalize_snapshot
    from tests.fakes.payouts import DAY, SEED_RUN, T0

    def put(obj: dict[str, Any]) -> None:
        store.upsert_snapshot(
            normalize_snapshot(obj, schema, account=None, livemode=False, run_id=SEED_RUN, as_of=T0 - DAY)
        )

    with ThreadPoolExecutor(LOADERS) as pool:
        list(pool.map(put, world.store.values()))


@contextmanager
def roomy_rate_limit() -> Iterator[None]:
    """The repository's gateway config with Stripe's limits lifted (the limiter still runs on every call)."""
    import os

    import yaml

    from stripe_middleware.commands.config import GATEWAY_CONFIG_ENV, load_gateway_config
    from stripe_middleware_dev import REPO_CONFIG

    config = yaml.safe_load(Path(REPO_CONFIG[GATEWAY_CONFIG_ENV]).read_text())
    config["rate_limit"].update(
        test_per_second=100_000, live_per_second=100_000, per_endpoint_per_second=100_000
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        saved = os.environ.get(GATEWAY_CONFIG_ENV)
        os.environ[GATEWAY_CONFIG_ENV] = str(path)
        load_gateway_config.cache_clear()
        try:
            yield
        finally:
            if saved is None:
                del os.environ[GATEWAY_CONFIG_ENV]
            else:
                os.environ[GATEWAY_CONFIG_ENV] = saved
            load_gateway_config.cache_clear()
