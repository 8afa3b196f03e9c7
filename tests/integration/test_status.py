"""`stripe-middleware status --stage`: the endpoints the register function created in a fake Stripe (over
HTTP, real SDK), compared with the stack's outputs, and the last events with their delivery state."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from events import stripe_event
from stripe_middleware.registration.models import NOT_REGISTERED
from stripe_middleware.shared.contract import STRIPE_API_VERSION
from stripe_middleware_dev import cli, targets
from tests.fakes.registration import custom_resource_event
from tests.fakes.stripe_server import FakeStripe, fake_stripe
from tests.integration.conftest import LambdaContext

KEY_NAME = "stripe-middleware-prod/stripe-registration-key"
REGISTRATION_KEY = "rk_test_51Registration0000000000000000"
READ_KEY = "rk_test_51ReadOnly00000000000000000000"
URL = "https://k3v9x2qf7a.execute-api.us-east-1.amazonaws.com/webhooks/stripe"


class Deployed:
    def __init__(self, stripe_server: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stripe = stripe_server
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name=KEY_NAME, SecretString=REGISTRATION_KEY)
        read_key = secrets.create_secret(Name="read-only-key", SecretString=READ_KEY)["ARN"]
        webhook = secrets.create_secret(Name="webhook", SecretString="placeholder")["ARN"]
        connect = secrets.create_secret(Name="connect-webhook", SecretString="placeholder")["ARN"]
        self.outputs: dict[str, Any] = {
            "WebhookUrl": URL,
            "ConnectWebhookUrl": f"{URL}/connect",
            "WebhookEndpointId": self.register(Url=URL, WebhookSecretId=webhook),
            "ConnectWebhookEndpointId": self.register(
                Url=f"{URL}/connect", Connect="true", WebhookSecretId=connect
            ),
            "WebhookEnabledEvents": "*",
            "StripeApiVersion": STRIPE_API_VERSION,
            "StripeRegistrationKeySecretName": KEY_NAME,
            "stripe_read_only_key_secret_arn": read_key,
        }
        monkeypatch.setattr(targets, "deployed", lambda stage: targets.Target(self.outputs, local=False))

    @staticmethod
    def register(**properties: Any) -> str:
        """What the deploy does: the register function's Create."""
        from functions.register.handler import handler

        event = custom_resource_event("Create", KeySecretId=KEY_NAME, **properties)
        event["RequestId"] = str(uuid.uuid4())  # each resource's Create is a request of its own
        return str(handler(event, LambdaContext())["PhysicalResourceId"])

    def endpoint(self, output: str = "WebhookEndpointId") -> dict[str, Any]:
        return self.stripe.objects[f"/v1/webhook_endpoints/{self.outputs[output]}"]

    def status(self, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main(["status", "--stage", "prod", *options])
        captured = capsys.readouterr()
        return code, captured.out + captured.err


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    from functions.register import handler

    with mock_aws(), fake_stripe() as stripe_server:
        monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url)
        handler.settings.cache_clear()
        handler.client.cache_clear()
        yield Deployed(stripe_server, monkeypatch)
        handler.settings.cache_clear()
        handler.client.cache_clear()


def _events(stripe_server: FakeStripe) -> list[dict[str, Any]]:
    """Three events Stripe sent: two delivered to every endpoint, the newest still pending at one."""
    sent = [
        stripe_event("customer.created", created=1_764_000_000),
        stripe_event("invoice.paid", created=1_764_000_060),
        stripe_event("invoice.payment_failed", created=1_764_000_120),
    ]
    for event, pending in zip(sent, (0, 0, 1), strict=True):
        event["pending_webhooks"] = pending
        stripe_server.objects[f"/v1/events/{event['id']}"] = event
    return sent


def test_endpoints_as_registered_and_the_last_events_with_their_delivery(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = _events(deployed.stripe)
    code, out = deployed.status(capsys)
    assert code == 0, out
    assert f"account  {deployed.outputs['WebhookEndpointId']}  as expected" in out
    assert f"connect  {deployed.outputs['ConnectWebhookEndpointId']}  as expected" in out
    assert f"url          {URL}\n" in out and f"api version  {STRIPE_API_VERSION}\n" in out
    lines = out.splitlines()
    newest = next(n for n, line in enumerate(lines) if sent[2]["id"] in line)
    assert "invoice.payment_failed" in lines[newest] and "pending at 1 endpoint" in lines[newest]
    assert sent[0]["id"] in lines[newest + 2] and lines[newest + 2].endswith("delivered")
    assert "1 recent event not yet delivered to every endpoint" in out
    # events are read with the read-only key; endpoints with the registration key
    event_calls = deployed.stripe.gets("/v1/events")
    assert {r.headers["authorization"] for r in event_calls} == {f"Bearer {READ_KEY}"}
    assert [r.params.get("delivery_success") for r in event_calls] == [None, "false"]
    endpoint_calls = [r for r in deployed.stripe.requests if r.path.startswith("/v1/webhook_endpoints/")]
    assert {r.headers["authorization"] for r in endpoint_calls if r.method == "GET"} == {
        f"Bearer {REGISTRATION_KEY}"
    }


def test_an_endpoint_changed_or_disabled_in_stripe_is_reported_with_what_the_stack_expects(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.endpoint().update(enabled_events=["invoice.paid"], status="disabled")
    code, out = deployed.status(capsys)
    assert code == 1
    assert f"account  {deployed.outputs['WebhookEndpointId']}  NOT as expected" in out
    assert "events       invoice.paid   expected *" in out
    assert "status       disabled   expected enabled" in out


def test_an_endpoint_deleted_in_the_dashboard_says_how_to_register_it_again(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    del deployed.stripe.objects[f"/v1/webhook_endpoints/{deployed.outputs['ConnectWebhookEndpointId']}"]
    code, out = deployed.status(capsys)
    assert code == 1
    assert "no longer exists in Stripe" in out and "stripeRegistrationRevision" in out


def test_a_stack_that_registered_nothing_says_where_the_key_goes(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.outputs["WebhookEndpointId"] = NOT_REGISTERED
    del deployed.outputs["ConnectWebhookEndpointId"]
    code, out = deployed.status(capsys)
    assert code == 1
    assert f"not registered ({NOT_REGISTERED})" in out and KEY_NAME in out
    assert "connect " not in out


def test_another_endpoint_at_the_stacks_url_is_pointed_out(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    manual = deployed.register(Url=URL, WebhookSecretId="connect-webhook", Description="made by hand")
    code, out = deployed.status(capsys)
    assert code == 0
    assert f"also at this URL: {manual}" in out


def test_json_output(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    _events(deployed.stripe)
    code, out = deployed.status(capsys, "--json", "--events", "2")
    report = json.loads(out)
    assert code == 0
    assert [r["route"] for r in report["routes"]] == ["account", "connect"]
    assert all(r["ok"] and r["differences"] == [] for r in report["routes"])
    assert report["routes"][0]["actual"]["api_version"] == STRIPE_API_VERSION
    assert (
        len(report["events"]["recent"]) == 2 and report["events"]["undelivered"][0]["pending_webhooks"] == 1
    )


def test_status_needs_a_stage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status"]) == 2
    assert "give --stage" in capsys.readouterr().err
