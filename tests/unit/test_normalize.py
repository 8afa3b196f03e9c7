from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from events import stripe_event, stripe_object
from stripe_middleware.processing.models import StripeEvent
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
