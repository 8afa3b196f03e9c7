"""`ports.PayoutSource` on the backfill's `StripeReader`: every call takes a slot of the shared rate limit
(the read share), 429s wait, 5xx and network errors are retried, anything else stops the run with Stripe's
reason. Its lister must answer a GET of one object as a one-object page (adapters/stripe/reader.py).

A payout's transactions are listed with `?payout=` and `expand[]=data.source`, Stripe's documented way to
get each transaction's source object in the same page (no call per charge); the listing is the only
association used: a transaction's own `payout` field is not there on every row (Airbyte PR #46499).
"""

from __future__ import annotations

from typing import Any

from stripe_middleware.backfill.ports import Page
from stripe_middleware.backfill.reading import PAGE_SIZE, StripeReader
from stripe_middleware.reconciliation.ports import UnknownPayoutError
from stripe_middleware.shared.stripe_calls import StripeCallError

TRANSACTIONS = "/v1/balance_transactions"
PAYOUTS = "/v1/payouts"


class StripePayouts:
    def __init__(self, reader: StripeReader) -> None:
        self._reader = reader

    def payout(self, payout_id: str, *, account: str | None) -> dict[str, Any]:
        found = self.retrieve(f"{PAYOUTS}/{payout_id}", account=account)
        if found is None or found.get("object") != "payout":
            where = f"connected account {account}" if account else "the platform account"
            raise UnknownPayoutError(f"Stripe has no payout {payout_id} in {where}")
        return found

    def transactions_page(self, payout_id: str, *, account: str | None, starting_after: str | None) -> Page:
        params = {"payout": payout_id, "limit": PAGE_SIZE, "expand": ["data.source"]}
        return self._reader.page(TRANSACTIONS, params, starting_after, account)

    def payouts_page(
        self, *, account: str | None, created_gte: int, created_lte: int, starting_after: str | None
    ) -> Page:
        params = {"created": {"gte": created_gte, "lte": created_lte}, "limit": PAGE_SIZE}
        return self._reader.page(PAYOUTS, params, starting_after, account)

    def created_transactions_page(
        self, *, account: str | None, created_gte: int, created_lte: int, starting_after: str | None
    ) -> Page:
        params = {"created": {"gte": created_gte, "lte": created_lte}, "limit": PAGE_SIZE}
        return self._reader.page(TRANSACTIONS, params, starting_after, account)

    def retrieve(self, path: str, *, account: str | None) -> dict[str, Any] | None:
        try:
            page = self._reader.page(path, {}, None, account)
        except StripeCallError as error:
            if error.failure.code == "resource_missing":
                return None
            raise
        found = page.objects[0] if page.objects else None
        return found if isinstance(found, dict) else None
