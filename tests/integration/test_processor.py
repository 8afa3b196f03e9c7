from __future__ import annotations

import json
import random
from typing import Any

import pytest
from botocore.exceptions import ClientError

from events import event_types, stripe_event, stripe_object
from tests.integration.conftest import ProcessorStack

CUSTOMER_OK_METADATA = {"erp_id": "NS-100200", "crm_account_id": "001A00000abcDEF"}


def details(published: list[dict[str, Any]], detail_type: str | None = None) -> list[dict[str, Any]]:
    """Details of one detail-type, or of every Stripe event (not the middleware's own signals)."""
    if detail_type is None:
        return [p["detail"] for p in published if not p["detail-type"].startswith("stripe-middleware.")]
    return [p["detail"] for p in published if p["detail-type"] == detail_type]


def test_event_is_stored_normalized_and_published_once(processor_stack: ProcessorStack) -> None:
    event = stripe_event("invoice.paid", account="acct_1Conn", livemode=True)
    assert processor_stack.deliver(event) == []
    [stored] = processor_stack.stored("invoice", event["data"]["object"]["id"])
    invoice = event["data"]["object"]
    assert stored["object"] == invoice
    assert stored["account"] == "acct_1Conn" and stored["livemode"] is True
    assert stored["customer_id"] == invoice["customer"]
    assert stored["amount"] == invoice["amount_due"] and stored["currency"] == invoice["currency"]
    assert stored["status"] == invoice["status"]
    assert stored["created"].endswith("Z") and stored["event_id"] == event["id"]
    [published] = processor_stack.published()
    assert published["source"] == "stripe-middleware" and published["detail-type"] == "invoice.paid"
    detail = published["detail"]
    assert detail["id"] == event["id"] and detail["account"] == "acct_1Conn"
    assert detail["object"] == invoice and detail["flags"] == {
        "stale": False,
        "duplicate_of": None,
        "object_truncated": False,
    }
    assert detail["normalized"]["object_id"] == invoice["id"]


def test_duplicates_in_and_across_batches_are_applied_and_published_once(
    processor_stack: ProcessorStack,
) -> None:
    event = stripe_event("customer.created", metadata=CUSTOMER_OK_METADATA)
    assert processor_stack.deliver(event, event) == []
    assert processor_stack.deliver(event) == []
    assert len(processor_stack.published()) == 1


def test_eventbridge_envelope_from_the_partner_bus_is_unwrapped(processor_stack: ProcessorStack) -> None:
    event = stripe_event("charge.succeeded")
    envelope = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "charge.succeeded",
        "source": "aws.partner/stripe.com/ed_61Sx0aBcDeFgHiJkL",
        "account": "123456789012",
        "time": "2026-11-24T04:40:45Z",
        "region": "us-east-1",
        "resources": [],
        "detail": event,
    }
    assert processor_stack.deliver(envelope) == []
    assert processor_stack.stored("charge", event["data"]["object"]["id"])[0]["event_id"] == event["id"]
    # The same event later by webhook is a duplicate.
    assert processor_stack.deliver(event) == []
    assert len(processor_stack.published()) == 1


def test_connect_accounts_and_modes_never_collide(processor_stack: ProcessorStack) -> None:
    variants = [(None, False), (None, True), ("acct_A", False), ("acct_B", False)]
    for account, livemode in variants:
        event = stripe_event(
            "product.updated", account=account, livemode=livemode, name=f"{account}-{livemode}"
        )
        assert processor_stack.deliver(event) == []
    product_id = stripe_object("product")["id"]
    stored = processor_stack.stored("product", product_id)
    assert {(s["account"], s["livemode"]) for s in stored} == set(variants)
    assert {s["object"]["name"] for s in stored} == {f"{a}-{m}" for a, m in variants}
    assert len(processor_stack.stored("product", product_id, account="acct_A")) == 1


def subscription_history() -> list[dict[str, Any]]:
    """Six versions of one subscription; versions 2-4 share one `created` second."""
    statuses = ["incomplete", "trialing", "active", "past_due", "active", "canceled"]
    created = [100, 200, 300, 300, 300, 400]
    types = (
        ["customer.subscription.created"]
        + ["customer.subscription.updated"] * 4
        + ["customer.subscription.deleted"]
    )
    return [
        stripe_event(t, created=1_764_000_000 + c, event_id=f"evt_{i:04d}", status=s)
        for i, (t, c, s) in enumerate(zip(types, created, statuses, strict=True))
    ]


