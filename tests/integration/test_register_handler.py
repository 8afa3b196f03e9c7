"""The register function (the provider framework's `on_event`) against a fake Stripe over HTTP, through
the real Stripe SDK, and Secrets Manager on moto: create, update, replace and delete the endpoint, a Stripe
error fails the deploy with Stripe's message and leaves nothing half-registered, no key skips."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from stripe_middleware.adapters.secrets import parse_signing_secrets
from stripe_middleware.registration.models import NOT_REGISTERED
from stripe_middleware.registration.ports import RegistrationFailedError
from stripe_middleware.shared.contract import STRIPE_API_VERSION
from tests.fakes.registration import custom_resource_event
from tests.fakes.stripe_server import FakeStripe, RecordedRequest, fake_stripe
from tests.integration.conftest import LambdaContext

KEY_NAME = "stripe-middleware-prod/stripe-registration-key"
KEY = "rk_test_51Registration0000000000000000"
PLACEHOLDER = "Zx8Kq2LmN4pR6sT1uV3wY5aB7cD9eF0g"  # what the deploy generates into a webhook secret
URL = "https://k3v9x2qf7a.execute-api.us-east-1.amazonaws.com/webhooks/stripe"
OTHER_URL = "https://p8w2m5n1c4.execute-api.us-east-1.amazonaws.com/webhooks/stripe"
OLDER_VERSION = "2026-09-30.endive"


class Stack:
    def __init__(self, stripe_server: FakeStripe, secrets: Any) -> None:
        self.stripe, self.secrets = stripe_server, secrets
        self.webhook_secret = secrets.create_secret(Name="webhook", SecretString=PLACEHOLDER)["ARN"]
        self.connect_secret = secrets.create_secret(Name="connect-webhook", SecretString=PLACEHOLDER)["ARN"]

    def put_key(self, value: str = KEY) -> None:
        self.secrets.create_secret(Name=KEY_NAME, SecretString=value)

    def event(self, request_type: str = "Create", **options: Any) -> dict[str, Any]:
        options.setdefault("WebhookSecretId", self.webhook_secret)
        options.setdefault("KeySecretId", KEY_NAME)
        if request_type == "Update":
            options["old"] = {"WebhookSecretId": options["WebhookSecretId"], **options.get("old", {})}
        return custom_resource_event(request_type, **options)

    def run(self, request_type: str = "Create", **options: Any) -> dict[str, Any]:
        from functions.register.handler import handler

        response: dict[str, Any] = handler(self.event(request_type, **options), LambdaContext())
        return response

    def signing_secrets(self, arn: str | None = None) -> tuple[str, ...]:
        """What the ingest function verifies with, read the way it reads it."""
        value = self.secrets.get_secret_value(SecretId=arn or self.webhook_secret)["SecretString"]
        return parse_signing_secrets(value)

    def endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        return self.stripe.objects.get(f"/v1/webhook_endpoints/{endpoint_id}")

    def calls(self, method: str, path: str = "/v1/webhook_endpoints") -> list[RecordedRequest]:
        return [r for r in self.stripe.requests if r.method == method and r.path.startswith(path)]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    from functions.register import handler
    from stripe_middleware.registration import register

    monkeypatch.setattr(register, "backoff", lambda attempt: 0.0)  # retries without the wait
    with mock_aws(), fake_stripe() as stripe_server:
        monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url)
        handler.settings.cache_clear()
        handler.client.cache_clear()
        yield Stack(stripe_server, boto3.client("secretsmanager"))
        handler.settings.cache_clear()
        handler.client.cache_clear()


def test_create_registers_the_endpoint_at_the_stacks_url_and_the_ingest_verifies_with_its_secret(
    stack: Stack,
) -> None:
    stack.put_key()
    response = stack.run("Create")
    (endpoint_id,) = stack.stripe.created
    assert response == {"PhysicalResourceId": endpoint_id, "Data": {"EndpointId": endpoint_id}}
    (post,) = stack.calls("POST")
    assert post.params["url"] == URL and post.params["enabled_events[0]"] == "*"
    assert post.params["api_version"] == STRIPE_API_VERSION and "connect" not in post.params
    assert post.headers["stripe-version"] == STRIPE_API_VERSION and post.headers["idempotency-key"]
    assert post.headers["authorization"] == f"Bearer {KEY}"
    # the placeholder is not a signing secret: only Stripe's new one verifies
    assert stack.signing_secrets() == (stack.stripe.webhook_secrets[endpoint_id],)
    assert stack.endpoint(endpoint_id)["status"] == "enabled"  # type: ignore[index]


def test_the_connect_endpoint_gets_its_own_secret(stack: Stack) -> None:
    stack.put_key()
    response = stack.run("Create", Connect="true", Url=f"{URL}/connect", WebhookSecretId=stack.connect_secret)
    (post,) = stack.calls("POST")
    assert post.params["connect"] == "true" and post.params["url"] == f"{URL}/connect"
    endpoint_id = response["PhysicalResourceId"]
    assert stack.signing_secrets(stack.connect_secret) == (stack.stripe.webhook_secrets[endpoint_id],)
    assert stack.signing_secrets() == (PLACEHOLDER,)  # the account secret is not touched


def test_an_update_of_url_and_events_changes_the_endpoint_in_place(stack: Stack) -> None:
    stack.put_key()
    endpoint_id = stack.run("Create")["PhysicalResourceId"]
    secrets_before = stack.signing_secrets()
    events = ["invoice.paid", "invoice.payment_failed"]
    response = stack.run("Update", physical_id=endpoint_id, Url=OTHER_URL, EnabledEvents=events)
    assert response["PhysicalResourceId"] == endpoint_id
    update = stack.calls("POST", f"/v1/webhook_endpoints/{endpoint_id}")[-1]
    assert update.params == {"url": OTHER_URL, "enabled_events[0]": events[0], "enabled_events[1]": events[1]}
    assert stack.endpoint(endpoint_id)["url"] == OTHER_URL  # type: ignore[index]
    assert stack.endpoint(endpoint_id)["enabled_events"] == events  # type: ignore[index]
    assert stack.signing_secrets() == secrets_before


def test_a_new_api_version_replaces_the_endpoint_keeping_the_old_secret_as_previous(stack: Stack) -> None:
    stack.put_key()
    old_id = stack.run("Create", ApiVersion=OLDER_VERSION)["PhysicalResourceId"]
    old_secret = stack.stripe.webhook_secrets[old_id]
    response = stack.run(
        "Update", physical_id=old_id, ApiVersion=STRIPE_API_VERSION, old={"ApiVersion": OLDER_VERSION}
    )
    new_id = response["PhysicalResourceId"]
    assert new_id != old_id and stack.endpoint(old_id) is None
    assert stack.endpoint(new_id)["api_version"] == STRIPE_API_VERSION  # type: ignore[index]
    # deliveries of both endpoints verify: Stripe's in-flight retries of the old one too
    assert stack.signing_secrets() == (stack.stripe.webhook_secrets[new_id], old_secret)
    order = [(r.method, r.path) for r in stack.stripe.requests][1:]
    assert order == [("POST", "/v1/webhook_endpoints"), ("DELETE", f"/v1/webhook_endpoints/{old_id}")]


def test_cloudformations_clean_up_delete_of_the_replaced_id_is_harmless(stack: Stack) -> None:
    stack.put_key()
    old_id = stack.run("Create", ApiVersion=OLDER_VERSION)["PhysicalResourceId"]
    new_id = stack.run("Update", physical_id=old_id, old={"ApiVersion": OLDER_VERSION})["PhysicalResourceId"]
    assert stack.run("Delete", physical_id=old_id, ApiVersion=OLDER_VERSION)["PhysicalResourceId"] == old_id
    assert stack.endpoint(new_id) is not None


def test_delete_deletes_the_endpoint(stack: Stack) -> None:
    stack.put_key()
    endpoint_id = stack.run("Create")["PhysicalResourceId"]
    assert stack.run("Delete", physical_id=endpoint_id)["PhysicalResourceId"] == endpoint_id
    assert stack.endpoint(endpoint_id) is None
    assert stack.calls("DELETE")[0].headers["stripe-version"] == STRIPE_API_VERSION


def test_a_stripe_error_fails_the_deploy_with_stripes_message_and_registers_nothing(stack: Stack) -> None:
    stack.put_key()
    with pytest.raises(RegistrationFailedError, match=r"Invalid enabled_events\[1\]: must be one of"):
        stack.run("Create", EnabledEvents=["invoice.paid", "invoice.payed"])
    assert stack.stripe.created == [] and stack.signing_secrets() == (PLACEHOLDER,)


def test_a_wrong_key_fails_the_deploy_with_stripes_message(stack: Stack) -> None:
    stack.put_key()
    stack.stripe.api_key = "rk_test_the_right_one"
    with pytest.raises(RegistrationFailedError, match="Invalid API Key provided"):
        stack.run("Create")


def test_a_secret_that_cannot_be_written_fails_the_deploy_and_the_endpoint_is_deleted_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.register import handler

    stack.put_key()
    secrets = handler.client("secretsmanager")

    def denied(**kwargs: Any) -> None:
        error = {"Code": "AccessDeniedException", "Message": "not authorized to perform PutSecretValue"}
        raise ClientError({"Error": error}, "PutSecretValue")

    monkeypatch.setattr(secrets, "put_secret_value", denied)
    with pytest.raises(
        RegistrationFailedError, match=r"AccessDeniedException.*just created was deleted again"
    ):
        stack.run("Create")
    (created,) = stack.stripe.created
    assert stack.endpoint(created) is None and stack.signing_secrets() == (PLACEHOLDER,)


def test_a_rate_limited_create_is_retried_and_creates_one_endpoint(stack: Stack) -> None:
    stack.put_key()
    stack.stripe.fail_next = [429, 500]
    response = stack.run("Create")
    posts = stack.calls("POST")
    assert [p.status for p in posts] == [429, 500, 200]
    assert len({p.headers["idempotency-key"] for p in posts}) == 1
    assert stack.stripe.created == [response["PhysicalResourceId"]]


@pytest.mark.parametrize("key", [None, "placeholder-generated-by-the-deploy"])
def test_without_a_key_registration_is_skipped_and_the_manual_steps_still_work(
    stack: Stack, key: str | None
) -> None:
    if key is not None:
        stack.put_key(key)
    assert stack.run("Create")["PhysicalResourceId"] == NOT_REGISTERED
    assert stack.stripe.requests == [] and stack.signing_secrets() == (PLACEHOLDER,)
    # a secret put in by hand (README, Deploy) is never touched; a later key registers on the next deploy
    stack.secrets.put_secret_value(
        SecretId=stack.webhook_secret, SecretString=json.dumps({"current": "whsec_hand"})
    )
    if key is None:
        stack.put_key()
    else:
        stack.secrets.put_secret_value(SecretId=KEY_NAME, SecretString=KEY)
    endpoint_id = stack.run("Update", physical_id=NOT_REGISTERED, Revision="2")["PhysicalResourceId"]
    assert stack.signing_secrets() == (stack.stripe.webhook_secrets[endpoint_id], "whsec_hand")
    # and CloudFormation's clean-up Delete of the "not registered" id touches nothing
    assert stack.run("Delete", physical_id=NOT_REGISTERED)["PhysicalResourceId"] == NOT_REGISTERED
    assert stack.endpoint(endpoint_id) is not None


def test_a_malformed_request_fails_with_what_is_wrong(stack: Stack) -> None:
    from functions.register.handler import handler

    event = stack.event("Create")
    del event["ResourceProperties"]["Url"]
    with pytest.raises(RegistrationFailedError, match="Url"):
        handler(event, LambdaContext())
