"""`ports.Repairer` on the backfill's path: an object reconciliation found missing is stored exactly as a
backfill stores a listed object (normalized with the metadata schema, `upsert_snapshot` under the order
guard, as Stripe's state a clock-skew margin before now), so a newer webhook state is never overwritten,
and it is published as `stripe-middleware.object.backfilled` for the subscribers (signals, warehouse)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from stripe_middleware.backfill.ports import SnapshotStore
from stripe_middleware.backfill.run import CLOCK_SKEW_MARGIN_SECONDS, backfilled_detail
from stripe_middleware.processing.normalize import normalize_snapshot
from stripe_middleware.processing.ports import ObjectTooLargeError
from stripe_middleware.reconciliation.models import ObjectKey
from stripe_middleware.reconciliation.ports import RepairNotPublishedError
from stripe_middleware.shared.contract import DetailType, mode_label
from stripe_middleware.shared.metadata_schema import MetadataSchema
from stripe_middleware.shared.publishing import Publication, Publisher

PUBLISH_ATTEMPTS = 3  # then the run fails and is retried; the retry publishes what this run stored


def repair_run_id(payout_id: str, account: str | None, livemode: bool) -> str:
    """The backfill run id repairs of one payout's reconciliation are stored and published under."""
    scope = f"{account or 'platform'}#{mode_label(livemode)}"
    return "bf_" + hashlib.sha256(f"reconciliation/{scope}/{payout_id}".encode()).hexdigest()[:16]


@dataclass
class SnapshotRepairer:
    store: SnapshotStore
    publisher: Publisher
    schema: MetadataSchema
    clock: Callable[[], float] = time.time

    def repair(
        self, objects: Sequence[dict[str, Any]], *, account: str | None, livemode: bool, run_id: str
    ) -> list[ObjectKey]:
        as_of = int(self.clock()) - CLOCK_SKEW_MARGIN_SECONDS
        stored_keys: list[ObjectKey] = []
        publications: list[Publication] = []
        for obj in objects:
            try:
                stored = normalize_snapshot(
                    obj, self.schema, account=account, livemode=livemode, run_id=run_id, as_of=as_of
                )
                result = self.store.upsert_snapshot(stored)
            except (ValueError, TypeError, ValidationError, ObjectTooLargeError):
                continue  # left as an open gap: the record shows it, an operator looks
            stored_keys.append((stored.object_type, stored.object_id))
            # Not applied: the store holds a newer state (published by whoever wrote it), or this very
            # repair's snapshot from an attempt whose publication failed: that one is published now.
            if result.applied or _stored_by(result.previous_order_key, run_id):
                publications.append(
                    Publication(
                        key=f"{stored.object_type}/{stored.object_id}",
                        detail_type=DetailType.OBJECT_BACKFILLED,
                        detail=backfilled_detail(stored, run_id),
                    )
                )
        for _ in range(PUBLISH_ATTEMPTS):
            if not publications:
                break
            failed = self.publisher.publish(publications)
            publications = [p for p in publications if p.key in failed]
        if publications:
            raise RepairNotPublishedError(
                f"{len(publications)} repaired objects are stored but were not published as backfilled"
            )
        return stored_keys


def _stored_by(order_key: str | None, run_id: str) -> bool:
    """Whether the store's snapshot was written by this repair run (`snapshot_order_key`: as_of#rank#run)."""
    return order_key is not None and order_key.rsplit("#", 1)[-1] == run_id
