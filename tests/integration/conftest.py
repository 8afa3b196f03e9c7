from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import stripe
import yaml
from moto import mock_aws

from events import http_api_event
from stripe_middleware.commands.config import GATEWAY_CONFIG_ENV, load_gateway_config
from stripe_middleware.shared.contract import STRIPE_API_VERSION
from stripe_middleware_dev import REPO_CONFIG

SECRET = "whsec_integration_current"
PREVIOUS = "whsec_integration_previous"
CONNECT_SECRET = "whsec_integration_connect"


@pytest.fixture
def roomy_rate_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Stripe's test-mode limit leaves reads (backfill, catch-up) 8 requests/s: lift it, so the tests wait
    on nothing but the fake Stripe (the shared limiter itself still runs on every call)."""
    config = yaml.safe_load(Path(REPO_CONFIG[GATEWAY_CONFIG_ENV]).read_text())
    config["rate_limit"].update(test_per_second=10_000, per_endpoint_per_second=10_000)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv(GATEWAY_CONFIG_ENV, str(path))
    load_gateway_config.cache_clear()
    yield
    load_gateway_config.cache_clear()


@dataclass
class IngestStack:
    sqs: Any
    queue_url: str

    def post(
        self,
        body: bytes | str,
        *,
        secret: str = SECRET,
        connect: bool = False,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
        base64_encoded: bool = False,
    ) -> dict[str, Any]:
        from functions.ingest.handler import handler

        raw = body.encode() if isinstance(body, str) else body
        signature = stripe.WebhookSignature.generate_signature_header(
            raw.decode("utf-8", "replace"), secret, timestamp or int(time.time())
        )
        path = "/webhooks/stripe/connect" if connect else "/webhooks/stripe"
        event = http_api_event(
            path,
            raw,
            headers=headers if headers is not None else {"Stripe-Signature": signature},
            base64_encoded=base64_encoded,
        )
        response: dict[str, Any] = handler(event, None)
        return response

    def messages(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return found
            found.extend(batch)


@pytest.fixture
def ingest_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[IngestStack]:
    from functions.ingest import handler

    with mock_aws():
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
        secrets = boto3.client("secretsmanager")
        account = secrets.create_secret(
            Name="webhook", SecretString=json.dumps({"current": SECRET, "previous": PREVIOUS})
        )
        connect = secrets.create_secret(Name="connect-webhook", SecretString=CONNECT_SECRET)
        monkeypatch.setenv("EVENTS_QUEUE_URL", queue_url)
        monkeypatch.setenv("WEBHOOK_SECRET_ID", account["ARN"])
        monkeypatch.setenv("CONNECT_WEBHOOK_SECRET_ID", connect["ARN"])
        handler.dependencies.cache_clear()
        yield IngestStack(sqs=sqs, queue_url=queue_url)
        handler.dependencies.cache_clear()


@dataclass
class ProcessorStack:
    dynamodb: Any
    sqs: Any
    events: Any
    table_name: str
    bus_name: str
    capture_queue_url: str
    _counter: int = 0

    def sqs_event(self, bodies: list[str]) -> dict[str, Any]:
        records = []
        for body in bodies:
            self._counter += 1
            records.append(
                {
                    "messageId": f"msg-{self._counter}",
                    "receiptHandle": f"rh-{self._counter}",
                    "body": body,
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events",
                    "awsRegion": "us-east-1",
                }
            )
        return {"Records": records}

    def deliver(self, *events: dict[str, Any] | str) -> list[str]:
        """Run the processor on one SQS batch; return the ids of messages reported as failed."""
        from functions.processor.handler import handler

        bodies = [e if isinstance(e, str) else json.dumps(e) for e in events]
        response = handler(self.sqs_event(bodies), LambdaContext())
        return [f["itemIdentifier"] for f in response["batchItemFailures"]]

    def published(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.capture_queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.capture_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def stored(self, object_type: str, object_id: str, **filters: Any) -> list[dict[str, Any]]:
        from functions.processor.handler import dependencies

        return dependencies().store.get_object(object_type, object_id, **filters)


class LambdaContext:
    function_name = "processor"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:processor"
    aws_request_id = "req-1"


@pytest.fixture
def processor_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcessorStack]:
    from functions.processor import handler
    from stripe_middleware_dev.tables import create_table_request

    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(**create_table_request("store"))
        events = boto3.client("events")
        events.create_event_bus(Name="bus")
        sqs = boto3.client("sqs")
        capture_url = sqs.create_queue(QueueName="capture")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name="all", EventBusName="bus", EventPattern=json.dumps({"source": ["stripe-middleware"]})
        )
        events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "capture", "Arn": capture_arn}])
        monkeypatch.setenv("TABLE_NAME", "store")
        monkeypatch.setenv("EVENT_BUS_NAME", "bus")
        monkeypatch.setenv("STRIPE_API_VERSION", STRIPE_API_VERSION)
        monkeypatch.delenv("STRIPE_API_KEY_SECRET_ID", raising=False)
        handler.dependencies.cache_clear()
        yield ProcessorStack(dynamodb, sqs, events, "store", "bus", capture_url)
        handler.dependencies.cache_clear()
