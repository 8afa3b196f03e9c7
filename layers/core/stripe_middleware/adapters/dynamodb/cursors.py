"""DynamoDB adapters of the history cursors: a backfill run item and one cursor item per (account, type)
(`backfill.ports.CursorStore`), and the catch-up cursor per mode (`backfill.catchup.CatchupCursorStore`)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from stripe_middleware.adapters.aws import is_conditional_check_failure
from stripe_middleware.adapters.dynamodb.table import (
    PARTITION_KEY,
    backfill_cursor_key,
    backfill_run_key,
    catchup_cursor_key,
    string_key,
)
from stripe_middleware.backfill.ports import Cursor
from stripe_middleware.shared.errors import StoreUnavailableError


class DynamoCursorStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def start_run(self, run_id: str, as_of: int) -> int:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={**string_key(backfill_run_key(run_id)), "as_of": {"N": str(as_of)}},
                ConditionExpression=f"attribute_not_exists({PARTITION_KEY})",
            )
            return as_of
        except Exception as error:
            if not is_conditional_check_failure(error):
                raise StoreUnavailableError(f"PutItem failed: {type(error).__name__}") from error
        item = self._get(backfill_run_key(run_id))
        return int(item["as_of"]["N"]) if item else as_of

    def load(self, run_id: str, account: str | None, resource: str) -> Cursor | None:
        item = self._get(backfill_cursor_key(run_id, account, resource))
        return Cursor(**json.loads(item["cursor"]["S"])) if item else None

    def save(self, cursor: Cursor) -> None:
        key = backfill_cursor_key(cursor.run_id, cursor.account, cursor.resource)
        item = {**string_key(key), "cursor": {"S": json.dumps(dataclasses.asdict(cursor))}}
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except Exception as error:
            raise StoreUnavailableError(f"PutItem failed: {type(error).__name__}") from error

    def cursors(self, run_id: str) -> list[Cursor]:
        try:
            response = self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :cursor)",
                ExpressionAttributeValues={
                    ":pk": {"S": backfill_run_key(run_id)[PARTITION_KEY]},
                    ":cursor": {"S": "CUR#"},
                },
                ConsistentRead=True,
            )
        except Exception as error:
            raise StoreUnavailableError(f"Query failed: {type(error).__name__}") from error
        return [Cursor(**json.loads(item["cursor"]["S"])) for item in response.get("Items", [])]

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        try:
            item: dict[str, Any] | None = self._client.get_item(
                TableName=self._table, Key=string_key(key), ConsistentRead=True
            ).get("Item")
        except Exception as error:
            raise StoreUnavailableError(f"GetItem failed: {type(error).__name__}") from error
        return item


class DynamoCatchupCursorStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def load(self, livemode: bool) -> int | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=string_key(catchup_cursor_key(livemode)), ConsistentRead=True
            ).get("Item")
        except Exception as error:
            raise StoreUnavailableError(f"GetItem failed: {type(error).__name__}") from error
        return int(item["until"]["N"]) if item else None

    def advance(self, livemode: bool, until: int) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={**string_key(catchup_cursor_key(livemode)), "until": {"N": str(until)}},
                ConditionExpression=f"attribute_not_exists({PARTITION_KEY}) OR #until < :until",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":until": {"N": str(until)}},
            )
        except Exception as error:
            if not is_conditional_check_failure(error):  # else: another run is already further
                raise StoreUnavailableError(f"PutItem failed: {type(error).__name__}") from error
