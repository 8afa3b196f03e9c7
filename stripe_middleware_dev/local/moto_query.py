"""A faster moto DynamoDB Query on a table's own key, for local mode.

moto answers a Query on the table's key by sorting every item of the table and keeping those of the
partition (`Table.query` filters `Table.all_items()` by hash key), so each query costs as much as the table
is large: local mode and `make soak` slow down quadratically as the store fills (the signals function and
the dunning steps read their partitions on every event). A query on the table's key needs only its
partition, so while such a query runs, `all_items()` returns that partition's items, sorted the same way:
exactly the items the filter would keep, so the answer is the same. Queries on an index, scans and every
other call are left as they are.
"""

from __future__ import annotations

import threading
from typing import Any

_partition = threading.local()


def install() -> None:
    """Patch moto's Table (once per process); safe to call again."""
    from moto.dynamodb.models.table import Table

    if Table.query.__name__ == "query_partition":
        return

    every_item, query = Table.all_items, Table.query

    def all_items(self: Any) -> Any:
        key = getattr(_partition, "key", None)
        if key is None or not self.range_key_attr:
            return every_item(self)
        return sorted(self.items.get(key, {}).values(), key=lambda item: (item.hash_key, item.range_key))

    def query_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        on_index = kwargs.get("index_name") or (len(args) > 6 and args[6])
        if on_index or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        _partition.key = hash_key
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.key = None

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query_partition  # type: ignore[method-assign]
