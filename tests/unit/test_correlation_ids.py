"""Correlation ids survive the hops: a message handed back to SQS is logged with its event id, and the
gateway never logs one command under another's id."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from events import stripe_event
from stripe_middleware.processing.processor import Message, process_batch
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware.signals import consume
from tests.fakes.ports import FakePublisher, FakeStore


class LambdaContext:
    function_name = "test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "req-1"


@contextmanager
def logged_by(logger: Logger) -> Iterator[list[dict[str, Any]]]:
    """The JSON lines `logger` writes while the caller runs."""
    stream = io.StringIO()
    original = logger.registered_handler.setStream(stream)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.registered_handler.setStream(original)
        lines += [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_process_batch_names_the_event_of_every_message_it_hands_back() -> None:
    event = stripe_event("customer.created")
    messages = [Message("m-1", json.dumps(event)), Message("m-2", "not json")]
    outcome = process_batch(
        messages, store=FakeStore(), publisher=FakePublisher(fail_all=True), schema=load_metadata_schema()
    )
    assert outcome.errors.keys() == {"m-1", "m-2"}
    assert outcome.event_ids == {"m-1": event["id"]}  # "not json" has no event id to give


def test_consume_names_the_event_of_a_message_detection_failed_on() -> None:
    event = stripe_event("charge.succeeded")
    envelope = {"id": "eb-1", "detail-type": "charge.succeeded", "detail": event}

    def unavailable(detail_type: str, detail: dict[str, Any]) -> Any:
        raise StoreUnavailableError("fake DynamoDB is unavailable")

    outcome = consume.consume([consume.Message("m-1", json.dumps(envelope))], unavailable)
    assert outcome.errors.keys() == {"m-1"} and outcome.consumed == []
    assert outcome.event_ids == {"m-1": event["id"]}


def test_the_processor_logs_a_message_it_hands_back_under_its_event_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from functions.processor import handler

    deps = handler.Dependencies(
        store=FakeStore(unavailable={"upsert"}),
        publisher=FakePublisher(),
        schema=load_metadata_schema(),
        refetch=None,
    )
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    event = stripe_event("customer.created")
    with logged_by(handler.logger) as lines:
        answer = handler.handler(
            {"Records": [{"messageId": "m-1", "body": json.dumps(event)}]}, LambdaContext()
        )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    [handed_back] = [line for line in lines if line["message"].startswith("message not processed")]
    assert handed_back["correlation_id"] == event["id"] and handed_back["message_id"] == "m-1"


def test_the_gateway_never_logs_a_command_under_the_previous_commands_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from functions.gateway import handler
    from stripe_middleware.commands.execute import Outcome

    def run_command(body: str, **kwargs: Any) -> Outcome:
        if body == "second":
            raise StoreUnavailableError("fake DynamoDB is unavailable")
        return Outcome("cmd_first", "succeeded")

    sqs = SimpleNamespace(change_message_visibility=lambda **kwargs: None)
    settings = SimpleNamespace(commands_queue_url="queue", commands_dead_letter_queue_url="dlq")
    deps = SimpleNamespace(
        settings=settings,
        sqs=sqs,
        store=None,
        limiter=None,
        stripe=None,
        livemode=False,
        config=None,
        schema=None,
        publisher=None,
    )
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    monkeypatch.setattr(handler, "run_command", run_command)
    records = [
        {"messageId": "m-1", "body": "first", "receiptHandle": "r-1"},
        {"messageId": "m-2", "body": "second", "receiptHandle": "r-2"},
    ]
    with logged_by(handler.logger) as lines:
        answer = handler.handler({"Records": records}, LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    [deferred] = [line for line in lines if line["message"].startswith("command deferred")]
    assert deferred.get("correlation_id") is None and deferred["message_id"] == "m-2"
    handled = [line.get("correlation_id") for line in lines if line["message"] == "command handled"]
    assert handled == ["cmd_first", None]
