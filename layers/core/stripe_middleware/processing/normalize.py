"""From a Stripe event to the stored object: identity, normalized attributes, metadata, order key."""

from __future__ import annotations

from typing import Any

from stripe_middleware.processing.models import StoredObject, StripeEvent
from stripe_middleware.processing.ordering import is_deletion, order_key, snapshot_order_key
from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.metadata_schema import MetadataSchema


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
    )
