"""DynamoDB adapter: the normalized object store, the event (de-duplication) records, and reads.

Keys (one table):
  object      pk = OBJ#{object_type}#{object_id}  sk = {account or "platform"}#{live|test}
  event       pk = EVT#{event_id}                 sk = EVT          (TTL `expires_at`, 40 days)
  gsi_customer  gsi1pk = CUS#{account}#{mode}#{customer_id}   gsi1sk = {object_type}#{created}#{object_id}
  gsi_type      gsi2pk = TYPE#{account}#{mode}#{object_type}#{YYYY-MM}   gsi2sk = {created}#{object_id}
The object body is stored zlib-compressed: it is most of the item, and write units are billed per KB.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from stripe_middleware.aws import is_conditional_check_failure
from stripe_middleware.models import StoredObject
from stripe_middleware.table_schema import (
    CUSTOMER_INDEX,
    INDEXES,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
    TYPE_CREATED_INDEX,
)

DEDUP_WINDOW_SECONDS = 40 * 24 * 3600  # Stripe retries 3 days, Events API replays reach back 30
PLATFORM = "platform"
# DynamoDB items are at most 400 KB; leave room for the normalized attributes.
MAX_BODY_BYTES = 350_000


class StoreUnavailableError(Exception):
    """DynamoDB refused or failed the call after the SDK's retries (throttling, outage)."""


class ObjectTooLargeError(Exception):
    """Even compressed, the object does not fit in one item."""


@dataclass(frozen=True)
class UpsertResult:
    applied: bool
    previous_order_key: str | None  # the key of the snapshot the store held before this write


def mode(livemode: bool) -> str:
    return "live" if livemode else "test"


def object_key(object_type: str, object_id: str, account: str | None, livemode: bool) -> dict[str, str]:
    return {"pk": f"OBJ#{object_type}#{object_id}", "sk": f"{account or PLATFORM}#{mode(livemode)}"}


def encode_body(obj: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(obj, separators=(",", ":")).encode(), 6)


