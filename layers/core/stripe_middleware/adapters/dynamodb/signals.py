"""DynamoDB adapter of the signals' state and of their records (layout in `table.py`).

Implements `signals.ports.SignalState` (facts per subject under a newest-version guard, which anomalies were
published, each customer's churn risk, the one-off buyers' watches under a revision guard) and
`read.ports.SignalReader` (the read API's signal routes).
A record keeps the published detail as JSON (scores are floats, which DynamoDB would want as Decimal).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from functools import partial
from typing import Any

from stripe_middleware.adapters.aws import is_conditional_check_failure
from stripe_middleware.adapters.dynamodb.objects import plain
from stripe_middleware.adapters.dynamodb.paging import (
    batch_get,
    items_in_index_order,
    newest_in_months,
    query_items,
    query_pages,
    store_unavailable,
)
from stripe_middleware.adapters.dynamodb.table import (
    CUSTOMER_INDEX,
    PARTITION_KEY,
    PLATFORM,
    SORT_KEY,
    TTL_ATTRIBUTE,
    anomaly_key,
    buyer_watch_key,
    buyer_watch_partition,
    churn_key,
    fact_key,
    fact_range,
    signal_customer_partition,
    signal_index_keys,
    signal_month_partition,
    string_key,
)
from stripe_middleware.signals.facts import Fact
from stripe_middleware.signals.ports import WATCH_SHARDS, Anomaly, BuyerWatch

DAY = 24 * 3600
# A fact is kept 400 days after it was last written: longer than a yearly renewal (an annual subscription is
# rewritten when it renews) and than every detector's window. An anomaly record (which also says it was
# published) outlives every fact it could be found again from, so a finding is never published twice; the read
# API calls it open for 90 days of event time.
FACT_RETENTION_SECONDS = 400 * DAY
ANOMALY_RETENTION_SECONDS = FACT_RETENTION_SECONDS + 70 * DAY  # + the longest account lookback
# A buyer's watch is rewritten with each charge and level change; one left alone this long (a model that
# never calls the buyer gone) stops being re-scored. The shipped prior calls one purchase high in 504 days.
WATCH_RETENTION_SECONDS = 730 * DAY
NEWER_VERSION = (
    "attribute_not_exists(pk) OR version < :version OR (version = :version AND evidence < :evidence)"
)


class SignalStore:
    def __init__(self, client: Any, table_name: str, *, clock: Any = time.time) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    # -- facts --------------------------------------------------------------------------------
    def add_facts(self, subject: str, facts: Sequence[Fact]) -> None:
        """One conditional PutItem per fact: an older version of a kept fact is refused by DynamoDB."""
        expires_at = int(self._clock()) + FACT_RETENTION_SECONDS
        for fact in facts:
            values = {k: v for k, v in fact.to_item().items() if v is not None}
            item = {
                **string_key(fact_key(subject, fact.created, fact.id)),
                "fact": self._serializer.serialize(values),
                "version": {"N": str(fact.version)},
                "evidence": {"S": fact.evidence},
                TTL_ATTRIBUTE: {"N": str(expires_at)},
            }
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression=NEWER_VERSION,
                    ExpressionAttributeValues={
                        ":version": {"N": str(fact.version)},
                        ":evidence": {"S": fact.evidence},
                    },
                )
            except Exception as error:
                if not is_conditional_check_failure(error):  # refused: a newer state is kept already
                    raise store_unavailable("PutItem", error) from error

    def facts(self, subject: str, since: int | None = None) -> list[Fact]:
        partition, start = fact_range(subject, since or 0)
        items = query_items(
            self._client,
            self._table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={":pk": {"S": partition}, ":from": {"S": start}, ":to": {"S": "FACT$"}},
            ProjectionExpression="fact",
            ConsistentRead=True,  # two charges in concurrent batches: the later reader sees both
        )
        return [Fact.from_item(plain(self._deserializer.deserialize(i["fact"]))) for i in items]

    # -- records ------------------------------------------------------------------------------
    def published(self, signal_ids: Iterable[str]) -> set[str]:
        keys = [anomaly_key(i) for i in dict.fromkeys(signal_ids)]
        items = batch_get(self._client, self._table, keys, projection="pk")
        return {item[PARTITION_KEY]["S"].removeprefix("SIGNAL#") for item in items}

    def mark_published(self, anomalies: Sequence[Anomaly]) -> None:
        expires_at = int(self._clock()) + ANOMALY_RETENTION_SECONDS
        for anomaly in anomalies:  # few per event: one PutItem each
            self._put(anomaly_key(anomaly.signal_id), anomaly.detail(), expires_at)

    def churn_risk(self, customer_subject: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=string_key(churn_key(customer_subject)),
                ProjectionExpression="detail",
                ConsistentRead=True,
            )
        except Exception as error:
            raise store_unavailable("GetItem", error) from error
        item = response.get("Item")
        return json.loads(item["detail"]["S"]) if item else None

    def put_churn_risk(self, customer_subject: str, detail: dict[str, Any]) -> None:
        """Never over a later assessment (a concurrent delivery may have recorded one meanwhile)."""
        self._put(churn_key(customer_subject), detail, None, only_if_not_older=True)

    # -- one-off buyers' watches ---------------------------------------------------------------
    def buyer_watch(self, customer_subject: str) -> BuyerWatch | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=string_key(buyer_watch_key(customer_subject, WATCH_SHARDS)),
                ConsistentRead=True,
            )
        except Exception as error:
            raise store_unavailable("GetItem", error) from error
        item = response.get("Item")
        return _watch(item) if item else None

    def buyer_watches(self, shard: int) -> Iterator[BuyerWatch]:
        """One Query of the shard's partition, a page (1 MB) at a time."""
        for page in query_pages(
            self._client,
            self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": buyer_watch_partition(shard)}},
        ):
            yield from (_watch(item) for item in page)

    def put_buyer_watch(self, watch: BuyerWatch, *, expected_revision: int | None) -> bool:
        body = {k: v for k, v in asdict(watch).items() if k not in ("subject", "revision")}
        item = {
            **string_key(buyer_watch_key(watch.subject, WATCH_SHARDS)),
            "watch": {"S": json.dumps(body, separators=(",", ":"), sort_keys=True)},
            "revision": {"N": str(watch.revision)},
            TTL_ATTRIBUTE: {"N": str(int(self._clock()) + WATCH_RETENTION_SECONDS)},
        }
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if expected_revision is not None:
            condition = {
                "ConditionExpression": "revision = :revision",
                "ExpressionAttributeValues": {":revision": {"N": str(expected_revision)}},
            }
        try:
            self._client.put_item(TableName=self._table, Item=item, **condition)
        except Exception as error:
            if is_conditional_check_failure(error):  # another writer came first
                return False
            raise store_unavailable("PutItem", error) from error
        return True

    def delete_buyer_watch(self, customer_subject: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table, Key=string_key(buyer_watch_key(customer_subject, WATCH_SHARDS))
            )
        except Exception as error:
            raise store_unavailable("DeleteItem", error) from error

    def clear_churn_risk(self, customer_subject: str) -> None:
        try:
            self._client.delete_item(TableName=self._table, Key=string_key(churn_key(customer_subject)))
        except Exception as error:
            raise store_unavailable("DeleteItem", error) from error

    def _put(
        self,
        key: dict[str, str],
        detail: dict[str, Any],
        expires_at: int | None,
        *,
        only_if_not_older: bool = False,
    ) -> None:
        """A signal record: its detail, and what the indexes find it by (and filter on)."""
        account, livemode = detail.get("account"), bool(detail["livemode"])
        values: dict[str, Any] = {
            **key,
            **signal_index_keys(
                account,
                livemode,
                customer_id=detail.get("customer_id"),
                as_of=detail["as_of"],
                signal_id=detail["signal_id"],
            ),
            "object_type": "signal",
            "object_id": detail["signal_id"],
            "event_type": detail["kind"],
            "status": detail["level"],
            "account": account or PLATFORM,
            "livemode": livemode,
            "created": detail["as_of"],
            "detail": json.dumps(detail, separators=(",", ":"), sort_keys=True),
        }
        if detail.get("customer_id"):
            values["customer_id"] = detail["customer_id"]
        if expires_at is not None:
            values[TTL_ATTRIBUTE] = expires_at
        condition: dict[str, Any] = {}
        if only_if_not_older:
            condition = {
                "ConditionExpression": "attribute_not_exists(pk) OR created <= :as_of",
                "ExpressionAttributeValues": {":as_of": {"S": detail["as_of"]}},
            }
        try:
            self._client.put_item(
                TableName=self._table,
                Item={k: self._serializer.serialize(v) for k, v in values.items()},
                **condition,
            )
        except Exception as error:
            if not is_conditional_check_failure(error):  # refused: a later assessment is recorded
                raise store_unavailable("PutItem", error) from error

    # -- reads (the read API) -----------------------------------------------------------------
    def customer_signals(
        self, customer_id: str, *, account: str | None, livemode: bool, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The customer's churn-risk record and kept anomalies, newest first."""
        keys = query_items(
            self._client,
            self._table,
            IndexName=CUSTOMER_INDEX.name,
            KeyConditionExpression=f"{CUSTOMER_INDEX.partition_key} = :pk",
            ExpressionAttributeValues={
                ":pk": {"S": signal_customer_partition(account, livemode, customer_id)}
            },
            ScanIndexForward=False,
            limit=limit,
        )
        return self._details(keys)

    def list_signals(
        self,
        *,
        account: str | None,
        livemode: bool,
        since: str,
        before: str | None,
        kind: str | None,
        level: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Signals of one scope with `since <= as_of`, newest first, strictly before the `before` key
        (`{as_of}#{signal_id}`, the previous page's last), at most `limit`; kind and level filter."""
        values: dict[str, Any] = {}
        request: dict[str, Any] = {}
        filters = []
        if kind:
            filters.append("event_type = :kind")
            values[":kind"] = {"S": kind}
        if level:
            filters.append("#status = :level")
            values[":level"] = {"S": level}
            request["ExpressionAttributeNames"] = {"#status": "status"}
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        keys = newest_in_months(
            self._client,
            self._table,
            partition=partial(signal_month_partition, account, livemode),
            since=since,
            before=before,
            now=self._clock(),
            limit=limit,
            values=values,
            **request,
        )
        return self._details(keys)

    def _details(self, index_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The details of records found in an index, in the index's order."""
        found = items_in_index_order(self._client, self._table, index_items, projection="pk, sk, detail")
        return [json.loads(item["detail"]["S"]) for item in found]


def _watch(item: dict[str, Any]) -> BuyerWatch:
    body = json.loads(item["watch"]["S"])
    return BuyerWatch(
        **body
        | {
            "subject": item[SORT_KEY]["S"],
            "revision": int(item["revision"]["N"]),
            "spend": tuple(tuple(s) for s in body["spend"]),
            "basis": tuple(body["basis"]),
            "evidence": tuple(tuple(e) for e in body["evidence"]),
        }
    )