@pytest.mark.parametrize("seed", range(8))
def test_shuffled_events_with_same_second_ties_end_in_one_deterministic_snapshot(
    processor_stack: ProcessorStack, seed: int
) -> None:
    history = subscription_history()
    shuffled = history[:]
    random.Random(seed).shuffle(shuffled)
    for event in shuffled:  # one event per batch: the worst case for ordering
        assert processor_stack.deliver(event) == []
    [stored] = processor_stack.stored("subscription", history[0]["data"]["object"]["id"])
    assert stored["event_id"] == "evt_0005" and stored["status"] == "canceled"
    assert stored["deleted_at"] is not None  # soft delete, object kept
    published = details(processor_stack.published())
    assert sorted(d["id"] for d in published) == [e["id"] for e in history]  # stale ones too, once each
    position = {e["id"]: i for i, e in enumerate(shuffled)}
    for detail in published:
        later_and_newer = [
            e for e in history if position[e["id"]] < position[detail["id"]] and e["id"] > detail["id"]
        ]
        assert detail["flags"]["stale"] == bool(later_and_newer)


def test_deletion_soft_deletes_with_timestamp(processor_stack: ProcessorStack) -> None:
    created = stripe_event("customer.created", created=1_764_000_000, metadata=CUSTOMER_OK_METADATA)
    deleted = stripe_event("customer.deleted", created=1_764_000_100)
    assert processor_stack.deliver(created, deleted) == []
    [stored] = processor_stack.stored("customer", created["data"]["object"]["id"])
    assert stored["deleted_at"] == "2025-11-24T16:01:40Z"
    assert stored["object"]["deleted"] is True


def test_oversized_object_is_stored_and_published_without_its_body(processor_stack: ProcessorStack) -> None:
    invoice = stripe_object("invoice")
    line = invoice["lines"]["data"][0] if invoice["lines"]["data"] else {"id": "il_1", "object": "line_item"}
    invoice["lines"]["data"] = [
        {**line, "id": f"il_{i:06d}", "description": f"Seat {i} of plan {i % 7}", "amount": 1000 + i}
        for i in range(1500)
    ]
    event = stripe_event("invoice.finalized", obj=invoice)
    assert len(json.dumps(event)) > 400_000  # beyond DynamoDB's item limit before compression
    assert processor_stack.deliver(event) == []
    [stored] = processor_stack.stored("invoice", invoice["id"])
    assert len(stored["object"]["lines"]["data"]) == 1500
    [detail] = details(processor_stack.published())
    assert detail["object"] is None and detail["flags"]["object_truncated"] is True
    assert detail["normalized"]["object_id"] == invoice["id"]


def test_every_stripe_event_type_is_stored_and_routed(processor_stack: ProcessorStack) -> None:
    all_types = [*event_types(), "brand_new.thing.happened"]  # plus a type Stripe has not invented yet
    for start in range(0, len(all_types), 10):
        batch = [
            stripe_event(t, event_id=f"evt_{t.replace('.', '_')}") for t in all_types[start : start + 10]
        ]
        assert processor_stack.deliver(*batch) == []
    published = processor_stack.published()
    routed = [p for p in published if p["detail-type"] != "stripe-middleware.metadata.violation"]
    assert sorted(p["detail-type"] for p in routed) == sorted(all_types)


def test_metadata_violations_are_recorded_signalled_and_never_drop_the_event(
    processor_stack: ProcessorStack,
) -> None:
    event = stripe_event("customer.updated", metadata={"erp_id": " ns-12345 ", "campaign": "tv"})
    assert processor_stack.deliver(event) == []
    [stored] = processor_stack.stored("customer", event["data"]["object"]["id"])
    assert stored["metadata"]["erp_id"] == "NS-12345"  # normalized
    codes = {(v["key"], v["code"]) for v in stored["metadata_violations"]}
    assert codes == {("crm_account_id", "missing"), ("campaign", "not_allowed")}
    published = processor_stack.published()
    [violation] = details(published, "stripe-middleware.metadata.violation")
    assert violation["event_id"] == event["id"] and len(violation["violations"]) == 2
    assert len(details(published, "customer.updated")) == 1


def test_poison_message_is_reported_failed_and_the_rest_of_the_batch_succeeds(
    processor_stack: ProcessorStack,
) -> None:
    good = stripe_event("price.created")
    failed = processor_stack.deliver("{not json", json.dumps({"hello": "world"}), good)
    assert len(failed) == 2
    assert processor_stack.stored("price", good["data"]["object"]["id"])


def throttle(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}}, operation
    )