def decode_body(body: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(zlib.decompress(body))
    return result


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: give JSON callers ints (amounts are integers in Stripe)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class ObjectStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    def _to_item(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._serializer.serialize(v) for k, v in values.items() if v is not None and v != ""}

    def _from_item(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: _plain(self._deserializer.deserialize(v)) for k, v in item.items()}

    # -- writes -------------------------------------------------------------------------------
    def seen_events(self, event_ids: Iterable[str]) -> set[str]:
        """The ids among `event_ids` already processed and published (one BatchGetItem per 100)."""
        ids = list(dict.fromkeys(event_ids))
        seen: set[str] = set()
        for start in range(0, len(ids), 100):
            keys: list[dict[str, Any]] = [
                {"pk": {"S": f"EVT#{i}"}, "sk": {"S": "EVT"}} for i in ids[start : start + 100]
            ]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ProjectionExpression": "pk"}}
            while request:
                try:
                    response = self._client.batch_get_item(RequestItems=request)
                except Exception as error:
                    raise StoreUnavailableError(f"BatchGetItem failed: {type(error).__name__}") from error
                for item in response.get("Responses", {}).get(self._table, []):
                    seen.add(item["pk"]["S"].removeprefix("EVT#"))
                request = response.get("UnprocessedKeys") or {}
        return seen

    def upsert_if_newer(self, stored: StoredObject) -> UpsertResult:
        """Write the snapshot unless the store already holds one with a greater or equal order key."""
        body = encode_body(stored.object)
        if len(body) > MAX_BODY_BYTES:
            raise ObjectTooLargeError(
                f"{stored.object_type} {stored.object_id}: {len(body)} bytes compressed"
            )
        account = stored.account or PLATFORM
        sort_created = stored.created or stored.event_created
        scope = f"{account}#{mode(stored.livemode)}"
        values = {
            **object_key(stored.object_type, stored.object_id, stored.account, stored.livemode),
            **stored.model_dump(exclude={"object"}),
            "account": account,
            "body": body,
            "stored_at": int(time.time()),
            TYPE_CREATED_INDEX.partition_key: f"TYPE#{scope}#{stored.object_type}#{sort_created[:7]}",
            TYPE_CREATED_INDEX.sort_key: f"{sort_created}#{stored.object_id}",
        }
        if stored.customer_id:
            values[CUSTOMER_INDEX.partition_key] = f"CUS#{scope}#{stored.customer_id}"
            values[CUSTOMER_INDEX.sort_key] = f"{stored.object_type}#{sort_created}#{stored.object_id}"
        try:
            response = self._client.put_item(
                TableName=self._table,
                Item=self._to_item(values),
                ConditionExpression="attribute_not_exists(pk) OR order_key < :order_key",
                ExpressionAttributeValues={":order_key": {"S": stored.order_key}},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as error:
            if is_conditional_check_failure(error):
                old = getattr(error, "response", {}).get("Item", {})
                return UpsertResult(applied=False, previous_order_key=old.get("order_key", {}).get("S"))
            raise StoreUnavailableError(f"PutItem failed: {type(error).__name__}") from error
        old = response.get("Attributes", {})
        return UpsertResult(applied=True, previous_order_key=old.get("order_key", {}).get("S"))

    def record_events(self, event_ids: Sequence[str], *, now: float | None = None) -> None:
        """Mark events as processed and published (the de-duplication records), 25 per BatchWriteItem."""
        expires_at = int((now or time.time()) + DEDUP_WINDOW_SECONDS)
        for start in range(0, len(event_ids), 25):
            writes = [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": f"EVT#{i}"},
                            "sk": {"S": "EVT"},
                            TTL_ATTRIBUTE: {"N": str(expires_at)},
                        }
                    }
                }
                for i in event_ids[start : start + 25]
            ]
            request: dict[str, Any] = {self._table: writes}
            while request:
                try:
                    response = self._client.batch_write_item(RequestItems=request)
                except Exception as error:
                    raise StoreUnavailableError(f"BatchWriteItem failed: {type(error).__name__}") from error
                request = response.get("UnprocessedItems") or {}

    # -- reads --------------------------------------------------------------------------------
    def _public(self, item: dict[str, Any]) -> dict[str, Any]:
        values = self._from_item(item)
        body = values.pop("body", None)
        internal = {
            PARTITION_KEY,
            SORT_KEY,
            "order_key",
            *(k for i in INDEXES for k in (i.partition_key, i.sort_key)),
        }
        for key in internal:
            values.pop(key, None)
        values["object"] = decode_body(bytes(body)) if body is not None else None
        if values.get("account") == PLATFORM:
            values["account"] = None
        return values

    def get_object(
        self, object_type: str, object_id: str, *, account: str | None = None, livemode: bool | None = None
    ) -> list[dict[str, Any]]:
        """Every stored variant of one object (platform/Connect accounts, live/test), optionally filtered."""
        try:
            response = self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"OBJ#{object_type}#{object_id}"}},
            )
        except Exception as error:
            raise StoreUnavailableError(f"Query failed: {type(error).__name__}") from error
        found = [self._public(item) for item in response.get("Items", [])]
        return [
            item
            for item in found
            if (account is None or item.get("account") == account)
            and (livemode is None or item.get("livemode") == livemode)
        ]

    def customer_objects(
        self,
        customer_id: str,
        *,
        account: str | None,
        livemode: bool,
        object_type: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        expression = f"{CUSTOMER_INDEX.partition_key} = :pk"
        values: dict[str, Any] = {":pk": {"S": f"CUS#{account or PLATFORM}#{mode(livemode)}#{customer_id}"}}
        if object_type:
            expression += f" AND begins_with({CUSTOMER_INDEX.sort_key}, :type)"
            values[":type"] = {"S": f"{object_type}#"}
        try:
            response = self._client.query(
                TableName=self._table,
                IndexName=CUSTOMER_INDEX.name,
                KeyConditionExpression=expression,
                ExpressionAttributeValues=values,
                Limit=limit,
            )
        except Exception as error:
            raise StoreUnavailableError(f"Query failed: {type(error).__name__}") from error
        return [self._public(item) for item in response.get("Items", [])]
