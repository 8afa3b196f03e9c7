"""The store table's keys and indexes: one definition used by the CDK stack, the tests and local mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"
# Indexes carry the normalized attributes, not the object body: index writes are billed by size too.
INDEXED_ATTRIBUTES = (
    "object_type",
    "object_id",
    "account",
    "livemode",
    "customer_id",
    "amount",
    "currency",
    "status",
    "created",
    "updated",
    "deleted_at",
    "event_id",
    "event_type",
)


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str


CUSTOMER_INDEX = Index("customer", "gsi1pk", "gsi1sk")  # all objects of one customer
TYPE_CREATED_INDEX = Index("type_created", "gsi2pk", "gsi2sk")  # objects of a type by created time
INDEXES = (CUSTOMER_INDEX, TYPE_CREATED_INDEX)


def create_table_request(table_name: str) -> dict[str, Any]:
    """`dynamodb.create_table(**create_table_request(name))`, equal to what the stack deploys."""
    keys = [PARTITION_KEY, SORT_KEY, *(k for i in INDEXES for k in (i.partition_key, i.sort_key))]
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": k, "AttributeType": "S"} for k in keys],
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
