"""DynamoDB adapter of `commands.ports.CommandStore`: one item per command in the store table."""

from __future__ import annotations

import json
from typing import Any

from stripe_middleware.adapters.aws import is_conditional_check_failure
from stripe_middleware.adapters.dynamodb.table import PARTITION_KEY, command_key, string_key
from stripe_middleware.commands.models import Command
from stripe_middleware.shared.errors import StoreUnavailableError


def _item(command: Command) -> dict[str, Any]:
    return {**string_key(command_key(command.command_id)), "body": {"S": command.model_dump_json()}}


class DynamoCommandStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def create(self, command: Command) -> Command:
        """Store a new command; if one with this id exists already, return that one instead."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_item(command),
                ConditionExpression=f"attribute_not_exists({PARTITION_KEY})",
            )
        except Exception as error:
            if is_conditional_check_failure(error):
                existing = self.get(command.command_id)
                if existing is not None:
                    return existing
            raise StoreUnavailableError(f"PutItem failed: {type(error).__name__}") from error
        return command

    def save(self, command: Command) -> None:
        try:
            self._client.put_item(TableName=self._table, Item=_item(command))
        except Exception as error:
            raise StoreUnavailableError(f"PutItem failed: {type(error).__name__}") from error

    def get(self, command_id: str) -> Command | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=string_key(command_key(command_id)), ConsistentRead=True
            ).get("Item")
        except Exception as error:
            raise StoreUnavailableError(f"GetItem failed: {type(error).__name__}") from error
        return Command.model_validate(json.loads(item["body"]["S"])) if item else None
