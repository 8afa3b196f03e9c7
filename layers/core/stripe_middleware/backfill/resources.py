"""What a backfill can read: the list endpoints of the objects a business runs on, by CLI name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stripe_middleware.shared.errors import RejectedError


@dataclass(frozen=True)
class Resource:
    name: str  # what the CLI and the options call it
    path: str  # the list endpoint; `{parent}` is an object id from `parent`'s list
    params: dict[str, Any] = field(default_factory=dict)  # always sent (e.g. subscriptions: status=all)
    parent: str | None = None  # listed per object of this resource (payment methods per customer)
    connect_only: bool = False  # only the platform lists connected accounts


RESOURCES = {
    r.name: r
    for r in (
        Resource("accounts", "/v1/accounts", connect_only=True),
        Resource("customers", "/v1/customers"),
        Resource("products", "/v1/products"),
        Resource("prices", "/v1/prices"),
        Resource("plans", "/v1/plans"),
        Resource("coupons", "/v1/coupons"),
        Resource("promotion_codes", "/v1/promotion_codes"),
        Resource("tax_rates", "/v1/tax_rates"),
        Resource("subscriptions", "/v1/subscriptions", {"status": "all"}),
        Resource("subscription_schedules", "/v1/subscription_schedules"),
        Resource("invoices", "/v1/invoices"),
        Resource("invoiceitems", "/v1/invoiceitems"),
        Resource("credit_notes", "/v1/credit_notes"),
        Resource("payment_intents", "/v1/payment_intents"),
        Resource("setup_intents", "/v1/setup_intents"),
        Resource("payment_methods", "/v1/customers/{parent}/payment_methods", parent="customers"),
        Resource("charges", "/v1/charges"),
        Resource("refunds", "/v1/refunds"),
        Resource("disputes", "/v1/disputes"),
        Resource("checkout_sessions", "/v1/checkout/sessions"),
        Resource("payouts", "/v1/payouts"),
        Resource("balance_transactions", "/v1/balance_transactions"),
    )
}
# Every type but Connect's account list, in an order where parents come before what refers to them.
DEFAULT_TYPES = tuple(name for name, r in RESOURCES.items() if not r.connect_only)


def resolve_types(names: list[str] | None) -> tuple[Resource, ...]:
    """The resources for `names` (default: all); an unknown name is refused with the valid ones listed."""
    chosen = names or list(DEFAULT_TYPES)
    unknown = [n for n in chosen if n not in RESOURCES]
    if unknown:
        raise RejectedError(
            "unknown_type",
            f"unknown type {', '.join(unknown)}; valid types: {', '.join(RESOURCES)}",
        )
    return tuple(RESOURCES[n] for n in chosen)
