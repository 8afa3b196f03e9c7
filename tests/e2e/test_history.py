"""History against a stateful Stripe emulator (localstripe): objects created with no webhook configured are
backfilled into local mode with the emulator's values, and catch-up brings in the emulator's events,
each published exactly once."""

from __future__ import annotations

import socket
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stripe

from tests.e2e.conftest import LocalStack, eventually, get

KEY = "sk_test_localstripe"
# What localstripe lists (prices, checkout, disputes ... are not emulated), with each list's object type.
TYPES = {
    "customers": "customer",
    "products": "product",
    "plans": "plan",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "payment_intents": "payment_intent",
    "charges": "charge",
}


@dataclass
class Emulator:
    url: str
    client: stripe.StripeClient

    def listed(self, path: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.raw_request("get", path, limit=100).data["data"]
        return [o.to_dict() if hasattr(o, "to_dict") else dict(o) for o in data]

    @property
    def env(self) -> dict[str, str]:
        return {"STRIPE_API_KEY": KEY, "STRIPE_API_BASE": self.url}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    port = _free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "localstripe"), "--port", str(port), "--from-scratch"],
        cwd=tmp_path_factory.mktemp("localstripe"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        eventually(listening, timeout=30)
        url = f"http://127.0.0.1:{port}"
        client = stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=0)
        yield Emulator(url, client)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _populate(client: stripe.StripeClient) -> None:
    """Three subscribed customers (each a plan, a card, an invoice, a payment) and one without anything."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        v1 = client.v1
        plan = v1.plans.create(
            params={"amount": 1500, "currency": "eur", "interval": "month", "product": {"name": "Pro"}}
        )
        for n in range(3):
            customer = v1.customers.create(
                params={
                    "email": f"buyer{n}@example.com",
                    "metadata": {"crm_account_id": f"0015g0000{n}AAAAAA"},
                }
            )
            card = v1.payment_methods.create(
                params={
                    "type": "card",
                    "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
                }
            )
            v1.payment_methods.attach(card.id, params={"customer": customer.id})
            v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": card.id}})
            v1.subscriptions.create(params={"customer": customer.id, "items": [{"plan": plan.id}]})
        v1.customers.create(params={"email": "lead@example.com"})


def test_backfill_makes_every_emulator_object_readable_then_catch_up_publishes_each_event_once(
    local_stack: LocalStack, emulator: Emulator, subscriber: Any
) -> None:
    _populate(emulator.client)
    expected = {kind: emulator.listed(f"/v1/{name}") for name, kind in TYPES.items()}
    assert all(expected.values()), {k: len(v) for k, v in expected.items()}

    result = local_stack.cli("backfill", "--types", ",".join(TYPES), env=emulator.env)
    assert result.returncode == 0, result.stderr
    assert "done:" in result.stdout

    for kind, objects in expected.items():
        for obj in objects:
            status, body = get(local_stack, f"/v1/objects/{kind}/{obj['id']}")
            assert status == 200, (kind, obj["id"], body)
            assert body["object"] == obj, (kind, obj["id"])
    backfilled = eventually(
        lambda: (
            (found := [p for p in subscriber() if p["detail-type"] == "stripe-middleware.object.backfilled"])
            and len(found) >= sum(map(len, expected.values()))
            and found
        )
    )
    assert sorted(p["detail"]["object_id"] for p in backfilled) == sorted(
        o["id"] for objects in expected.values() for o in objects
    )

    # The emulator's events never reached a webhook: catch-up finds them all.
    event_ids = {e["id"] for e in emulator.listed("/v1/events")}
    result = local_stack.cli("catchup", "--grace", "0", env=emulator.env)
    assert result.returncode == 0, result.stderr
    assert f"{len(event_ids)} recovered" in result.stdout

    def published_events() -> Counter[str]:
        return Counter(p["detail"]["id"] for p in subscriber() if p["detail"].get("id") in event_ids)

    eventually(lambda: set(published_events()) == event_ids, timeout=60)
    # A second run lists the same events again (overlap) and enqueues none of them.
    result = local_stack.cli("catchup", "--grace", "0", env=emulator.env)
    assert result.returncode == 0, result.stderr
    assert "0 recovered" in result.stdout
    assert set(published_events().values()) == {1}


def test_backfill_refuses_an_unknown_type_and_lists_the_valid_ones(
    local_stack: LocalStack, emulator: Emulator
) -> None:
    result = local_stack.cli("backfill", "--types", "customers,invoicez", env=emulator.env)
    assert result.returncode != 0
    assert "invoicez" in result.stderr and "payment_intents" in result.stderr


def test_a_key_the_emulator_refuses_is_a_clear_error(local_stack: LocalStack, emulator: Emulator) -> None:
    result = local_stack.cli(
        "backfill", "--types", "customers", env={**emulator.env, "STRIPE_API_KEY": "pk_x"}
    )
    assert result.returncode != 0 and "STRIPE_API_KEY" in result.stderr
