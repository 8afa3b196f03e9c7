"""`accept_webhook`: only a verified Stripe event within the size limit reaches the queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from events import stripe_event
from stripe_middleware.ingest.ports import NotDurableError
from stripe_middleware.ingest.signature import SignatureError, compute_signature
from stripe_middleware.ingest.webhook import AcceptedEvent, Route, WebhookRequest, accept_webhook
from stripe_middleware.shared.errors import RejectedError, UnavailableError
from tests.fakes.ports import FakeEventQueue, FakeSigningSecrets

SECRET = "whsec_unit_current"
NOW = 1_764_000_000
TOLERANCE = 300


def signature(body: bytes, *, secret: str = SECRET, timestamp: int = NOW) -> dict[str, str]:
    return {"stripe-signature": f"t={timestamp},v1={compute_signature(body, secret, timestamp)}"}


def deliver(
    queue: FakeEventQueue,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    route: Route = "account",
    secrets: tuple[str, ...] = (SECRET,),
    max_body_bytes: int = 1_000_000,
) -> AcceptedEvent:
    request = WebhookRequest(route=route, headers=signature(body) if headers is None else headers, body=body)
    return accept_webhook(
        request, secrets=secrets, queue=queue, now=NOW, tolerance=TOLERANCE, max_body_bytes=max_body_bytes
    )


def encoded(event: Any) -> bytes:
    return json.dumps(event).encode()


@pytest.fixture
def queue() -> FakeEventQueue:
    return FakeEventQueue()


def test_a_verified_connect_event_is_enqueued_with_its_routing_attributes(queue: FakeEventQueue) -> None:
    event = stripe_event("invoice.paid", event_id="evt_unit_1", account="acct_1Conn", livemode=True)
    body = encoded(event)
    accepted = deliver(queue, body, route="connect")
    [queued] = queue.events
    assert queued.body == body.decode()
    assert queued.attributes == {
        "event_id": "evt_unit_1",
        "event_type": "invoice.paid",
        "account": "acct_1Conn",
        "livemode": "true",
        "api_version": event["api_version"],
        "route": "connect",
        "source": "webhook",
    }
    assert accepted == AcceptedEvent(
        "evt_unit_1", "invoice.paid", event["created"], "acct_1Conn", True, "msg-1"
    )


def test_a_platform_test_mode_event_has_an_empty_account_and_livemode_false(queue: FakeEventQueue) -> None:
    accepted = deliver(queue, encoded(stripe_event("customer.created")))
    [queued] = queue.events
    assert (queued.attributes["account"], queued.attributes["livemode"]) == ("", "false")
    assert queued.attributes["route"] == "account"
    assert accepted.account is None and accepted.livemode is False


def test_an_event_signed_with_the_previous_secret_is_accepted_during_a_roll(queue: FakeEventQueue) -> None:
    secrets = FakeSigningSecrets({"webhook": ("whsec_new", "whsec_old")}).get("webhook")
    body = encoded(stripe_event("charge.succeeded"))
    deliver(queue, body, headers=signature(body, secret="whsec_old"), secrets=secrets)
    assert len(queue.events) == 1


def test_a_body_over_the_limit_is_413_and_nothing_is_enqueued(queue: FakeEventQueue) -> None:
    body = encoded(stripe_event("invoice.paid"))
    with pytest.raises(RejectedError) as rejected:
        deliver(queue, body, max_body_bytes=len(body) - 1)
    assert (rejected.value.status, rejected.value.code) == (413, "payload_too_large")
    assert queue.events == []


def test_a_body_exactly_at_the_limit_is_accepted(queue: FakeEventQueue) -> None:
    body = encoded(stripe_event("invoice.paid"))
    deliver(queue, body, max_body_bytes=len(body))
    assert len(queue.events) == 1


BODY = encoded(stripe_event("invoice.paid"))


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_signature"),
        ({"stripe-signature": ""}, "missing_signature"),
        (signature(BODY, secret="whsec_someone_else"), "invalid_signature"),
        (signature(b'{"tampered": true}'), "invalid_signature"),
        (
            {"stripe-signature": f"t={NOW},v0={compute_signature(BODY, SECRET, NOW)}"},
            "malformed_signature_header",
        ),
        (signature(BODY, timestamp=NOW - TOLERANCE - 1), "timestamp_outside_tolerance"),
        (signature(BODY, timestamp=NOW + TOLERANCE + 1), "timestamp_outside_tolerance"),
    ],
    ids=["no-header", "empty-header", "other-secret", "other-body", "v0-only", "too-old", "future"],
)
def test_an_unverified_delivery_is_a_signature_error_and_nothing_is_enqueued(
    queue: FakeEventQueue, headers: dict[str, str], code: str
) -> None:
    with pytest.raises(SignatureError) as rejected:
        deliver(queue, BODY, headers=headers)
    assert (rejected.value.status, rejected.value.code) == (400, code)
    assert queue.events == []


def test_a_signature_at_the_edge_of_the_tolerance_is_accepted(queue: FakeEventQueue) -> None:
    deliver(queue, BODY, headers=signature(BODY, timestamp=NOW - TOLERANCE))
    assert len(queue.events) == 1


@pytest.mark.parametrize(
    "body", [b"not json", b'{"id": "evt_1",', b"\xff\xfe{}"], ids=["text", "cut", "latin"]
)
def test_a_signed_body_that_is_not_json_is_rejected_as_invalid_json(
    queue: FakeEventQueue, body: bytes
) -> None:
    with pytest.raises(RejectedError) as rejected:
        deliver(queue, body)
    assert (rejected.value.status, rejected.value.code) == (400, "invalid_json")
    assert queue.events == []


EVENT = stripe_event("invoice.paid", event_id="evt_unit_shape")


@pytest.mark.parametrize(
    "document",
    [
        [EVENT],
        {**EVENT, "id": "in_123"},
        {**EVENT, "object": "invoice"},
        {**EVENT, "type": ""},
        {**EVENT, "created": "1764000000"},
        {**EVENT, "created": True},
        {**EVENT, "data": {"object": None}},
        {key: value for key, value in EVENT.items() if key != "data"},
    ],
    ids=[
        "array",
        "not-evt-id",
        "not-event-object",
        "empty-type",
        "created-text",
        "created-bool",
        "no-object",
        "no-data",
    ],
)
def test_signed_json_that_is_not_a_stripe_event_is_rejected(queue: FakeEventQueue, document: Any) -> None:
    with pytest.raises(RejectedError) as rejected:
        deliver(queue, encoded(document))
    assert (rejected.value.status, rejected.value.code) == (400, "not_an_event")
    assert queue.events == []


def test_a_queue_outage_is_not_durable_so_stripe_retries(queue: FakeEventQueue) -> None:
    queue.fail = True
    with pytest.raises(NotDurableError) as raised:
        deliver(queue, BODY)
    assert isinstance(raised.value, UnavailableError) and raised.value.code == "not_durable"
    assert queue.events == []
