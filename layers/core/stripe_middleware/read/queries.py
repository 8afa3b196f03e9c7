"""Internal read API over the store: validation of ids and query parameters, and the answers.

Each query returns the 200 body or raises RejectedError (400/404/409) for the handler to map.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stripe_middleware.read.ports import ReadStore, ReconciliationReader, SignalReader
from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.errors import NotFoundError, RejectedError

OBJECT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
OBJECT_ID = re.compile(r"^[A-Za-z0-9_:\-]{1,255}$")
ACCOUNT_ID = re.compile(r"^acct_[A-Za-z0-9]{1,64}$")
SIGNAL_KIND = re.compile(r"^[a-z][a-z_]{0,39}$")
PAYOUT_ID = re.compile(r"^po_[A-Za-z0-9]{1,64}$")
RECONCILIATION_STATUSES = ("balanced", "discrepancies", "repaired", "unreconcilable_by_stripe")
LEVELS = ("low", "medium", "high")
CHURN_RISK = "churn_risk"
DEFAULT_SINCE_DAYS = 90
OPEN_DAYS = 90  # an anomaly is open for 90 days of event time after it was raised
MAX_SINCE_DAYS = 731  # how far back `since` may reach: each month is a query
PAGE = (50, 100)  # default and largest `limit`


def _filters(query: Mapping[str, str]) -> tuple[str | None, bool | None]:
    account = query.get("account") or None
    if account is not None and not ACCOUNT_ID.match(account):
        raise RejectedError("invalid_account", "account must be a Stripe Connect account id (acct_...)")
    raw = query.get("livemode")
    if raw not in (None, "", "true", "false"):
        raise RejectedError("invalid_livemode", "livemode must be true or false")
    return account, None if not raw else raw == "true"


def get_object(
    store: ReadStore, object_type: str, object_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    if not OBJECT_TYPE.match(object_type):
        raise RejectedError("invalid_object_type", "object_type must look like customer or checkout.session")
    if not OBJECT_ID.match(object_id):
        raise RejectedError("invalid_object_id", "object_id must be 1-255 letters, digits, _, - or :")
    account, livemode = _filters(query)
    found = store.get_object(object_type, object_id, account=account, livemode=livemode)
    if not found:
        raise NotFoundError(f"no {object_type} {object_id} in the store")
    if len(found) > 1:
        variants = [{"account": f["account"], "livemode": f["livemode"]} for f in found]
        raise RejectedError("ambiguous", "give account and/or livemode", status=409, variants=variants)
    return found[0]


def _customer_id(customer_id: str) -> str:
    if not (customer_id.startswith("cus_") and OBJECT_ID.match(customer_id)):
        raise RejectedError("invalid_customer_id", "customer_id must be a Stripe customer id (cus_...)")
    return customer_id


def _modes(livemode: bool | None) -> list[bool]:
    return [livemode] if livemode is not None else [False, True]


def customer_objects(store: ReadStore, customer_id: str, query: Mapping[str, str]) -> dict[str, Any]:
    _customer_id(customer_id)
    object_type = query.get("type") or None
    if object_type is not None and not OBJECT_TYPE.match(object_type):
        raise RejectedError("invalid_object_type", "type must look like invoice or checkout.session")
    account, livemode = _filters(query)
    objects = [
        item
        for mode in _modes(livemode)
        for item in store.customer_objects(
            customer_id, account=account, livemode=mode, object_type=object_type
        )
    ]
    return {"customer_id": customer_id, "objects": objects}


def customer_signals(
    reader: SignalReader, customer_id: str, query: Mapping[str, str], *, now: float | None = None
) -> dict[str, Any]:
    """The customer's current churn risk (with its reasons) and open anomalies (raised, in event time, in the
    last 90 days)."""
    account, livemode = _filters(query)
    found = [
        detail
        for mode in _modes(livemode)
        for detail in reader.customer_signals(_customer_id(customer_id), account=account, livemode=mode)
    ]
    churn = [d for d in found if d["kind"] == CHURN_RISK]
    opened_since = iso((now if now is not None else time.time()) - OPEN_DAYS * 24 * 3600) or ""
    return {
        "customer_id": customer_id,
        "churn_risk": churn,  # one per mode the customer has (usually one)
        "anomalies": sorted(
            (d for d in found if d["kind"] != CHURN_RISK and d["as_of"] >= opened_since),
            key=lambda d: (d["as_of"], d["signal_id"]),
            reverse=True,
        ),
    }


def list_signals(
    reader: SignalReader, query: Mapping[str, str], *, now: float | None = None
) -> dict[str, Any]:
    """Signals newest first, filtered by kind, level and `since` (event time), paginated by `next`."""
    account, livemode = _filters(query)
    kind = query.get("kind") or None
    if kind is not None and not SIGNAL_KIND.match(kind):
        raise RejectedError("invalid_kind", "kind must be a signal kind such as churn_risk or card_testing")
    level = query.get("level") or None
    if level is not None and level not in LEVELS:
        raise RejectedError("invalid_level", "level must be low, medium or high")
    since = _since(query.get("since"), now if now is not None else time.time())
    limit = _limit(query.get("limit"))
    before = _cursor(query.get("cursor"))
    found = sorted(
        (
            detail
            for mode in _modes(livemode)
            for detail in reader.list_signals(
                account=account,
                livemode=mode,
                since=since,
                before=before,
                kind=kind,
                level=level,
                limit=limit,
            )
        ),
        key=_page_key,
        reverse=True,
    )[:limit]
    more = len(found) == limit
    return {
        "signals": found,
        "next": base64.urlsafe_b64encode(_page_key(found[-1]).encode()).decode() if more else None,
    }


def _page_key(detail: Mapping[str, Any]) -> str:
    return f"{detail['as_of']}#{detail['signal_id']}"


def get_reconciliation(
    reader: ReconciliationReader, payout_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """A payout's reconciliation record: totals per reporting category, discrepancies with their ids."""
    if not PAYOUT_ID.match(payout_id):
        raise RejectedError("invalid_payout_id", "payout_id must be a Stripe payout id (po_...)")
    account, livemode = _filters(query)
    found = [
        record
        for mode in _modes(livemode)
        if (record := reader.reconciliation(payout_id, account=account, livemode=mode)) is not None
    ]
    if not found:
        raise NotFoundError(f"payout {payout_id} has not been reconciled")
    if len(found) > 1:
        variants = [{"account": r["account"], "livemode": r["livemode"]} for r in found]
        raise RejectedError("ambiguous", "give livemode", status=409, variants=variants)
    return found[0]


