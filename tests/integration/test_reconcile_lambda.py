"""The reconciliation function on moto and the fake Stripe over HTTP, through its three inputs: a
`payout.paid` event from its queue, a payout asked for by the CLI, and the daily sweep."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from jsonschema import Draft4Validator

from events import detail_schema, http_api_event
from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.adapters.dynamodb.reconciliation import DynamoReconciliationStore
from stripe_middleware.backfill import reading
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import RejectedError
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from tests.fakes.payouts import DAY, T0, build_payout
from tests.fakes.stripe_server import FakeStripe, fake_stripe
from tests.integration.conftest import LambdaContext, ProcessorStack

pytestmark = pytest.mark.usefixtures("roomy_rate_limit")


class Stack:
    def __init__(self, processor: ProcessorStack, stripe: FakeStripe) -> None:
        self.processor, self.stripe = processor, stripe

    def run(self, event: dict[str, Any]) -> dict[str, Any]:
        from functions.reconcile.handler import handler

        result: dict[str, Any] = handler(event, LambdaContext())
        return result

    def record(self, payout_id: str) -> dict[str, Any] | None:
        return DynamoReconciliationStore(self.processor.dynamodb, "store").reconciliation(
            payout_id, account=None, livemode=False
        )

    def published(self, detail_type: str) -> list[dict[str, Any]]:
        return [p["detail"] for p in self.processor.published() if p["detail-type"] == detail_type]


@pytest.fixture
def stack(processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    from functions.reconcile import handler

    monkeypatch.setattr(reading, "backoff", lambda attempt: 0.01)
    sqs = processor_stack.sqs
    with fake_stripe() as stripe_server:
        secret = boto3.client("secretsmanager").create_secret(Name="read-key", SecretString="rk_test_recon")
        monkeypatch.setenv("EVENTS_QUEUE_URL", sqs.create_queue(QueueName="events")["QueueUrl"])
        monkeypatch.setenv("BACKFILL_DLQ_URL", sqs.create_queue(QueueName="backfill-dlq")["QueueUrl"])
        monkeypatch.setenv("STRIPE_API_KEY_SECRET_ID", secret["ARN"])
        monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url)
        handler.reconciler.cache_clear()
        yield Stack(processor_stack, stripe_server)
        handler.reconciler.cache_clear()


def serve(stack: Stack, *worlds: Any) -> None:
    for world in worlds:
        world.serve_on(stack.stripe)
        world.load_store(ObjectStore(stack.processor.dynamodb, "store"), load_metadata_schema())


def sqs_message(message_id: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    body = {"source": "stripe-middleware", "detail-type": detail_type, "detail": detail}
    return {"messageId": message_id, "body": json.dumps(body)}


def test_a_payout_paid_event_reconciles_its_payout_and_repairs_what_is_missing(stack: Stack) -> None:
    world = build_payout(30, payout_id="po_1Paid", created=T0)
    [gap] = [g for g in world.inject_every_gap() if g.kind == "missing_in_store"][:1]
    serve(stack, world)
    paid = {"id": "evt_1", "type": "payout.paid", "livemode": False, "account": None, "object": world.payout}
    result = stack.run({"Records": [sqs_message("m-1", "payout.paid", paid)]})
    assert result == {"batchItemFailures": []}
    record = stack.record("po_1Paid")
    assert record is not None and record["status"] == "discrepancies"  # the other injected gaps stay open
    repaired = {d["object_id"] for d in record["discrepancies"] if d["repaired"]}
    assert gap.object_id in repaired
    assert ObjectStore(stack.processor.dynamodb, "store").get_object(
        gap.object_type, gap.object_id, account=None, livemode=False
    )
    published = stack.processor.published()
    discrepancies = [
        p["detail"] for p in published if p["detail-type"] == DetailType.RECONCILIATION_DISCREPANCY
    ]
    assert {d["kind"] for d in discrepancies} >= {"missing_in_store", "amount_mismatch"}
    [completed] = [p["detail"] for p in published if p["detail-type"] == DetailType.RECONCILIATION_COMPLETED]
    for detail_type, details in (
        (DetailType.RECONCILIATION_DISCREPANCY, discrepancies),
        (DetailType.RECONCILIATION_COMPLETED, [completed]),
    ):
        validator = Draft4Validator(detail_schema(detail_type))
        assert [list(validator.iter_errors(d)) for d in details] == [[]] * len(details)

    # The same event again (SQS redelivery): nothing new is written or published.
    assert stack.run({"Records": [sqs_message("m-2", "payout.paid", paid)]}) == {"batchItemFailures": []}
    assert stack.published("stripe-middleware.reconciliation.discrepancy") == []


def test_a_failing_payout_goes_back_to_sqs_alone_and_other_modes_and_types_are_skipped(stack: Stack) -> None:
    good = build_payout(10, payout_id="po_1Good", created=T0)
    serve(stack, good)
    stack.stripe.fail_when(lambda r: "po_1Gone" in r.path, 400)
    gone = {"id": "po_1Gone"}  # not the whole payout (a truncated event): the function GETs it
    live = {"object": {**good.payout, "id": "po_1Live"}, "livemode": True}
    result = stack.run(
        {
            "Records": [
                sqs_message("m-good", "payout.paid", {"object": good.payout, "livemode": False}),
                sqs_message("m-gone", "payout.reconciliation_completed", {"object": gone, "livemode": False}),
                sqs_message("m-live", "payout.paid", live),
                sqs_message("m-other", "charge.succeeded", {"object": {"id": "ch_1"}, "livemode": False}),
            ]
        }
    )
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-gone"}]}
    good_record = stack.record("po_1Good")
    assert good_record is not None and good_record["status"] == "balanced"
    assert stack.record("po_1Live") is None


def test_the_cli_input_reconciles_one_payout_and_the_sweep_a_period(stack: Stack) -> None:
    earlier = build_payout(20, payout_id="po_1Earlier", created=T0 - 7 * DAY)
    later = build_payout(20, payout_id="po_1Later", created=T0)
    serve(stack, earlier, later)
    one = stack.run({"payout_id": "po_1Earlier", "account": None})
    assert [r["payout_id"] for r in one["records"]] == ["po_1Earlier"]
    assert one["records"][0]["status"] == "balanced" and one["counters"]["stripe_calls"] >= 2
    swept = stack.run({"since": T0 - 30 * DAY, "until": T0 + DAY, "accounts": [None]})
    assert sorted(r["payout_id"] for r in swept["records"]) == ["po_1Earlier", "po_1Later"]
    assert swept["failed"] == {} and swept["not_paid_out"] == []


def read(path: str, route: str, params: dict[str, str], query: dict[str, str] | None = None) -> Any:
    from functions.read_api.handler import handler, reconciliations

    reconciliations.cache_clear()
    event = http_api_event(path, method="GET", route_key=f"GET {route}", path_parameters=params, query=query)
    response = handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_the_read_api_serves_a_payouts_record_and_pages_through_them(stack: Stack) -> None:
    worlds = [build_payout(30, payout_id=f"po_1Page{i}", created=T0 - i * DAY) for i in range(3)]
    worlds[1].inject_every_gap()
    serve(stack, *worlds)
    stack.run({"since": T0 - 30 * DAY, "until": T0 + DAY, "accounts": [None]})
    route = "/v1/reconciliation/payouts/{payout_id}"
    status, record = read("/v1/reconciliation/payouts/po_1Page1", route, {"payout_id": "po_1Page1"})
    assert (status, record["status"]) == (200, "discrepancies")
    assert {t["reporting_category"] for t in record["totals"]} >= {"charge"}
    assert read("/v1/reconciliation/payouts/po_1None", route, {"payout_id": "po_1None"})[0] == 404
    assert (
        read("/v1/reconciliation/payouts/ch_1", route, {"payout_id": "ch_1"})[1]["error"]
        == "invalid_payout_id"
    )

    since = {"since": "2025-10-01"}
    pages, cursor = [], None
    while True:
        status, page = read(
            "/v1/reconciliation",
            "/v1/reconciliation",
            {},
            {**since, "limit": "2", **({"cursor": cursor} if cursor else {})},
        )
        assert status == 200
        pages.append([r["payout_id"] for r in page["reconciliations"]])
        if not (cursor := page["next"]):
            break
    assert [p for page in pages for p in page] == ["po_1Page0", "po_1Page1", "po_1Page2"]  # newest first
    status, page = read("/v1/reconciliation", "/v1/reconciliation", {}, {**since, "status": "discrepancies"})
    assert [r["payout_id"] for r in page["reconciliations"]] == ["po_1Page1"]
    assert (
        read("/v1/reconciliation", "/v1/reconciliation", {}, {"status": "odd"})[1]["error"]
        == "invalid_status"
    )


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ({"payout_id": "ch_1"}, "invalid_payout"),
        ({"payout_id": "po_1", "account": "cus_1"}, "invalid_payout"),
        ({"since": "yesterday"}, "invalid_since"),
        ({"accounts": ["platform"]}, "invalid_accounts"),
    ],
)
def test_bad_input_is_rejected_with_a_code(stack: Stack, event: dict[str, Any], code: str) -> None:
    with pytest.raises(RejectedError) as raised:
        stack.run(event)
    assert raised.value.code == code


def test_without_a_key_the_function_is_idle(
    processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.reconcile import handler

    secret = boto3.client("secretsmanager").create_secret(Name="empty-key", SecretString="placeholder")
    monkeypatch.setenv("STRIPE_API_KEY_SECRET_ID", secret["ARN"])
    monkeypatch.setenv("EVENTS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/events")
    monkeypatch.setenv("BACKFILL_DLQ_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq")
    handler.reconciler.cache_clear()
    try:
        assert "StripeReadOnlyKey" in handler.handler({}, LambdaContext())["skipped"]
    finally:
        handler.reconciler.cache_clear()
