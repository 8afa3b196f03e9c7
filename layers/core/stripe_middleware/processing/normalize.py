"""From a Stripe event to the stored object: identity, normalized attributes, metadata, order key."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from stripe_middleware.processing.models import StoredObject, StripeEvent
from stripe_middleware.processing.ordering import is_deletion, order_key, snapshot_order_key
from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.metadata_schema import MetadataSchema

# The metadata keys revenue is attributed by (the warehouse's erp_id, crm_account_id, campaign, cost_center).
ATTRIBUTION_KEYS = ("erp_id", "crm_account_id", "campaign", "cost_center")


def object_identity(obj: dict[str, Any]) -> tuple[str, str]:
    """(object type, object id). Id-less objects (`balance`, `cash_balance`) are one per account/customer."""
    object_type = str(obj.get("object") or "unknown")
    object_id = obj.get("id")
    if isinstance(object_id, str) and object_id:
        return object_type, object_id
    customer = expandable_id(obj.get("customer"))
    return object_type, f"{object_type}:{customer}" if customer else object_type


def expandable_id(value: Any) -> str | None:
    """Stripe expandable fields are an id string or the expanded object."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def normalize(
    event: StripeEvent, schema: MetadataSchema, *, obj: dict[str, Any] | None = None
) -> StoredObject:
    """The stored object an event carries (or `obj`, Stripe's current object, for a refetch)."""
    return _stored(
        obj if obj is not None else event.data.object,
        schema,
        account=event.account,
        livemode=event.livemode,
        event_id=event.id,
        event_type=event.type,
        event_created=event.created,
        order_key=order_key(event),
        deleted=is_deletion(event),
    )


def normalize_snapshot(
    obj: dict[str, Any],
    schema: MetadataSchema,
    *,
    account: str | None,
    livemode: bool,
    run_id: str,
    as_of: int,
) -> StoredObject:
    """An object read from a Stripe list endpoint (backfill), as of `as_of` (see `snapshot_order_key`)."""
    return _stored(
        obj,
        schema,
        account=account,
        livemode=livemode,
        event_id=run_id,
        event_type=DetailType.OBJECT_BACKFILLED,
        event_created=as_of,
        order_key=snapshot_order_key(as_of, run_id),
        deleted=obj.get("deleted") is True,
    )


def _stored(
    obj: dict[str, Any],
    schema: MetadataSchema,
    *,
    account: str | None,
    livemode: bool,
    event_id: str,
    event_type: str,
    event_created: int,
    order_key: str,
    deleted: bool,
) -> StoredObject:
    object_type, object_id = object_identity(obj)
    raw_metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    metadata = schema.normalize(object_type, raw_metadata or {})
    violations = schema.check(object_type, raw_metadata or {})
    customer_id = object_id if object_type == "customer" else expandable_id(obj.get("customer"))
    amount = next(
        (obj[k] for k in ("amount", "amount_total", "amount_due", "total") if isinstance(obj.get(k), int)),
        None,
    )
    updated = obj.get("updated") if isinstance(obj.get("updated"), int) else None
    is_subscription = object_type == "subscription"
    return StoredObject(
        object_type=object_type,
        object_id=object_id,
        account=account,
        livemode=livemode,
        customer_id=customer_id,
        amount=amount,
        currency=obj.get("currency") if isinstance(obj.get("currency"), str) else None,
        status=obj.get("status") if isinstance(obj.get("status"), str) else None,
        created=iso(obj["created"]) if isinstance(obj.get("created"), int) else None,
        updated=iso(updated),
        metadata=metadata,
        metadata_violations=[v.model_dump() for v in violations],
        deleted_at=iso(event_created) if deleted else None,
        event_id=event_id,
        event_type=event_type,
        event_created=iso(event_created) or "",
        order_key=order_key,
        object=obj,
        subscription_id=object_id if is_subscription else subscription_of(obj),
        mrr_amount=monthly_recurring_amount(obj, as_of=event_created) if is_subscription else None,
        plan_interval=_plan_interval(obj) if is_subscription else None,
        quantity=_total_quantity(obj) if is_subscription else None,
        cancel_at_period_end=_flag(obj, "cancel_at_period_end"),
        trial_end=_time(obj, "trial_end"),
        canceled_at=_time(obj, "canceled_at"),
        amount_refunded=_integer(obj, "amount_refunded"),
        attribution={key: metadata.get(key) or None for key in ATTRIBUTION_KEYS},
    )


def subscription_of(obj: dict[str, Any]) -> str | None:
    """The subscription an object belongs to: `subscription` (expandable), or on invoices of current API
    versions `parent.subscription_details.subscription`."""
    own = expandable_id(obj.get("subscription"))
    if own:
        return own
    parent = obj.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    return expandable_id(details.get("subscription")) if isinstance(details, dict) else None


# An amount billed every `interval_count` intervals is `amount * _PER_MONTH[interval] / interval_count` a
# month: a year is 12 months, a week 12/52 of a month (52 weeks a year), a day 12/365.
_PER_MONTH = {
    "month": Fraction(1),
    "year": Fraction(1, 12),
    "week": Fraction(52, 12),
    "day": Fraction(365, 12),
}


