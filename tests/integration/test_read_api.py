from __future__ import annotations

import json
from typing import Any

import pytest

from events import http_api_event, stripe_event
from tests.integration.conftest import LambdaContext, ProcessorStack


def get(
    path: str, route: str, params: dict[str, str], query: dict[str, str] | None = None
) -> tuple[int, Any]:
    from functions.read_api.handler import handler, store

    store.cache_clear()
    event = http_api_event(path, method="GET", route_key=f"GET {route}", path_parameters=params, query=query)
    response = handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def get_object(object_type: str, object_id: str, query: dict[str, str] | None = None) -> tuple[int, Any]:
    return get(
        f"/v1/objects/{object_type}/{object_id}",
        "/v1/objects/{object_type}/{object_id}",
        {"object_type": object_type, "object_id": object_id},
        query,
    )


def test_object_is_served_from_the_store(processor_stack: ProcessorStack) -> None:
    event = stripe_event("checkout.session.completed")
    processor_stack.deliver(event)
    session = event["data"]["object"]
    status, body = get_object("checkout.session", session["id"])
    assert status == 200
    assert body["object"] == session and body["object_type"] == "checkout.session"
    assert "pk" not in body and "order_key" not in body


def test_unknown_object_is_404_json(processor_stack: ProcessorStack) -> None:
    status, body = get_object("customer", "cus_doesnotexist")
    assert status == 404 and body["error"] == "not_found"


@pytest.mark.parametrize(
    ("object_type", "object_id", "query", "code"),
    [
        ("Customer!", "cus_1", None, "invalid_object_type"),
        ("customer", "cus 1/../x", None, "invalid_object_id"),
        ("customer", "cus_1", {"account": "bob"}, "invalid_account"),
        ("customer", "cus_1", {"livemode": "yes"}, "invalid_livemode"),
    ],
)
def test_malformed_requests_are_400(
    processor_stack: ProcessorStack, object_type: str, object_id: str, query: dict[str, str] | None, code: str
) -> None:
    status, body = get_object(object_type, object_id, query)
    assert status == 400 and body["error"] == code


def test_live_and_test_variants_are_told_apart(processor_stack: ProcessorStack) -> None:
    processor_stack.deliver(stripe_event("coupon.created", livemode=True), stripe_event("coupon.created"))
    coupon_id = stripe_event("coupon.created")["data"]["object"]["id"]
    status, body = get_object("coupon", coupon_id)
    assert status == 409 and len(body["variants"]) == 2
    status, body = get_object("coupon", coupon_id, {"livemode": "true"})
    assert status == 200 and body["livemode"] is True


def test_customer_objects_lists_what_belongs_to_the_customer(processor_stack: ProcessorStack) -> None:
    customer = "cus_RevOps01"
    processor_stack.deliver(
        stripe_event("customer.created", id=customer),
        stripe_event("invoice.paid", id="in_A", customer=customer),
        stripe_event("invoice.paid", id="in_B", customer={"id": customer, "object": "customer"}),
        stripe_event("customer.subscription.created", id="sub_A", customer=customer),
        stripe_event("invoice.paid", id="in_other", customer="cus_someone_else"),
    )
    route = "/v1/customers/{customer_id}/objects"
    status, body = get(f"/v1/customers/{customer}/objects", route, {"customer_id": customer})
    assert status == 200
    assert sorted(o["object_id"] for o in body["objects"]) == sorted([customer, "in_A", "in_B", "sub_A"])
    status, body = get(
        f"/v1/customers/{customer}/objects", route, {"customer_id": customer}, {"type": "invoice"}
    )
    assert sorted(o["object_id"] for o in body["objects"]) == ["in_A", "in_B"]
    status, body = get("/v1/customers/x/objects", route, {"customer_id": "x"})
    assert status == 400 and body["error"] == "invalid_customer_id"
