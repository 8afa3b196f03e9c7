"""What reconciliation needs: Stripe's payouts and balance transactions, the store's objects, a place for
its records, a way to repair the store, and the publisher every context shares.

Every Stripe method is one Stripe call and every store method one DynamoDB request (a BatchGetItem of at
most MAX_BATCH keys, one Query page), so a run counts exactly what it spends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stripe_middleware.backfill.ports import Page
from stripe_middleware.reconciliation.models import ObjectKey, Reconciliation, StoreEntry
from stripe_middleware.shared.errors import MiddlewareError, NotFoundError, UnavailableError

MAX_BATCH = 100  # keys per BatchGetItem (DynamoDB's limit)


class ReconciliationError(MiddlewareError):
    """Base of the errors reconciliation raises on purpose (callers catch the meaning below)."""


class UnknownPayoutError(NotFoundError):
    """Stripe has no such payout in this account and mode (404 on the read API, a clear CLI message)."""


class ReconciliationNotPublishedError(UnavailableError):
    """The bus refused some details: the record says which went out, so the next run sends the rest."""

    code = "reconciliation_not_published"


class RecordConflictError(UnavailableError):
    """Another run wrote this payout's record meanwhile: run again (it starts from that record)."""

    code = "reconciliation_conflict"


class RepairNotPublishedError(UnavailableError):
    """Repaired objects are stored, but the bus refused their `object.backfilled` details."""

    code = "repair_not_published"


class PayoutSource(Protocol):
    """The Stripe side, per account (None: the platform). Stripe's refusals are raised as the backfill's
    (StripeUnavailableError after retries, BackfillFailedError for a key Stripe refuses)."""

    def payout(self, payout_id: str, *, account: str | None) -> dict[str, Any]:
        """`GET /v1/payouts/{id}` (UnknownPayoutError)."""
        ...

    def transactions_page(self, payout_id: str, *, account: str | None, starting_after: str | None) -> Page:
        """One page of `GET /v1/balance_transactions?payout=` (100 a page), each `source` expanded."""
        ...

    def payouts_page(
        self, *, account: str | None, created_gte: int, created_lte: int, starting_after: str | None
    ) -> Page:
        """One page of `GET /v1/payouts` created in the range, newest first."""
        ...

    def created_transactions_page(
        self, *, account: str | None, created_gte: int, created_lte: int, starting_after: str | None
    ) -> Page:
        """One page of `GET /v1/balance_transactions` created in the range (sources not expanded)."""
        ...

    def retrieve(self, path: str, *, account: str | None) -> dict[str, Any] | None:
        """`GET {path}` of one object (`/v1/customers/cus_1`); None when Stripe has no such object."""
        ...


class StoredObjects(Protocol):
    """The store side: the normalized attributes of stored objects (StoreUnavailableError)."""

    def entries(self, keys: Sequence[ObjectKey], *, account: str | None, livemode: bool) -> list[StoreEntry]:
        """The stored objects among at most MAX_BATCH keys (one BatchGetItem); absent keys are left out."""
        ...

    def succeeded_page(
        self,
        object_type: str,
        month: str,
        *,
        account: str | None,
        livemode: bool,
        created_gte: str,
        created_lte: str,
        start: Any | None,
    ) -> tuple[list[StoreEntry], Any | None]:
        """One Query page of the objects of a type created in `month` (`YYYY-MM`) within the ISO range
        whose status is `succeeded`, and where the next page starts (None: no more)."""
        ...


@dataclass(frozen=True)
class Published:
    """What of a record is on the bus already: its discrepancies, and the record as `completed`."""

    discrepancies: frozenset[str] = frozenset()
    completed: str | None = None  # the fingerprint of the record last published as completed


@dataclass(frozen=True)
class KeptRecord:
    record: Reconciliation
    published: Published
    revision: int  # increases by one per write: a write expecting another revision is refused


class ReconciliationStore(Protocol):
    def get(self, payout_id: str, *, account: str | None, livemode: bool) -> KeptRecord | None:
        """The payout's record in this scope, if any (StoreUnavailableError)."""
        ...

    def put(self, record: Reconciliation, published: Published, *, revision: int) -> None:
        """Write the record as `revision` (1 for the first write): RecordConflictError when the kept one is
        not `revision - 1` (another run wrote meanwhile), StoreUnavailableError. One item: all or nothing."""
        ...


class ReconciliationReader(Protocol):
    """The read API's side of the records."""

    def reconciliation(self, payout_id: str, *, account: str | None, livemode: bool) -> dict[str, Any] | None:
        """The payout's record (`Reconciliation.to_record()`), or None."""
        ...

    def list_reconciliations(
        self,
        *,
        account: str | None,
        livemode: bool,
        since: str,
        before: str | None,
        status: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Records of one scope whose payout was created at or after `since` (ISO 8601), newest first,
        strictly before the page key `before` (`{as_of}#{payout_id}`), at most `limit`; `status` filters."""
        ...


class Repairer(Protocol):
    def repair(
        self, objects: Sequence[dict[str, Any]], *, account: str | None, livemode: bool, run_id: str
    ) -> list[ObjectKey]:
        """Store Stripe's objects the way a backfill does (normalized, under the order guard, so a newer
        webhook state is never overwritten) and publish them as `object.backfilled`; return the keys of
        the objects that are in the store now (ObjectTooLargeError and bad objects are left out)."""
        ...