def monthly_recurring_amount(subscription: dict[str, Any], *, as_of: int | None = None) -> int | None:
    """A subscription's MRR in the currency's minor unit, whatever its status (the analytics views decide
    which statuses count): the sum over its licensed recurring items of `unit_amount * quantity` (the
    price's `unit_amount_decimal` when `unit_amount` is null, e.g. 0.5 cent a seat), each brought to a
    month (a year is 12 months, a week 52/12 of a month, a day 365/12; divided by the interval count),
    less the discounts, rounded half up to a unit at the end. Metered items (`usage_type` metered) are
    usage, not recurring revenue, and are left out. Discounts: each coupon's `percent_off`, and
    `amount_off` (taken off every invoice) spread to the month of the billing interval, first those of
    the item, then the subscription's; `once` coupons, coupons in another currency, discounts that ended
    before `as_of`, and discounts the event carries only as an id (not expanded) are not applied.

    None when the MRR is unknown: the subscription has no items list, or a licensed item's price has no
    unit amount at all (`billing_scheme` tiered: the tiers are not in the event). Unknown is not 0: a
    move to a tiered price is not churn."""
    data = _items(subscription)
    if data is None:
        return None
    currency = subscription.get("currency")
    total = Fraction(0)
    per_month: Fraction | None = None  # the months of the first licensed item's interval
    for item in data:
        price, recurring = _price(item)
        months = _licensed_months(recurring)
        if months is None:
            continue
        unit_amount = _unit_amount(price)
        if unit_amount is None:
            return None
        quantity = _integer(item, "quantity")
        amount = unit_amount * (1 if quantity is None else quantity) * months
        per_month = per_month if per_month is not None else months
        total += _discounted(amount, item.get("discounts"), months, currency, as_of)
    discounts = [*_listed(subscription.get("discounts")), *_listed(subscription.get("discount"))]
    total = _discounted(total, discounts, per_month or Fraction(1), currency, as_of)
    return int(total + Fraction(1, 2)) if total > 0 else 0  # half up; amounts are never negative


def _licensed_months(recurring: dict[str, Any]) -> Fraction | None:
    """The share of a month one invoice of a licensed recurring price covers; None for metered usage and
    for what is not recurring."""
    interval, count = recurring.get("interval"), recurring.get("interval_count") or 1
    if recurring.get("usage_type", "licensed") != "licensed" or interval not in _PER_MONTH:
        return None
    if isinstance(count, bool) or not isinstance(count, int):
        return None
    return _PER_MONTH[interval] / max(count, 1)


def _unit_amount(price: dict[str, Any]) -> Fraction | None:
    """The price of one unit in the minor unit: `unit_amount`, else `unit_amount_decimal` (a legacy plan's
    are `amount` and `amount_decimal`); None for a tiered price, whose tiers the event does not carry."""
    if price.get("billing_scheme") == "tiered":
        return None
    whole = price.get("unit_amount", price.get("amount"))
    if isinstance(whole, int) and not isinstance(whole, bool):
        return Fraction(whole)
    decimal = price.get("unit_amount_decimal", price.get("amount_decimal"))
    if not isinstance(decimal, str):
        return None
    try:
        value = Decimal(decimal)
    except InvalidOperation:
        return None
    return Fraction(value) if value.is_finite() else None


def _items(subscription: dict[str, Any]) -> list[Any] | None:
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    return data if isinstance(data, list) else None


def _price(item: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(price, its `recurring`) of a subscription item; a legacy plan is both; empty when neither."""
    if not isinstance(item, dict):
        return {}, {}
    price = item.get("price") if isinstance(item.get("price"), dict) else item.get("plan")
    if not isinstance(price, dict):
        return {}, {}
    recurring = price.get("recurring")
    return price, recurring if isinstance(recurring, dict) else price


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []


def _discounted(
    amount: Fraction, discounts: Any, months: Fraction, currency: Any, as_of: int | None
) -> Fraction:
    for discount in _listed(discounts):
        coupon = _coupon(discount)
        if coupon is None or coupon.get("duration") == "once":
            continue
        end = discount.get("end")
        if isinstance(end, int) and as_of is not None and end <= as_of:
            continue
        percent_off, amount_off = coupon.get("percent_off"), coupon.get("amount_off")
        if isinstance(percent_off, int | float) and not isinstance(percent_off, bool):
            amount -= amount * Fraction(str(percent_off)) / 100
        elif isinstance(amount_off, int) and coupon.get("currency") in (None, currency):
            amount -= amount_off * months
        amount = max(amount, Fraction(0))
    return amount


def _coupon(discount: Any) -> dict[str, Any] | None:
    """The expanded coupon of a discount: `coupon`, or `source.coupon` in current API versions."""
    if not isinstance(discount, dict):
        return None  # a discount id: its coupon is not in the event
    source = discount.get("source")
    coupon = discount.get("coupon")
    if coupon is None and isinstance(source, dict):
        coupon = source.get("coupon")
    return coupon if isinstance(coupon, dict) else None


def _plan_interval(subscription: dict[str, Any]) -> str | None:
    data = _items(subscription)
    interval = _price(data[0])[1].get("interval") if data else None
    return interval if isinstance(interval, str) else None


def _total_quantity(subscription: dict[str, Any]) -> int | None:
    data = _items(subscription)
    if data is None:
        return None
    return sum(q for item in data if isinstance(item, dict) and (q := _integer(item, "quantity")) is not None)


def _integer(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _flag(obj: dict[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    return value if isinstance(value, bool) else None


def _time(obj: dict[str, Any], key: str) -> str | None:
    value = _integer(obj, key)
    return iso(value) if value is not None else None
