"""The command gateway against moto and a fake Stripe on loopback, through the real Stripe SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from events import http_api_event
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.shared.contract import STRIPE_API_VERSION
from stripe_middleware_dev.local.event_source import SqsEventSource
from stripe_middleware_dev.tables import create_table_request
from tests.fakes.stripe_server import FakeStripe, fake_stripe
from tests.integration.conftest import LambdaContext

CUSTOMER = {
    "email": "ops@example.com",
    "metadata": {"erp_id": "NS-100200", "crm_account_id": "001A00000abcDEF"},
}


@dataclass
class GatewayStack:
    stripe: FakeStripe
    sqs: Any
    queue_url: str
    dlq_url: str
    capture_url: str

    def submit(self, body: Any) -> tuple[int, dict[str, Any]]:
        from functions.commands_api.handler import handler

        raw = body if isinstance(body, str) else json.dumps(body)
        response = handler(
            http_api_event("/v1/commands", raw, route_key="POST /v1/commands"), LambdaContext()
        )
        return response["statusCode"], json.loads(response["body"])

    def status(self, command_id: str) -> tuple[int, dict[str, Any]]:
        from functions.commands_api.handler import handler

        event = http_api_event(
            f"/v1/commands/{command_id}",
            method="GET",
            route_key="GET /v1/commands/{command_id}",
            path_parameters={"command_id": command_id},
        )
        response = handler(event, LambdaContext())
        return response["statusCode"], json.loads(response["body"])

    def drain(self) -> None:
        from functions.gateway.handler import handler

        SqsEventSource(
            self.sqs,
            self.queue_url,
            "arn:aws:sqs:us-east-1:123456789012:commands",
            handler,
            retry_delay_seconds=0,
            context=LambdaContext(),
        ).drain()

    def published(self) -> list[dict[str, Any]]:
        found = []
        while batch := self.sqs.receive_message(QueueUrl=self.capture_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def dead_letters(self) -> list[str]:
        return [
            m["Body"]
            for m in self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
        ]


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayStack]:
    from functions.commands_api import handler as api
    from functions.gateway import handler as gw

    monkeypatch.setattr(
        "stripe_middleware.commands.execute.backoff", lambda attempt: 0
    )  # no waiting in tests
    with mock_aws(), fake_stripe() as server:
        boto3.client("dynamodb").create_table(**create_table_request("store"))
        sqs = boto3.client("sqs")
        dlq_url = sqs.create_queue(QueueName="commands-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        max_receive = 100  # a safety net for crashes; the gateway itself moves failed commands to the DLQ
        queue_url = sqs.create_queue(
            QueueName="commands",
            Attributes={
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}
                )
            },
        )["QueueUrl"]
        events = boto3.client("events")
        events.create_event_bus(Name="bus")
        capture_url = sqs.create_queue(QueueName="capture")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name="all", EventBusName="bus", EventPattern=json.dumps({"source": ["stripe-middleware"]})
        )
        events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "c", "Arn": capture_arn}])
        key = boto3.client("secretsmanager").create_secret(Name="stripe-key", SecretString="rk_test_gateway")
        for name, value in {
            "TABLE_NAME": "store",
            "COMMANDS_QUEUE_URL": queue_url,
            "COMMANDS_DLQ_URL": dlq_url,
            "EVENT_BUS_NAME": "bus",
            "STRIPE_API_VERSION": STRIPE_API_VERSION,
            "STRIPE_API_KEY_SECRET_ID": key["ARN"],
            "STRIPE_API_BASE": server.url,
        }.items():
            monkeypatch.setenv(name, value)
        api.dependencies.cache_clear()
        gw.dependencies.cache_clear()
        yield GatewayStack(server, sqs, queue_url, dlq_url, capture_url)
        api.dependencies.cache_clear()
        gw.dependencies.cache_clear()


def test_command_is_queued_executed_recorded_and_published(gateway: GatewayStack) -> None:
    status, body = gateway.submit({"operation": "customers.create", "params": CUSTOMER})
    assert status == 202 and body["status"] == "queued"
    command_id = body["command_id"]
    assert gateway.status(command_id)[1]["status"] == "queued"
    gateway.drain()
    status, record = gateway.status(command_id)
    assert status == 200 and record["status"] == "succeeded" and record["attempts"] == 1
    assert record["result"]["id"].startswith("cus_") and record["result"]["metadata"]["erp_id"] == "NS-100200"
    [request] = gateway.stripe.requests
    assert (
        request.path == "/v1/customers"
        and request.headers["idempotency-key"] == f"stripe-middleware-{command_id}"
    )
    assert request.headers["stripe-version"] == STRIPE_API_VERSION
    [published] = gateway.published()
    assert published["detail-type"] == "stripe-middleware.command.succeeded"
    assert published["detail"]["command_id"] == command_id


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"operation": "customers.delete", "params": {"id": "cus_1"}}, "operation_not_allowed"),
        (
            {"operation": "payment_intents.create", "params": {"amount": -5, "currency": "usd"}},
            "invalid_params",
        ),
        ({"operation": "customers.create", "params": {"emial": "typo@example.com"}}, "invalid_params"),
        (
            {"operation": "customers.create", "params": {"metadata": {"erp_id": "NS-100200"}}},
            "metadata_violation",
        ),
        ({"params": {}}, "invalid_command"),
        ("{nope", "invalid_json"),
    ],
)
def test_invalid_commands_are_refused_before_anything_is_queued(
    gateway: GatewayStack, body: Any, code: str
) -> None:
    status, answer = gateway.submit(body)
    assert status == 400 and answer["error"] == code and answer["message"]
    gateway.drain()
    assert gateway.stripe.requests == []


def test_metadata_violations_are_listed(gateway: GatewayStack) -> None:
    status, answer = gateway.submit(
        {"operation": "customers.create", "params": {"metadata": {"erp_id": "bad", "campaign": "tv"}}}
    )
    assert status == 400
    assert {(d["key"], d["code"]) for d in answer["details"]} == {
        ("erp_id", "pattern"),
        ("crm_account_id", "missing"),
        ("campaign", "not_allowed"),
    }


def test_500_and_lock_timeout_are_retried_with_the_same_idempotency_key(gateway: GatewayStack) -> None:
    gateway.stripe.fail_next = [500, "lock_timeout"]
    _, body = gateway.submit(
        {
            "operation": "refunds.create",
            "params": {"payment_intent": "pi_1", "amount": 500},
            "idempotency_key": "refund-order-77",
        }
    )
    gateway.drain()
    record = gateway.status(body["command_id"])[1]
    assert record["status"] == "succeeded" and record["attempts"] == 3
    assert {r.headers["idempotency-key"] for r in gateway.stripe.requests} == {"refund-order-77"}
    assert len(gateway.stripe.created) == 1


def test_card_error_fails_fast_with_the_stripe_error_recorded(gateway: GatewayStack) -> None:
    gateway.stripe.fail_next = [402]
    _, body = gateway.submit(
        {
            "operation": "payment_intents.create",
            "params": {"amount": 2000, "currency": "usd", "confirm": True},
        }
    )
    gateway.drain()
    record = gateway.status(body["command_id"])[1]
    assert record["status"] == "failed" and record["attempts"] == 1
    assert record["error"]["type"] == "card_error" and record["error"]["code"] == "card_declined"
    assert record["error"]["request_id"].startswith("req_fake_")
    assert [p["detail-type"] for p in gateway.published()] == ["stripe-middleware.command.failed"]
    assert gateway.dead_letters() == []


def test_retryable_errors_past_max_attempts_end_failed_in_the_dlq(gateway: GatewayStack) -> None:
    gateway.stripe.fail_next = [503] * 50
    _, body = gateway.submit({"operation": "invoices.pay", "params": {"id": "in_1"}})
    gateway.drain()
    record = gateway.status(body["command_id"])[1]
    assert record["status"] == "failed" and record["attempts"] == load_gateway_config().max_attempts
    assert len(gateway.dead_letters()) == 1


def test_a_crash_after_stripe_answered_never_creates_twice(
    gateway: GatewayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stripe_middleware.adapters.dynamodb.commands import DynamoCommandStore

    real_save = DynamoCommandStore.save
    crashed = []

    def crash_once(self: DynamoCommandStore, command: Any) -> None:
        if command.status == "succeeded" and not crashed:
            crashed.append(command.command_id)
            raise RuntimeError("Lambda timed out after Stripe answered")
        real_save(self, command)

    monkeypatch.setattr(DynamoCommandStore, "save", crash_once)
    _, body = gateway.submit({"operation": "customers.create", "params": CUSTOMER})
    gateway.drain()
    assert crashed and gateway.status(body["command_id"])[1]["status"] == "succeeded"
    assert len(gateway.stripe.successful_posts()) == 2  # the retry reached Stripe ...
    assert len(gateway.stripe.created) == 1  # ... and Stripe replayed the first answer


def test_429s_are_honoured_counted_and_every_command_completes(
    gateway: GatewayStack, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway.stripe.rate_limit = 2  # far below what the gateway is configured for: Stripe says 429
    ids = [
        gateway.submit({"operation": "customers.create", "params": CUSTOMER})[1]["command_id"]
        for _ in range(12)
    ]
    capsys.readouterr()
    gateway.drain()
    statuses = [gateway.status(i)[1]["status"] for i in ids]
    assert statuses == ["succeeded"] * 12
    answered_429 = sum(r.status == 429 for r in gateway.stripe.requests)
    assert answered_429 > 0
    assert len(gateway.stripe.created) == 12
    emitted = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')
    ]
    assert sum(sum(m.get("StripeRateLimited", [])) for m in emitted) == answered_429  # one per 429


def test_commands_from_sqs_and_eventbridge_producers(gateway: GatewayStack) -> None:
    gateway.sqs.send_message(
        QueueUrl=gateway.queue_url,
        MessageBody=json.dumps(
            {
                "operation": "customers.update",
                "params": {"id": "cus_x", "description": "vip"},
                "idempotency_key": "crm-sync-1",
            }
        ),
    )
    envelope = {
        "version": "0",
        "detail-type": "stripe-middleware.command",
        "source": "crm",
        "detail": {
            "operation": "subscriptions.update",
            "params": {"id": "sub_x", "cancel_at_period_end": True},
        },
    }
    gateway.sqs.send_message(QueueUrl=gateway.queue_url, MessageBody=json.dumps(envelope))
    gateway.sqs.send_message(
        QueueUrl=gateway.queue_url, MessageBody=json.dumps({"operation": "charges.create"})
    )
    gateway.stripe.objects["/v1/customers/cus_x"] = {"id": "cus_x", "object": "customer"}
    gateway.stripe.objects["/v1/subscriptions/sub_x"] = {"id": "sub_x", "object": "subscription"}
    gateway.drain()
    paths = sorted(r.path for r in gateway.stripe.requests)
    assert paths == ["/v1/customers/cus_x", "/v1/subscriptions/sub_x"]
    kinds = sorted(p["detail-type"] for p in gateway.published())
    assert kinds == ["stripe-middleware.command.failed", *["stripe-middleware.command.succeeded"] * 2]


def test_unknown_and_malformed_command_ids(gateway: GatewayStack) -> None:
    assert gateway.status("cmd_" + "0" * 32)[0] == 404
    assert gateway.status("nope")[0] == 400


def test_a_store_outage_fails_only_the_affected_message(
    gateway: GatewayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.gateway.handler import handler
    from stripe_middleware.adapters.dynamodb.commands import DynamoCommandStore
    from stripe_middleware.shared.errors import StoreUnavailableError

    ids = [
        gateway.submit({"operation": "customers.create", "params": CUSTOMER})[1]["command_id"]
        for _ in range(3)
    ]
    real_create = DynamoCommandStore.create

    def outage_for_the_second(self: DynamoCommandStore, command: Any) -> Any:
        if command.command_id == ids[1]:
            raise StoreUnavailableError("PutItem failed: ProvisionedThroughputExceededException")
        return real_create(self, command)

    monkeypatch.setattr(DynamoCommandStore, "create", outage_for_the_second)
    messages = gateway.sqs.receive_message(
        QueueUrl=gateway.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m["Attributes"],
        }
        for m in messages
    ]
    failed = handler({"Records": records}, LambdaContext())["batchItemFailures"]
    second = next(r["messageId"] for r in records if ids[1] in r["body"])
    assert failed == [{"itemIdentifier": second}]
    assert [gateway.status(i)[1]["status"] for i in ids] == ["succeeded", "queued", "succeeded"]

    monkeypatch.setattr(DynamoCommandStore, "create", real_create)  # DynamoDB is back
    gateway.sqs.change_message_visibility(
        QueueUrl=gateway.queue_url,
        ReceiptHandle=next(r["receiptHandle"] for r in records if r["messageId"] == second),
        VisibilityTimeout=0,
    )
    gateway.drain()
    assert [gateway.status(i)[1]["status"] for i in ids] == ["succeeded"] * 3
    assert len(gateway.stripe.created) == 3
