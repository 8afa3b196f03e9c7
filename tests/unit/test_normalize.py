from __future__ import annotations

import copy
import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from events import stripe_event, stripe_object
from stripe_middleware.processing.models import StoredObject, StripeEvent
from stripe_middleware.processing.normalize import normalize, object_identity
from stripe_middleware.processing.ordering import order_key, refetch_order_key, same_second
from stripe_middleware.shared.metadata_schema import load_metadata_schema

SCHEMA = load_metadata_schema()


def parsed(event_type: str, **kwargs: object) -> StripeEvent:
    return StripeEvent.model_validate(stripe_event(event_type, **kwargs))  # type: ignore[arg-type]


def test_customer_id_comes_from_the_expandable_field_string_or_object() -> None:
    as_string = normalize(parsed("invoice.paid", customer="cus_1"), SCHEMA)
    expanded = normalize(parsed("invoice.paid", customer={"id": "cus_1", "object": "customer"}), SCHEMA)
    assert as_string.customer_id == expanded.customer_id == "cus_1"
    assert normalize(parsed("customer.created"), SCHEMA).customer_id == stripe_object("customer")["id"]


def test_amount_currency_status_and_iso_times() -> None:
    stored = normalize(parsed("payment_intent.succeeded", created=1_764_000_000), SCHEMA)
    intent = stripe_object("payment_intent")
    assert stored.amount == intent["amount"] and stored.currency == intent["currency"]
    assert stored.status == intent["status"]
    assert stored.event_created == "2025-11-24T16:00:00Z"


def test_id_less_objects_get_a_stable_identity() -> None:
    assert object_identity({"object": "balance"}) == ("balance", "balance")
    assert object_identity({"object": "cash_balance", "customer": "cus_9"}) == (
        "cash_balance",
        "cash_balance:cus_9",
    )


def test_deletions_rank_above_updates_in_the_same_second() -> None:
    updated = parsed("customer.updated", created=10, event_id="evt_zzz")
    deleted = parsed("customer.deleted", created=10, event_id="evt_aaa")
    created = parsed("customer.created", created=10, event_id="evt_zzzz")
    assert order_key(created) < order_key(updated) < order_key(deleted)
    assert normalize(deleted, SCHEMA).deleted_at is not None


def test_the_objects_own_updated_field_orders_before_event_created() -> None:
    older_change = parsed("product.updated", created=500, updated=100)
    newer_change = parsed("product.updated", created=400, updated=200)
    assert order_key(older_change) < order_key(newer_change)


def test_refetched_snapshot_outranks_its_second_only() -> None:
    key = order_key(parsed("invoice.updated", created=10))
    assert refetch_order_key(key, 1_000.0) > order_key(parsed("invoice.deleted", created=10))
    assert refetch_order_key(key, 1_000.0) < order_key(parsed("invoice.created", created=11))
    assert same_second(key, refetch_order_key(key, 1_000.0))
    assert refetch_order_key(key, 1_000.002) > refetch_order_key(key, 1_000.001)  # a later fetch wins


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3), st.sampled_from(["created", "updated", "paid", "deleted"]), st.integers(0, 99)
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda t: t[2],
    )
)
def test_any_arrival_order_keeps_the_same_winner(versions: list[tuple[int, str, int]]) -> None:
    events = [
        parsed(f"invoice.{action}", created=1000 + second, event_id=f"evt_{n:03d}")
        for second, action, n in versions
    ]
    winners = set()
    for permutation in itertools.islice(itertools.permutations(events), 24):
        current: str | None = None
        for event in permutation:  # what the conditional write does: keep the greater key
            key = order_key(event)
            if current is None or current < key:
                current = key
        winners.add(current)
    assert len(winners) == 1
    newest_second = max(e.created for e in events)
    assert winners.pop().startswith(f"{newest_second:012d}#")


def test_metadata_schema_normalizes_and_reports_each_kind_of_violation() -> None:
    violations = SCHEMA.check("customer", {"erp_id": " sap-1234567 ", "campaign": "TV", "crm_account_id": ""})
    assert {(v.key, v.code) for v in violations} == {
        ("crm_account_id", "missing"),
        ("campaign", "not_allowed"),
    }
    assert SCHEMA.normalize("customer", {"erp_id": " sap-1234567 "}) == {"erp_id": "SAP-1234567"}
    assert SCHEMA.check("customer", {"erp_id": "X", "crm_account_id": "001A00000abcDEF"})[0].code == "pattern"
    assert SCHEMA.check("balance", {"anything": "goes"}) == []


# -- billing fields (MRR normalization) --------------------------------------------------------------


