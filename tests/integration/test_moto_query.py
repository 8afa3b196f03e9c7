"""Local mode's faster moto Query (stripe_middleware_dev/local/moto_query.py) answers as DynamoDB does: a
query on the table's key reads its partition only, in sort-key order, with conditions, limits, pages and
either direction; index queries and scans are moto's own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import Table

from stripe_middleware_dev.local import moto_query
from stripe_middleware_dev.tables import create_table_request

PARTITIONS = [f"OBJ#charge#ch_{n}" for n in range(5)]


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    moto_query.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**create_table_request("store"))
        for pk in PARTITIONS:
            for n in range(12):
                item = {"pk": {"S": pk}, "sk": {"S": f"{'AB'[n % 2]}#{n:03d}"}, "n": {"N": str(n)}}
                if n % 3 == 0:  # on the type_created index too
                    item |= {"gsi2pk": {"S": "TYPE#charge"}, "gsi2sk": {"S": f"{pk}#{n:03d}"}}
                client.put_item(TableName="store", Item=item)
        yield client


def keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(i["pk"]["S"], i["sk"]["S"]) for i in items]


def expected(pk: str, prefix: str = "", reverse: bool = False) -> list[tuple[str, str]]:
    found = sorted((pk, f"{'AB'[n % 2]}#{n:03d}") for n in range(12))
    return sorted([k for k in found if k[1].startswith(prefix)], reverse=reverse)


def test_the_patch_is_in_place_and_idempotent() -> None:
    moto_query.install()
    moto_query.install()
    assert Table.query.__name__ == "query_partition"


def test_a_partition_query_reads_only_that_partition_in_sort_key_order(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    read, all_items = [], Table.all_items
    monkeypatch.setattr(Table, "all_items", lambda self: read.append(len(items := all_items(self))) or items)
    pk = PARTITIONS[2]
    answer = dynamodb.query(
        TableName="store", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}}
    )
    assert keys(answer["Items"]) == expected(pk) and answer["Count"] == 12
    assert read == [12]  # moto's own query would sort all 60 items of the table
    backwards = dynamodb.query(
        TableName="store",
        KeyConditionExpression="pk = :p AND begins_with(sk, :b)",
        ExpressionAttributeValues={":p": {"S": pk}, ":b": {"S": "B#"}},
        ScanIndexForward=False,
    )
    assert keys(backwards["Items"]) == expected(pk, "B#", reverse=True)
    missing = dynamodb.query(
        TableName="store",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "OBJ#charge#ch_none"}},
    )
    assert missing["Items"] == []


def test_pages_of_a_partition_query_follow_each_other(dynamodb: Any) -> None:
    pk, pages, start = PARTITIONS[4], [], None
    while True:
        request: dict[str, Any] = {
            "TableName": "store",
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {":p": {"S": pk}, ":a": {"S": "A#"}, ":b": {"S": "A#999"}},
            "Limit": 4,
        }
        if start:
            request["ExclusiveStartKey"] = start
        answer = dynamodb.query(**request)
        pages.append(keys(answer["Items"]))
        start = answer.get("LastEvaluatedKey")
        if not start:
            break
    assert [k for page in pages for k in page] == expected(pk, "A#") and len(pages[0]) == 4


def test_index_queries_and_scans_still_see_every_partition(dynamodb: Any) -> None:
    answer = dynamodb.query(
        TableName="store",
        IndexName="type_created",
        KeyConditionExpression="gsi2pk = :t",
        ExpressionAttributeValues={":t": {"S": "TYPE#charge"}},
    )
    assert len(answer["Items"]) == 5 * 4 and {i["pk"]["S"] for i in answer["Items"]} == set(PARTITIONS)
    assert dynamodb.scan(TableName="store")["Count"] == 5 * 12
