"""The one-off buyers' churn risk on moto: Stripe charges through the real processor and the stack's bus rule
to the signals handler (the buyer's first assessment, their watch), then the re-score handler the daily
schedule runs (level changes on the bus, in the read API), its DynamoDB calls and its failures."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from jsonschema import Draft4Validator

from events import http_api_event, load_event, stripe_event, stripe_object
from stripe_middleware.signals.buyers import load_buyer_model
from tests.infra.conftest import synthesized
from tests.integration.conftest import LambdaContext, ProcessorStack

DAY = 86_400
NOW = int(time.time())
CARD = stripe_object("charge")["payment_method_details"]["card"]
SCHEMA = Draft4Validator(load_event("schemas/signal-churn-risk.detail.schema.json"))
CHURN_RISK = "stripe-middleware.signal.churn_risk"


def charge(charge_id: str, at: int, customer: str, amount: int = 4200) -> dict[str, Any]:
    event = stripe_event(
        "charge.succeeded",
        created=at,
        id=charge_id,
        customer=customer,
        amount=amount,
        status="succeeded",
        payment_method_details={"type": "card", "card": {**CARD, "fingerprint": f"fp_{customer}"}},
    )
    event["data"]["object"]["created"] = at
    return event


class RescoreContext(LambdaContext):
    function_name = "rescore"

    def __init__(self, remaining_ms: int = 900_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class BuyersStack:
    processor: ProcessorStack
    queue_url: str

    def charge(self, *events: dict[str, Any]) -> None:
        """Stripe events through the processor, the bus rule, the signals queue and the signals handler."""
        from functions.signals.handler import handler

        for event in events:
            assert self.processor.deliver(event) == []
        bodies = []
        sqs = self.processor.sqs
        while batch := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        response = handler(self.processor.sqs_event(bodies), LambdaContext())
        assert response["batchItemFailures"] == []

    def rescore(self, context: RescoreContext | None = None) -> dict[str, Any]:
        from functions.rescore.handler import handler

        result: dict[str, Any] = handler({}, context or RescoreContext())
        return result

    def churn_risks(self) -> list[dict[str, Any]]:
        return [p["detail"] for p in self.processor.published() if p["detail-type"] == CHURN_RISK]

    def served(self, customer: str) -> list[dict[str, Any]]:
        from functions.read_api.handler import handler, signals

        signals.cache_clear()
        event = http_api_event(
            f"/v1/customers/{customer}/signals",
            method="GET",
            route_key="GET /v1/customers/{customer_id}/signals",
            path_parameters={"customer_id": customer},
        )
        response = handler(event, LambdaContext())
        assert response["statusCode"] == 200
        churn: list[dict[str, Any]] = json.loads(response["body"])["churn_risk"]
        return churn


@pytest.fixture
def buyers_stack(processor_stack: ProcessorStack) -> Iterator[BuyersStack]:
    from functions.rescore import handler as rescore
    from functions.signals import handler as signals

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
    for cached in (signals.dependencies, signals.model_in_use, rescore.dependencies):
        cached.cache_clear()
    yield BuyersStack(processor_stack, queue_url)
    for cached in (signals.dependencies, signals.model_in_use, rescore.dependencies):
        cached.cache_clear()


def calls_of(client: Any) -> Counter[str]:
    """Count the API operations a boto3 client makes from now on."""
    made: Counter[str] = Counter()
    client.meta.events.register("before-call.*.*", lambda model, **_: made.update([model.name]))
    return made


def test_a_buyer_is_published_on_a_charge_and_the_daily_rescore_raises_the_level_once(
    buyers_stack: BuyersStack,
) -> None:
    buyers_stack.charge(
        charge("ch_gone", NOW - 100 * DAY, "cus_gone"), charge("ch_new", NOW - DAY, "cus_new")
    )
    first = {d["customer_id"]: d for d in buyers_stack.churn_risks()}
    assert {c: (d["level"], d["previous_level"]) for c, d in first.items()} == {
        "cus_gone": ("low", None),
        "cus_new": ("low", None),
    }
    for detail in first.values():
        SCHEMA.validate(detail)
        assert detail["model_version"] == load_buyer_model().version
    assert buyers_stack.served("cus_gone") == [first["cus_gone"]]

    from functions.rescore.handler import dependencies

    table_calls = calls_of(dependencies().watches._client)
    summary = buyers_stack.rescore()
    assert summary == {"rescored": 2, "changes": 1, "failures": 0, "shards": 16, "complete": True}
    assert set(table_calls) == {"Query", "PutItem"}  # what its role allows: no Scan, no GetItem
    assert table_calls["Query"] >= 16
    [raised] = buyers_stack.churn_risks()
    SCHEMA.validate(raised)
    assert (raised["customer_id"], raised["previous_level"], raised["level"]) == ("cus_gone", "low", "medium")
    assert raised["reasons"][0]["text"] == "last purchase 100 days ago: raises the risk"
    assert buyers_stack.served("cus_gone") == [raised]  # the record the read API serves

    # The next run (the schedule's retry, tomorrow's) publishes nothing new.
    assert buyers_stack.rescore()["changes"] == 0
    assert buyers_stack.churn_risks() == []

    # A new purchase: the buyer is low again, published by the signals handler.
    buyers_stack.charge(charge("ch_back", NOW - 60, "cus_gone"))
    [back] = buyers_stack.churn_risks()
    assert (back["previous_level"], back["level"]) == ("medium", "low")
    assert buyers_stack.served("cus_gone") == [back]
    assert buyers_stack.rescore()["changes"] == 0


def test_the_watches_are_items_of_the_signals_partitions(buyers_stack: BuyersStack) -> None:
    buyers_stack.charge(*(charge(f"ch_{n}", NOW - 10 * DAY, f"cus_{n}") for n in range(30)))
    dynamodb, table = buyers_stack.processor.dynamodb, buyers_stack.processor.table_name
    watches = [
        item
        for shard in range(16)
        for item in dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"SIG#BUYERS#{shard}"}},
        )["Items"]
    ]
    assert sorted(w["sk"]["S"] for w in watches) == sorted(
        f"test/platform/customer/cus_{n}" for n in range(30)
    )
    assert len({w["pk"]["S"] for w in watches}) > 8  # spread over the shards
    assert all(int(w["expires_at"]["N"]) > NOW + 700 * DAY for w in watches)
    assert not any(k.startswith("gsi") for w in watches for k in w)  # never in an index: no read API noise


def test_a_refused_publication_fails_the_run_and_the_next_run_publishes_it_once(
    buyers_stack: BuyersStack,
) -> None:
    from functions.rescore.handler import BuyersNotRescoredError, dependencies

    buyers_stack.charge(charge("ch_old", NOW - 200 * DAY, "cus_old"))
    buyers_stack.churn_risks()
    refused = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "no"}]}
    with (
        mock.patch.object(dependencies().publisher._client, "put_events", return_value=refused),
        pytest.raises(BuyersNotRescoredError, match="'failures': 1"),
    ):
        buyers_stack.rescore()
    assert buyers_stack.churn_risks() == []
    assert buyers_stack.served("cus_old")[0]["level"] == "low"
    assert buyers_stack.rescore()["changes"] == 1
    [raised] = buyers_stack.churn_risks()
    assert raised["level"] == "medium" and buyers_stack.served("cus_old") == [raised]
    assert buyers_stack.rescore()["changes"] == 0


def test_a_run_out_of_time_stops_reading_and_says_so(buyers_stack: BuyersStack) -> None:
    buyers_stack.charge(charge("ch_1", NOW - 100 * DAY, "cus_1"))
    buyers_stack.churn_risks()
    summary = buyers_stack.rescore(RescoreContext(remaining_ms=1_000))
    assert (summary["rescored"], summary["complete"]) == (0, False)
    assert buyers_stack.churn_risks() == []
    assert buyers_stack.rescore()["changes"] == 1