def item(
    unit_amount: int | None,
    interval: str = "month",
    *,
    count: int = 1,
    quantity: int | None = 1,
    **price: Any,
) -> dict[str, Any]:
    """A subscription item shaped like the fixture's, with its price and recurring terms replaced."""
    fixture: dict[str, Any] = copy.deepcopy(stripe_object("subscription")["items"]["data"][0])
    recurring = {**fixture["price"]["recurring"], "interval": interval, "interval_count": count}
    recurring["usage_type"] = price.pop("usage_type", "licensed")
    decimal = None if unit_amount is None else str(unit_amount)  # Stripe sends both, or neither when tiered
    fixture["price"] |= {"unit_amount": unit_amount, "unit_amount_decimal": decimal, "recurring": recurring}
    fixture["price"] |= price
    fixture["quantity"] = quantity
    if quantity is None:
        del fixture["quantity"]
    return fixture


def discount(duration: str = "forever", *, end: int | None = None, **coupon: Any) -> dict[str, Any]:
    """A discount as current API versions expand it: the coupon under `source`."""
    terms = {"percent_off": None, "amount_off": None, "duration": duration, **coupon}
    source = {"type": "coupon", "coupon": stripe_object("coupon", **terms)}
    return stripe_object("discount", source=source, end=end)


def subscription(*items: dict[str, Any], **fields: Any) -> StoredObject:
    sub = stripe_object("subscription", **fields)
    sub["items"]["data"] = list(items)
    return normalize(parsed("customer.subscription.updated", obj=sub), SCHEMA)


def test_a_monthly_plan_counts_unit_amount_times_quantity() -> None:
    stored = subscription(item(2000, quantity=3))
    assert (stored.mrr_amount, stored.quantity, stored.plan_interval) == (6000, 3, "month")
    assert stored.subscription_id == stored.object_id


def test_the_fixture_subscription_is_2000_a_month() -> None:
    stored = normalize(parsed("customer.subscription.created"), SCHEMA)
    assert (stored.mrr_amount, stored.plan_interval, stored.quantity) == (2000, "month", 1)


def test_annual_quarterly_weekly_and_daily_plans_are_divided_to_a_month() -> None:
    assert subscription(item(120_000, "year")).mrr_amount == 10_000
    assert subscription(item(30_000, "month", count=3)).mrr_amount == 10_000  # quarterly
    assert subscription(item(1_000, "week")).mrr_amount == 4_333  # 1000 * 52 / 12 = 4333.33
    assert subscription(item(1_200, "week", count=2)).mrr_amount == 2_600  # 600 a week
    assert subscription(item(100, "day")).mrr_amount == 3_042  # 100 * 365 / 12 = 3041.67
    assert subscription(item(120_000, "year")).plan_interval == "year"


def test_a_percent_coupon_is_taken_off() -> None:
    assert subscription(item(2000), discounts=[discount(percent_off=25.5)]).mrr_amount == 1490
    assert subscription(item(2000), discounts=[discount("repeating", percent_off=50)]).mrr_amount == 1000


def test_an_amount_coupon_is_spread_over_the_month_of_each_invoice() -> None:
    monthly = subscription(item(2000), discounts=[discount(amount_off=500, currency="usd")])
    annual = subscription(item(120_000, "year"), discounts=[discount(amount_off=1200, currency="usd")])
    assert (monthly.mrr_amount, annual.mrr_amount) == (1500, 9900)  # 1200 a year is 100 a month
    too_big = subscription(item(2000), discounts=[discount(amount_off=5000, currency="usd")])
    assert too_big.mrr_amount == 0


def test_coupons_that_do_not_recur_or_do_not_apply_are_left_out() -> None:
    skipped = [
        discount("once", percent_off=50),  # one invoice only: not recurring revenue
        discount(percent_off=50, end=1_700_000_000),  # ended before the event (1_764_000_000)
        discount(amount_off=500, currency="eur"),  # another currency than the subscription's usd
        "di_1Pgc6rB7WZ01zgkW7Al8Fal9",  # not expanded: the event does not say which coupon
    ]
    for left_out in skipped:
        assert subscription(item(2000), discounts=[left_out]).mrr_amount == 2000, left_out
    ends_later = discount("repeating", percent_off=50, end=1_800_000_000)
    assert subscription(item(2000), discounts=[ends_later]).mrr_amount == 1000


def test_legacy_coupon_shapes_still_apply() -> None:
    legacy = {"object": "discount", "coupon": stripe_object("coupon", percent_off=10, duration="forever")}
    assert subscription(item(2000), discounts=[legacy]).mrr_amount == 1800
    assert subscription(item(2000), discounts=[], discount=legacy).mrr_amount == 1800


