"""The signals Lambda on moto: Stripe events through the real processor, the stack's own bus rule to the
signals queue, the signals handler, its DynamoDB state, the bus and the read API's signal routes."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from jsonschema import Draft4Validator

from events import http_api_event, load_event, stripe_event, stripe_object
from stripe_middleware.adapters.dynamodb.signals import SignalStore
from stripe_middleware.shared.errors import StoreUnavailableError
from tests.infra.conftest import synthesized
from tests.integration.conftest import LambdaContext, ProcessorStack

T0 = (int(time.time()) // 86_400 - 3) * 86_400 + 16 * 3600  # 16:00 UTC three days ago: "open" anomalies
SINCE = time.strftime("%Y-%m-%d", time.gmtime(T0 - 86_400))
CARD = stripe_object("charge")["payment_method_details"]["card"]
ANOMALY_SCHEMA = Draft4Validator(load_event("schemas/signal-anomaly.detail.schema.json"))


def charge(
    charge_id: str, at: int, *, customer: str = "cus_dup", amount: int = 2000, **fields: Any
) -> dict[str, Any]:
    event = stripe_event(
        "charge.succeeded",
        created=at,
        id=charge_id,
        customer=customer,
        amount=amount,
        status=fields.pop("status", "succeeded"),
        payment_method_details={"type": "card", "card": {**CARD, "fingerprint": f"fp_{customer}"}},
        **fields,
    )
    event["data"]["object"]["created"] = at
    return event


@dataclass
class SignalsStack:
    processor: ProcessorStack
    queue_url: str

    def route(self, *events: dict[str, Any]) -> None:
        """Stripe events through the processor; the bus rule queues them for signals."""
        for event in events:
            assert self.processor.deliver(event) == []

    def queued(self) -> list[str]:
        bodies: list[str] = []
        sqs = self.processor.sqs
        while batch := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def consume(self, bodies: list[str]) -> list[str]:
        """Run the signals handler on one SQS batch; the ids of the messages it reported as failed."""
        from functions.signals.handler import handler

        response = handler(self.processor.sqs_event(bodies), LambdaContext())
        return [f["itemIdentifier"] for f in response["batchItemFailures"]]

    def signals(self) -> list[dict[str, Any]]:
        """The anomalies published (one-off buyers' churn risks: tests/integration/test_rescore_lambda.py)."""
        return [
            p["detail"]
            for p in self.processor.published()
            if p["detail-type"] == "stripe-middleware.signal.anomaly"
        ]

    def read(self, path: str, route: str, params: dict[str, str], query: dict[str, str] | None = None) -> Any:
        from functions.read_api.handler import handler, signals

        signals.cache_clear()
        event = http_api_event(
            path, method="GET", route_key=f"GET {route}", path_parameters=params, query=query
        )
        response = handler(event, LambdaContext())
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def signals_stack(processor_stack: ProcessorStack) -> Iterator[SignalsStack]:
    from functions.signals import handler

    [rule] = [
        r["Properties"]
        for logical_id, r in synthesized("dev").resources("AWS::Events::Rule").items()
        if logical_id.startswith("SignalsStripeEventsToSignals")
    ]
    sqs, bus = processor_stack.sqs, processor_stack.bus_name
    queue_url = sqs.create_queue(QueueName="signals")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    processor_stack.events.put_rule(
        Name="signals", EventBusName=bus, EventPattern=json.dumps(rule["EventPattern"])
    )
    processor_stack.events.put_targets(
        Rule="signals", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    handler.dependencies.cache_clear()
    handler.model_in_use.cache_clear()
    yield SignalsStack(processor_stack, queue_url)
    handler.dependencies.cache_clear()
    handler.model_in_use.cache_clear()


def test_a_duplicate_charge_is_published_stored_and_served_once(signals_stack: SignalsStack) -> None:
    signals_stack.route(charge("ch_a", T0), charge("ch_b", T0 + 60))
    queued = signals_stack.queued()
    assert len(queued) == 2  # the rule takes the Stripe events; the processor's other publications not
    signals_stack.processor.published()  # (the Stripe events themselves, on the capture queue)
    assert signals_stack.consume(queued) == []
    [signal] = signals_stack.signals()
    ANOMALY_SCHEMA.validate(signal)
    assert (signal["kind"], signal["customer_id"]) == ("duplicate_charge", "cus_dup")
    assert signal["evidence"]["object_ids"] == ["ch_a", "ch_b"]
    # Its own publication does not come back to the signals queue.
    assert signals_stack.queued() == []

    status, body = signals_stack.read(
        "/v1/customers/cus_dup/signals", "/v1/customers/{customer_id}/signals", {"customer_id": "cus_dup"}
    )
    assert status == 200 and body["anomalies"] == [signal]
    assert [(r["kind"], r["level"]) for r in body["churn_risk"]] == [("churn_risk", "low")]  # a one-off buyer
    status, page = signals_stack.read(
        "/v1/signals", "/v1/signals", {}, {"kind": "duplicate_charge", "since": SINCE}
    )
    assert status == 200 and page == {"signals": [signal], "next": None}
    status, page = signals_stack.read(
        "/v1/signals", "/v1/signals", {}, {"kind": "card_testing", "since": SINCE}
    )
    assert page["signals"] == []

    # A redelivery of both messages, in the other order, publishes nothing again.
    assert signals_stack.consume(list(reversed(queued))) == []
    assert signals_stack.signals() == []


def test_shuffled_and_duplicated_streams_raise_the_same_signals(signals_stack: SignalsStack) -> None:
    events = [charge(f"ch_{n}", T0 + 30 * n, customer=f"cus_{n % 3}") for n in range(9)]
    signals_stack.route(*events)
    queued = signals_stack.queued()
    stream = queued + random.Random(7).sample(queued, 4)
    random.Random(11).shuffle(stream)
    for start in range(0, len(stream), 10):
        assert signals_stack.consume(stream[start : start + 10]) == []
    found = signals_stack.signals()
    # Each customer was charged the same amount three times within a minute: two later duplicates each.
    assert sorted((s["customer_id"], s["evidence"]["object_ids"][-1]) for s in found) == [
        ("cus_0", "ch_3"),
        ("cus_0", "ch_6"),
        ("cus_1", "ch_4"),
        ("cus_1", "ch_7"),
        ("cus_2", "ch_5"),
        ("cus_2", "ch_8"),
    ]
    assert len({s["signal_id"] for s in found}) == 6


def test_pages_of_signals_follow_each_other_without_gaps(signals_stack: SignalsStack) -> None:
    signals_stack.route(*[charge(f"ch_{n}", T0 + 30 * n, customer=f"cus_{n % 4}") for n in range(12)])
    assert signals_stack.consume(signals_stack.queued()) == []
    expected = sorted(signals_stack.signals(), key=lambda s: (s["as_of"], s["signal_id"]), reverse=True)
    assert len(expected) == 8
    pages, cursor = [], None
    while True:
        query = {
            "since": SINCE,
            "limit": "3",
            "kind": "duplicate_charge",
            **({"cursor": cursor} if cursor else {}),
        }
        status, page = signals_stack.read("/v1/signals", "/v1/signals", {}, query)
        assert status == 200
        pages.append(page["signals"])
        if not (cursor := page["next"]):
            break
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [s for p in pages for s in p] == expected


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"level": "severe"}, "invalid_level"),
        ({"kind": "Card Testing"}, "invalid_kind"),
        ({"since": "yesterday"}, "invalid_since"),
        ({"since": "0001-01-01"}, "invalid_since"),  # each month back is a query: at most two years
        ({"since": "0001-01-01T00:00:00+01:00"}, "invalid_since"),
        ({"limit": "500"}, "invalid_limit"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "invalid_cursor"),
        ({"account": "cus_1"}, "invalid_account"),
    ],
)
def test_bad_signal_queries_are_rejected_with_a_clear_code(
    signals_stack: SignalsStack, query: dict[str, str], code: str
) -> None:
    status, body = signals_stack.read("/v1/signals", "/v1/signals", {}, query)
    assert (status, body["error"]) == (400, code)


