from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import stripe_event
from tests.integration.conftest import CONNECT_SECRET, PREVIOUS, SECRET, IngestStack


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(response["body"])
    return result


def test_verified_event_is_enqueued_with_attributes_before_200(ingest_stack: IngestStack) -> None:
    event = stripe_event("invoice.paid", account="acct_1ABC", livemode=True)
    raw = json.dumps(event)
    response = ingest_stack.post(raw)
    assert response["statusCode"] == 200
    assert body_of(response) == {"received": True, "id": event["id"]}
    [message] = ingest_stack.messages()
    assert message["Body"] == raw  # byte-for-byte what Stripe signed
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "event_id": event["id"],
        "event_type": "invoice.paid",
        "account": "acct_1ABC",
        "livemode": "true",
        "api_version": event["api_version"],
        "route": "account",
        "source": "webhook",
    }


def test_previous_secret_accepted_during_rotation(ingest_stack: IngestStack) -> None:
    assert (
        ingest_stack.post(json.dumps(stripe_event("customer.created")), secret=PREVIOUS)["statusCode"] == 200
    )


def test_a_secret_written_after_it_was_cached_verifies_at_once_and_forgeries_stay_out(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Self-registration writes the endpoint's secret after the function cached the placeholder: the first
    signature no cached secret verifies reads the secret again (at most every 30 s), not in 5 minutes."""
    import boto3

    from functions.ingest import handler

    assert ingest_stack.post(json.dumps(stripe_event("customer.created")))["statusCode"] == 200  # cached
    registered = "whsec_registered_by_the_deploy"
    secrets = boto3.client("secretsmanager")
    secrets.put_secret_value(SecretId="webhook", SecretString=json.dumps({"current": registered}))
    reads = []
    real_get = handler.dependencies().secrets._client.get_secret_value
    monkeypatch.setattr(
        handler.dependencies().secrets._client,
        "get_secret_value",
        lambda **kwargs: reads.append(kwargs) or real_get(**kwargs),
    )
    clock = handler.dependencies().secrets._clock
    monkeypatch.setattr(handler.dependencies().secrets, "_clock", lambda: clock() + 31)
    event = stripe_event("invoice.paid")
    assert ingest_stack.post(json.dumps(event), secret=registered)["statusCode"] == 200
    assert [m["MessageAttributes"]["event_id"]["StringValue"] for m in ingest_stack.messages()][-1] == event[
        "id"
    ]
    forged = ingest_stack.post(json.dumps(stripe_event("invoice.paid")), secret="whsec_forged")
    assert forged["statusCode"] == 400 and body_of(forged)["error"] == "invalid_signature"
    assert len(reads) == 1  # the forgery came within 30 s of the read: no second call


def test_connect_route_uses_its_own_secret(ingest_stack: IngestStack) -> None:
    raw = json.dumps(stripe_event("account.updated", account="acct_connected"))
    assert ingest_stack.post(raw, secret=SECRET, connect=True)["statusCode"] == 400
    assert ingest_stack.post(raw, secret=CONNECT_SECRET)["statusCode"] == 400
    assert ingest_stack.post(raw, secret=CONNECT_SECRET, connect=True)["statusCode"] == 200
    [message] = ingest_stack.messages()
    assert message["MessageAttributes"]["route"]["StringValue"] == "connect"


def test_base64_encoded_body_from_api_gateway(ingest_stack: IngestStack) -> None:
    raw = json.dumps(stripe_event("charge.succeeded"))
    assert ingest_stack.post(raw, base64_encoded=True)["statusCode"] == 200
    assert ingest_stack.messages()[0]["Body"] == raw


def test_header_name_is_case_insensitive(ingest_stack: IngestStack) -> None:
    import stripe

    raw = json.dumps(stripe_event("charge.succeeded"))
    signature = stripe.WebhookSignature.generate_signature_header(raw, SECRET)
    response = ingest_stack.post(raw, headers={"STRIPE-SIGNATURE": signature})
    assert response["statusCode"] == 200


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("no_header", "missing_signature"),
        ("bad_signature", "invalid_signature"),
        ("stale", "timestamp_outside_tolerance"),
        ("not_json", "invalid_json"),
        ("json_array", "not_an_event"),
        ("not_an_event", "not_an_event"),
    ],
)
def test_rejections_are_400_json_and_enqueue_nothing(ingest_stack: IngestStack, case: str, code: str) -> None:
    raw = json.dumps(stripe_event("payment_intent.succeeded"))
    kwargs: dict[str, Any] = {}
    if case == "no_header":
        kwargs["headers"] = {}
    elif case == "bad_signature":
        kwargs["secret"] = "whsec_attacker"
    elif case == "stale":
        kwargs["timestamp"] = int(time.time()) - 301
    elif case == "not_json":
        raw = "{not json"
    elif case == "json_array":
        raw = "[1, 2]"
    elif case == "not_an_event":
        raw = json.dumps({"id": "cus_123", "object": "customer"})
    response = ingest_stack.post(raw, **kwargs)
    assert response["statusCode"] == 400
    assert response["headers"]["content-type"] == "application/json"
    assert body_of(response)["error"] == code
    assert body_of(response)["message"]
    assert ingest_stack.messages() == []


def test_too_large_is_413_and_enqueues_nothing(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.ingest import handler

    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    handler.dependencies.cache_clear()
    big = stripe_event("invoice.created", description="x" * 4096)
    response = ingest_stack.post(json.dumps(big))
    assert response["statusCode"] == 413
    assert body_of(response)["error"] == "payload_too_large"
    assert ingest_stack.messages() == []


def test_sqs_failure_is_5xx_and_nothing_acknowledged(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.ingest import handler

    queue = handler.dependencies().queue

    def throttled(**kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "SendMessage"
        )

    monkeypatch.setattr(queue._client, "send_message", throttled)
    response = ingest_stack.post(json.dumps(stripe_event("invoice.paid")))
    assert response["statusCode"] == 503
    assert body_of(response)["error"] == "not_durable"


def test_deleted_queue_is_5xx(ingest_stack: IngestStack) -> None:
    ingest_stack.sqs.delete_queue(QueueUrl=ingest_stack.queue_url)
    response = ingest_stack.post(json.dumps(stripe_event("invoice.paid")))
    assert response["statusCode"] == 503


def test_unreadable_secret_is_5xx_not_400(ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.ingest import handler

    monkeypatch.setenv("WEBHOOK_SECRET_ID", "does-not-exist")
    handler.dependencies.cache_clear()
    response = ingest_stack.post(json.dumps(stripe_event("invoice.paid")))
    assert response["statusCode"] == 503
    assert ingest_stack.messages() == []


def test_logs_carry_event_id_and_no_secret(
    ingest_stack: IngestStack, capsys: pytest.CaptureFixture[str]
) -> None:
    event = stripe_event("customer.created", email="jenny.rosen@example.com")
    ingest_stack.post(json.dumps(event))
    ingest_stack.post(json.dumps(event), secret="whsec_wrong")
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    enqueued = [line for line in lines if line.get("message") == "webhook enqueued"]
    assert enqueued and enqueued[0]["correlation_id"] == event["id"]
    metric_names = {
        m["Name"] for line in lines if "_aws" in line for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    assert {"WebhookReceived", "WebhookEnqueued", "WebhookRejected"} <= metric_names
    assert SECRET not in out and "jenny.rosen@example.com" not in out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.dictionaries(
        st.sampled_from(["stripe-signature", "Stripe-Signature", "content-type", "x-other"]),
        st.text(max_size=200),
    ),
    body=st.one_of(st.binary(max_size=512), st.text(max_size=512).map(str.encode)),
    base64_encoded=st.booleans(),
)
def test_random_requests_never_5xx_and_never_enqueue(
    ingest_stack: IngestStack, headers: dict[str, str], body: bytes, base64_encoded: bool
) -> None:
    from events import http_api_event
    from functions.ingest.handler import handler

    if not base64_encoded:  # API Gateway base64-encodes bodies that are not text
        body = body.decode("utf-8", "replace").encode()
    response = handler(
        http_api_event("/webhooks/stripe", body, headers=headers, base64_encoded=base64_encoded), None
    )
    assert 400 <= response["statusCode"] < 500
    assert ingest_stack.messages() == []
