"""Published events validate against the JSON Schemas the stack registers (events/schemas/)."""

from __future__ import annotations

from jsonschema import Draft4Validator

from events import DETAIL_SCHEMAS, detail_schema, event_types, load_event, stripe_event
from tests.integration.conftest import ProcessorStack


def test_schemas_are_valid_draft4() -> None:
    for path in DETAIL_SCHEMAS.values():
        Draft4Validator.check_schema(load_event(path))


def test_every_published_detail_validates_against_its_schema(processor_stack: ProcessorStack) -> None:
    types = event_types()
    for start in range(0, len(types), 10):
        batch = [stripe_event(t, metadata={"campaign": "tv"}) for t in types[start : start + 10]]
        assert processor_stack.deliver(*batch) == []
    published = processor_stack.published()
    assert {p["detail-type"] for p in published} >= {*types, "stripe-middleware.metadata.violation"}
    for event in published:
        errors = sorted(
            Draft4Validator(detail_schema(event["detail-type"])).iter_errors(event["detail"]), key=str
        )
        assert errors == [], (event["detail-type"], [e.message for e in errors[:3]])


def test_the_schema_catches_a_broken_detail() -> None:
    detail = {"id": "not-an-event-id", "type": "invoice.paid"}
    assert list(Draft4Validator(detail_schema("invoice.paid")).iter_errors(detail))