def test_a_failed_publication_is_retried_by_redelivery_and_published_once(
    signals_stack: SignalsStack,
) -> None:
    signals_stack.route(charge("ch_a", T0), charge("ch_b", T0 + 60))
    queued = signals_stack.queued()
    signals_stack.processor.published()
    from functions.signals.handler import detector

    events = detector().keywords["publisher"]._client  # the real boto3 client on moto
    refused = {
        "FailedEntryCount": 1,
        "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}],
    }
    with mock.patch.object(events, "put_events", return_value=refused):
        failed = signals_stack.consume(queued)
    assert len(failed) == 2  # the one that completed the finding, the one of the buyer's first churn risk
    assert signals_stack.signals() == []
    assert signals_stack.consume(queued) == []  # SQS redelivers (here: both, as after a crash)
    assert [s["kind"] for s in signals_stack.signals()] == ["duplicate_charge"]


def test_a_throttled_table_fails_only_the_affected_messages(signals_stack: SignalsStack) -> None:
    signals_stack.route(charge("ch_a", T0), charge("ch_b", T0 + 60))
    queued = signals_stack.queued()
    signals_stack.processor.published()
    with mock.patch.object(SignalStore, "add_facts", side_effect=StoreUnavailableError("throttled")):
        assert len(signals_stack.consume(queued)) == 2
    assert signals_stack.signals() == []
    assert signals_stack.consume(queued) == []
    assert len(signals_stack.signals()) == 1


