"""`submit_command` and `command_status`: refuse early, store, then queue durably."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.commands.ports import NotQueuedError
from stripe_middleware.commands.submit import COMMAND_ID, command_status, submit_command
from stripe_middleware.commands.validation import CommandRejectedError
from stripe_middleware.shared.errors import NotFoundError, RejectedError, StoreUnavailableError
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from tests.fakes.ports import FakeCommandQueue, FakeCommandStore

CUSTOMER = {
    "email": "ops@example.com",
    "metadata": {"erp_id": "NS-100200", "crm_account_id": "001A00000abcDEF"},
}
CREATE_CUSTOMER = {"operation": "customers.create", "params": CUSTOMER}


@pytest.fixture
def store() -> FakeCommandStore:
    return FakeCommandStore()


@pytest.fixture
def queue() -> FakeCommandQueue:
    return FakeCommandQueue()


def submit(store: FakeCommandStore, queue: FakeCommandQueue, body: Any) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return submit_command(
        raw, store=store, queue=queue, config=load_gateway_config(), schema=load_metadata_schema()
    )


def test_a_valid_command_is_stored_and_queued(store: FakeCommandStore, queue: FakeCommandQueue) -> None:
    answer = submit(store, queue, CREATE_CUSTOMER)
    command_id = answer["command_id"]
    assert answer == {"command_id": command_id, "status": "queued"} and COMMAND_ID.match(command_id)
    assert queue.documents() == [
        {
            "command_id": command_id,
            "operation": "customers.create",
            "params": CUSTOMER,
            "idempotency_key": f"stripe-middleware-{command_id}",
        }
    ]
    stored = store.get(command_id)
    assert stored is not None and stored.status == "queued" and stored.attempts == 0


def test_every_submission_is_a_new_command(store: FakeCommandStore, queue: FakeCommandQueue) -> None:
    first, second = submit(store, queue, CREATE_CUSTOMER), submit(store, queue, CREATE_CUSTOMER)
    assert first["command_id"] != second["command_id"] and len(store.commands) == 2


def test_a_producer_key_and_account_travel_with_the_message(
    store: FakeCommandStore, queue: FakeCommandQueue
) -> None:
    submit(store, queue, {**CREATE_CUSTOMER, "idempotency_key": "order-42", "stripe_account": "acct_1Conn"})
    [document] = queue.documents()
    assert document["idempotency_key"] == "order-42" and document["stripe_account"] == "acct_1Conn"


def test_metadata_is_queued_normalized(store: FakeCommandStore, queue: FakeCommandQueue) -> None:
    metadata = {"erp_id": " ns-100200 ", "crm_account_id": "001A00000abcDEF", "campaign": " Partner"}
    submit(store, queue, {"operation": "customers.create", "params": {"metadata": metadata}})
    [document] = queue.documents()
    assert document["params"]["metadata"] == {
        "erp_id": "NS-100200",
        "crm_account_id": "001A00000abcDEF",
        "campaign": "partner",
    }


@pytest.mark.parametrize("body", [b"{", b"not json"], ids=["cut", "text"])
def test_a_body_that_is_not_json_is_rejected(
    store: FakeCommandStore, queue: FakeCommandQueue, body: bytes
) -> None:
    with pytest.raises(RejectedError) as rejected:
        submit(store, queue, body)
    assert (rejected.value.status, rejected.value.code) == (400, "invalid_json")
    assert queue.messages == [] and store.commands == {}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"operation": "charges.create", "params": {}}, "operation_not_allowed"),
        ({"operation": "customers.update", "params": {"id": "cus_1", "colour": "red"}}, "invalid_params"),
        (
            {"operation": "payment_intents.create", "params": {"amount": 0, "currency": "usd"}},
            "invalid_params",
        ),
        ({"operation": "customers.create", "params": {"email": "a@b.c"}}, "metadata_violation"),
        ({"params": CUSTOMER}, "invalid_command"),
        ({**CREATE_CUSTOMER, "priority": "high"}, "invalid_command"),
        ({**CREATE_CUSTOMER, "stripe_account": "cus_123"}, "invalid_command"),
        ([CREATE_CUSTOMER], "invalid_command"),
        (b"", "invalid_command"),
    ],
    ids=[
        "not-allowed",
        "unknown-param",
        "zero-amount",
        "missing-metadata",
        "no-operation",
        "unknown-field",
        "bad-account",
        "array",
        "empty-body",
    ],
)
def test_an_invalid_command_is_refused_before_anything_is_stored_or_queued(
    store: FakeCommandStore, queue: FakeCommandQueue, body: Any, code: str
) -> None:
    with pytest.raises(CommandRejectedError) as rejected:
        submit(store, queue, body)
    assert (rejected.value.status, rejected.value.code) == (400, code)
    assert queue.messages == [] and store.commands == {}


def test_a_metadata_violation_names_each_key_and_why(
    store: FakeCommandStore, queue: FakeCommandQueue
) -> None:
    with pytest.raises(CommandRejectedError) as rejected:
        submit(store, queue, {"operation": "customers.create", "params": {"metadata": {"erp_id": "12"}}})
    assert {(d["key"], d["code"]) for d in rejected.value.details} == {
        ("erp_id", "pattern"),
        ("crm_account_id", "missing"),
    }
    assert rejected.value.body()["details"] == rejected.value.details


def test_invalid_params_name_the_field(store: FakeCommandStore, queue: FakeCommandQueue) -> None:
    with pytest.raises(CommandRejectedError) as rejected:
        submit(store, queue, {"operation": "customers.update", "params": {"id": "cus_1", "colour": "red"}})
    assert [d["field"] for d in rejected.value.details] == ["colour"]


def test_a_queue_outage_raises_and_marks_the_stored_command_failed(
    store: FakeCommandStore, queue: FakeCommandQueue
) -> None:
    queue.fail = True
    with pytest.raises(NotQueuedError):
        submit(store, queue, CREATE_CUSTOMER)
    [stored] = store.commands.values()
    assert stored.status == "failed" and stored.error is not None and stored.error["type"] == "not_queued"


def test_a_command_store_outage_raises_and_queues_nothing(
    store: FakeCommandStore, queue: FakeCommandQueue
) -> None:
    store.unavailable = {"create"}
    with pytest.raises(StoreUnavailableError):
        submit(store, queue, CREATE_CUSTOMER)
    assert queue.messages == []


@pytest.mark.parametrize("command_id", ["cmd_123", "CMD_" + "a" * 32, "cmd_" + "g" * 32, "../etc"])
def test_status_of_a_malformed_id_is_400(store: FakeCommandStore, command_id: str) -> None:
    with pytest.raises(RejectedError) as rejected:
        command_status(store, command_id)
    assert (rejected.value.status, rejected.value.code) == (400, "invalid_command_id")


def test_status_of_an_unknown_command_is_404(store: FakeCommandStore) -> None:
    with pytest.raises(NotFoundError) as rejected:
        command_status(store, "cmd_" + "0" * 32)
    assert (rejected.value.status, rejected.value.code) == (404, "not_found")


def test_status_of_a_submitted_command_is_its_record_without_params(
    store: FakeCommandStore, queue: FakeCommandQueue
) -> None:
    command_id = submit(store, queue, CREATE_CUSTOMER)["command_id"]
    status = command_status(store, command_id)
    assert status["command_id"] == command_id and status["status"] == "queued"
    assert status["operation"] == "customers.create" and status["attempts"] == 0
    assert "params" not in status


def test_status_when_the_store_is_unavailable_raises(store: FakeCommandStore) -> None:
    store.unavailable = {"get"}
    with pytest.raises(StoreUnavailableError):
        command_status(store, "cmd_" + "0" * 32)
