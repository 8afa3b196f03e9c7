"""Reading the store table in pages: the mechanics the DynamoDB adapters share (layout in `table.py`).

- `query_page`, `query_pages`, `query_items`: one Query page; every page, lazily; every item or the first
  `limit` (pages are followed only while more are wanted).
- `newest_in_months`: a keyset-paged listing of a month-partitioned `type_created` partition family
  (`gsi2pk = ...#{YYYY-MM}`), newest first, one month after another.
- `batch_get`, `items_in_index_order`: BatchGetItem 100 keys a request with the unprocessed keys asked again;
  the items behind index items, in the index's order.
- `store_unavailable`: what a failed call becomes (`StoreUnavailableError` naming the operation), so callers
  catch by meaning and never see a botocore error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stripe_middleware.adapters.dynamodb.table import PARTITION_KEY, SORT_KEY, TYPE_CREATED_INDEX, string_key
from stripe_middleware.shared.errors import StoreUnavailableError

BATCH_GET_KEYS = 100  # DynamoDB's limit of keys per BatchGetItem


def store_unavailable(operation: str, error: Exception) -> StoreUnavailableError:
    """`raise store_unavailable("PutItem", error) from error`: names the operation and the error's type
    (not its message); the original stays the cause."""
    return StoreUnavailableError(f"{operation} failed: {type(error).__name__}")


def query_page(client: Any, table: str, **request: Any) -> tuple[list[dict[str, Any]], Any | None]:
    """One Query call: its items and its LastEvaluatedKey (None on the last page)."""
    try:
        response = client.query(TableName=table, **request)
    except Exception as error:
        raise store_unavailable("Query", error) from error
    return response.get("Items", []), response.get("LastEvaluatedKey")


def query_pages(client: Any, table: str, **request: Any) -> Iterator[list[dict[str, Any]]]:
    """The pages (1 MB each at most) of a Query; the next is asked for only when the caller wants it."""
    while True:
        items, last = query_page(client, table, **request)
        yield items
        if not last:
            return
        request["ExclusiveStartKey"] = last


def query_items(client: Any, table: str, *, limit: int | None = None, **request: Any) -> list[dict[str, Any]]:
    """Every item a Query matches (following pages), or the first `limit` of them."""
    items: list[dict[str, Any]] = []
    for page in query_pages(client, table, **request):
        items += page
        if limit is not None and len(items) >= limit:
            break
    return items if limit is None else items[:limit]


def newest_in_months(
    client: Any,
    table: str,
    *,
    partition: Callable[[str], str],
    since: str,
    before: str | None,
    now: float,
    limit: int,
    max_months: int | None = None,
    values: Mapping[str, Any] | None = None,
    **request: Any,
) -> list[dict[str, Any]]:
    """Index items of `type_created` with `since <= gsi2sk`, strictly before the `before` key (the previous
    page's last `gsi2sk`), newest first, at most `limit`: the month partitions `partition("YYYY-MM")` are
    read from `before`'s month (or `now`'s) back to `since`'s, at most `max_months` of them.

    `request` adds to each Query (a FilterExpression, a projection, ExpressionAttributeNames) and `values`
    to its ExpressionAttributeValues (those of the filter)."""
    index = TYPE_CREATED_INDEX
    latest = before or datetime.fromtimestamp(now, UTC).strftime("%Y-%m")
    found: list[dict[str, Any]] = []
    for month in _months_back(since[:7], latest[:7], at_most=max_months):
        page = query_items(
            client,
            table,
            IndexName=index.name,
            KeyConditionExpression=f"{index.partition_key} = :pk AND {index.sort_key} BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": {"S": partition(month)},
                ":lo": {"S": since},
                ":hi": {"S": before or "~"},
                **(values or {}),
            },
            ScanIndexForward=False,
            limit=limit - len(found) + (1 if before else 0),  # `before` itself is in range: one more
            **request,
        )
        found += [item for item in page if item[index.sort_key]["S"] != before]
        if len(found) >= limit:
            break
    return found[:limit]


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[dict[str, str]],
    *,
    projection: str,
    names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The items of `keys` (absent ones left out), BATCH_GET_KEYS a BatchGetItem, each request's unprocessed
    keys asked again until none are left; in the order DynamoDB answers, not the keys'."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_KEYS):
        wanted: dict[str, Any] = {
            "Keys": [string_key(k) for k in keys[start : start + BATCH_GET_KEYS]],
            "ProjectionExpression": projection,
        }
        if names:
            wanted["ExpressionAttributeNames"] = dict(names)
        request: dict[str, Any] = {table: wanted}
        while request:
            try:
                response = client.batch_get_item(RequestItems=request)
            except Exception as error:
                raise store_unavailable("BatchGetItem", error) from error
            items += response.get("Responses", {}).get(table, [])
            request = response.get("UnprocessedKeys") or {}
    return items


def items_in_index_order(
    client: Any, table: str, index_items: Sequence[dict[str, Any]], *, projection: str
) -> list[dict[str, Any]]:
    """The table items behind index items (by their pk and sk), in the index's order; those deleted since
    the index was read are left out. `projection` must name pk and sk."""
    keys = [{PARTITION_KEY: i[PARTITION_KEY]["S"], SORT_KEY: i[SORT_KEY]["S"]} for i in index_items]
    found = {
        (i[PARTITION_KEY]["S"], i[SORT_KEY]["S"]): i
        for i in batch_get(client, table, keys, projection=projection)
    }
    return [found[k] for k in ((k[PARTITION_KEY], k[SORT_KEY]) for k in keys) if k in found]


def _months_back(first: str, last: str, *, at_most: int | None) -> Iterator[str]:
    """`YYYY-MM` from `last` back to `first`, at most `at_most` of them (None: all)."""
    year, month = int(last[:4]), int(last[5:7])
    count = 0
    while f"{year:04d}-{month:02d}" >= first and (at_most is None or count < at_most):
        yield f"{year:04d}-{month:02d}"
        count += 1
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
