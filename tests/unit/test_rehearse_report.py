"""The API version rehearsal's comparison, on real Stripe fixture objects (no network)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from events import detail_schema, stripe_object
from stripe_middleware.shared.contract import STRIPE_API_VERSION
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware_dev.rehearse import (
    EXIT_BREAKING,
    EXIT_INCOMPLETE,
    EXIT_OK,
    FieldChange,
    ObjectDiff,
    compare,
    flatten,
    render_table,
    report,
)

SCHEMA = load_metadata_schema()
CANDIDATE = "2027-01-28.fig"
VALID_CUSTOMER_METADATA = {"erp_id": "NS-123456", "crm_account_id": "001A00000000001"}


def rehearse(pinned: dict[str, Any], candidate: dict[str, Any], **kwargs: Any) -> ObjectDiff:
    return compare(pinned, candidate, SCHEMA, candidate_version=CANDIDATE, **kwargs)


def test_flatten_names_nested_fields_and_list_items_with_their_json_types() -> None:
    paths = flatten(
        {
            "customer_address": {"city": "Berlin", "line2": None},
            "discounts": ["di_1", {"id": "di_2"}],
            "total": 10,
            "paid": True,
        }
    )
    assert paths["customer_address"] == "object"
    assert paths["customer_address.city"] == "string"
    assert paths["customer_address.line2"] == "null"
    assert paths["discounts"] == "array"
    assert paths["discounts[]"] == "object|string"
    assert paths["discounts[].id"] == "string"
    assert paths["total"] == "integer" and paths["paid"] == "boolean"


def test_identical_objects_differ_in_nothing() -> None:
    for resource in ("customer", "invoice", "charge", "subscription", "payment_intent"):
        obj = stripe_object(resource)
        diff = rehearse(obj, copy.deepcopy(obj))
        assert (diff.fields, diff.normalized, diff.schema_failures, diff.metadata) == ([], [], [], [])
        assert not diff.breaking
    result = report(
        [rehearse(stripe_object("invoice"), stripe_object("invoice"))], candidate_version=CANDIDATE
    )
    assert not result.breaking and result.exit_code == EXIT_OK
    assert "no differences" in render_table(result)


def test_fields_that_appear_disappear_or_change_type_are_reported_without_breaking() -> None:
    invoice = stripe_object("invoice")
    candidate = copy.deepcopy(invoice)
    candidate["payments"] = {"object": "list", "data": [{"id": "inpay_1", "amount_paid": 1000}]}
    del candidate["account_country"]  # not a normalized attribute
    candidate["automatic_tax"]["enabled"] = "false"  # boolean -> string
    diff = rehearse(invoice, candidate)
    assert FieldChange("appeared", "payments", None, "object") in diff.fields
    assert FieldChange("appeared", "payments.data[].amount_paid", None, "integer") in diff.fields
    assert FieldChange("disappeared", "account_country", "string", None) in diff.fields
    assert FieldChange("type_changed", "automatic_tax.enabled", "boolean", "string") in diff.fields
    assert diff.normalized == [] and diff.schema_failures == []
    assert not diff.breaking


def test_a_removed_customer_is_a_normalized_attribute_gone_and_breaking() -> None:
    invoice = stripe_object("invoice")
    candidate = copy.deepcopy(invoice)
    del candidate["customer"]
    diff = rehearse(invoice, candidate)
    assert FieldChange("disappeared", "customer", "string", None) in diff.fields
    [change] = diff.normalized
    assert (change.kind, change.attribute, change.pinned, change.candidate) == (
        "disappeared",
        "customer_id",
        invoice["customer"],
        None,
    )
    assert change.breaking and diff.breaking


def test_an_expanded_customer_keeps_the_normalized_attribute() -> None:
    invoice = stripe_object("invoice")
    candidate = {**invoice, "customer": stripe_object("customer", id=invoice["customer"])}
    diff = rehearse(invoice, candidate)
    assert FieldChange("type_changed", "customer", "string", "object") in diff.fields
    assert diff.normalized == [] and not diff.breaking


def test_a_removed_amount_or_an_amount_as_a_string_is_breaking() -> None:
    charge = stripe_object("charge")
    removed = rehearse(charge, {k: v for k, v in charge.items() if k != "amount"})
    [gone] = removed.normalized
    assert (gone.kind, gone.attribute, gone.pinned) == ("disappeared", "amount", charge["amount"])
    assert removed.breaking
    # A decimal string instead of an integer: the normalizer only takes integers, so `amount` is gone too.
    as_string = rehearse(charge, {**charge, "amount": str(charge["amount"])})
    assert FieldChange("type_changed", "amount", "integer", "string") in as_string.fields
    assert [(c.kind, c.attribute) for c in as_string.normalized] == [("disappeared", "amount")]
    assert as_string.breaking


def test_a_normalized_value_that_only_changes_is_reported_not_breaking() -> None:
    invoice = stripe_object("invoice", status="open")
    diff = rehearse(invoice, {**invoice, "status": "finalized"})
    [change] = diff.normalized
    assert (change.kind, change.attribute, change.pinned, change.candidate) == (
        "value_changed",
        "status",
        "open",
        "finalized",
    )
    assert not diff.breaking


def test_a_changed_object_id_re_keys_the_object_and_is_breaking() -> None:
    customer = stripe_object("customer")
    diff = rehearse(customer, {**customer, "id": customer["id"].replace("cus_", "cus_v2_")})
    assert [(c.kind, c.attribute, c.breaking) for c in diff.normalized] == [
        ("value_changed", "customer_id", False),
        ("value_changed", "object_id", True),
    ]
    assert diff.breaking


def test_a_detail_that_no_longer_validates_against_its_schema_is_breaking() -> None:
    # A registered schema that names the invoice statuses subscribers handle; the candidate renames one.
    def strict(detail_type: str) -> dict[str, Any]:
        schema = detail_schema(detail_type)
        if detail_type == "invoice.updated":
            schema["properties"]["normalized"]["properties"]["status"] = {"enum": ["draft", "open", "paid"]}
        return schema

    invoice = stripe_object("invoice", status="paid")
    diff = rehearse(invoice, {**invoice, "status": "settled"}, detail_schemas=strict)
    [failure] = diff.schema_failures
    assert (failure.detail_type, failure.path, failure.rule) == ("stripe-event", "normalized/status", "enum")
    assert diff.breaking  # although the attribute itself only changed value
    # A failure the pinned version already has is not the candidate's doing.
    both = rehearse({**invoice, "status": "settled"}, {**invoice, "status": "void"}, detail_schemas=strict)
    assert both.schema_failures == [] and not both.breaking


def test_the_real_schemas_accept_what_the_processor_publishes_for_every_fixture() -> None:
    for resource in ("customer", "invoice", "charge", "subscription", "payment_intent", "refund", "product"):
        obj = stripe_object(resource, metadata={"erp_id": "bad id"})  # metadata violations: two details
        assert rehearse(obj, copy.deepcopy(obj)).schema_failures == []


def test_a_candidate_the_processor_cannot_normalize_is_breaking() -> None:
    # Timestamps in milliseconds: the processor would fail the message (a poison message), nothing published.
    customer = stripe_object("customer")
    diff = rehearse(customer, {**customer, "created": customer["created"] * 1000})
    [failure] = diff.schema_failures
    assert failure.path == "(processor)" and "out of range" in failure.message
    assert diff.breaking


def test_metadata_violations_the_candidate_adds_or_resolves() -> None:
    customer = stripe_object("customer", metadata=VALID_CUSTOMER_METADATA)
    # The candidate renders metadata values with surrounding spaces: trimmed by the schema, no effect.
    padded = {**customer, "metadata": {k: f" {v} " for k, v in VALID_CUSTOMER_METADATA.items()}}
    assert rehearse(customer, padded).metadata == [] and rehearse(customer, padded).normalized == []
    # The candidate drops metadata: both required keys go missing, and the keys leave the normalized object.
    dropped = rehearse(customer, {**customer, "metadata": {}})
    assert [(m.change, m.key, m.code) for m in dropped.metadata] == [
        ("added", "crm_account_id", "missing"),
        ("added", "erp_id", "missing"),
    ]
    assert {(c.kind, c.attribute) for c in dropped.normalized} == {
        ("disappeared", "metadata.crm_account_id"),
        ("disappeared", "metadata.erp_id"),
    }
    assert dropped.breaking
    # The pinned version's object breaks the pattern; the candidate's does not: a violation resolved.
    broken = stripe_object("customer", metadata={**VALID_CUSTOMER_METADATA, "erp_id": "NS 123456"})
    fixed = rehearse(broken, customer)
    assert [(m.change, m.key, m.code) for m in fixed.metadata] == [("resolved", "erp_id", "pattern")]
    assert [(c.kind, c.attribute) for c in fixed.normalized] == [("value_changed", "metadata.erp_id")]
    assert not fixed.breaking


def test_report_aggregates_per_type_and_decides_the_exit_code() -> None:
    invoices = [stripe_object("invoice", id=f"in_{n}") for n in range(3)]
    diffs = [rehearse(i, {k: v for k, v in i.items() if k != "customer"}) for i in invoices[:2]]
    diffs.append(rehearse(invoices[2], copy.deepcopy(invoices[2])))
    customer = stripe_object("customer", metadata=VALID_CUSTOMER_METADATA)
    diffs.append(rehearse(customer, {**customer, "preferred_locales": "en"}))
    diffs.append(ObjectDiff("invoice", "in_gone", status="gone"))
    result = report(diffs, candidate_version=CANDIDATE, notes=["2 live-mode objects skipped"])
    assert result.breaking and result.exit_code == EXIT_BREAKING
    invoice = result.types["invoice"]
    assert (invoice.sampled, invoice.compared, invoice.gone) == (4, 3, ["in_gone"])
    [customer_gone] = [r for r in invoice.rows if r.section == "normalized"]
    assert (customer_gone.path, customer_gone.objects, customer_gone.breaking) == ("customer_id", 2, True)
    assert customer_gone.examples == ["in_0", "in_1"]
    assert invoice.rows[0] is customer_gone  # breaking rows first
    assert not result.types["customer"].breaking

    table = render_table(result)
    assert f"pinned {STRIPE_API_VERSION} -> candidate {CANDIDATE}" in table
    assert "invoice: 4 sampled, 3 compared, 1 gone -- BREAKING" in table
    assert "customer: 1 sampled, 1 compared -- no breaking change" in table
    [line] = [x for x in table.splitlines() if "customer_id" in x]
    assert line.split() == ["normalized", "disappeared", "customer_id", "string", "-", "2/3", "BREAKING"]
    assert any(
        x.split()[:3] == ["field", "type", "changed"] and "preferred_locales" in x for x in table.splitlines()
    )
    assert "gone (404)" in table and "note: 2 live-mode objects skipped" in table
    assert table.endswith("(exit 2)")

    document = json.loads(json.dumps(result.to_json()))
    assert document["breaking"] is True and document["exit_code"] == EXIT_BREAKING
    [row] = document["types"]["invoice"]["normalized"]
    assert row == {
        "kind": "disappeared",
        "path": "customer_id",
        "pinned": "string",
        "candidate": "-",
        "objects": 2,
        "examples": ["in_0", "in_1"],
        "breaking": True,
    }
    assert document["types"]["invoice"]["gone"] == ["in_gone"]


def test_unreadable_objects_make_the_rehearsal_incomplete() -> None:
    result = report(
        [ObjectDiff("charge", "ch_1", status="error", error="Permission denied")], candidate_version=CANDIDATE
    )
    assert not result.breaking and result.exit_code == EXIT_INCOMPLETE
    assert "unreadable" in render_table(result) and "Permission denied" in render_table(result)


@pytest.mark.parametrize("resource", ["customer", "invoice", "subscription"])
def test_a_field_rename_is_one_disappearance_and_one_appearance(resource: str) -> None:
    obj = stripe_object(resource)
    candidate = {("currency_code" if k == "currency" else k): v for k, v in obj.items()}
    diff = rehearse(obj, candidate)
    assert FieldChange("appeared", "currency_code", None, "string") in diff.fields
    assert FieldChange("disappeared", "currency", "string", None) in diff.fields
    assert [(c.kind, c.attribute, c.breaking) for c in diff.normalized] == [("disappeared", "currency", True)]