def list_reconciliations(
    reader: ReconciliationReader, query: Mapping[str, str], *, now: float | None = None
) -> dict[str, Any]:
    """Reconciliation records newest payout first, filtered by status and `since` (the payout's creation),
    paginated by `next`."""
    account, livemode = _filters(query)
    status = query.get("status") or None
    if status is not None and status not in RECONCILIATION_STATUSES:
        raise RejectedError("invalid_status", f"status must be one of {', '.join(RECONCILIATION_STATUSES)}")
    since = _since(query.get("since"), now if now is not None else time.time())
    limit = _limit(query.get("limit"))
    before = _cursor(query.get("cursor"))
    found = sorted(
        (
            record
            for mode in _modes(livemode)
            for record in reader.list_reconciliations(
                account=account, livemode=mode, since=since, before=before, status=status, limit=limit
            )
        ),
        key=_payout_key,
        reverse=True,
    )[:limit]
    more = len(found) == limit
    return {
        "reconciliations": found,
        "next": base64.urlsafe_b64encode(_payout_key(found[-1]).encode()).decode() if more else None,
    }


def _payout_key(record: Mapping[str, Any]) -> str:
    return f"{record['as_of']}#{record['payout_id']}"


def _since(raw: str | None, now: float) -> str:
    if not raw:
        return iso(now - DEFAULT_SINCE_DAYS * 24 * 3600) or ""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        since = moment.timestamp()
        if since < now - MAX_SINCE_DAYS * 24 * 3600:
            raise ValueError("too far back")
        return iso(since) or ""
    except (ValueError, OverflowError):
        raise RejectedError(
            "invalid_since",
            f"since must be an ISO 8601 date or time within the last {MAX_SINCE_DAYS} days, e.g. 2026-01-31",
        ) from None


def _limit(raw: str | None) -> int:
    default, largest = PAGE
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= largest:
        raise RejectedError("invalid_limit", f"limit must be a whole number from 1 to {largest}")
    return int(raw)


def _cursor(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        key = base64.urlsafe_b64decode(raw.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        key = ""
    if not re.match(r"^\d{4}-\d{2}-\d{2}T[^#]+#[A-Za-z0-9_]+$", key):
        raise RejectedError("invalid_cursor", "cursor must be the `next` of a previous page")
    return key
