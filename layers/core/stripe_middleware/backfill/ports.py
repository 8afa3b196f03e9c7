"""What a backfill needs: Stripe's list pages, the store's snapshot write, cursors that survive a crash,
a place for objects that cannot be stored, and the publisher and rate limiter every context shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from stripe_middleware.processing.models import StoredObject
from stripe_middleware.processing.ports import UpsertResult
from stripe_middleware.shared.errors import MiddlewareError, UnavailableError


class BackfillFailedError(MiddlewareError):
    """Stripe refused the backfill for good (wrong key, no permission): nothing more can be read.

    The cursor stays at the last page fully stored, so a run after the fix resumes there."""


class StripeUnavailableError(UnavailableError):
    """Stripe kept failing (5xx, network) past every attempt: the same page may be asked again later."""

    code = "stripe_unavailable"


class RetryLaterError(UnavailableError):
    """What a backfill step raises for any outage: the one error name the state machine retries."""

    code = "retry_later"


@dataclass(frozen=True)
class Page:
    objects: list[dict[str, Any]]
    has_more: bool


class StripeLister(Protocol):
    def list_page(
        self, path: str, params: dict[str, Any], *, starting_after: str | None, stripe_account: str | None
    ) -> Page:
        """One page of a list endpoint, newest first; StripeCallError when Stripe answers otherwise."""
        ...


@dataclass
class Cursor:
    """How far one (account, type) of a run has got: the last object whose page is fully stored."""

    run_id: str
    account: str | None
    resource: str
    starting_after: str | None = None  # the last object id of the last stored page (of the parent list)
    done: bool = False
    pages: int = 0
    objects: int = 0
    stored: int = 0  # new or changed in the store
    poison: int = 0
    oldest_created: int | None = None  # the `created` of the last object read (lists run newest first)
    created_lte: int | None = None  # set when the cursor's object was deleted: go on by time instead


class CursorStore(Protocol):
    def start_run(self, run_id: str, as_of: int) -> int:
        """Record a run once; return its `as_of` (the first start's, when the run is resumed)."""
        ...

    def load(self, run_id: str, account: str | None, resource: str) -> Cursor | None: ...
    def save(self, cursor: Cursor) -> None: ...
    def cursors(self, run_id: str) -> list[Cursor]: ...


class SnapshotStore(Protocol):
    def upsert_snapshot(self, stored: StoredObject) -> UpsertResult:
        """Write unless the store holds a newer state or the same content (StoreUnavailableError)."""
        ...


class PoisonSink(Protocol):
    def put(self, record: dict[str, Any]) -> None:
        """Keep an object that cannot be stored, with its id and the reason, for a later look."""
        ...
