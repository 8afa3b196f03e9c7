"""Published events validate against the JSON Schemas the stack registers (events/schemas/)."""

from __future__ import annotations

from jsonschema import Draft4Validator

from events import DETAIL_SCHEMAS, detail_schema, event_types, load_event, stripe_event, stripe_object
from stripe_middleware.backfill.catchup import gap_detail
from stripe_middleware.backfill.resources import RESOURCES
from stripe_middleware.backfill.run import backfilled_detail
from stripe_middleware.processing.normalize import normalize_snapshot
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from tests.integration.conftest import ProcessorStack


def test_schemas_are_valid_draft4() -> None:
    for path in DETAIL_SCHEMAS.values():
        Draft4Validator.check_schema(load_event(path))


def test_every_published_detail_validates_against_its_schema(processor_stack: ProcessorStack) -> None:
    types = event_types()
    for start in range(0, len(types), 10):
        batch = [stripe_event(t, metadata={"campaign": "tv"}) for t in types[start : start + 10]]
        assert processor_stack.deliver(*batch) == []
    published = processor_stack.published()
    assert {p["detail-type"] for p in published} >= {*types, "stripe-middleware.metadata.violation"}
    for event in published:
        errors = sorted(
            Draft4Validator(detail_schema(event["detail-type"])).iter_errors(event["detail"]), key=str
        )
        assert errors == [], (event["detail-type"], [e.message for e in errors[:3]])


def test_the_schema_catches_a_broken_detail() -> None:
    detail = {"id": "not-an-event-id", "type": "invoice.paid"}
    assert list(Draft4Validator(detail_schema("invoice.paid")).iter_errors(detail))


# Fixture resource of each backfill list (the object each list endpoint returns).
BACKFILLED_RESOURCES = [
    "account",
    "customer",
    "product",
    "price",
    "plan",
    "coupon",
    "promotion_code",
    "tax_rate",
    "subscription",
    "subscription_schedule",
    "invoice",
    "invoiceitem",
    "credit_note",
    "payment_intent",
    "setup_intent",
    "payment_method",
    "charge",
    "refund",
    "dispute",
    "checkout.session",
    "payout",
    "balance_transaction",
]


def test_every_backfilled_detail_validates_against_its_schema() -> None:
    assert len(BACKFILLED_RESOURCES) == len(RESOURCES)  # one real example per list endpoint
    schema = detail_schema(DetailType.OBJECT_BACKFILLED)
    for resource in BACKFILLED_RESOURCES:
        stored = normalize_snapshot(
            stripe_object(resource, metadata={"campaign": "tv"}),
            load_metadata_schema(),
            account="acct_1Nv0FGQ9RKHgCVdK",
            livemode=False,
            run_id="bf_0123456789abcdef",
            as_of=1_764_000_000,
        )
        detail = backfilled_detail(stored, "bf_0123456789abcdef")
        errors = [e.message for e in Draft4Validator(schema).iter_errors(detail)]
        assert errors == [], (resource, errors[:3])
    broken = {**detail, "run_id": "not-a-run"}
    assert list(Draft4Validator(schema).iter_errors(broken))


def test_the_catchup_gap_detail_validates_and_suggests_a_backfill() -> None:
    detail = gap_detail(1_700_000_000, 1_764_000_000, livemode=True)
    assert list(Draft4Validator(detail_schema(DetailType.CATCHUP_GAP)).iter_errors(detail)) == []
    assert detail["suggestion"] == "stripe-middleware backfill --created-gte 2023-11-14"
