"""Sample Stripe events and AWS event envelopes, built from real Stripe fixtures, loaded through one helper.

`stripe_event("invoice.paid")` builds a Stripe Event whose `data.object` is the real example object of
that resource from `stripe/fixtures3.json`; `http_api_event(...)` wraps a body in the API Gateway HTTP
API (payload 2.0) envelope the ingest function receives.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).parent
API_VERSION = "2026-10-28.endive"  # the version the bundled fixtures and event types come from

# Event-type prefixes whose object is not the resource named by the prefix.
_RESOURCE_ALIASES = {
    "account.external_account": "bank_account",
    "application_fee.refund": "fee_refund",
    "charge.dispute": "dispute",
    "charge.refund": "refund",
    "customer.discount": "discount",
    "customer.source": "card",
    "customer.subscription": "subscription",
    "customer.tax_id": "tax_id",
    "sigma.scheduled_query_run": "scheduled_query_run",
}
# The "deleted" shape Stripe sends for *.deleted events of these resources.
_DELETED_RESOURCES = {"customer", "product", "price", "coupon", "plan", "tax_id", "invoiceitem", "discount"}


# detail-type -> JSON Schema of the published `detail` (registered in the EventBridge Schema Registry).
DETAIL_SCHEMAS = {
    "stripe-event": "schemas/stripe-event.detail.schema.json",
    "stripe-middleware.metadata.violation": "schemas/metadata-violation.detail.schema.json",
    "stripe-middleware.object.backfilled": "schemas/object-backfilled.detail.schema.json",
    "stripe-middleware.catchup.gap": "schemas/catchup-gap.detail.schema.json",
    "stripe-middleware.signal.anomaly": "schemas/signal-anomaly.detail.schema.json",
    "stripe-middleware.signal.churn_risk": "schemas/signal-churn-risk.detail.schema.json",
    "stripe-middleware.dunning.step": "schemas/dunning-step.detail.schema.json",
    "stripe-middleware.reconciliation.completed": "schemas/reconciliation-completed.detail.schema.json",
    "stripe-middleware.reconciliation.discrepancy": "schemas/reconciliation-discrepancy.detail.schema.json",
}


def detail_schema(detail_type: str) -> dict[str, Any]:
    """The JSON Schema of a published detail-type (every Stripe event type shares "stripe-event")."""
    schema: dict[str, Any] = load_event(DETAIL_SCHEMAS.get(detail_type, DETAIL_SCHEMAS["stripe-event"]))
    return schema


def load_event(name: str) -> Any:
    """Load a JSON file from this folder, e.g. `load_event("aws/http_api_v2_post.json")`."""
    return json.loads((EVENTS_DIR / name).read_text())


@cache
def _fixtures() -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = load_event("stripe/fixtures3.json")["resources"]
    return resources


@cache
def event_types() -> tuple[str, ...]:
    return tuple((EVENTS_DIR / "stripe/event_types.txt").read_text().split())


def resource_for_event_type(event_type: str) -> str | None:
    """The fixtures resource whose object an event of this type carries (None when there is none)."""
    parts = event_type.split(".")
    for n in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:n])
        candidates = [_RESOURCE_ALIASES.get(prefix), prefix, prefix.replace("issuing_", "issuing.", 1)]
        for candidate in candidates:
            if candidate and candidate in _fixtures():
                return candidate
    return None


def stripe_object(resource: str, **overrides: Any) -> dict[str, Any]:
    obj = copy.deepcopy(_fixtures()[resource])
    obj.update(overrides)
    return obj


def stripe_event(
    event_type: str,
    *,
    obj: dict[str, Any] | None = None,
    event_id: str | None = None,
    created: int = 1_764_000_000,
    account: str | None = None,
    livemode: bool = False,
    previous_attributes: dict[str, Any] | None = None,
    **object_overrides: Any,
) -> dict[str, Any]:
    """A Stripe Event of `event_type` around a real fixture object (or `obj`), with fields overridden."""
    if obj is None:
        resource = resource_for_event_type(event_type)
        if resource is None:  # a type the fixtures have no object for: a minimal object of that kind
            kind = event_type.rsplit(".", 1)[0]
            obj = {"id": f"obj_{secrets.token_hex(8)}", "object": kind, "created": created}
        else:
            obj = stripe_object(resource)
            if event_type.endswith(".deleted") and resource in _DELETED_RESOURCES:
                obj = {"id": obj["id"], "object": obj["object"], "deleted": True}
    obj = {**obj, **object_overrides}
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    event: dict[str, Any] = {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": f"req_{secrets.token_hex(7)}", "idempotency_key": None},
        "type": event_type,
    }
    if account:
        event["account"] = account
    return event


def http_api_event(
    path: str,
    body: str | bytes = "",
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    base64_encoded: bool = False,
    query: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
    route_key: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) Lambda event, from the canonical envelope in aws/."""
    event: dict[str, Any] = load_event("aws/http_api_v2_post.json")
    raw = body.encode() if isinstance(body, str) else body
    event["routeKey"] = route_key or f"{method} {path}"
    event["rawPath"] = path
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["routeKey"] = event["routeKey"]
    event["headers"] = {"content-type": "application/json", **(headers or {})}
    event["body"] = base64.b64encode(raw).decode() if base64_encoded else raw.decode()
    event["isBase64Encoded"] = base64_encoded
    event["queryStringParameters"] = query
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    event["pathParameters"] = path_parameters
    return event