def test_a_message_that_is_not_an_event_fails_alone_and_goes_on_to_the_dead_letter_queue(
    signals_stack: SignalsStack,
) -> None:
    signals_stack.route(charge("ch_a", T0))
    bodies = ["not json", json.dumps({"detail-type": "charge.succeeded"}), *signals_stack.queued()]
    first = signals_stack.processor._counter + 1
    assert signals_stack.consume(bodies) == [f"msg-{first}", f"msg-{first + 1}"]


def test_the_fact_state_keeps_the_newest_version_whatever_the_order(processor_stack: ProcessorStack) -> None:
    from stripe_middleware.signals.facts import facts_of

    store = SignalStore(processor_stack.dynamodb, processor_stack.table_name)
    failed = charge("ch_x", T0, status="failed")
    failed["type"] = "charge.failed"
    later = charge("ch_x", T0)
    later["created"] = T0 + 120  # a later event about the same charge: it succeeded on retry
    facts = {e["id"]: facts_of(e["type"], {**e, "object": e["data"]["object"]}) for e in (failed, later)}
    subject = "test/platform/customer/cus_dup"
    store.add_facts(subject, facts[later["id"]])
    store.add_facts(subject, facts[failed["id"]])  # older: refused by the condition
    [kept] = [f for f in store.facts(subject) if f.kind == "charge"]
    assert kept.version == T0 + 120 and not kept.failed
    assert store.facts(subject, since=T0 + 1) == []  # read from a time on: the charge was created at T0


def test_an_anomaly_raised_long_ago_is_published_but_no_longer_open(signals_stack: SignalsStack) -> None:
    old = T0 - 200 * 86_400
    signals_stack.route(charge("ch_a", old, customer="cus_old"), charge("ch_b", old + 60, customer="cus_old"))
    signals_stack.processor.published()
    assert signals_stack.consume(signals_stack.queued()) == []
    assert [s["kind"] for s in signals_stack.signals()] == ["duplicate_charge"]
    status, body = signals_stack.read(
        "/v1/customers/cus_old/signals", "/v1/customers/{customer_id}/signals", {"customer_id": "cus_old"}
    )
    assert status == 200 and body["anomalies"] == []  # open: raised within 90 days of event time
