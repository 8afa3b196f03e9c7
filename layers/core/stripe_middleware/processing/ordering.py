"""The order guard's key: which snapshot of an object may replace which (Stripe does not order events).

Within one `created` second the order key falls back to the lifecycle rank, then the event id, so that
any arrival order ends in the same snapshot (a documented, deterministic rule).
"""

from __future__ import annotations

from stripe_middleware.processing.models import StripeEvent

_RANK_CREATED, _RANK_OTHER, _RANK_DELETED, _RANK_SNAPSHOT = 0, 1, 2, 5


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


def refetch_order_key(key: str, fetched_at: float) -> str:
    """A refetched object outranks every event of its second (rank 9 > created/other/deleted), and a
    later refetch outranks an earlier one (the fetch time in microseconds decides)."""
    return f"{key.split('#', 1)[0]}#9#{int(fetched_at * 1_000_000):016d}"


def snapshot_order_key(as_of: int, run_id: str) -> str:
    """A snapshot read from a list endpoint ranks as Stripe's state at `as_of`: events created later win,
    events created earlier lose. Backfill passes `as_of` = its start minus a clock-skew margin, the same
    for the whole run, so a page redone after a crash writes the very same key (and republishes)."""
    return f"{as_of:012d}#{_RANK_SNAPSHOT}#{run_id}"


def same_second(key_a: str, key_b: str) -> bool:
    return key_a.split("#", 1)[0] == key_b.split("#", 1)[0]
