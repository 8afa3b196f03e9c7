"""Reconciliation through its real adapters: the store table on moto (as the stack defines it), the bus
with a capture rule, and the real Stripe SDK over HTTP to the fake Stripe on loopback, reading through the
backfill's StripeReader and the shared DynamoDB rate limiter.

Injected gaps of every kind are found, 100 %, and nothing else; `missing_in_store` objects are repaired
into the table (under the order guard, published as backfilled) and the payout re-checked as repaired;
Stripe's 429s and 500s are retried; a throttled table fails the run with nothing written or published; a
re-run writes the same record and publishes nothing again; Connect accounts are read and kept apart.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.adapters.dynamodb.rate_limit import DynamoRateLimiter
from stripe_middleware.adapters.dynamodb.reconciliation import DynamoReconciliationStore, DynamoStoredObjects
from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.adapters.stripe.client import make_stripe_client
from stripe_middleware.adapters.stripe.reader import SdkStripeLister
from stripe_middleware.backfill import reading
from stripe_middleware.backfill.reading import StripeReader
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.reconciliation.reading import StripePayouts
from stripe_middleware.reconciliation.repair import SnapshotRepairer, repair_run_id
from stripe_middleware.reconciliation.run import Reconciler, reconcile_payout, sweep
from stripe_middleware.shared.contract import STRIPE_API_VERSION, DetailType
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware_dev.tables import create_table_request
from tests.fakes.payouts import DAY, T0, Gap, PayoutWorld, build_payout, found_gaps
from tests.fakes.stripe_server import FakeStripe, RecordedRequest, fake_stripe

KEY = "rk_test_reconcile"
CONNECTED = "acct_1Connected000001"
SCHEMA = load_metadata_schema()

pytestmark = pytest.mark.usefixtures("roomy_rate_limit")


class Throttled:
    """A DynamoDB client whose `operations` answer ProvisionedThroughputExceeded (after the SDK's retries),
    for the items `when` picks (all by default)."""

    def __init__(
        self, client: Any, operations: set[str], when: Callable[[dict[str, Any]], bool] | None = None
    ):
        self._client, self.operations, self._when = client, operations, when

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self.operations:
            return attribute

        def throttled(**request: Any) -> Any:
            if self._when is None or self._when(request):
                error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}
                raise ClientError({"Error": error}, name)
            return attribute(**request)

        return throttled


@dataclass
class Stack:
    dynamodb: Any
    sqs: Any
    stripe: FakeStripe
    capture_url: str
    reader: StripeReader
    reconciler: Reconciler
    records: DynamoReconciliationStore

    def wire(self, dynamodb: Any) -> None:
        """Point every store adapter at `dynamodb` (a throttled client, say)."""
        self.reconciler.objects = DynamoStoredObjects(dynamodb, "store")
        self.reconciler.records = DynamoReconciliationStore(dynamodb, "store")
        self.reconciler.repairer = SnapshotRepairer(
            ObjectStore(dynamodb, "store"), self.reconciler.publisher, SCHEMA
        )

    def serve(self, *worlds: PayoutWorld) -> None:
        for world in worlds:
            world.serve_on(self.stripe)
            world.load_store(ObjectStore(self.dynamodb, "store"), SCHEMA)

    def published(self) -> list[dict[str, Any]]:
        found = []
        while batch := self.sqs.receive_message(QueueUrl=self.capture_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def record(self, payout_id: str, account: str | None = None) -> dict[str, Any]:
        found = self.records.reconciliation(payout_id, account=account, livemode=False)
        assert found is not None, f"no record of {payout_id}"
        return found

    def items(self, prefix: str) -> list[dict[str, Any]]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName="store")
        return [i for page in pages for i in page["Items"] if i["pk"]["S"].startswith(prefix)]


@pytest.fixture(autouse=True)
def brief_backoff(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    attempts: list[int] = []

    def brief(attempt: int) -> float:
        attempts.append(attempt)
        return 0.01

    monkeypatch.setattr(reading, "backoff", brief)
    return attempts


@pytest.fixture
def stack() -> Iterator[Stack]:
    with fake_stripe() as server, mock_aws():
        server.api_key = KEY
        dynamodb, sqs, events = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("events")
        dynamodb.create_table(**create_table_request("store"))
        events.create_event_bus(Name="bus")
        capture_url = sqs.create_queue(QueueName="capture")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name="all", EventBusName="bus", EventPattern=json.dumps({"source": ["stripe-middleware"]})
        )
        events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "capture", "Arn": capture_arn}])
        client = make_stripe_client(
            KEY, api_version=STRIPE_API_VERSION, api_base=server.url, max_network_retries=0
        )
        rate_limit = load_gateway_config().rate_limit
        reader = StripeReader(
            SdkStripeLister(client),
            DynamoRateLimiter(dynamodb, "store"),
            lambda path: rate_limit.read_limits(False, path),
        )
        publisher = EventPublisher(events, "bus")
        records = DynamoReconciliationStore(dynamodb, "store")
        reconciler = Reconciler(
            stripe=StripePayouts(reader),
            objects=DynamoStoredObjects(dynamodb, "store"),
            records=records,
            repairer=SnapshotRepairer(ObjectStore(dynamodb, "store"), publisher, SCHEMA),
            publisher=publisher,
            schema=SCHEMA,
            livemode=False,
        )
        yield Stack(dynamodb, sqs, server, capture_url, reader, reconciler, records)


def of_type(published: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in published if e["detail-type"] == detail_type]


def transaction_requests(stripe: FakeStripe) -> list[RecordedRequest]:
    return [r for r in stripe.gets("/v1/balance_transactions")]


# -- finding every gap ------------------------------------------------------------------------------------
def test_every_injected_gap_is_found_and_every_missing_object_repaired(stack: Stack) -> None:
    earlier = build_payout(40, payout_id="po_1Earlier", created=T0 - 7 * DAY)
    world = build_payout(120, payout_id="po_1Gaps", created=T0)
    injected = {*world.inject_every_gap(), world.inject_not_paid_out()}
    stack.serve(earlier, world)
    result = sweep(stack.reconciler, since=T0 - 30 * DAY, until=T0 + DAY)
    assert result.failed == {} and {r.payout_id for r in result.runs} == {"po_1Earlier", "po_1Gaps"}
    record = stack.record(world.payout_id)
    assert found_gaps([record]) == injected  # 100 % found, nothing else
    assert stack.record(earlier.payout_id)["status"] == "balanced"  # 0 false discrepancies on a clean one
    repaired = {
        Gap(d["kind"], d["object_type"], d["object_id"]) for d in record["discrepancies"] if d["repaired"]
    }
    assert repaired == {g for g in injected if g.kind == "missing_in_store"}
    store = ObjectStore(stack.dynamodb, "store")
    for gap in repaired:
        [stored] = store.get_object(gap.object_type, gap.object_id)
        assert stored["object"] == world.objects[gap.object_id]
        assert stored["event_id"] == repair_run_id(world.payout_id, None, False)
    published = stack.published()
    discrepancies = of_type(published, DetailType.RECONCILIATION_DISCREPANCY)
    assert sorted(d["discrepancy_id"] for d in discrepancies) == sorted(
        d["discrepancy_id"] for d in record["discrepancies"]
    )
    backfilled = of_type(published, DetailType.OBJECT_BACKFILLED)
    assert {(d["object_type"], d["object_id"]) for d in backfilled} == {
        (g.object_type, g.object_id) for g in repaired
    }
    completed = {d["payout_id"]: d for d in of_type(published, DetailType.RECONCILIATION_COMPLETED)}
    assert (
        completed["po_1Gaps"]["status"] == "discrepancies"
        and completed["po_1Earlier"]["status"] == "balanced"
    )


def test_a_payout_whose_only_gaps_were_missing_objects_is_repaired_and_then_balances(stack: Stack) -> None:
    world = build_payout(60)
    world.inject_missing("charge", 0)
    world.inject_missing("dispute", 0)
    world.inject_missing_parent()
    stack.serve(world)
    run = reconcile_payout(stack.reconciler, world.payout_id)
    assert run.record is not None and run.record.status == "repaired" and len(run.repaired) == 3
    record = stack.record(world.payout_id)
    assert record["status"] == "repaired" and record["discrepancy_counts"] == {"missing_in_store": 3}
    # the transfer behind a reversal is not in the transaction list: read with one GET
    assert [r.path for r in stack.stripe.requests if r.path.startswith("/v1/transfers/")] == [
        f"/v1/transfers/{world.objects[world.source_ids('transfer_reversal')[0]]['transfer']}"
    ]


def test_the_sdk_lists_by_payout_with_expanded_sources_a_page_per_100(stack: Stack) -> None:
    world = build_payout(250)
    stack.serve(world)
    run = reconcile_payout(stack.reconciler, world.payout_id)
    assert run.record is not None and run.record.status == "balanced" and run.record.discrepancies == ()
    listed = transaction_requests(stack.stripe)
    assert len(listed) == 3 == run.counters.transaction_pages  # 251 transactions with the payout's own
    assert all(
        r.params["payout"] == world.payout_id and r.params["expand[0]"] == "data.source" for r in listed
    )
    assert [r.params.get("starting_after") for r in listed] == [
        None,
        "txn_1TestPayout00151",
        "txn_1TestPayout00051",
    ]
    assert stack.stripe.gets(f"/v1/payouts/{world.payout_id}") and run.counters.stripe_calls == 4
    # 250 sources, the payout, 25 customers and the 25 charges refunded or disputed: 100 a BatchGetItem
    assert (run.counters.store_keys, run.counters.store_reads) == (300, 3)
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in stack.stripe.requests)


# -- failures -----------------------------------------------------------------------------------------
def test_stripe_429s_and_500s_are_retried_through_the_shared_limiter(
    stack: Stack, brief_backoff: list[int]
) -> None:
    world = build_payout(150)
    world.inject_missing("charge", 0)
    stack.serve(world)
    stack.stripe.fail_when(lambda r: r.path == "/v1/balance_transactions", 429, 500, 429)
    stack.stripe.fail_when(lambda r: r.path.startswith("/v1/payouts/"), 500)
    run = reconcile_payout(stack.reconciler, world.payout_id)
    assert run.record is not None and run.record.status == "repaired"
    statuses = [r.status for r in stack.stripe.requests if r.path == "/v1/balance_transactions"]
    assert statuses == [429, 500, 429, 200, 200]
    assert stack.reader.retries == 4 and len(brief_backoff) == 4


def test_a_throttled_table_fails_the_run_with_nothing_written_or_published(stack: Stack) -> None:
    world = build_payout(40)
    world.inject_every_gap()
    stack.serve(world)
    objects_before = {json.dumps(i, sort_keys=True, default=str) for i in stack.items("OBJ#")}
    stack.wire(Throttled(stack.dynamodb, {"batch_get_item"}))
    with pytest.raises(StoreUnavailableError):
        reconcile_payout(stack.reconciler, world.payout_id)
    assert stack.items("RECON#") == [] and stack.published() == []
    assert {json.dumps(i, sort_keys=True, default=str) for i in stack.items("OBJ#")} == objects_before
    # the record's write is throttled: the gaps went out, no record; the re-run ends in the same record
    stack.wire(
        Throttled(stack.dynamodb, {"put_item"}, when=lambda r: r["Item"]["pk"]["S"].startswith("RECON#"))
    )
    with pytest.raises(StoreUnavailableError):
        reconcile_payout(stack.reconciler, world.payout_id)
    assert stack.items("RECON#") == []
    first = of_type(stack.published(), DetailType.RECONCILIATION_DISCREPANCY)
    stack.wire(stack.dynamodb)
    reconcile_payout(stack.reconciler, world.payout_id)
    again = of_type(stack.published(), DetailType.RECONCILIATION_DISCREPANCY)
    assert sorted(d["discrepancy_id"] for d in again) == sorted(d["discrepancy_id"] for d in first)
    record = stack.record(world.payout_id)
    assert found_gaps([record]) == set(world.gaps)
    assert {d["object_id"] for d in record["discrepancies"] if d["repaired"]} == {
        g.object_id for g in world.gaps if g.kind == "missing_in_store"
    }  # objects stored by the unfinished run are still reported as repaired


def test_a_rerun_keeps_the_same_record_and_publishes_no_discrepancy_twice(stack: Stack) -> None:
    earlier = build_payout(20, payout_id="po_1Earlier", created=T0 - 7 * DAY)
    world = build_payout(60, payout_id="po_1Again", created=T0)
    world.inject_every_gap()
    world.inject_not_paid_out()
    stack.serve(earlier, world)
    sweep(stack.reconciler, since=T0 - 30 * DAY, until=T0 + DAY)
    first, item = stack.record(world.payout_id), stack.items("RECON#po_1Again")
    assert len(of_type(stack.published(), DetailType.RECONCILIATION_DISCREPANCY)) == 9
    again = sweep(stack.reconciler, since=T0 - 30 * DAY, until=T0 + DAY)
    reconcile_payout(stack.reconciler, world.payout_id)  # the payout.paid event, redelivered
    assert not any(r.written or r.published for r in again.runs)
    assert stack.record(world.payout_id) == first and stack.items("RECON#po_1Again") == item
    assert stack.published() == []


# -- Connect and the read side -----------------------------------------------------------------------------
def test_a_connected_accounts_payout_is_read_with_its_stripe_account_and_recorded_in_its_scope(
    stack: Stack,
) -> None:
    world = build_payout(30, account=CONNECTED)
    gap = world.inject_missing("charge", 2)
    stack.serve(world)
    run = reconcile_payout(stack.reconciler, world.payout_id, account=CONNECTED)
    assert run.record is not None and run.record.status == "repaired"
    assert {r.headers.get("stripe-account") for r in stack.stripe.requests} == {CONNECTED}
    assert stack.record(world.payout_id, CONNECTED)["account"] == CONNECTED
    assert stack.records.reconciliation(world.payout_id, account=None, livemode=False) is None
    [stored] = ObjectStore(stack.dynamodb, "store").get_object("charge", gap.object_id)
    assert stored["account"] == CONNECTED


def test_records_are_listed_by_status_and_since_newest_first_in_pages(stack: Stack) -> None:
    worlds = [build_payout(20, payout_id=f"po_1List{n}", created=T0 - n * 10 * DAY) for n in range(4)]
    worlds[1].inject_amount_mismatch()
    manual = build_payout(20, payout_id="po_1ListManual", created=T0 - 5 * DAY, automatic=False)
    stack.serve(*worlds, manual)
    for world in [*worlds, manual]:
        reconcile_payout(stack.reconciler, world.payout_id)
    records = DynamoReconciliationStore(stack.dynamodb, "store", clock=lambda: T0 + DAY)

    def listed(**query: Any) -> list[str]:
        arguments = {"account": None, "livemode": False, "before": None, "status": None, "limit": 10} | query
        return [r["payout_id"] for r in records.list_reconciliations(**arguments)]

    since = "2025-10-01T00:00:00Z"
    assert listed(since=since) == ["po_1List0", "po_1ListManual", "po_1List1", "po_1List2", "po_1List3"]
    assert listed(since="2025-11-10T00:00:00Z") == ["po_1List0", "po_1ListManual", "po_1List1"]
    assert listed(since=since, status="discrepancies") == ["po_1List1"]
    assert listed(since=since, status="unreconcilable_by_stripe") == ["po_1ListManual"]
    page = records.list_reconciliations(
        account=None, livemode=False, since=since, before=None, status=None, limit=2
    )
    key = f"{page[-1]['as_of']}#{page[-1]['payout_id']}"
    assert listed(since=since, before=key, limit=2) == ["po_1List1", "po_1List2"]
    assert listed(since=since, account=CONNECTED) == []


# -- a real emulator ------------------------------------------------------------------------------------
@pytest.fixture
def localstripe(tmp_path: Any) -> Iterator[str]:
    """localstripe on a free loopback port: it emulates payouts (all manual: it has no payout schedule)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "localstripe"), "--port", str(port), "--from-scratch"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "localstripe did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_payout_of_the_localstripe_emulator_is_reported_unreconcilable_by_stripe(
    stack: Stack, localstripe: str
) -> None:
    client = make_stripe_client("sk_test_localstripe", api_version=STRIPE_API_VERSION, api_base=localstripe)
    # `status` is localstripe's: the emulator has no bank to move a payout along
    payout_id = client.raw_request("post", "/v1/payouts", amount=4200, currency="eur", status="paid").data[
        "id"
    ]
    stack.reconciler.stripe = StripePayouts(
        StripeReader(SdkStripeLister(client), stack.reader.limiter, stack.reader.read_limits)
    )
    run = reconcile_payout(stack.reconciler, payout_id)
    assert run.record is not None and run.record.status == "unreconcilable_by_stripe"
    record = stack.record(payout_id)
    assert record["reason"].startswith("a manual payout") and record["discrepancies"] == []
    assert record["payout"] | {"created": None, "arrival_date": None} == {
        "amount": 4200,
        "currency": "eur",
        "created": None,
        "arrival_date": None,
        "automatic": False,
        "method": "standard",
        "status": "paid",
        "type": "bank_account",
        "reconciliation_status": None,
    }
    [completed] = of_type(stack.published(), DetailType.RECONCILIATION_COMPLETED)
    assert completed["status"] == "unreconcilable_by_stripe"
