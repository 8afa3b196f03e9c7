"""What the read API needs: lookups in the normalized store (StoreUnavailableError when it cannot)."""

from __future__ import annotations

from typing import Any, Protocol


class ReadStore(Protocol):
    def get_object(
        self, object_type: str, object_id: str, *, account: str | None = ..., livemode: bool | None = ...
    ) -> list[dict[str, Any]]:
        """Every stored variant of one object (platform/Connect accounts, live/test), optionally filtered."""
        ...

    def customer_objects(
        self,
        customer_id: str,
        *,
        account: str | None,
        livemode: bool,
        object_type: str | None = ...,
        limit: int = ...,
    ) -> list[dict[str, Any]]: ...


class SignalReader(Protocol):
    def customer_signals(
        self, customer_id: str, *, account: str | None, livemode: bool, limit: int = ...
    ) -> list[dict[str, Any]]:
        """The customer's churn-risk record and kept anomalies (published details), newest first."""
        ...

    def list_signals(
        self,
        *,
        account: str | None,
        livemode: bool,
        since: str,
        before: str | None,
        kind: str | None,
        level: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Signals of one scope with `since <= as_of`, newest first, strictly before the page key
        `before` (`{as_of}#{signal_id}`), at most `limit`; `kind` and `level` filter."""
        ...


class ReconciliationReader(Protocol):
    def reconciliation(self, payout_id: str, *, account: str | None, livemode: bool) -> dict[str, Any] | None:
        """A payout's reconciliation record of one scope, or None."""
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
        """Records of one scope with `since <= as_of` (the payout's creation), newest first, strictly before
        the page key `before` (`{as_of}#{payout_id}`), at most `limit`; `status` filters."""
        ...
