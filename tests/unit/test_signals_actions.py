"""Detector actions: `duplicate_charge.refund` puts a `refunds.create` command on the bus for the command
gateway, never a Stripe call of its own; off by default, once per finding however the stream arrives.

Streams, the harness and the arrangements come from test_signals.py (details built from the real Stripe
fixtures); the gateway side runs the commands the signals published through `run_command` on its fakes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.commands.models import CommandRequest
from stripe_middleware.commands.validation import validate_command
from stripe_middleware.shared.contract import SOURCE, DetailType
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware.shared.publishing import Publication
from stripe_middleware.signals.config import DuplicateCharge, SignalsConfigError, load_signals_config
from stripe_middleware.signals.detect import SignalsNotPublishedError
from tests.fakes.ports import FakePublisher
from tests.unit.test_run_command import Gateway
from tests.unit.test_signals import (
    ARRANGEMENTS,
    DEFAULTS,
    KINDS,
    REPO_SIGNALS_YAML,
    T0,
    Arrange,
    Detail,
    Harness,
    charge,
    charge_pair,
    configured,
    delivered,
    mixed_stream,
)

REFUND = configured(duplicate_charge={"refund": True})


@dataclass
class RefusingPublisher(FakePublisher):
    """The bus refuses every publication of these detail-types (a partial PutEvents failure)."""

    refused: set[str] = field(default_factory=set)

    def publish(self, publications: Sequence[Publication]) -> set[str]:
        refused = {p.key for p in publications if p.detail_type in self.refused}
        return refused | super().publish([p for p in publications if p.key not in refused])


def commands(harness: Harness) -> list[dict[str, Any]]:
    return harness.publisher.details(DetailType.COMMAND)


def charges(customer: str, *at: int, **scope: Any) -> list[Detail]:
    """`customer` charged 2000 USD on one card at each time."""
    fields = {"amount": 2000, "currency": "usd", "customer": customer, **scope}
    return [charge(f"ch_{customer}_{n}", t, **fields) for n, t in enumerate(at)]


def refund_stream() -> list[Detail]:
    """One finding of each kind, and a customer charged three times within minutes (two duplicates)."""
    return [*mixed_stream(), *charges("cus_thrice", T0 + 9000, T0 + 9060, T0 + 9120)]


def run_on_gateway(gateway: Gateway, details: list[dict[str, Any]]) -> None:
    """Each command as the gateway receives it from the bus: an EventBridge envelope on its queue."""
    for n, detail in enumerate(details):
        envelope = {"source": SOURCE, "detail-type": DetailType.COMMAND, "id": f"evt-{n}", "detail": detail}
        gateway.run(envelope)


# -- off by default ---------------------------------------------------------------------------------------
def test_refunds_are_off_by_default_and_in_the_shipped_config() -> None:
    assert DEFAULTS.detectors.duplicate_charge.refund is False
    assert load_signals_config(REPO_SIGNALS_YAML).detectors.duplicate_charge.refund is False
    harness = delivered(*refund_stream())
    assert harness.kinds() == sorted([*KINDS, "duplicate_charge", "duplicate_charge"])
    assert commands(harness) == []


# -- on ---------------------------------------------------------------------------------------------------
def test_a_duplicate_charge_sends_one_refund_of_the_later_charge_the_gateway_accepts() -> None:
    harness = delivered(*charge_pair(gap=60), config=REFUND)
    [signal] = harness.signals
    [command] = commands(harness)
    assert command == {
        "operation": "refunds.create",
        "params": {
            "charge": "ch_dup1",
            "reason": "duplicate",
            "metadata": {"signal_id": signal["signal_id"]},
        },
        "idempotency_key": signal["signal_id"],
    }
    assert CommandRequest.model_validate(command).stripe_account is None  # the platform's own charge
    request, operation, params = validate_command(
        command, config=load_gateway_config(), schema=load_metadata_schema()
    )  # allowlisted, its params valid, its metadata as the schema wants
    assert (request.idempotency_key, operation.name) == (signal["signal_id"], "refunds.create")
    assert params.model_dump(exclude_none=True) == command["params"]


def test_a_connected_accounts_duplicate_is_refunded_on_that_account() -> None:
    harness = delivered(*charges("cus_conn", T0, T0 + 30, account="acct_1Conn", livemode=True), config=REFUND)
    [command] = commands(harness)
    request = CommandRequest.model_validate(command)
    assert (request.stripe_account, request.params["charge"]) == ("acct_1Conn", "ch_cus_conn_1")


def test_only_duplicate_charges_send_commands_one_per_finding() -> None:
    harness = delivered(*refund_stream(), config=REFUND)
    duplicates = {s["signal_id"] for s in harness.signals if s["kind"] == "duplicate_charge"}
    sent = [CommandRequest.model_validate(c) for c in commands(harness)]
    assert sorted(c.idempotency_key or "" for c in sent) == sorted(
        duplicates
    )  # trial abuse, card testing: none
    assert sorted(c.params["charge"] for c in sent) == ["ch_cus_thrice_1", "ch_cus_thrice_2", "ch_dup1"]
    assert all(c.params["metadata"] == {"signal_id": c.idempotency_key} for c in sent)


def test_turning_refunds_on_changes_no_model_version() -> None:
    assert DuplicateCharge(refund=True).version("duplicate_charge") == DuplicateCharge().version(
        "duplicate_charge"
    )
    pair = charge_pair()
    off, on = delivered(*pair), delivered(*pair, config=REFUND)
    assert off.signals == on.signals


def test_a_refund_setting_that_is_not_a_boolean_fails_the_config(tmp_path: Path) -> None:
    content = yaml.safe_load(REPO_SIGNALS_YAML.read_text())
    content["detectors"]["duplicate_charge"]["refund"] = "sometimes"
    path = tmp_path / "signals.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(SignalsConfigError, match="refund"):
        load_signals_config(path)


# -- arrival order and redeliveries -----------------------------------------------------------------------
@pytest.mark.parametrize("arrange", ARRANGEMENTS.values(), ids=list(ARRANGEMENTS))
def test_any_order_and_redelivery_send_the_same_commands_once(arrange: Arrange) -> None:
    stream = refund_stream()
    in_order = sorted(commands(delivered(*stream, config=REFUND)), key=lambda c: c["idempotency_key"])
    assert len(in_order) == 3
    arranged = sorted(
        commands(delivered(*arrange(stream), config=REFUND)), key=lambda c: c["idempotency_key"]
    )
    assert arranged == in_order  # the same charges under the same keys, each sent once


def test_a_redelivered_stream_sends_no_second_command() -> None:
    harness, stream = Harness(config=REFUND), refund_stream()
    harness.deliver(*stream)
    sent = commands(harness)
    assert harness.deliver(*random.Random(3).sample(stream, len(stream))) == []
    assert commands(harness) == sent


# -- failures ---------------------------------------------------------------------------------------------
def test_a_refused_command_fails_the_message_and_its_redelivery_sends_it() -> None:
    publisher = RefusingPublisher(refused={DetailType.COMMAND})
    harness = Harness(config=REFUND, publisher=publisher)
    first, second = charge_pair()
    harness.deliver(first)
    with pytest.raises(SignalsNotPublishedError, match="1 anomalies"):
        harness.deliver(second)
    assert commands(harness) == [] and harness.state.published_ids == set()  # not recorded: sent again
    publisher.refused.clear()
    harness.deliver(second, second)
    [command] = commands(harness)
    assert command["params"]["charge"] == "ch_dup1"
    assert harness.state.published_ids == {command["idempotency_key"]}
    assert set(harness.ids()) == {command["idempotency_key"]}  # the anomaly: at least once, under its id


def test_a_command_sent_again_after_a_refused_anomaly_refunds_once() -> None:
    publisher = RefusingPublisher(refused={DetailType.SIGNAL_ANOMALY})
    harness = Harness(config=REFUND, publisher=publisher)
    first, second = charge_pair()
    harness.deliver(first)
    with pytest.raises(SignalsNotPublishedError):
        harness.deliver(second)
    publisher.refused.clear()
    harness.deliver(second, second)
    sent = commands(harness)
    assert len(sent) == 2 and sent[0] == sent[1]  # the first went through; the redelivery sent it again
    assert len(harness.signals) == 1
    gateway = Gateway()
    run_on_gateway(gateway, sent)
    [call] = gateway.stripe.calls  # the second is the same command (its idempotency key): not run again
    assert (call.path, call.idempotency_key) == ("/v1/refunds", sent[0]["idempotency_key"])
    assert call.params == sent[0]["params"]
    [refund] = gateway.stripe.created
    assert [p.detail["result"]["id"] for p in gateway.publisher.published] == [refund, refund]
    assert json.loads(json.dumps(sent[0])) == sent[0]  # the detail is plain JSON, as on the bus
