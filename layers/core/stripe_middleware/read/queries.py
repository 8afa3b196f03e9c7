"""Internal read API over the store: validation of ids and query parameters, and the answers.

Each query returns the 200 body or raises RejectedError (400/404/409) for the handler to map.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stripe_middleware.read.ports import ReadStore
from stripe_middleware.shared.errors import NotFoundError, RejectedError

OBJECT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
OBJECT_ID = re.compile(r"^[A-Za-z0-9_:\-]{1,255}$")
ACCOUNT_ID = re.compile(r"^acct_[A-Za-z0-9]{1,64}$")


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


def customer_objects(store: ReadStore, customer_id: str, query: Mapping[str, str]) -> dict[str, Any]:
    if not (customer_id.startswith("cus_") and OBJECT_ID.match(customer_id)):
        raise RejectedError("invalid_customer_id", "customer_id must be a Stripe customer id (cus_...)")
    object_type = query.get("type") or None
    if object_type is not None and not OBJECT_TYPE.match(object_type):
        raise RejectedError("invalid_object_type", "type must look like invoice or checkout.session")
    account, livemode = _filters(query)
    modes = [livemode] if livemode is not None else [False, True]
    objects = [
        item
        for mode in modes
        for item in store.customer_objects(
            customer_id, account=account, livemode=mode, object_type=object_type
        )
    ]
    return {"customer_id": customer_id, "objects": objects}
