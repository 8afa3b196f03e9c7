"""A poison message reaches the DLQ after maxReceiveCount deliveries; good messages are unaffected."""

from __future__ import annotations

import json

from events import stripe_event
from stripe_middleware_dev.local.event_source import SqsEventSource
from tests.integration.conftest import LambdaContext, ProcessorStack


def test_poison_message_goes_to_the_dlq_after_max_receive_count(processor_stack: ProcessorStack) -> None:
    from functions.processor.handler import handler

    sqs = processor_stack.sqs
    dlq_url = sqs.create_queue(QueueName="events-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="events",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
    )["QueueUrl"]
    good = [stripe_event("invoice.created") for _ in range(4)]
    for body in [json.dumps(good[0]), "{poison", *(json.dumps(e) for e in good[1:])]:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    source = SqsEventSource(
        sqs,
        queue_url,
        "arn:aws:sqs:us-east-1:123456789012:events",
        handler,
        retry_delay_seconds=0,
        context=LambdaContext(),
    )
    source.drain()
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in dead] == ["{poison"]
    assert int(dead[0]["Attributes"]["ApproximateReceiveCount"]) >= 3
    published = {p["detail"]["id"] for p in processor_stack.published()}
    assert published == {e["id"] for e in good}
