"""`run_command` on the in-memory command store, rate limit, Stripe and bus."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from stripe_middleware.commands import execute
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.commands.execute import Outcome, run_command
from stripe_middleware.commands.models import Command, command_id_for
from stripe_middleware.commands.submit import submit_command
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from tests.fakes.ports import (
    FakeCommandQueue,
    FakeCommandStore,
    FakePublisher,
    FakeRateLimiter,
    FakeStripeWriter,
    stripe_failure,
)

CUSTOMER = {
    "email": "ops@example.com",
    "metadata": {"erp_id": "NS-100200", "crm_account_id": "001A00000abcDEF"},
}
CREATE_CUSTOMER = {"operation": "customers.create", "params": CUSTOMER}
MESSAGE_ID = "msg-1"
# A producer's command without an id or key: its id derives from the SQS message id.
COMMAND_ID = command_id_for(None, MESSAGE_ID)


@dataclass
class Gateway:
    store: FakeCommandStore = field(default_factory=FakeCommandStore)
    limiter: FakeRateLimiter = field(default_factory=FakeRateLimiter)
    stripe: FakeStripeWriter = field(default_factory=FakeStripeWriter)
    publisher: FakePublisher = field(default_factory=FakePublisher)

    def run(self, command: Any, *, receive_count: int = 1, livemode: bool = False) -> Outcome:
        return run_command(
            command if isinstance(command, str) else json.dumps(command),
            message_id=MESSAGE_ID,
            receive_count=receive_count,
            store=self.store,
            limiter=self.limiter,
            stripe=self.stripe,
            livemode=livemode,
            config=load_gateway_config(),
            schema=load_metadata_schema(),
            publisher=self.publisher,
        )

    def record(self, command_id: str = COMMAND_ID) -> Command:
        command = self.store.get(command_id)
        assert command is not None
        return command


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


@pytest.fixture(autouse=True)
def _deterministic_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execute, "backoff", lambda attempt: 10.0 * attempt)


def test_a_command_succeeds_records_its_result_and_publishes_it(gateway: Gateway) -> None:
    assert gateway.run(CREATE_CUSTOMER) == Outcome(COMMAND_ID, "succeeded")
    record = gateway.record()
    [created] = gateway.stripe.created
    assert record.status == "succeeded" and record.attempts == 1 and record.error is None
    assert record.result is not None and record.result["id"] == created
    [call] = gateway.stripe.calls
    assert call.path == "/v1/customers" and call.params == CUSTOMER
    [published] = gateway.publisher.published
    assert published.key == COMMAND_ID and published.detail_type == DetailType.COMMAND_SUCCEEDED
    assert published.detail["status"] == "succeeded" and published.detail["result"]["id"] == created
    assert "params" not in published.detail


def test_without_a_producer_key_the_idempotency_key_derives_from_the_command_id(gateway: Gateway) -> None:
    gateway.run(CREATE_CUSTOMER)
    assert [c.idempotency_key for c in gateway.stripe.calls] == [f"stripe-middleware-{COMMAND_ID}"]


def test_a_producer_idempotency_key_is_sent_to_stripe_and_names_the_command(gateway: Gateway) -> None:
    outcome = gateway.run({**CREATE_CUSTOMER, "idempotency_key": "order-42"})
    assert outcome.command_id == command_id_for("order-42", MESSAGE_ID)
    assert [c.idempotency_key for c in gateway.stripe.calls] == ["order-42"]


def test_a_connect_account_is_passed_to_stripe(gateway: Gateway) -> None:
    gateway.run({**CREATE_CUSTOMER, "stripe_account": "acct_1Conn"})
    assert [c.stripe_account for c in gateway.stripe.calls] == ["acct_1Conn"]


def test_a_command_queued_by_the_api_runs_under_its_api_id(gateway: Gateway) -> None:
    queue = FakeCommandQueue()
    accepted = submit_command(
        json.dumps(CREATE_CUSTOMER).encode(),
        store=gateway.store,
        queue=queue,
        config=load_gateway_config(),
        schema=load_metadata_schema(),
    )
    assert gateway.run(queue.messages[0]) == Outcome(accepted["command_id"], "succeeded")
    assert gateway.record(accepted["command_id"]).attempts == 1


def test_a_repeated_delivery_of_a_finished_command_republishes_without_calling_stripe(
    gateway: Gateway,
) -> None:
    gateway.run(CREATE_CUSTOMER)
    assert gateway.run(CREATE_CUSTOMER) == Outcome(COMMAND_ID, "succeeded")
    assert len(gateway.stripe.calls) == 1 and gateway.record().attempts == 1
    published = [p.detail["command_id"] for p in gateway.publisher.published]
    assert published == [COMMAND_ID, COMMAND_ID]  # at-least-once: the result may not have reached the bus


def test_a_result_the_bus_refused_comes_back_and_is_published_without_a_second_stripe_call(
    gateway: Gateway,
) -> None:
    gateway.publisher.fail_all = True
    outcome = gateway.run(CREATE_CUSTOMER)
    assert outcome.status == "succeeded" and outcome.retry_after is not None and not outcome.dead_letter
    assert gateway.publisher.published == [] and gateway.record().status == "succeeded"
    gateway.publisher.fail_all = False
    assert gateway.run(CREATE_CUSTOMER) == Outcome(COMMAND_ID, "succeeded")
    assert [p.detail_type for p in gateway.publisher.published] == ["stripe-middleware.command.succeeded"]
    assert len(gateway.stripe.calls) == 1


@pytest.mark.parametrize(("livemode", "mode", "account_limit"), [(False, "test", 20), (True, "live", 80)])
def test_the_rate_limit_takes_the_configured_share_per_mode_and_endpoint(
    gateway: Gateway, livemode: bool, mode: str, account_limit: int
) -> None:
    gateway.run(CREATE_CUSTOMER, livemode=livemode)
    assert gateway.limiter.requests == [[(mode, account_limit), (f"{mode}:/v1/customers", 20)]]


def test_a_full_rate_limit_waits_in_the_queue_without_calling_stripe_or_using_an_attempt(
    gateway: Gateway,
) -> None:
    gateway.limiter.full = True
    assert gateway.run(CREATE_CUSTOMER) == Outcome(COMMAND_ID, "queued", retry_after=1)
    assert gateway.stripe.calls == [] and gateway.publisher.published == []
    assert gateway.record().attempts == 0 and gateway.record().status == "queued"


def test_a_429_waits_in_the_queue_without_counting_the_attempt(gateway: Gateway) -> None:
    gateway.stripe.fail_next = [stripe_failure(429, code="rate_limit", rate_limited=True)]
    outcome = gateway.run(CREATE_CUSTOMER, receive_count=9)
    # The backoff is capped at 6 receives; the 429 is told apart for the metrics.
    assert outcome == Outcome(COMMAND_ID, "queued", retry_after=60.0, stripe_rate_limited=True)
    record = gateway.record()
    assert record.status == "queued" and record.attempts == 0
    assert record.error is not None and record.error["http_status"] == 429
    assert gateway.publisher.published == []


def test_a_retryable_5xx_is_retried_with_backoff_and_counts_the_attempt(gateway: Gateway) -> None:
    gateway.stripe.fail_next = [stripe_failure(500), stripe_failure(503)]
    assert gateway.run(CREATE_CUSTOMER) == Outcome(COMMAND_ID, "queued", retry_after=10.0)
    assert gateway.run(CREATE_CUSTOMER) == Outcome(COMMAND_ID, "queued", retry_after=20.0)
    assert gateway.record().attempts == 2 and gateway.record().status == "queued"
    assert gateway.publisher.published == []


def test_a_retry_after_a_5xx_reuses_the_idempotency_key_and_succeeds(gateway: Gateway) -> None:
    gateway.stripe.fail_next = [stripe_failure(500)]
    gateway.run(CREATE_CUSTOMER)
    assert gateway.run(CREATE_CUSTOMER) == Outcome(COMMAND_ID, "succeeded")
    assert len({c.idempotency_key for c in gateway.stripe.calls}) == 1 and len(gateway.stripe.calls) == 2
    record = gateway.record()
    assert record.attempts == 2 and record.error is None and len(gateway.stripe.created) == 1


def test_a_command_that_fails_max_attempts_times_is_failed_and_dead_lettered(gateway: Gateway) -> None:
    max_attempts = load_gateway_config().max_attempts
    gateway.stripe.fail_next = [stripe_failure(500) for _ in range(max_attempts)]
    outcomes = [gateway.run(CREATE_CUSTOMER) for _ in range(max_attempts)]
    assert {o.status for o in outcomes[:-1]} == {"queued"}
    assert outcomes[-1] == Outcome(COMMAND_ID, "failed", dead_letter=True)
    record = gateway.record()
    assert record.status == "failed" and record.attempts == max_attempts
    [published] = gateway.publisher.published
    assert (
        published.detail_type == DetailType.COMMAND_FAILED and published.detail["error"]["http_status"] == 500
    )


def test_a_card_error_fails_at_once_and_is_not_dead_lettered(gateway: Gateway) -> None:
    declined = stripe_failure(402, type="card_error", code="card_declined", should_retry=False)
    gateway.stripe.fail_next = [declined]
    assert gateway.run(CREATE_CUSTOMER) == Outcome(COMMAND_ID, "failed", dead_letter=False)
    record = gateway.record()
    assert record.status == "failed" and record.attempts == 1 and record.error == declined.record()
    [published] = gateway.publisher.published
    assert published.detail_type == DetailType.COMMAND_FAILED
    assert published.detail["error"]["code"] == "card_declined"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ({"operation": "charges.create", "params": {}}, "operation_not_allowed"),
        ({"operation": "customers.create", "params": {"email": "a@b.c"}}, "metadata_violation"),
        ({"operation": "customers.update", "params": {"id": "cus_1", "colour": "red"}}, "invalid_params"),
        ({"params": CUSTOMER}, "invalid_command"),
    ],
    ids=["operation-not-allowed", "metadata-violation", "invalid-params", "no-operation"],
)
def test_an_invalid_command_from_a_producer_is_recorded_failed_and_never_reaches_stripe(
    gateway: Gateway, command: dict[str, Any], code: str
) -> None:
    assert gateway.run(command) == Outcome(COMMAND_ID, "failed")
    record = gateway.record()
    assert record.status == "failed" and record.error is not None
    assert (record.error["type"], record.error["code"]) == ("validation_error", code)
    [published] = gateway.publisher.published
    assert published.detail_type == DetailType.COMMAND_FAILED and published.detail["error"]["code"] == code
    assert gateway.stripe.calls == [] and gateway.limiter.requests == []


def test_an_invalid_command_keeps_the_producers_command_id(gateway: Gateway) -> None:
    command_id = "cmd_" + "a" * 32
    outcome = gateway.run({"command_id": command_id, "operation": "charges.create"})
    assert outcome == Outcome(command_id, "failed") and gateway.record(command_id).status == "failed"


@pytest.mark.parametrize(
    "body", ["not json", "[1, 2]", '"customers.create"'], ids=["text", "array", "string"]
)
def test_a_message_that_is_not_a_command_object_fails_without_a_record(gateway: Gateway, body: str) -> None:
    assert gateway.run(body) == Outcome(None, "failed")
    assert gateway.store.commands == {} and gateway.publisher.published == []
    assert gateway.stripe.calls == []


def test_a_command_in_an_eventbridge_envelope_is_run(gateway: Gateway) -> None:
    envelope = {
        "version": "0",
        "detail-type": DetailType.COMMAND,
        "source": "billing-service",
        "detail": CREATE_CUSTOMER,
    }
    assert gateway.run(envelope) == Outcome(COMMAND_ID, "succeeded")
    assert len(gateway.stripe.created) == 1


def test_a_command_store_outage_propagates_before_stripe_is_called(gateway: Gateway) -> None:
    gateway.store.unavailable = {"create"}
    with pytest.raises(StoreUnavailableError):
        gateway.run(CREATE_CUSTOMER)
    assert gateway.stripe.calls == []


def test_a_rate_limiter_outage_propagates_before_stripe_is_called(gateway: Gateway) -> None:
    gateway.limiter.unavailable = True
    with pytest.raises(StoreUnavailableError):
        gateway.run(CREATE_CUSTOMER)
    assert gateway.stripe.calls == [] and gateway.record().attempts == 0


def test_a_dead_lettered_command_runs_again_with_fresh_attempts_when_redriven(gateway: Gateway) -> None:
    from stripe_middleware.commands.execute import dead_letter_body

    gateway.stripe.fail_next = [stripe_failure(503)] * load_gateway_config().max_attempts
    body = json.dumps(CREATE_CUSTOMER)
    for _ in range(load_gateway_config().max_attempts):
        outcome = gateway.run(body)
    assert outcome.dead_letter and gateway.record().status == "failed"
    redriven = dead_letter_body(body, outcome.command_id)
    assert gateway.run(redriven) == Outcome(COMMAND_ID, "succeeded")
    assert gateway.record().attempts == 1
    assert gateway.run(body) == Outcome(COMMAND_ID, "succeeded")  # a plain duplicate does not re-run it
    assert len([c for c in gateway.stripe.calls]) == load_gateway_config().max_attempts + 1
