from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import stripe
from moto import mock_aws

from events import http_api_event

SECRET = "whsec_integration_current"
PREVIOUS = "whsec_integration_previous"
CONNECT_SECRET = "whsec_integration_connect"


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
