"""DynamoDB adapters of reconciliation (layout in `table.py`).

- `DynamoStoredObjects` (`reconciliation.ports.StoredObjects`): the normalized attributes of stored
  objects, 100 keys per BatchGetItem (never the body: a read of a charge stays one read unit), and the
  succeeded charges and refunds of a month from the type_created index.
- `DynamoReconciliationStore` (`ports.ReconciliationStore` and `ports.ReconciliationReader`): one item per
  payout and scope holding the record and what of it was published (zlib-compressed JSON: a payout with
  thousands of transactions can have hundreds of discrepancies), listed by the month its payout was created.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from stripe_middleware.adapters.aws import is_conditional_check_failure
from stripe_middleware.adapters.dynamodb.objects import plain
from stripe_middleware.adapters.dynamodb.paging import (
    batch_get,
    items_in_index_order,
    newest_in_months,
    query_page,
    store_unavailable,
)
from stripe_middleware.adapters.dynamodb.table import (
    PARTITION_KEY,
    PLATFORM,
    SORT_KEY,
    TYPE_CREATED_INDEX,
    object_key,
    reconciliation_index_keys,
    reconciliation_key,
    reconciliation_month_partition,
    scope,
    string_key,
)
from stripe_middleware.reconciliation.models import ObjectKey, Reconciliation, StoreEntry
from stripe_middleware.reconciliation.ports import MAX_BATCH, KeptRecord, Published, RecordConflictError
from stripe_middleware.shared.clock import epoch

MAX_MONTHS = 25  # a list reads at most this many monthly partitions (the read API bounds `since` to 731 days)
MAX_ITEM_BYTES = 350_000  # DynamoDB items are at most 400 KB
ENTRY_ATTRIBUTES = (
    "object_type",
    "object_id",
    "amount",
    "currency",
    "status",
    "customer_id",
    "created",
    "event_id",
    "metadata",
)
_NAMES = {f"#{name}": name for name in ENTRY_ATTRIBUTES}  # `status` is a reserved word


class DynamoStoredObjects:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name
        from boto3.dynamodb.types import TypeDeserializer

        self._deserializer = TypeDeserializer()

    def _entry(self, item: dict[str, Any]) -> StoreEntry:
        values = {k: plain(self._deserializer.deserialize(v)) for k, v in item.items()}
        metadata = values.get("metadata")
        return StoreEntry(
            object_type=str(values["object_type"]),
            object_id=str(values["object_id"]),
            amount=values.get("amount") if isinstance(values.get("amount"), int) else None,
            currency=values.get("currency"),
            status=values.get("status"),
            customer_id=values.get("customer_id"),
            created=epoch(values.get("created")),
            metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {},
            stored_by=values.get("event_id"),
        )

    def entries(self, keys: Sequence[ObjectKey], *, account: str | None, livemode: bool) -> list[StoreEntry]:
        """One BatchGetItem (its unprocessed keys asked again) of at most MAX_BATCH objects."""
        if len(keys) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} keys per BatchGetItem, not {len(keys)}")
        items = batch_get(
            self._client,
            self._table,
            [object_key(t, i, account, livemode) for t, i in dict.fromkeys(keys)],
            projection=", ".join(_NAMES),
            names=_NAMES,
        )
        return [self._entry(item) for item in items]

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
        index = TYPE_CREATED_INDEX
        request: dict[str, Any] = {
            "IndexName": index.name,
            "KeyConditionExpression": f"{index.partition_key} = :pk AND {index.sort_key} BETWEEN :lo AND :hi",
            "FilterExpression": "#status = :succeeded",
            "ProjectionExpression": ", ".join(n for n in _NAMES if n != "#metadata"),
            "ExpressionAttributeNames": {k: v for k, v in _NAMES.items() if k != "#metadata"},
            "ExpressionAttributeValues": {
                ":pk": {"S": f"TYPE#{scope(account, livemode)}#{object_type}#{month}"},
                ":lo": {"S": created_gte},
                ":hi": {"S": f"{created_lte}~"},  # every id of the last second
                ":succeeded": {"S": "succeeded"},
            },
        }
        if start is not None:
            request["ExclusiveStartKey"] = start
        items, last = query_page(self._client, self._table, **request)
        return [self._entry(item) for item in items], last


class DynamoReconciliationStore:
    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    # -- reconciliation.ports.ReconciliationStore ---------------------------------------------------
    def get(self, payout_id: str, *, account: str | None, livemode: bool) -> KeptRecord | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=string_key(reconciliation_key(payout_id, account, livemode)),
                ProjectionExpression="body, revision",
                ConsistentRead=True,  # the previous run's write decides what is published again
            )
        except Exception as error:
            raise store_unavailable("GetItem", error) from error
        item = response.get("Item")
        if item is None:
            return None
        document = _decode(item["body"]["B"])
        published = document.get("published") or {}
        return KeptRecord(
            record=Reconciliation.from_record(document["record"]),
            published=Published(
                discrepancies=frozenset(published.get("discrepancies") or ()),
                completed=published.get("completed"),
            ),
            revision=int(item["revision"]["N"]),
        )

    def put(self, record: Reconciliation, published: Published, *, revision: int) -> None:
        body = _encode(record, published)
        if len(body) > MAX_ITEM_BYTES:  # only what the kept record names: the rest may be published again
            named = {
                d.discrepancy_id for d in record.discrepancies[: len(record.to_record()["discrepancies"])]
            }
            body = _encode(record, Published(published.discrepancies & named, published.completed))
        as_of = record.to_record()["as_of"]
        item: dict[str, Any] = {
            **string_key(reconciliation_key(record.payout_id, record.account, record.livemode)),
            **string_key(
                reconciliation_index_keys(
                    record.account, record.livemode, as_of=as_of, payout_id=record.payout_id
                )
            ),
            "object_type": {"S": "reconciliation"},
            "object_id": {"S": record.payout_id},
            "status": {"S": record.status},
            "account": {"S": record.account or PLATFORM},
            "livemode": {"BOOL": record.livemode},
            "created": {"S": as_of},
            "updated": {"N": str(int(self._clock()))},
            "body": {"B": body},
            "revision": {"N": str(revision)},
        }
        if revision <= 1:
            condition: dict[str, Any] = {"ConditionExpression": f"attribute_not_exists({PARTITION_KEY})"}
        else:
            condition = {
                "ConditionExpression": "revision = :previous",
                "ExpressionAttributeValues": {":previous": {"N": str(revision - 1)}},
            }
        try:
            self._client.put_item(TableName=self._table, Item=item, **condition)
        except Exception as error:
            if is_conditional_check_failure(error):
                raise RecordConflictError(
                    f"the record of payout {record.payout_id} was written by another run meanwhile"
                ) from error
            raise store_unavailable("PutItem", error) from error

    # -- reconciliation.ports.ReconciliationReader ----------------------------------------------------
    def reconciliation(self, payout_id: str, *, account: str | None, livemode: bool) -> dict[str, Any] | None:
        kept = self.get(payout_id, account=account, livemode=livemode)
        return kept.record.to_record() if kept is not None else None

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
        values: dict[str, Any] = {}
        request: dict[str, Any] = {
            "ProjectionExpression": f"{PARTITION_KEY}, {SORT_KEY}, {TYPE_CREATED_INDEX.sort_key}"
        }
        if status:
            request["FilterExpression"] = "#status = :status"
            request["ExpressionAttributeNames"] = {"#status": "status"}
            values[":status"] = {"S": status}
        keys = newest_in_months(
            self._client,
            self._table,
            partition=partial(reconciliation_month_partition, account, livemode),
            since=since,
            before=before,
            now=self._clock(),
            limit=limit,
            max_months=MAX_MONTHS,
            values=values,
            **request,
        )
        found = items_in_index_order(self._client, self._table, keys, projection="pk, sk, body")
        return [_decode(item["body"]["B"])["record"] for item in found]


def _encode(record: Reconciliation, published: Published) -> bytes:
    document = {
        "record": record.to_record(),
        "published": {"discrepancies": sorted(published.discrepancies), "completed": published.completed},
    }
    return zlib.compress(json.dumps(document, separators=(",", ":"), sort_keys=True).encode(), 6)


def _decode(body: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(zlib.decompress(bytes(body)))
    return document
