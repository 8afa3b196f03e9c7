"""The metadata schema: normalization is per key, whatever the object type; checks are per object type."""

from __future__ import annotations

from events import stripe_event
from stripe_middleware.processing.models import StripeEvent
from stripe_middleware.processing.normalize import ATTRIBUTION_KEYS, normalize
from stripe_middleware.shared.metadata_schema import load_metadata_schema

SCHEMA = load_metadata_schema()
UNTIDY = {"campaign": " Paid_Search ", "erp_id": " ns-12345 ", "cost_center": "cc-100 ", "note": " As Is "}


def parsed(event_type: str, **kwargs: object) -> StripeEvent:
    return StripeEvent.model_validate(stripe_event(event_type, **kwargs))  # type: ignore[arg-type]


def test_the_attribution_keys_are_normalized_on_types_the_schema_does_not_list() -> None:
    assert "charge" not in SCHEMA.objects
    assert set(ATTRIBUTION_KEYS) <= set(SCHEMA.keys)
    tidy = {"campaign": "paid_search", "erp_id": "NS-12345", "cost_center": "CC-100", "note": " As Is "}
    assert SCHEMA.normalize("charge", UNTIDY) == SCHEMA.normalize("payment_intent", UNTIDY) == tidy


def test_a_charge_and_its_payment_intent_land_in_the_same_attribution_bucket() -> None:
    charge = normalize(parsed("charge.succeeded", metadata=UNTIDY), SCHEMA)
    intent = normalize(parsed("payment_intent.succeeded", metadata=UNTIDY), SCHEMA)
    assert charge.attribution == intent.attribution
    assert charge.attribution["campaign"] == "paid_search" and charge.attribution["erp_id"] == "NS-12345"


def test_unlisted_types_still_have_no_violations() -> None:
    breaking = {"campaign": " TV ", "erp_id": "nope", "anything": "goes"}
    assert SCHEMA.check("charge", breaking) == []
    assert normalize(parsed("charge.succeeded", metadata=breaking), SCHEMA).metadata_violations == []
    assert {v.code for v in SCHEMA.check("payment_intent", breaking)} == {"not_allowed", "pattern"}