def test_dynamodb_throttling_mid_batch_fails_only_that_message_and_the_retry_completes(
    processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.processor.handler import dependencies

    client = dependencies().store._client
    real_put = client.put_item
    batch = [stripe_event("payment_intent.succeeded", event_id=f"evt_pi_{i}", id=f"pi_{i}") for i in range(5)]

    def flaky_put(**kwargs: Any) -> Any:
        if kwargs["Item"]["object_id"]["S"] == "pi_2":
            raise throttle("PutItem")
        return real_put(**kwargs)

    monkeypatch.setattr(client, "put_item", flaky_put)
    failed = processor_stack.deliver(*batch)
    assert len(failed) == 1
    assert not processor_stack.stored("payment_intent", "pi_2")
    monkeypatch.setattr(client, "put_item", real_put)
    assert (
        processor_stack.deliver(*batch) == []
    )  # SQS redelivers the whole batch minus what it deleted; worst case
    assert processor_stack.stored("payment_intent", "pi_2")
    ids = sorted(d["id"] for d in details(processor_stack.published()))
    assert ids == sorted(e["id"] for e in batch)  # each published once: the retry skips what was recorded


def test_partial_put_events_failure_loses_nothing_and_applies_nothing_twice(
    processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.processor.handler import dependencies

    client = dependencies().publisher._client
    real_put_events = client.put_events
    batch = [stripe_event("charge.refunded", event_id=f"evt_ch_{i}", id=f"ch_{i}") for i in range(4)]

    def partial(**kwargs: Any) -> Any:
        kept = [e for e in kwargs["Entries"] if '"ch_1"' not in e["Detail"]]
        response = real_put_events(Entries=kept)
        entries = iter(response["Entries"])
        results = [
            next(entries)
            if '"ch_1"' not in e["Detail"]
            else {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}
            for e in kwargs["Entries"]
        ]
        return {"FailedEntryCount": 1, "Entries": results}

    monkeypatch.setattr(client, "put_events", partial)
    failed = processor_stack.deliver(*batch)
    assert len(failed) == 1
    first = details(processor_stack.published())
    assert sorted(d["id"] for d in first) == ["evt_ch_0", "evt_ch_2", "evt_ch_3"]
    monkeypatch.setattr(client, "put_events", real_put_events)
    redelivered = next(e for e in batch if e["id"] == "evt_ch_1")
    assert processor_stack.deliver(redelivered) == []
    [retry] = details(processor_stack.published())
    assert retry["id"] == "evt_ch_1"
    assert retry["flags"]["duplicate_of"] == "evt_ch_1"  # subscribers learn it may be a repeat
    [stored] = processor_stack.stored("charge", "ch_1")
    assert stored["event_id"] == "evt_ch_1"


def test_crash_between_store_and_publish_is_recovered_by_the_redelivery(
    processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.processor.handler import dependencies

    publisher = dependencies().publisher

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("Lambda died mid-batch")

    batch = [stripe_event("invoice.payment_failed", event_id=f"evt_inv_{i}", id=f"in_{i}") for i in range(3)]
    monkeypatch.setattr(publisher, "publish", crash)
    with pytest.raises(MemoryError):
        processor_stack.deliver(*batch)
    assert processor_stack.stored("invoice", "in_1")  # stored, not yet published
    assert processor_stack.published() == []
    monkeypatch.undo()
    assert processor_stack.deliver(*batch) == []  # SQS redelivers the whole batch after the crash
    assert sorted(d["id"] for d in details(processor_stack.published())) == [e["id"] for e in batch]


def test_store_outage_fails_the_batch_without_publishing(
    processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.processor.handler import dependencies

    client = dependencies().store._client

    def down(**kwargs: Any) -> Any:
        raise throttle("BatchGetItem")

    monkeypatch.setattr(client, "batch_get_item", down)
    batch = [stripe_event("customer.updated") for _ in range(3)]
    assert len(processor_stack.deliver(*batch)) == 3
    assert processor_stack.published() == []


def test_recording_failure_after_publication_retries_and_republishes(
    processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.processor.handler import dependencies

    client = dependencies().store._client
    real = client.batch_write_item

    def down(**kwargs: Any) -> Any:
        raise throttle("BatchWriteItem")

    event = stripe_event("refund.created")
    monkeypatch.setattr(client, "batch_write_item", down)
    assert len(processor_stack.deliver(event)) == 1
    monkeypatch.setattr(client, "batch_write_item", real)
    assert processor_stack.deliver(event) == []
    assert processor_stack.deliver(event) == []  # now recorded: a third delivery is a plain duplicate
    published = details(processor_stack.published())
    assert [d["id"] for d in published] == [event["id"], event["id"]]  # at-least-once under the fault


def test_logs_and_metrics_carry_the_event_id(
    processor_stack: ProcessorStack, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from functions.processor.handler import logger

    logs = io.StringIO()
    handler = logger.registered_handler
    original = handler.setStream(logs)  # the handler kept the stdout of import time
    event = stripe_event("customer.created", email="jenny.rosen@example.com")
    try:
        processor_stack.deliver(event, event)
    finally:
        handler.setStream(original)
    output = logs.getvalue() + capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    stored_logs = [line for line in lines if line.get("message") == "event stored"]
    assert stored_logs[0]["correlation_id"] == event["id"]
    metrics = next(line for line in lines if "_aws" in line)
    assert metrics["Duplicates"] == [1.0]
    assert "StripeToStoredLatency" in metrics
    assert "jenny.rosen@example.com" not in json.dumps(lines)
