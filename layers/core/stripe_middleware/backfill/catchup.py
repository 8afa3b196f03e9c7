"""Catch-up: heal missed webhooks from Stripe's Events API.

Each run lists `GET /v1/events` from its cursor (minus an overlap) up to a little before now, one hour-long
window at a time, and puts every event the store has not processed into the events queue, as the webhook
would have (source `events_api`). The processor de-duplicates by event id, so overlaps and reruns are
free; the cursor moves only after a whole window is enqueued, so a crash redoes at most one window.

Events younger than the grace period are left to the next run: their webhook is probably in flight, and
counting them as recovered would make the metric an operator watches (`CatchupEventsRecovered`, ~0 on a
healthy day) cry wolf. The Events API keeps 30 days: a cursor older than that is a gap nothing here can
heal, reported loudly (metric, log, `stripe-middleware.catchup.gap` on the bus) with the backfill to run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from stripe_middleware.backfill.reading import StripeReader
from stripe_middleware.ingest.ports import EventQueue
from stripe_middleware.ingest.webhook import queued_event
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.shared.publishing import Publication, Publisher

EVENTS_API_RETENTION_SECONDS = 30 * 24 * 3600
OVERLAP_SECONDS = 300  # listed again before the cursor: Stripe's list is not instantly consistent
WINDOW_SECONDS = 3600  # the cursor advances a window at a time, so a long catch-up is resumable
FIRST_RUN_LOOKBACK_SECONDS = 24 * 3600  # without a cursor or --since: the last day
DEFAULT_GRACE_SECONDS = 60


class UnpublishedGapError(UnavailableError):
    """The bus refused the gap report: the cursor stays, so the next run reports the gap again."""

    code = "publication_failed"


class CatchupCursorStore(Protocol):
    def load(self, livemode: bool) -> int | None:
        """The `created` time up to which every event has been enqueued (None before the first run)."""
        ...

    def advance(self, livemode: bool, until: int) -> None:
        """Move the cursor forward to `until`; never back (two overlapping runs cannot rewind it)."""
        ...


class SeenEvents(Protocol):
    def seen_events(self, event_ids: list[str]) -> set[str]:
        """The ids the processor has already processed (StoreUnavailableError)."""
        ...


@dataclass
class Catchup:
    reader: StripeReader
    seen: SeenEvents
    queue: EventQueue
    cursors: CatchupCursorStore
    publisher: Publisher
    livemode: bool
    grace_seconds: int = DEFAULT_GRACE_SECONDS
    clock: Callable[[], float] = time.time
    on_window: Callable[[CatchupResult], None] = field(default=lambda result: None)


@dataclass
class CatchupResult:
    since: int  # where this run started (before the overlap)
    until: int  # the cursor now: every event created up to here is in the queue or processed
    target: int  # now minus the grace period: where the run was going
    listed: int = 0
    recovered: int = 0  # enqueued because the store had not processed them
    gap: dict[str, Any] | None = None  # the `catchup.gap` detail when the cursor had fallen out of range

    @property
    def done(self) -> bool:
        return self.until >= self.target


def run_catchup(
    catchup: Catchup, *, since: int | None = None, deadline: float | None = None
) -> CatchupResult:
    """Enqueue every event since `since` (default: the cursor) not yet processed; stop at the deadline."""
    now = int(catchup.clock())
    target = now - catchup.grace_seconds
    cursor = catchup.cursors.load(catchup.livemode)
    start = since if since is not None else cursor if cursor is not None else now - FIRST_RUN_LOOKBACK_SECONDS
    result = CatchupResult(since=start, until=start, target=target)
    oldest_available = now - EVENTS_API_RETENTION_SECONDS + OVERLAP_SECONDS
    if start < oldest_available:
        result.gap = gap_detail(start, oldest_available, catchup.livemode)
        failed = catchup.publisher.publish(
            [Publication(key="gap", detail_type=DetailType.CATCHUP_GAP, detail=result.gap)]
        )
        if failed:
            raise UnpublishedGapError("the catch-up gap could not be published; the next run reports it")
        result.until = start = oldest_available
    low = start
    enqueued: set[str] = set()  # by this run: the next window's overlap may list them again, unprocessed
    while low < target:
        if deadline is not None and catchup.clock() >= deadline:
            break
        high = min(low + WINDOW_SECONDS, target)
        created = {"gte": max(low - OVERLAP_SECONDS, 0), "lte": high}
        events = catchup.reader.all("/v1/events", {"created": created}, None)
        result.listed += len(events)
        result.recovered += _enqueue_unseen(catchup, events, enqueued)
        catchup.cursors.advance(catchup.livemode, high)
        result.until = low = high
        catchup.on_window(result)
    return result


def _enqueue_unseen(catchup: Catchup, events: list[Any], enqueued: set[str]) -> int:
    """Enqueue, oldest first, the events neither processed nor enqueued by this run; return how many."""
    valid = [e for e in events if isinstance(e, dict) and isinstance(e.get("id"), str)]
    valid = [e for e in valid if e["id"] not in enqueued]
    seen = catchup.seen.seen_events([e["id"] for e in valid]) if valid else set()
    unseen = {e["id"]: e for e in valid if e["id"] not in seen}  # one message per id, however listed
    for event in sorted(unseen.values(), key=lambda e: (e.get("created") or 0, e["id"])):
        text = json.dumps(event, separators=(",", ":"))
        catchup.queue.enqueue(queued_event(text, event, route="account", source="events_api"))
        enqueued.add(event["id"])
    return len(unseen)


def gap_detail(cursor: int, oldest_available: int, livemode: bool) -> dict[str, Any]:
    """`detail` of `stripe-middleware.catchup.gap` (schema: events/schemas/catchup-gap.detail.schema.json)."""
    day = datetime.fromtimestamp(cursor, UTC).strftime("%Y-%m-%d")
    return {
        "livemode": livemode,
        "missed_from": _iso(cursor),
        "missed_until": _iso(oldest_available),
        "reason": "the catch-up cursor is older than the 30 days Stripe's Events API keeps",
        "suggestion": f"stripe-middleware backfill --created-gte {day}",
    }


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
