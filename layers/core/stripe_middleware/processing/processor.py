"""The processor's logic: de-duplicate, order, normalize and store, then publish. No AWS shapes here.

Per batch: one read of the de-duplication records, one conditional write per unique event, one PutEvents
per ten publications, one write of the de-duplication records. An event is recorded as processed only
after it is published, so a crash or a failed publication anywhere ends in a retry of that message, and
the retry publishes it (at-least-once) without applying it twice (the order key makes the write
idempotent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from stripe_middleware.processing.models import PublishedDetail, PublishedFlags, StoredObject, StripeEvent
from stripe_middleware.processing.normalize import normalize
from stripe_middleware.processing.ordering import refetch_order_key, same_second
from stripe_middleware.processing.ports import InvalidMessageError, Refetch, Store
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.envelope import unwrap_eventbridge
from stripe_middleware.shared.errors import PoisonError, StoreUnavailableError, UnavailableError
from stripe_middleware.shared.metadata_schema import MetadataSchema
from stripe_middleware.shared.publishing import Publication, Publisher, fit_detail


@dataclass(frozen=True)
class Message:
    message_id: str
    body: str


@dataclass
class BatchOutcome:
    failed_message_ids: list[str] = field(default_factory=list)
    processed: list[StoredObject] = field(default_factory=list)
    duplicates: int = 0
    stale: int = 0
    published: int = 0
    metadata_violations: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # message id -> reason
    event_ids: dict[str, str] = field(default_factory=dict)  # message id -> event id (the correlation id)


def parse_message(body: str) -> StripeEvent:
    """Webhook bodies are Stripe events; the native EventBridge destination wraps one in `detail`."""
    try:
        return StripeEvent.model_validate(unwrap_eventbridge(json.loads(body)))
    except (ValueError, ValidationError) as error:
        raise InvalidMessageError(f"not a Stripe event: {type(error).__name__}") from error


def build_detail(
    event: StripeEvent, stored: StoredObject, *, stale: bool, redelivered: bool
) -> dict[str, Any]:
    normalized = stored.model_dump(exclude={"object"})  # order_key too: the warehouse keeps the latest by it
    detail = PublishedDetail(
        id=event.id,
        type=event.type,
        created=event.created,
        livemode=event.livemode,
        account=event.account,
        api_version=event.api_version,
        request=event.request,
        object=event.data.object,
        normalized=normalized,
        previous_attributes=event.data.previous_attributes,
        flags=PublishedFlags(stale=stale, duplicate_of=event.id if redelivered else None),
    ).model_dump(mode="json")
    return fit_detail(detail)


def violation_detail(event: StripeEvent, stored: StoredObject) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_type": event.type,
        "object_type": stored.object_type,
        "object_id": stored.object_id,
        "account": stored.account,
        "livemode": stored.livemode,
        "violations": stored.metadata_violations,
    }


def process_batch(
    messages: Sequence[Message],
    *,
    store: Store,
    publisher: Publisher,
    schema: MetadataSchema,
    refetch: Refetch | None = None,
) -> BatchOutcome:
    outcome = BatchOutcome()
    events: dict[str, tuple[Message, StripeEvent]] = {}
    for message in messages:
        try:
            event = parse_message(message.body)
        except InvalidMessageError as error:
            outcome.failed_message_ids.append(message.message_id)
            outcome.errors[message.message_id] = str(error)
            continue
        outcome.event_ids[message.message_id] = event.id
        if event.id in events:  # the same event twice in one batch
            outcome.duplicates += 1
            continue
        events[event.id] = (message, event)
    if not events:
        return outcome

    try:
        seen = store.seen_events(list(events))
    except StoreUnavailableError as error:
        return _fail_all(outcome, events, str(error))
    outcome.duplicates += len(seen)

    publications: list[Publication] = []
    message_of: dict[str, str] = {}
    for event_id, (message, event) in events.items():
        if event_id in seen:
            continue
        try:
            stored, stale, redelivered = _store_event(event, store, schema, refetch)
        except (UnavailableError, PoisonError) as error:  # this message only; SQS redelivers, then DLQ
            outcome.failed_message_ids.append(message.message_id)
            outcome.errors[message.message_id] = str(error)
            continue
        outcome.processed.append(stored)
        outcome.stale += stale
        message_of[event_id] = message.message_id
        publications.append(
            Publication(
                key=event_id,
                detail_type=event.type,
                detail=build_detail(event, stored, stale=stale, redelivered=redelivered),
            )
        )
        if stored.metadata_violations:
            outcome.metadata_violations += 1
            publications.append(
                Publication(
                    key=event_id,
                    detail_type=DetailType.METADATA_VIOLATION,
                    detail=violation_detail(event, stored),
                )
            )

    failed = publisher.publish(publications) if publications else set()
    published_ids = [event_id for event_id in message_of if event_id not in failed]
    outcome.published = len(published_ids)
    for event_id in failed:
        outcome.failed_message_ids.append(message_of[event_id])
        outcome.errors[message_of[event_id]] = "publication failed"
    try:
        store.record_events(published_ids)
    except StoreUnavailableError as error:
        # Published but not recorded: the retry publishes again (at-least-once), never loses.
        for event_id in published_ids:
            outcome.failed_message_ids.append(message_of[event_id])
            outcome.errors[message_of[event_id]] = str(error)
    return outcome


def _store_event(
    event: StripeEvent, store: Store, schema: MetadataSchema, refetch: Refetch | None
) -> tuple[StoredObject, bool, bool]:
    """Return (stored object, stale, redelivered)."""
    stored = normalize(event, schema)
    result = store.upsert_if_newer(stored)
    previous = result.previous_order_key
    if previous == stored.order_key:  # this very event was applied before a crash or failed publication
        return stored, False, True
    stale = not result.applied
    if refetch is not None and previous and same_second(previous, stored.order_key):
        # Two events of one object in one second: Stripe's current object settles which state is right.
        fresh = refetch(event, stored.object_type, stored.object_id)
        if fresh is not None:
            refetched = normalize(event, schema, obj=fresh)
            key = refetch_order_key(stored.order_key, time.time())
            refetched = refetched.model_copy(update={"order_key": key})
            # Not applied: a later refetch (or a later event) is already stored; this state is behind it.
            return refetched, not store.upsert_if_newer(refetched).applied, False
    return stored, stale, False


def _fail_all(
    outcome: BatchOutcome, events: dict[str, tuple[Message, StripeEvent]], reason: str
) -> BatchOutcome:
    for message, _ in events.values():
        outcome.failed_message_ids.append(message.message_id)
        outcome.errors[message.message_id] = reason
    return outcome