def billing_lifecycle(
    n: int = 0, *, start: int = 1_764_000_000, livemode: bool = False
) -> list[dict[str, Any]]:
    """The core billing lifecycle of one customer, paying with a card of its own, as Stripe would send it
    (several events share a second)."""
    customer, product, price = f"cus_Local{n:05d}", f"prod_Local{n:05d}", f"price_Local{n:05d}"
    subscription, invoice, intent = f"sub_Local{n:05d}", f"in_Local{n:05d}", f"pi_Local{n:05d}"
    charge, refund, dispute = f"ch_Local{n:05d}", f"re_Local{n:05d}", f"dp_Local{n:05d}"
    metadata = {"erp_id": f"NS-{100000 + n}", "crm_account_id": f"001A0000{n:07d}"[:15]}
    t = start + n * 100
    paid_with = stripe_object("charge")["payment_method_details"]  # each customer's own card
    paid_with = {**paid_with, "card": {**paid_with["card"], "fingerprint": f"fpLocal{n:09d}"}}

    def event(event_type: str, offset: int, **overrides: Any) -> dict[str, Any]:
        return stripe_event(event_type, created=t + offset, livemode=livemode, **overrides)

    return [
        event("customer.created", 0, id=customer, metadata=metadata, email=None, name=None),
        event("product.created", 0, id=product),
        event("price.created", 1, id=price, product=product),
        event(
            "checkout.session.completed",
            2,
            id=f"cs_test_Local{n:05d}",
            customer=customer,
            subscription=subscription,
        ),
        event(
            "customer.subscription.created",
            2,
            id=subscription,
            customer=customer,
            status="incomplete",
            metadata={"crm_account_id": metadata["crm_account_id"]},
        ),
        event("invoice.created", 2, id=invoice, customer=customer, subscription=subscription, status="draft"),
        event(
            "invoice.finalized", 3, id=invoice, customer=customer, subscription=subscription, status="open"
        ),
        event("payment_intent.succeeded", 3, id=intent, customer=customer, status="succeeded"),
        event(
            "charge.succeeded",
            3,
            id=charge,
            customer=customer,
            payment_intent=intent,
            payment_method_details=paid_with,
        ),
        event("invoice.paid", 4, id=invoice, customer=customer, subscription=subscription, status="paid"),
        event(
            "customer.subscription.updated",
            4,
            id=subscription,
            customer=customer,
            status="active",
            metadata={"crm_account_id": metadata["crm_account_id"]},
            previous_attributes={"status": "incomplete"},
        ),
        event(
            "charge.refunded",
            50,
            id=charge,
            customer=customer,
            payment_intent=intent,
            refunded=True,
            payment_method_details=paid_with,
        ),
        event("refund.created", 50, id=refund, charge=charge, payment_intent=intent),
        event("charge.dispute.created", 60, id=dispute, charge=charge, payment_intent=intent),
    ]
