"""`process_batch` on the in-memory store and bus: exactly-once effects, at-least-once publication."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import stripe_event
from stripe_middleware.processing.processor import BatchOutcome, Message, process_batch
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from tests.fakes.ports import FakePublisher, FakeRefetch, FakeStore, SimulatedCrash

T = 1_764_000_000
INVOICE = "in_unit_lifecycle"
CUSTOMER_METADATA = {"erp_id": "NS-100200", "crm_account_id": "001A00000abcDEF"}


def invoice_event(event_type: str, event_id: str, created: int, status: str, **fields: Any) -> dict[str, Any]:
    return stripe_event(event_type, event_id=event_id, created=created, id=INVOICE, status=status, **fields)


def customer_event(event_id: str, **fields: Any) -> dict[str, Any]:
    return stripe_event("customer.created", event_id=event_id, created=T, id="cus_unit_1", **fields)


def message(event: dict[str, Any], message_id: str | None = None) -> Message:
    return Message(message_id or f"m-{event['id']}", json.dumps(event))


def run(store: FakeStore, publisher: FakePublisher, *messages: Message, **options: Any) -> BatchOutcome:
    return process_batch(messages, store=store, publisher=publisher, schema=load_metadata_schema(), **options)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


PAID = invoice_event("invoice.paid", "evt_unit_paid", T + 10, "paid")
FINALIZED = invoice_event("invoice.finalized", "evt_unit_finalized", T, "open")
CUSTOMER = customer_event("evt_unit_customer", metadata=CUSTOMER_METADATA)


def test_an_event_is_stored_normalized_and_published_once(store: FakeStore, publisher: FakePublisher) -> None:
    outcome = run(store, publisher, message(PAID))
    assert outcome.failed_message_ids == [] and outcome.published == 1
    stored = store.snapshot("invoice", INVOICE)
    assert stored is not None and stored.event_id == "evt_unit_paid" and stored.status == "paid"
    assert stored.object == PAID["data"]["object"]
    [published] = publisher.published
    assert published.key == "evt_unit_paid" and published.detail_type == "invoice.paid"
    assert published.detail["object"] == PAID["data"]["object"]
    assert published.detail["flags"] == {"stale": False, "duplicate_of": None, "object_truncated": False}
    assert store.events == {"evt_unit_paid"}


def test_the_store_reads_back_the_normalized_object(store: FakeStore, publisher: FakePublisher) -> None:
    run(store, publisher, message(PAID))
    [found] = store.get_object("invoice", INVOICE)
    assert found["account"] is None and found["livemode"] is False
    assert found["status"] == "paid" and found["customer_id"] == PAID["data"]["object"]["customer"]
    assert found["object"] == PAID["data"]["object"] and "order_key" not in found
    assert store.customer_objects(found["customer_id"], account=None, livemode=False) == [found]


def test_the_same_event_twice_in_a_batch_is_published_once(
    store: FakeStore, publisher: FakePublisher
) -> None:
    outcome = run(store, publisher, message(PAID, "m-1"), message(PAID, "m-2"))
    assert outcome.duplicates == 1 and outcome.failed_message_ids == []
    assert len(publisher.published) == 1 and len(store.writes) == 1


def test_an_already_processed_event_is_counted_and_not_republished(
    store: FakeStore, publisher: FakePublisher
) -> None:
    run(store, publisher, message(PAID))
    outcome = run(store, publisher, message(PAID))
    assert outcome.duplicates == 1 and outcome.processed == [] and outcome.failed_message_ids == []
    assert len(publisher.published) == 1 and len(store.writes) == 1


def test_an_older_event_does_not_overwrite_and_is_published_as_stale(
    store: FakeStore, publisher: FakePublisher
) -> None:
    run(store, publisher, message(PAID))
    outcome = run(store, publisher, message(FINALIZED))
    assert outcome.stale == 1 and outcome.failed_message_ids == []
    stored = store.snapshot("invoice", INVOICE)
    assert stored is not None and stored.event_id == "evt_unit_paid" and stored.status == "paid"
    stale = publisher.published[-1]
    assert stale.key == "evt_unit_finalized" and stale.detail["flags"]["stale"] is True


# One invoice's life, two of its events in the same second (the order key breaks that tie).
LIFECYCLE = [
    invoice_event("invoice.created", "evt_unit_l1", T, "draft"),
    invoice_event("invoice.finalized", "evt_unit_l2", T + 1, "open"),
    invoice_event("invoice.updated", "evt_unit_l3", T + 1, "open", description="same second"),
    invoice_event("invoice.paid", "evt_unit_l4", T + 2, "paid"),
]


def deliver_one_by_one(events: list[dict[str, Any]]) -> tuple[FakeStore, FakePublisher]:
    store, publisher = FakeStore(), FakePublisher()
    for event in events:
        assert run(store, publisher, message(event)).failed_message_ids == []
    return store, publisher


@settings(max_examples=40, deadline=None)
@given(st.permutations(LIFECYCLE))
def test_any_delivery_order_of_a_lifecycle_ends_in_the_same_snapshot(order: list[dict[str, Any]]) -> None:
    expected, _ = deliver_one_by_one(LIFECYCLE)
    store, publisher = deliver_one_by_one(order)
    assert store.snapshot("invoice", INVOICE) == expected.snapshot("invoice", INVOICE)
    final = store.snapshot("invoice", INVOICE)
    assert final is not None and final.event_id == "evt_unit_l4" and final.status == "paid"
    assert sorted(p.key for p in publisher.published) == [e["id"] for e in LIFECYCLE]


def test_the_same_second_tie_goes_to_the_same_event_in_either_order() -> None:
    pair = LIFECYCLE[1:3]
    forward, _ = deliver_one_by_one(pair)
    backward, _ = deliver_one_by_one(pair[::-1])
    assert forward.snapshot("invoice", INVOICE) == backward.snapshot("invoice", INVOICE)


def test_a_redelivery_after_a_crash_between_store_and_publish_is_republished_not_reapplied(
    store: FakeStore, publisher: FakePublisher
) -> None:
    store.crash_after_upsert = {"evt_unit_paid"}
    with pytest.raises(SimulatedCrash):
        run(store, publisher, message(PAID))
    assert publisher.published == [] and store.events == set()
    outcome = run(store, publisher, message(PAID))
    assert outcome.failed_message_ids == [] and outcome.stale == 0
    [published] = publisher.published
    assert published.detail["flags"]["duplicate_of"] == "evt_unit_paid"
    assert published.detail["flags"]["stale"] is False
    assert len(store.writes) == 1 and store.events == {"evt_unit_paid"}


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"id": "in_123", "object": "invoice"}),
        json.dumps({"detail-type": "invoice.paid", "detail": {"id": "evt_1"}}),
    ],
    ids=["text", "array", "an-object-not-an-event", "envelope-without-an-event"],
)
def test_an_invalid_message_fails_only_itself(store: FakeStore, publisher: FakePublisher, body: str) -> None:
    outcome = run(store, publisher, Message("m-bad", body), message(PAID))
    assert outcome.failed_message_ids == ["m-bad"] and "m-bad" in outcome.errors
    assert [p.key for p in publisher.published] == ["evt_unit_paid"]


def test_an_eventbridge_envelope_is_unwrapped(store: FakeStore, publisher: FakePublisher) -> None:
    envelope = {
        "version": "0",
        "detail-type": "invoice.paid",
        "source": "aws.partner/stripe.com",
        "detail": PAID,
    }
    outcome = run(store, publisher, Message("m-1", json.dumps(envelope)))
    assert outcome.failed_message_ids == [] and [p.key for p in publisher.published] == ["evt_unit_paid"]


def test_when_the_dedup_records_cannot_be_read_every_message_fails(
    store: FakeStore, publisher: FakePublisher
) -> None:
    store.unavailable = {"seen_events"}
    outcome = run(store, publisher, message(PAID), message(CUSTOMER))
    assert sorted(outcome.failed_message_ids) == ["m-evt_unit_customer", "m-evt_unit_paid"]
    assert store.writes == [] and publisher.published == []


def test_a_failed_object_write_fails_only_that_message(store: FakeStore, publisher: FakePublisher) -> None:
    store.unavailable_ids = {INVOICE}
    outcome = run(store, publisher, message(PAID), message(CUSTOMER))
    assert outcome.failed_message_ids == ["m-evt_unit_paid"]
    assert [p.key for p in publisher.published] == ["evt_unit_customer"]
    assert store.events == {"evt_unit_customer"}


def test_an_object_too_large_fails_only_that_message(store: FakeStore, publisher: FakePublisher) -> None:
    store.too_large_ids = {INVOICE}
    outcome = run(store, publisher, message(PAID), message(CUSTOMER))
    assert (
        outcome.failed_message_ids == ["m-evt_unit_paid"] and "too large" in outcome.errors["m-evt_unit_paid"]
    )
    assert [p.key for p in publisher.published] == ["evt_unit_customer"]
    assert store.snapshot("invoice", INVOICE) is None


def test_a_failed_publication_fails_only_its_message_which_is_republished_on_retry(
    store: FakeStore, publisher: FakePublisher
) -> None:
    publisher.fail_keys = {"evt_unit_paid"}
    outcome = run(store, publisher, message(PAID), message(CUSTOMER))
    assert outcome.failed_message_ids == ["m-evt_unit_paid"] and outcome.published == 1
    assert store.events == {"evt_unit_customer"}  # the failed one is not recorded as seen
    publisher.fail_keys = set()
    retry = run(store, publisher, message(PAID))
    assert retry.failed_message_ids == [] and retry.duplicates == 0
    assert publisher.details("invoice.paid")[0]["flags"]["duplicate_of"] == "evt_unit_paid"


def test_when_nothing_can_be_published_every_message_fails(
    store: FakeStore, publisher: FakePublisher
) -> None:
    publisher.fail_all = True
    outcome = run(store, publisher, message(PAID), message(CUSTOMER))
    assert sorted(outcome.failed_message_ids) == ["m-evt_unit_customer", "m-evt_unit_paid"]
    assert outcome.published == 0 and store.events == set()


def test_when_the_dedup_records_cannot_be_written_the_published_messages_fail_and_are_republished(
    store: FakeStore, publisher: FakePublisher
) -> None:
    store.unavailable = {"record_events"}
    outcome = run(store, publisher, message(PAID), message(CUSTOMER))
    assert sorted(outcome.failed_message_ids) == ["m-evt_unit_customer", "m-evt_unit_paid"]
    assert len(publisher.published) == 2 and store.events == set()
    store.unavailable = set()
    retry = run(store, publisher, message(PAID), message(CUSTOMER))
    assert retry.failed_message_ids == [] and len(publisher.published) == 4
    assert len(store.writes) == 2 and store.events == {"evt_unit_paid", "evt_unit_customer"}


def test_metadata_that_breaks_the_schema_is_published_as_a_violation(
    store: FakeStore, publisher: FakePublisher
) -> None:
    outcome = run(store, publisher, message(customer_event("evt_unit_bad", metadata={"erp_id": "nope"})))
    assert outcome.metadata_violations == 1 and outcome.failed_message_ids == []
    [violation] = publisher.details(DetailType.METADATA_VIOLATION)
    assert violation["event_id"] == "evt_unit_bad" and violation["object_id"] == "cus_unit_1"
    assert {(v["key"], v["code"]) for v in violation["violations"]} == {
        ("erp_id", "pattern"),
        ("crm_account_id", "missing"),
    }
    assert [p.detail_type for p in publisher.published] == ["customer.created", DetailType.METADATA_VIOLATION]
    stored = store.snapshot("customer", "cus_unit_1")
    assert stored is not None and stored.metadata_violations == violation["violations"]


def test_metadata_that_fits_the_schema_publishes_no_violation(
    store: FakeStore, publisher: FakePublisher
) -> None:
    outcome = run(store, publisher, message(CUSTOMER))
    assert outcome.metadata_violations == 0
    assert [p.detail_type for p in publisher.published] == ["customer.created"]


def test_a_same_second_tie_is_settled_by_stripes_current_object(
    store: FakeStore, publisher: FakePublisher
) -> None:
    current = {**LIFECYCLE[2]["data"]["object"], "status": "paid"}
    refetch = FakeRefetch({("invoice", INVOICE): current})
    run(store, publisher, message(LIFECYCLE[1]), refetch=refetch)
    run(store, publisher, message(LIFECYCLE[2]), refetch=refetch)
    assert refetch.calls == [("evt_unit_l3", "invoice", INVOICE)]
    stored = store.snapshot("invoice", INVOICE)
    assert stored is not None and stored.object == current and stored.status == "paid"
    assert publisher.details("invoice.updated")[0]["normalized"]["status"] == "paid"


def test_without_stripes_object_a_same_second_tie_keeps_the_order_key_rule(
    store: FakeStore, publisher: FakePublisher
) -> None:
    refetch = FakeRefetch()  # Stripe cannot be read
    run(store, publisher, message(LIFECYCLE[1]), refetch=refetch)
    run(store, publisher, message(LIFECYCLE[2]), refetch=refetch)
    expected, _ = deliver_one_by_one(LIFECYCLE[1:3])
    assert len(refetch.calls) == 1
    assert store.snapshot("invoice", INVOICE) == expected.snapshot("invoice", INVOICE)


def test_a_later_refetch_in_the_same_second_replaces_an_earlier_one(
    store: FakeStore, publisher: FakePublisher
) -> None:
    base = {"id": INVOICE, "object": "invoice", "created": T, "customer": "cus_unit_1"}
    events = [
        stripe_event("invoice.updated", event_id=f"evt_same_{n}", created=T, obj={**base, "status": "open"})
        for n in range(3)
    ]
    refetch = FakeRefetch({("invoice", INVOICE): {**base, "status": "open"}})
    run(store, publisher, message(events[0]), refetch=refetch)
    run(store, publisher, message(events[1]), refetch=refetch)  # Stripe still says open
    refetch.objects[("invoice", INVOICE)] = {**base, "status": "paid"}
    run(store, publisher, message(events[2]), refetch=refetch)  # now Stripe says paid
    stored = store.snapshot("invoice", INVOICE)
    assert stored is not None and stored.status == "paid"
    last = publisher.details("invoice.updated")[-1]
    assert last["normalized"]["status"] == "paid" and not last["flags"]["stale"]