def test_an_items_own_discount_applies_to_that_item_only() -> None:
    discounted = item(2000) | {"discounts": [discount(percent_off=50)]}
    assert subscription(discounted, item(1000)).mrr_amount == 2000


def test_metered_items_are_excluded_and_several_items_add_up() -> None:
    stored = subscription(
        item(2000, quantity=2),
        item(50, usage_type="metered", quantity=None),
        item(12_000, "year", quantity=4),
    )
    assert stored.mrr_amount == 4000 + 4000
    assert stored.quantity == 2 + 4  # the items' quantities (metered items carry none)
    assert stored.plan_interval == "month"  # the first item's


def test_a_sub_cent_unit_amount_decimal_counts() -> None:
    seats = item(None, unit_amount_decimal="0.5", quantity=1000)  # unit_amount is null below a cent
    assert subscription(seats).mrr_amount == 500
    assert subscription(item(None, unit_amount_decimal="0.5", quantity=3)).mrr_amount == 2  # 1.5 half up
    assert subscription(item(2000), item(None, unit_amount_decimal="12.25", quantity=2)).mrr_amount == 2025
    weekly = item(None, "week", unit_amount_decimal="0.75", quantity=100)  # 75 * 52 / 12 = 325
    assert subscription(weekly).mrr_amount == 325


def test_a_legacy_plans_amount_decimal_counts() -> None:
    legacy = item(None, quantity=1000)
    del legacy["price"]  # an item of an old API version: only the plan, with amount and amount_decimal
    legacy["plan"] = stripe_object("plan", amount=None, amount_decimal="0.25")
    assert subscription(legacy).mrr_amount == 250
    legacy["plan"] = stripe_object("plan", interval="year")  # 2000 a year
    assert subscription(legacy).mrr_amount == 166_667  # 2000 * 1000 / 12 = 166666.67


def test_a_licensed_tiered_price_makes_the_mrr_unknown_not_zero() -> None:
    tiered = item(None, billing_scheme="tiered", tiers_mode="volume", quantity=4)
    assert subscription(tiered).mrr_amount is None
    assert subscription(item(2000), tiered).mrr_amount is None  # a part unknown: the sum is unknown
    assert subscription(item(2000), tiered).quantity == 5
    metered_tiered = item(None, billing_scheme="tiered", usage_type="metered", quantity=None)
    assert subscription(item(2000), metered_tiered).mrr_amount == 2000  # usage: never MRR


def test_mrr_does_not_depend_on_status() -> None:
    canceled = subscription(item(2000), status="canceled", canceled_at=1_764_000_000)
    trialing = subscription(item(2000), status="trialing", trial_end=1_765_000_000)
    assert canceled.mrr_amount == trialing.mrr_amount == 2000
    assert canceled.canceled_at == "2025-11-24T16:00:00Z" and trialing.trial_end is not None


def test_subscription_id_of_invoices_old_and_current_api_versions() -> None:
    old_style = normalize(parsed("invoice.paid", subscription="sub_old", parent=None), SCHEMA)
    parent = {"type": "subscription_details", "subscription_details": {"subscription": "sub_new"}}
    current = normalize(parsed("invoice.paid", parent=parent), SCHEMA)
    as_object = {"id": "sub_x", "object": "subscription"}
    expanded = normalize(parsed("invoice.paid", subscription=as_object), SCHEMA)
    assert (old_style.subscription_id, current.subscription_id, expanded.subscription_id) == (
        "sub_old",
        "sub_new",
        "sub_x",
    )
    assert old_style.mrr_amount is None and old_style.plan_interval is None


def test_charges_carry_amount_refunded_and_no_subscription() -> None:
    stored = normalize(parsed("charge.refunded", amount=1000, amount_refunded=400, refunded=False), SCHEMA)
    assert (stored.amount, stored.amount_refunded, stored.subscription_id) == (1000, 400, None)
    assert stored.mrr_amount is None and stored.cancel_at_period_end is None


def test_attribution_has_its_four_keys_always_normalized_or_null() -> None:
    bare = normalize(parsed("charge.succeeded", metadata={}), SCHEMA)
    assert bare.attribution == dict.fromkeys(("erp_id", "crm_account_id", "campaign", "cost_center"))
    tagged = normalize(parsed("customer.updated", metadata={"campaign": " Partner ", "erp_id": ""}), SCHEMA)
    assert tagged.attribution["campaign"] == "partner" and tagged.attribution["erp_id"] is None
