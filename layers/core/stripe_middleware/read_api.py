"""Internal read API over the store: validation of ids and query parameters, and the answers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

OBJECT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
OBJECT_ID = re.compile(r"^[A-Za-z0-9_:\-]{1,255}$")
ACCOUNT_ID = re.compile(r"^acct_[A-Za-z0-9]{1,64}$")


class ReadStore(Protocol):
    def get_object(
        self, object_type: str, object_id: str, *, account: str | None = ..., livemode: bool | None = ...
    ) -> list[dict[str, Any]]: ...

    def customer_objects(
        self,
        customer_id: str,
        *,
        account: str | None,
        livemode: bool,
        object_type: str | None = ...,
        limit: int = ...,
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def _error(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"error": code, "message": message})


def _filters(query: Mapping[str, str]) -> tuple[str | None, bool | None] | Answer:
    account = query.get("account") or None
    if account is not None and not ACCOUNT_ID.match(account):
        return _error(400, "invalid_account", "account must be a Stripe Connect account id (acct_...)")
    raw = query.get("livemode")
    if raw not in (None, "", "true", "false"):
        return _error(400, "invalid_livemode", "livemode must be true or false")
    return account, None if not raw else raw == "true"


def get_object(store: ReadStore, object_type: str, object_id: str, query: Mapping[str, str]) -> Answer:
    if not OBJECT_TYPE.match(object_type):
        return _error(400, "invalid_object_type", "object_type must look like customer or checkout.session")
    if not OBJECT_ID.match(object_id):
        return _error(400, "invalid_object_id", "object_id must be 1-255 letters, digits, _, - or :")
    filters = _filters(query)
    if isinstance(filters, Answer):
        return filters
    account, livemode = filters
    found = store.get_object(object_type, object_id, account=account, livemode=livemode)
    if not found:
        return _error(404, "not_found", f"no {object_type} {object_id} in the store")
    if len(found) > 1:
        variants = [{"account": f["account"], "livemode": f["livemode"]} for f in found]
        return Answer(
            409, {"error": "ambiguous", "message": "give account and/or livemode", "variants": variants}
        )
    return Answer(200, found[0])


def customer_objects(store: ReadStore, customer_id: str, query: Mapping[str, str]) -> Answer:
    if not (customer_id.startswith("cus_") and OBJECT_ID.match(customer_id)):
        return _error(400, "invalid_customer_id", "customer_id must be a Stripe customer id (cus_...)")
    object_type = query.get("type") or None
    if object_type is not None and not OBJECT_TYPE.match(object_type):
        return _error(400, "invalid_object_type", "type must look like invoice or checkout.session")
    filters = _filters(query)
    if isinstance(filters, Answer):
        return filters
    account, livemode = filters
    modes = [livemode] if livemode is not None else [False, True]
    objects = [
        item
        for mode in modes
        for item in store.customer_objects(
            customer_id, account=account, livemode=mode, object_type=object_type
        )
    ]
    return Answer(200, {"customer_id": customer_id, "objects": objects})
