"""Backfill: page through Stripe's list endpoints and put every object into the store and on the bus.

Per (account, type) the cursor advances only after a page is fully stored and published, so a crash or a
timeout redoes at most one page, and the redone page writes the same order key (the run's `as_of`) and
publishes again (at-least-once). Snapshots go through the store's order guard: a newer webhook state is
never overwritten, and an object whose content the store already holds is neither written nor published,
so running a backfill again changes nothing. Every Stripe call takes a slot of the shared rate limit
first (reading.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from stripe_middleware.backfill.options import ALL, PLATFORM, BackfillOptions
from stripe_middleware.backfill.ports import (
    Cursor,
    CursorStore,
    PoisonSink,
    SnapshotStore,
)
from stripe_middleware.backfill.reading import PAGE_SIZE, StripeReader
from stripe_middleware.backfill.resources import RESOURCES, Resource
from stripe_middleware.processing.models import StoredObject
from stripe_middleware.processing.normalize import normalize_snapshot
from stripe_middleware.processing.ports import ObjectTooLargeError
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.shared.metadata_schema import MetadataSchema
from stripe_middleware.shared.publishing import Publication, Publisher, fit_detail
from stripe_middleware.shared.stripe_calls import StripeCallError

# Snapshots rank as Stripe's state this long before the run started: a clock skew between us and
# Stripe can then only make a snapshot lose to an event, never win against a newer one.
CLOCK_SKEW_MARGIN_SECONDS = 60


class PublicationFailedError(UnavailableError):
    """Some backfilled objects were stored but not published: the page is redone (and republished)."""

    code = "publication_failed"


@dataclass
class Backfill:
    """The collaborators of a run (ports), plus the run's identity and the clock."""

    reader: StripeReader
    store: SnapshotStore
    publisher: Publisher
    cursors: CursorStore
    poison: PoisonSink
    schema: MetadataSchema
    livemode: bool
    run_id: str
    as_of: int  # the run's snapshot time (CursorStore.start_run): the same on every resume
    clock: Callable[[], float] = time.time
    on_page: Callable[[Cursor], None] = field(default=lambda cursor: None)


def run_backfill(
    options: BackfillOptions, backfill: Backfill, *, deadline: float | None = None
) -> list[Cursor]:
    """Backfill every (account, type) of `options`; return the cursors (`done` unless the deadline came)."""
    cursors: list[Cursor] = []
    for account in _accounts(options, backfill):
        for resource in options.types:
            if resource.connect_only and account is not None:
                continue  # connected accounts are listed by the platform only
            cursor = backfill.cursors.load(backfill.run_id, account, resource.name) or Cursor(
                run_id=backfill.run_id, account=account, resource=resource.name
            )
            while not cursor.done:
                if deadline is not None and backfill.clock() >= deadline:
                    return [*cursors, cursor]
                _next_page(resource, cursor, options, backfill)
                backfill.cursors.save(cursor)
                backfill.on_page(cursor)
            cursors.append(cursor)
    return cursors


def _accounts(options: BackfillOptions, backfill: Backfill) -> list[str | None]:
    """None for the platform itself, then connected accounts (every one of them for "all")."""
    accounts: list[str | None] = []
    for account in options.accounts:
        if account in (PLATFORM, ALL):
            accounts.append(None)
        if account == ALL:
            accounts += _connected_accounts(backfill)
        elif account != PLATFORM:
            accounts.append(account)
    return list(dict.fromkeys(accounts))


def _connected_accounts(backfill: Backfill) -> list[str]:
    accounts = backfill.reader.all("/v1/accounts", {}, None)
    return [str(a["id"]) for a in accounts if isinstance(a, dict) and isinstance(a.get("id"), str)]


