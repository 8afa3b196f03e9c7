"""`stripe-middleware rehearse` end to end: the store on moto, the real Stripe SDK against a fake Stripe on
loopback that renders objects by the `Stripe-Version` header."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from events import stripe_event
from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.adapters.stripe.objects import REFETCH_PATHS
from stripe_middleware.processing.models import StripeEvent
from stripe_middleware.processing.normalize import normalize
from stripe_middleware.shared.contract import STRIPE_API_VERSION
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware_dev import rehearse, targets
from stripe_middleware_dev.tables import create_table_request
from tests.fakes.versioned_stripe import VersionedFakeStripe, versioned_fake_stripe

ADDITIVE = "2027-01-28.fig"  # adds and retypes fields nobody normalizes
BREAKING = "2027-02-25.grape"  # invoices lose `customer`
KEY = "sk_test_rehearse"
METADATA = {"erp_id": "NS-123456", "crm_account_id": "001A00000000001"}


def additive(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["object"] == "invoice":
        obj["payments"] = {"object": "list", "data": [], "has_more": False}
        obj["automatic_tax"]["enabled"] = "false"
    if obj["object"] == "customer":
        obj.pop("default_source", None)
    return obj


def breaking(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["object"] == "invoice":
        obj.pop("customer", None)
    return obj


@dataclass
class Setup:
    stripe: VersionedFakeStripe
    target: targets.Target

    def run(self, *argv: str) -> int:
        parser = argparse.ArgumentParser(prog="stripe-middleware")
        rehearse.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["rehearse", *argv])
        return int(args.run(args))

    def fetched(self, version: str) -> list[str]:
        return [r.path for r in self.stripe.requests if r.headers.get("stripe-version") == version]


def store(
    objects: ObjectStore, obj: dict[str, Any], *, in_stripe: VersionedFakeStripe | None, **event: Any
) -> None:
    parsed = StripeEvent.model_validate(stripe_event(f"{obj['object']}.updated", obj=obj, **event))
    objects.upsert_if_newer(normalize(parsed, load_metadata_schema()))
    if in_stripe is not None:
        in_stripe.objects[f"{REFETCH_PATHS[obj['object']]}/{obj['id']}"] = obj


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    from events import stripe_object

    with mock_aws(), versioned_fake_stripe({ADDITIVE: additive, BREAKING: breaking}) as server:
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(**create_table_request("store"))
        objects = ObjectStore(dynamodb, "store")
        for n in range(3):
            customer = stripe_object("customer", id=f"cus_R{n}", metadata=METADATA, created=1_764_000_000 + n)
            store(objects, customer, in_stripe=server)
            invoice = stripe_object("invoice", id=f"in_R{n}", customer=f"cus_R{n}", created=1_764_100_000 + n)
            store(objects, invoice, in_stripe=server)
        # Stored, but Stripe no longer has it (e.g. a deleted draft invoice).
        store(objects, stripe_object("invoice", id="in_Rgone", customer="cus_R0"), in_stripe=None)
        # A live-mode object cannot be read with a test key; a deleted one is not rehearsed.
        store(
            objects, stripe_object("customer", id="cus_Rlive", livemode=True), in_stripe=server, livemode=True
        )
        store(objects, stripe_object("product", id="prod_Rdel", deleted=True), in_stripe=server)
        # A type Stripe has no retrieve path for here.
        store(objects, {"object": "balance", "available": [], "pending": []}, in_stripe=None)

        target = targets.Target({"table_name": "store"}, local=False)  # boto3 clients reach moto
        monkeypatch.setattr(targets, "resolve", lambda args: target)
        monkeypatch.setenv("STRIPE_API_KEY", KEY)
        monkeypatch.setenv("STRIPE_API_BASE", server.url)
        yield Setup(server, target)


def test_an_additive_version_reports_field_changes_and_exits_0(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.run("--api-version", ADDITIVE) == 0
    table = capsys.readouterr().out
    assert f"pinned {STRIPE_API_VERSION} -> candidate {ADDITIVE}" in table
    assert "customer: 3 sampled, 3 compared -- no breaking change" in table
    assert "invoice: 4 sampled, 3 compared, 1 gone -- no breaking change" in table
    lines = [line.split() for line in table.splitlines()]
    assert ["field", "appeared", "payments", "-", "object", "3/3"] in lines
    assert ["field", "type", "changed", "automatic_tax.enabled", "boolean", "string", "3/3"] in lines
    assert ["gone", "(404)", "in_Rgone"] in lines
    assert "BREAKING" not in table
    assert "note: 1 live-mode objects skipped: the key is a test-mode key" in table
    assert "note: 1 deleted objects skipped" in table
    assert "note: types without a retrieve path skipped: balance (1)" in table
    assert table.rstrip().endswith("(exit 0)")
    # Each object fetched once per version, with the key; the gone one only with the pinned version.
    assert sorted(setup.fetched(STRIPE_API_VERSION)) == sorted(
        [f"/v1/customers/cus_R{n}" for n in range(3)]
        + [f"/v1/invoices/in_R{n}" for n in range(3)]
        + ["/v1/invoices/in_Rgone"]
    )
    assert len(setup.fetched(ADDITIVE)) == 6
    assert {r.headers["authorization"] for r in setup.stripe.requests} == {f"Bearer {KEY}"}


def test_a_version_that_drops_a_normalized_attribute_exits_2(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.run("--api-version", BREAKING, "--format", "json") == 2
    document = json.loads(capsys.readouterr().out)
    assert document["breaking"] is True and document["exit_code"] == 2
    assert (document["pinned_version"], document["candidate_version"]) == (STRIPE_API_VERSION, BREAKING)
    invoice, customer = document["types"]["invoice"], document["types"]["customer"]
    assert invoice["breaking"] is True and customer["breaking"] is False
    assert invoice["normalized"] == [
        {
            "kind": "disappeared",
            "path": "customer_id",
            "pinned": "string",
            "candidate": "-",
            "objects": 3,
            "examples": ["in_R0", "in_R1", "in_R2"],
            "breaking": True,
        }
    ]
    assert {"kind": "disappeared", "path": "customer", "pinned": "string", "candidate": "-"}.items() <= (
        invoice["field"][0].items()
    )
    assert invoice["gone"] == ["in_Rgone"] and invoice["schema"] == [] and invoice["metadata"] == []
    assert customer["field"] == customer["normalized"] == customer["schema"] == []

    assert setup.run("--api-version", BREAKING) == 2
    table = capsys.readouterr().out
    assert "invoice: 4 sampled, 3 compared, 1 gone -- BREAKING" in table
    assert ["normalized", "disappeared", "customer_id", "string", "-", "3/3", "BREAKING"] in [
        line.split() for line in table.splitlines()
    ]
    assert "RESULT: BREAKING" in table


def test_types_and_sample_size_limit_what_is_fetched(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    # The breaking change is in invoices only: rehearsing customers passes.
    assert setup.run("--api-version", BREAKING, "--types", "customer", "--sample", "2") == 0
    out = capsys.readouterr().out
    assert "customer: 2 sampled, 2 compared -- no breaking change" in out and "invoice" not in out
    assert all(path.startswith("/v1/customers/") for path in setup.fetched(BREAKING))
    assert len(setup.fetched(BREAKING)) == 2


def test_an_unknown_type_is_refused_with_the_valid_ones(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.run("--api-version", BREAKING, "--types", "customer,invoices") == 1
    err = capsys.readouterr().err
    assert "unknown type invoices" in err and "invoice" in err
    assert setup.stripe.requests == []


def test_a_version_stripe_does_not_know_leaves_every_object_unreadable(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.run("--api-version", "2099-01-01.nope", "--types", "invoice", "--format", "json") == 1
    invoice = json.loads(capsys.readouterr().out)["types"]["invoice"]
    assert invoice["compared"] == 0 and invoice["gone"] == ["in_Rgone"]
    assert set(invoice["errors"]) == {"in_R0", "in_R1", "in_R2"}
    assert all("Invalid Stripe API version" in e for e in invoice["errors"].values())


def test_a_key_stripe_refuses_stops_the_rehearsal(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.stripe.fail_next = [401]
    assert setup.run("--api-version", ADDITIVE) == 1
    assert "Stripe refused the API key" in capsys.readouterr().err
    assert len(setup.stripe.requests) == 1


def test_without_a_key_nothing_is_fetched(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY")
    assert setup.run("--api-version", ADDITIVE) == 1
    assert "STRIPE_API_KEY" in capsys.readouterr().err
    assert setup.stripe.requests == []


def test_a_deployed_stage_uses_the_read_only_key_from_its_secret(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY")
    arn = boto3.client("secretsmanager").create_secret(
        Name="stripe-read-key", SecretString="rk_test_reader\n"
    )["ARN"]
    stage = targets.Target({"table_name": "store", "stripe_read_only_key_secret_arn": arn}, local=False)
    monkeypatch.setattr(targets, "resolve", lambda args: stage if args.stage == "dev" else None)
    assert setup.run("--api-version", ADDITIVE, "--stage", "dev", "--types", "customer", "--sample", "1") == 0
    assert "customer: 1 sampled, 1 compared" in capsys.readouterr().out
    assert {r.headers["authorization"] for r in setup.stripe.requests} == {"Bearer rk_test_reader"}
