"""`stripe-middleware redrive`: DLQ messages go back to their queue; a redrive never applies twice."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from events import stripe_event
from stripe_middleware_dev import redrive, targets
from stripe_middleware_dev.local.event_source import SqsEventSource
from tests.integration import test_gateway
from tests.integration.conftest import LambdaContext, ProcessorStack
from tests.integration.test_gateway import CUSTOMER, GatewayStack

gateway = test_gateway.gateway  # the gateway on moto with a fake Stripe on loopback


def queues(sqs: Any, name: str) -> tuple[str, str]:
    """A queue whose DLQ is `<name>-dlq`, as the stack creates them: (queue URL, DLQ URL)."""
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]
    return queue_url, dlq_url


def dead_letter(sqs: Any, dlq_url: str, event: dict[str, Any]) -> None:
    """An event in the DLQ with the attributes the ingest function gave it."""
    attributes = {"event_id": event["id"], "event_type": event["type"], "source": "webhook"}
    sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody=json.dumps(event),
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )


def take_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in batch:
            found.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def scan(dynamodb: Any, table_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dynamodb.scan(TableName=table_name)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def count(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs")


def test_events_go_back_to_the_queue_with_their_attributes(
    sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    queue_url, dlq_url = queues(sqs, "events")
    dead = [stripe_event("invoice.paid"), stripe_event("customer.updated"), stripe_event("charge.refunded")]
    for event in dead:
        dead_letter(sqs, dlq_url, event)

    result = redrive.redrive(sqs, dlq_url, queue_url, "events", wait_seconds=0)

    assert result == redrive.Redriven(moved=3, left=0)
    back = take_all(sqs, queue_url)
    assert sorted(m["Body"] for m in back) == sorted(json.dumps(e) for e in dead)
    for message in back:
        event = json.loads(message["Body"])
        assert {k: v["StringValue"] for k, v in message["MessageAttributes"].items()} == {
            "event_id": event["id"],
            "event_type": event["type"],
            "source": "webhook",
        }
    assert count(sqs, dlq_url) == 0
    printed = capsys.readouterr().out
    for event in dead:
        assert f"moved  {event['id']}  {event['type']}" in printed
    assert "moved 3, left 0" in printed


def test_an_eventbridge_envelope_is_listed_by_its_stripe_event(
    sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    queue_url, dlq_url = queues(sqs, "events")
    event = stripe_event("charge.succeeded")
    envelope = {
        "version": "0",
        "detail-type": event["type"],
        "source": "aws.partner/stripe.com",
        "detail": event,
    }
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(envelope))
    sqs.send_message(QueueUrl=dlq_url, MessageBody="{poison")

    assert redrive.redrive(sqs, dlq_url, queue_url, "events", wait_seconds=0).moved == 2

    printed = capsys.readouterr().out
    assert f"moved  {event['id']}  charge.succeeded" in printed
    assert "(not a JSON object) '{poison'" in printed
    assert sorted(m["Body"] for m in take_all(sqs, queue_url)) == sorted([json.dumps(envelope), "{poison"])


def test_dry_run_lists_everything_and_moves_nothing(sqs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    queue_url, dlq_url = queues(sqs, "events")
    dead = [stripe_event("invoice.created") for _ in range(13)]  # more than one receive batch
    for event in dead:
        dead_letter(sqs, dlq_url, event)

    result = redrive.redrive(sqs, dlq_url, queue_url, "events", dry_run=True, wait_seconds=0)

    assert result == redrive.Redriven(moved=13, left=13)
    printed = capsys.readouterr().out
    assert all(printed.count(event["id"]) == 1 for event in dead)
    assert "would move 13, left 13" in printed
    assert count(sqs, queue_url) == 0
    assert count(sqs, dlq_url) == 13  # visible again at once, for the real redrive
    assert redrive.redrive(sqs, dlq_url, queue_url, "events", wait_seconds=0).moved == 13


def test_max_caps_how_many_move(sqs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    queue_url, dlq_url = queues(sqs, "events")
    for _ in range(12):
        dead_letter(sqs, dlq_url, stripe_event("invoice.created"))

    assert redrive.redrive(sqs, dlq_url, queue_url, "events", max_messages=11, wait_seconds=0).moved == 11

    assert count(sqs, queue_url) == 11 and count(sqs, dlq_url) == 1
    assert "moved 11, left 1" in capsys.readouterr().out


def test_a_failed_send_leaves_the_message_in_the_dlq(sqs: Any) -> None:
    queue_url, dlq_url = queues(sqs, "events")
    dead_letter(sqs, dlq_url, stripe_event("invoice.created"))
    sqs.delete_queue(QueueUrl=queue_url)  # the send fails: nothing may be deleted

    with pytest.raises(Exception, match="NonExistentQueue"):
        redrive.redrive(sqs, dlq_url, queue_url, "events", move_task=False, wait_seconds=0)

    attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    assert (
        int(attributes["ApproximateNumberOfMessages"])
        + int(attributes["ApproximateNumberOfMessagesNotVisible"])
        == 1
    )


def test_a_redrive_of_events_already_applied_changes_nothing(processor_stack: ProcessorStack) -> None:
    """Processing is idempotent: events that failed once after they were applied are redriven harmlessly."""
    from functions.processor.handler import handler

    sqs, dynamodb = processor_stack.sqs, processor_stack.dynamodb
    queue_url, dlq_url = queues(sqs, "events")
    source = SqsEventSource(
        sqs, queue_url, "arn:aws:sqs:us-east-1:123456789012:events", handler, context=LambdaContext()
    )
    applied = [
        stripe_event(
            "customer.created", metadata={"erp_id": "NS-100200", "crm_account_id": "001A00000abcDEF"}
        ),
        stripe_event("invoice.paid"),
        stripe_event("charge.succeeded"),
    ]
    for event in applied:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
    source.drain()
    assert {p["detail"]["id"] for p in processor_stack.published()} == {e["id"] for e in applied}
    store = scan(dynamodb, processor_stack.table_name)
    assert store

    for event in applied:  # the same events again, as if each had failed after it was applied
        dead_letter(sqs, dlq_url, event)
    assert redrive.redrive(sqs, dlq_url, queue_url, "events", wait_seconds=0).moved == 3
    source.drain()

    assert count(sqs, queue_url) == 0 and count(sqs, dlq_url) == 0  # all processed, none failed again
    assert scan(dynamodb, processor_stack.table_name) == store
    assert processor_stack.published() == []


def test_a_dead_lettered_command_runs_again_and_stripe_creates_it_once(
    gateway: GatewayStack, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway.stripe.fail_next = [503] * 50
    _, body = gateway.submit({"operation": "customers.create", "params": CUSTOMER})
    command_id = body["command_id"]
    gateway.drain()
    assert gateway.status(command_id)[1]["status"] == "failed"
    assert count(gateway.sqs, gateway.dlq_url) == 1
    gateway.published()
    gateway.stripe.fail_next.clear()  # the cause is fixed

    redrive.redrive(gateway.sqs, gateway.dlq_url, gateway.queue_url, "commands", wait_seconds=0)
    gateway.drain()

    assert f"moved  {command_id}  customers.create  (runs again: retry_failed)" in capsys.readouterr().out
    record = gateway.status(command_id)[1]
    assert record["status"] == "succeeded" and record["attempts"] == 1  # fresh attempts
    assert len(gateway.stripe.created) == 1
    assert [p["detail-type"] for p in gateway.published()] == ["stripe-middleware.command.succeeded"]
    assert count(gateway.sqs, gateway.dlq_url) == 0

    # A second copy redriven later (the same dead letter twice) finds the command done: Stripe is not called.
    requests = len(gateway.stripe.requests)
    gateway.sqs.send_message(
        QueueUrl=gateway.dlq_url,
        MessageBody=json.dumps(
            {"operation": "customers.create", "params": CUSTOMER, "command_id": command_id}
        ),
    )
    redrive.redrive(gateway.sqs, gateway.dlq_url, gateway.queue_url, "commands", wait_seconds=0)
    gateway.drain()
    assert len(gateway.stripe.requests) == requests and len(gateway.stripe.created) == 1


def stubbed_sqs() -> tuple[Any, Stubber]:
    client = boto3.client("sqs", region_name="us-east-1")
    return client, Stubber(client)


DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/events-dlq"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/events"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:events-dlq"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:events"


def expect_arns(stubber: Stubber) -> None:
    stubber.add_response(
        "get_queue_attributes",
        {"Attributes": {"QueueArn": DLQ_ARN, "ApproximateNumberOfMessages": "42"}},
        {"QueueUrl": DLQ_URL, "AttributeNames": ["QueueArn", "ApproximateNumberOfMessages"]},
    )
    stubber.add_response(
        "get_queue_attributes",
        {"Attributes": {"QueueArn": QUEUE_ARN}},
        {"QueueUrl": QUEUE_URL, "AttributeNames": ["QueueArn"]},
    )


def test_on_aws_a_message_move_task_is_started(capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = stubbed_sqs()
    expect_arns(stubber)
    stubber.add_response(
        "start_message_move_task",
        {"TaskHandle": "eyJ0YXNrSWQiOiJ0YXNrLTEifQ=="},
        {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN},
    )
    with stubber:
        result = redrive.redrive(client, DLQ_URL, QUEUE_URL, "events")
        stubber.assert_no_pending_responses()
    assert result == redrive.Redriven(moved=42, left=0, task_handle="eyJ0YXNrSWQiOiJ0YXNrLTEifQ==")
    printed = capsys.readouterr().out
    assert "started message move task eyJ0YXNrSWQiOiJ0YXNrLTEifQ==" in printed
    assert f"about 42 messages from {DLQ_ARN} to {QUEUE_ARN}" in printed


def test_an_endpoint_without_move_tasks_falls_back_to_the_loop(capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = stubbed_sqs()
    expect_arns(stubber)
    stubber.add_client_error(
        "start_message_move_task", service_error_code="InvalidAction", http_status_code=400
    )
    stubber.add_response("receive_message", {"Messages": []})
    stubber.add_response(
        "get_queue_attributes",
        {"Attributes": {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}},
    )
    with stubber:
        assert redrive.redrive(client, DLQ_URL, QUEUE_URL, "events") == redrive.Redriven(moved=0, left=0)
        stubber.assert_no_pending_responses()
    assert "moved 0, left 0" in capsys.readouterr().out


def test_other_errors_of_the_move_task_are_not_swallowed() -> None:
    client, stubber = stubbed_sqs()
    expect_arns(stubber)
    stubber.add_client_error(
        "start_message_move_task", service_error_code="AccessDenied", http_status_code=403
    )
    with stubber, pytest.raises(Exception, match="AccessDenied"):
        redrive.redrive(client, DLQ_URL, QUEUE_URL, "events")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", type=Path)
    redrive.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def test_the_command_line_redrives_a_deployed_stage(
    sqs: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    queue_url, dlq_url = queues(sqs, "commands")
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps({"operation": "invoices.pay", "params": {}}))
    outputs = {"commands_queue_url": queue_url, "commands_dead_letter_queue_url": dlq_url}
    monkeypatch.setattr(targets, "deployed", lambda stage: targets.Target(outputs, local=False))

    args = parse("redrive", "--queue", "commands", "--stage", "prod")
    assert args.run(args) == 0  # moto has no StartMessageMoveTask (NotImplementedError): the loop ran

    assert "moved  -  invoices.pay" in capsys.readouterr().out
    assert count(sqs, queue_url) == 1 and count(sqs, dlq_url) == 0


def test_a_missing_queue_url_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "outputs.json").write_text(json.dumps({"events_queue_url": "http://q"}))
    args = parse("--state-dir", str(tmp_path), "redrive", "--queue", "events")
    with pytest.raises(SystemExit) as exited:
        args.run(args)
    assert "events_dead_letter_queue_url" in str(exited.value.code)


def test_max_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("redrive", "--queue", "events", "--max", "0")
    assert "not a positive number" in capsys.readouterr().err