def _next_page(resource: Resource, cursor: Cursor, options: BackfillOptions, backfill: Backfill) -> None:
    params: dict[str, Any] = {**resource.params, "limit": PAGE_SIZE}
    path = resource.path
    if resource.parent is None:
        created = {
            k: v for k, v in (("gte", options.created_gte), ("lte", _lte(options, cursor))) if v is not None
        }
        if created:
            params["created"] = created
    else:  # a child list per parent object: page through the parents, list all children of each
        path = RESOURCES[resource.parent].path
        if cursor.created_lte is not None:  # only the parents' bound: children are filtered by their own
            params["created"] = {"lte": cursor.created_lte}
    try:
        page = backfill.reader.page(path, params, cursor.starting_after, cursor.account)
    except StripeCallError as error:
        if error.failure.code == "resource_missing" and cursor.starting_after:
            # The cursor's object was deleted meanwhile: go on from its `created` time instead.
            cursor.starting_after, cursor.created_lte = None, cursor.oldest_created
            return
        raise
    objects = page.objects
    if resource.parent is not None:
        objects = [
            child
            for parent in page.objects
            if isinstance(parent, dict) and isinstance(parent.get("id"), str)
            for child in _children(resource, str(parent["id"]), options, cursor.account, backfill)
        ]
    _store_and_publish(objects, cursor, backfill)
    cursor.pages += 1
    cursor.objects += len(objects)
    last = page.objects[-1] if page.objects else None
    if isinstance(last, dict) and isinstance(last.get("id"), str):
        cursor.starting_after = last["id"]
        if isinstance(last.get("created"), int):
            cursor.oldest_created = last["created"]
    cursor.done = not page.has_more or not page.objects


def _lte(options: BackfillOptions, cursor: Cursor) -> int | None:
    bounds = [b for b in (options.created_lte, cursor.created_lte) if b is not None]
    return min(bounds) if bounds else None


def _children(
    resource: Resource, parent_id: str, options: BackfillOptions, account: str | None, backfill: Backfill
) -> list[dict[str, Any]]:
    try:
        children = backfill.reader.all(resource.path.format(parent=parent_id), resource.params, account)
    except StripeCallError as error:
        if error.failure.code == "resource_missing":
            return []  # the parent was deleted after its page was read: it has nothing left to list
        raise
    return [c for c in children if _in_range(c, options)]


def _in_range(obj: Any, options: BackfillOptions) -> bool:
    created = obj.get("created") if isinstance(obj, dict) else None
    if not isinstance(created, int):
        return True  # let the store (or the poison sink) judge it
    return (options.created_gte is None or created >= options.created_gte) and (
        options.created_lte is None or created <= options.created_lte
    )


def _store_and_publish(objects: list[Any], cursor: Cursor, backfill: Backfill) -> None:
    publications = []
    for obj in objects:
        try:
            stored = _snapshot(obj, cursor.account, backfill)
            result = backfill.store.upsert_snapshot(stored)
        except (ValueError, TypeError, ValidationError, ObjectTooLargeError) as error:
            backfill.poison.put(_poison_record(obj, cursor, error))
            cursor.poison += 1
            continue
        if result.applied or result.previous_order_key == stored.order_key:  # new, changed, or redone
            cursor.stored += result.applied
            publications.append(
                Publication(
                    key=f"{stored.object_type}/{stored.object_id}",
                    detail_type=DetailType.OBJECT_BACKFILLED,
                    detail=backfilled_detail(stored, backfill.run_id),
                )
            )
    failed = backfill.publisher.publish(publications) if publications else set()
    if failed:
        raise PublicationFailedError(f"{len(failed)} backfilled objects were not published")


def _snapshot(obj: Any, account: str | None, backfill: Backfill) -> StoredObject:
    if (
        not isinstance(obj, dict)
        or not isinstance(obj.get("id"), str)
        or not isinstance(obj.get("object"), str)
    ):
        raise ValueError("not a Stripe object (no id or object type)")
    livemode = obj["livemode"] if isinstance(obj.get("livemode"), bool) else backfill.livemode
    return normalize_snapshot(
        obj, backfill.schema, account=account, livemode=livemode, run_id=backfill.run_id, as_of=backfill.as_of
    )


def _poison_record(obj: Any, cursor: Cursor, error: Exception) -> dict[str, Any]:
    object_id = obj.get("id") if isinstance(obj, dict) else None
    return {
        "kind": "backfill_poison",
        "run_id": cursor.run_id,
        "account": cursor.account,
        "resource": cursor.resource,
        "object_id": object_id,
        "reason": f"{type(error).__name__}: {error}"[:1000],
        "object": obj,
    }


def backfilled_detail(stored: StoredObject, run_id: str) -> dict[str, Any]:
    """`detail` of `stripe-middleware.object.backfilled` (schema: events/schemas/object-backfilled...)."""
    detail: dict[str, Any] = {
        "run_id": run_id,
        "as_of": stored.event_created,
        "object_type": stored.object_type,
        "object_id": stored.object_id,
        "account": stored.account,
        "livemode": stored.livemode,
        "normalized": stored.model_dump(mode="json", exclude={"object"}),
        "object": stored.object,
        "flags": {"object_truncated": False},
    }
    return fit_detail(detail)
