"""Same-second ties settled by refetching the object from Stripe (real SDK, fake Stripe on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from events import stripe_event
from stripe_middleware.shared.contract import STRIPE_API_VERSION
from tests.fakes.stripe_server import FakeStripe, fake_stripe
from tests.integration.conftest import ProcessorStack

SUBSCRIPTION = "sub_tie"


@pytest.fixture
def stripe_server(processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    from functions.processor import handler

    with fake_stripe() as server:
        secret = boto3.client("secretsmanager").create_secret(
            Name="stripe-read", SecretString="rk_test_readonly"
        )
        monkeypatch.setenv("STRIPE_API_KEY_SECRET_ID", secret["ARN"])
        monkeypatch.setenv("STRIPE_API_BASE", server.url)
        handler.dependencies.cache_clear()
        yield server


def tie() -> tuple[dict[str, object], dict[str, object]]:
    # Stripe created both in one second; `evt_B...` wins the deterministic rule, but `past_due` is the truth.
    first = stripe_event(
        "customer.subscription.updated",
        event_id="evt_B",
        created=1_764_000_500,
        id=SUBSCRIPTION,
        status="active",
    )
    second = stripe_event(
        "customer.subscription.updated",
        event_id="evt_A",
        created=1_764_000_500,
        id=SUBSCRIPTION,
        status="past_due",
    )
    return first, second


def test_same_second_tie_is_settled_by_stripe_when_a_key_is_configured(
    processor_stack: ProcessorStack, stripe_server: FakeStripe
) -> None:
    first, second = tie()
    truth = {**second["data"]["object"], "status": "past_due"}  # type: ignore[index]
    stripe_server.objects[f"/v1/subscriptions/{SUBSCRIPTION}"] = truth
    assert processor_stack.deliver(first) == []
    assert processor_stack.deliver(second) == []
    [stored] = processor_stack.stored("subscription", SUBSCRIPTION)
    assert stored["status"] == "past_due"
    [request] = stripe_server.requests
    assert request.headers["authorization"] == "Bearer rk_test_readonly"
    assert request.headers["stripe-version"] == STRIPE_API_VERSION  # pinned
    # A later event of the same second no longer overwrites what Stripe said.
    third = stripe_event(
        "customer.subscription.updated",
        event_id="evt_C",
        created=1_764_000_500,
        id=SUBSCRIPTION,
        status="active",
    )
    assert processor_stack.deliver(third) == []
    assert processor_stack.stored("subscription", SUBSCRIPTION)[0]["status"] == "past_due"


def test_stripe_outage_falls_back_to_the_deterministic_rule(
    processor_stack: ProcessorStack, stripe_server: FakeStripe
) -> None:
    first, second = tie()
    stripe_server.fail_next = [500, 500, 500, 500]
    assert processor_stack.deliver(first) == []
    assert processor_stack.deliver(second) == []
    [stored] = processor_stack.stored("subscription", SUBSCRIPTION)
    assert stored["event_id"] == "evt_B"  # the greater event id of the same second and rank
    assert len(stripe_server.requests) == 3  # one try + max_network_retries=2, then give up
