"""The store table for moto in tests and benchmarks, built from the layout the stack deploys."""

from __future__ import annotations

from typing import Any

from stripe_middleware.adapters.dynamodb.table import (
    INDEXED_ATTRIBUTES,
    INDEXES,
    KEY_ATTRIBUTES,
    PARTITION_KEY,
    SORT_KEY,
)


def create_table_request(table_name: str) -> dict[str, Any]:
    """`dynamodb.create_table(**create_table_request(name))`, equal to what the stack deploys."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": k, "AttributeType": "S"} for k in KEY_ATTRIBUTES],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(INDEXED_ATTRIBUTES)},
            }
            for index in INDEXES
        ],
    }
