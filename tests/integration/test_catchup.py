"""The catch-up function on moto and a fake Stripe over HTTP: the events webhooks missed are enqueued for
the processor, which publishes each once; a second run finds nothing; a deploy without a key stays idle."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from events import stripe_event
from stripe_middleware.backfill.ports import BackfillFailedError
from stripe_middleware.shared.errors import RejectedError
from tests.fakes.stripe_server import FakeStripe, fake_stripe
from tests.integration.conftest import ProcessorStack

pytestmark = pytest.mark.usefixtures("roomy_rate_limit")  # no wait on Stripe's test-mode read limit


class Context:
    function_name, memory_limit_in_mb, aws_request_id = "catchup", 256, "req-catchup"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:catchup"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class CatchupStack:
    def __init__(self, processor: ProcessorStack, stripe_server: FakeStripe, queue_url: str) -> None:
        self.processor, self.stripe, self.queue_url = processor, stripe_server, queue_url

    def run(self, **event: Any) -> dict[str, Any]:
        from functions.catchup.handler import handler

        result: dict[str, Any] = handler(event, Context())
        return result

    def enqueued(self) -> list[dict[str, Any]]:
        sqs, found = self.processor.sqs, []
        while batch := sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            for message in batch:
                found.append(message)
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def stripe_has(self, *events: dict[str, Any]) -> None:
        self.stripe.objects.update({f"/v1/events/{e['id']}": e for e in events})


def _key(secret: str) -> str:
    name = f"read-key-{secret[:12]}"
    return str(boto3.client("secretsmanager").create_secret(Name=name, SecretString=secret)["ARN"])


@pytest.fixture
def catchup_stack(processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CatchupStack]:
    from functions.catchup import handler

    sqs = processor_stack.sqs
    with fake_stripe() as stripe_server:
        monkeypatch.setenv("EVENTS_QUEUE_URL", sqs.create_queue(QueueName="events")["QueueUrl"])
        monkeypatch.setenv("BACKFILL_DLQ_URL", sqs.create_queue(QueueName="backfill-dlq")["QueueUrl"])
        monkeypatch.setenv("STRIPE_API_KEY_SECRET_ID", _key("rk_test_catchup"))
        monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url)
        handler.dependencies.cache_clear()
        yield CatchupStack(processor_stack, stripe_server, sqs.get_queue_url(QueueName="events")["QueueUrl"])
        handler.dependencies.cache_clear()


def _recent(event_type: str, seconds_ago: int, **fields: Any) -> dict[str, Any]:
    return stripe_event(event_type, created=int(time.time()) - seconds_ago, **fields)


def test_missed_events_are_enqueued_once_and_published_once(catchup_stack: CatchupStack) -> None:
    delivered = _recent("customer.created", 600, id="cus_Caught0")
    missed = [
        _recent("invoice.paid", 500, id="in_Caught1"),
        _recent("invoice.paid", 400, id="in_Caught2"),
        _recent("charge.refunded", 300, id="ch_Caught3"),
    ]
    too_young = _recent("invoice.voided", 5, id="in_Caught4")  # its webhook is probably in flight
    catchup_stack.stripe_has(delivered, *missed, too_young)
    assert catchup_stack.processor.deliver(delivered) == []
    catchup_stack.processor.published()

    result = catchup_stack.run()
    assert (result["listed"], result["recovered"], result["done"], result["gap"]) == (4, 3, True, None)
    messages = catchup_stack.enqueued()
    assert [json.loads(m["Body"])["id"] for m in messages] == [e["id"] for e in missed]  # oldest first
    assert {m["MessageAttributes"]["source"]["StringValue"] for m in messages} == {"events_api"}

    assert catchup_stack.processor.deliver(*(m["Body"] for m in messages)) == []
    published = [p["detail"]["id"] for p in catchup_stack.processor.published()]
    assert sorted(published) == sorted(e["id"] for e in missed)

    again = catchup_stack.run()  # the overlap lists them again: nothing is enqueued twice
    assert again["recovered"] == 0 and catchup_stack.enqueued() == []


def test_a_deploy_without_a_read_key_stays_idle(
    catchup_stack: CatchupStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.catchup import handler

    monkeypatch.setenv("STRIPE_API_KEY_SECRET_ID", _key("generated-placeholder-0123456789"))
    handler.dependencies.cache_clear()
    result = catchup_stack.run()
    assert "StripeReadOnlyKey" in result["skipped"]
    assert catchup_stack.stripe.requests == [] and catchup_stack.enqueued() == []


def test_a_refused_key_fails_the_run_and_leaves_the_cursor(catchup_stack: CatchupStack) -> None:
    catchup_stack.stripe_has(_recent("invoice.paid", 500, id="in_Refused"))
    catchup_stack.stripe.api_key = "rk_test_another"
    with pytest.raises(BackfillFailedError, match="401"):
        catchup_stack.run()
    catchup_stack.stripe.api_key = None
    result = catchup_stack.run()  # the fixed key: the same window is listed again
    assert result["recovered"] == 1


@pytest.mark.parametrize("since", ["yesterday", -5, True])
def test_an_invalid_since_is_refused(catchup_stack: CatchupStack, since: Any) -> None:
    with pytest.raises(RejectedError, match="since"):
        catchup_stack.run(since=since)
    assert catchup_stack.stripe.requests == []


def test_grace_is_refused_for_a_deployed_stage(capsys: pytest.CaptureFixture[str]) -> None:
    from stripe_middleware_dev import cli

    assert cli.main(["catchup", "--grace", "0", "--stage", "dev"]) == 2  # before any AWS call
    assert "--grace is for local runs" in capsys.readouterr().err
