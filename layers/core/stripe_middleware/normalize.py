"""From a Stripe event to the stored object: identity, normalized attributes, metadata, order key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stripe_middleware.metadata_schema import MetadataSchema
from stripe_middleware.models import StoredObject, StripeEvent

# Within one `created` second the order key falls back to the lifecycle rank, then the event id, so that
# any arrival order ends in the same snapshot (a documented, deterministic rule).
_RANK_CREATED, _RANK_OTHER, _RANK_DELETED = 0, 1, 2


def iso(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


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


def is_deletion(event: StripeEvent) -> bool:
    return event.type.endswith(".deleted") or event.data.object.get("deleted") is True


def version_timestamp(event: StripeEvent) -> int:
    """The object's own `updated` when it has one (it moves with the object), else the event's `created`."""
    updated = event.data.object.get("updated")
    if isinstance(updated, int) and not isinstance(updated, bool):
        return updated
    return event.created


def order_key(event: StripeEvent) -> str:
    """A string whose lexicographic order is the order in which snapshots may replace each other."""
    if is_deletion(event):
        rank = _RANK_DELETED
    elif event.type.endswith(".created"):
        rank = _RANK_CREATED
    else:
        rank = _RANK_OTHER
    return f"{version_timestamp(event):012d}#{rank}#{event.id}"


def refetch_order_key(key: str) -> str:
    """A refetched object outranks every event of its second (rank 9 > created/other/deleted)."""
    return key.split("#", 1)[0] + "#9#refetch"


def same_second(key_a: str, key_b: str) -> bool:
    return key_a.split("#", 1)[0] == key_b.split("#", 1)[0]


def normalize(
    event: StripeEvent, schema: MetadataSchema, *, obj: dict[str, Any] | None = None
) -> StoredObject:
    obj = obj if obj is not None else event.data.object
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
        account=event.account,
        livemode=event.livemode,
        customer_id=customer_id,
        amount=amount,
        currency=obj.get("currency") if isinstance(obj.get("currency"), str) else None,
        status=obj.get("status") if isinstance(obj.get("status"), str) else None,
        created=iso(obj["created"]) if isinstance(obj.get("created"), int) else None,
        updated=iso(updated),
        metadata=metadata,
        metadata_violations=[v.model_dump() for v in violations],
        deleted_at=iso(event.created) if is_deletion(event) else None,
        event_id=event.id,
        event_type=event.type,
        event_created=iso(event.created) or "",
        order_key=order_key(event),
        object=obj,
    )
