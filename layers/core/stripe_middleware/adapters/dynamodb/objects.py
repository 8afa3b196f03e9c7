"""DynamoDB adapter of the normalized store: objects under the order guard, de-duplication records, reads.

Implements `processing.ports.Store` and `read.ports.ReadStore`. The object body is stored
zlib-compressed: it is most of the item, and write units are billed per KB.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from stripe_middleware.adapters.aws import is_conditional_check_failure
from stripe_middleware.adapters.dynamodb.paging import batch_get, query_page, store_unavailable
from stripe_middleware.adapters.dynamodb.table import (
    CUSTOMER_INDEX,
    KEY_ATTRIBUTES,
    PLATFORM,
    TTL_ATTRIBUTE,
    customer_index_keys,
    customer_partition,
    event_id_of,
    event_key,
    object_key,
    object_partition,
    string_key,
    type_index_keys,
)
from stripe_middleware.processing.models import StoredObject
from stripe_middleware.processing.ports import ObjectTooLargeError, UpsertResult

DEDUP_WINDOW_SECONDS = 40 * 24 * 3600  # Stripe retries 3 days, Events API replays reach back 30
# DynamoDB items are at most 400 KB; leave room for the normalized attributes.
MAX_BODY_BYTES = 350_000


def decode_body(body: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(zlib.decompress(body))
    return result


def plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: give JSON callers ints (amounts are integers in Stripe)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
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
        return {k: plain(self._deserializer.deserialize(v)) for k, v in item.items()}

    # -- writes -------------------------------------------------------------------------------
    def seen_events(self, event_ids: Iterable[str]) -> set[str]:
        """The ids among `event_ids` already processed and published (one BatchGetItem per 100)."""
        keys = [event_key(i) for i in dict.fromkeys(event_ids)]
        items = batch_get(self._client, self._table, keys, projection="pk")
        return {event_id_of(item["pk"]["S"]) for item in items}

    def upsert_if_newer(self, stored: StoredObject) -> UpsertResult:
        """Write the snapshot unless the store already holds one with a greater or equal order key."""
        return self._put(stored, "attribute_not_exists(pk) OR order_key < :order_key")

    def upsert_snapshot(self, stored: StoredObject) -> UpsertResult:
        """Like `upsert_if_newer`, and not when the stored object has the same content (a repeated backfill
        writes and publishes nothing)."""
        return self._put(
            stored,
            "attribute_not_exists(pk) OR (order_key < :order_key AND "
            "(attribute_not_exists(content_hash) OR content_hash <> :content_hash))",
        )

    def _put(self, stored: StoredObject, condition: str) -> UpsertResult:
        text = json.dumps(stored.object, separators=(",", ":"), sort_keys=True).encode()
        content_hash = hashlib.sha256(text).hexdigest()[:32]
        body = zlib.compress(text, 6)
        if len(body) > MAX_BODY_BYTES:
            raise ObjectTooLargeError(
                f"{stored.object_type} {stored.object_id}: {len(body)} bytes compressed"
            )
        account, livemode = stored.account, stored.livemode
        created = stored.created or stored.event_created
        values = {
            **object_key(stored.object_type, stored.object_id, account, livemode),
            **stored.model_dump(exclude={"object"}),
            "account": account or PLATFORM,
            "body": body,
            "content_hash": content_hash,
            "stored_at": int(time.time()),
            **type_index_keys(
                account, livemode, object_type=stored.object_type, created=created, object_id=stored.object_id
            ),
        }
        if stored.customer_id:
            values |= customer_index_keys(
                account,
                livemode,
                customer_id=stored.customer_id,
                object_type=stored.object_type,
                created=created,
                object_id=stored.object_id,
            )
        try:
            response = self._client.put_item(
                TableName=self._table,
                Item=self._to_item(values),
                ConditionExpression=condition,
                ExpressionAttributeValues={
                    ":order_key": {"S": stored.order_key},
                    **({":content_hash": {"S": content_hash}} if ":content_hash" in condition else {}),
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as error:
            if is_conditional_check_failure(error):
                old = getattr(error, "response", {}).get("Item", {})
                return UpsertResult(applied=False, previous_order_key=old.get("order_key", {}).get("S"))
            raise store_unavailable("PutItem", error) from error
        old = response.get("Attributes", {})
        return UpsertResult(applied=True, previous_order_key=old.get("order_key", {}).get("S"))

    def record_events(self, event_ids: Sequence[str], *, now: float | None = None) -> None:
        """Mark events as processed and published (the de-duplication records), 25 per BatchWriteItem."""
        expires_at = int((now or time.time()) + DEDUP_WINDOW_SECONDS)
        for start in range(0, len(event_ids), 25):
            writes = [
                {"PutRequest": {"Item": {**string_key(event_key(i)), TTL_ATTRIBUTE: {"N": str(expires_at)}}}}
                for i in event_ids[start : start + 25]
            ]
            request: dict[str, Any] = {self._table: writes}
            while request:
                try:
                    response = self._client.batch_write_item(RequestItems=request)
                except Exception as error:
                    raise store_unavailable("BatchWriteItem", error) from error
                request = response.get("UnprocessedItems") or {}

    # -- reads --------------------------------------------------------------------------------
    def _public(self, item: dict[str, Any]) -> dict[str, Any]:
        values = self._from_item(item)
        body = values.pop("body", None)
        for key in (*KEY_ATTRIBUTES, "order_key", "content_hash"):
            values.pop(key, None)
        values["object"] = decode_body(bytes(body)) if body is not None else None
        if values.get("account") == PLATFORM:
            values["account"] = None
        return values

    def get_object(
        self, object_type: str, object_id: str, *, account: str | None = None, livemode: bool | None = None
    ) -> list[dict[str, Any]]:
        """Every stored variant of one object (platform/Connect accounts, live/test), optionally filtered."""
        items, _ = query_page(  # a handful of variants: one page
            self._client,
            self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": object_partition(object_type, object_id)}},
        )
        found = [self._public(item) for item in items]
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
        values: dict[str, Any] = {":pk": {"S": customer_partition(account, livemode, customer_id)}}
        if object_type:
            expression += f" AND begins_with({CUSTOMER_INDEX.sort_key}, :type)"
            values[":type"] = {"S": f"{object_type}#"}
        items, _ = query_page(
            self._client,
            self._table,
            IndexName=CUSTOMER_INDEX.name,
            KeyConditionExpression=expression,
            ExpressionAttributeValues=values,
            Limit=limit,
        )
        return [self._public(item) for item in items]
