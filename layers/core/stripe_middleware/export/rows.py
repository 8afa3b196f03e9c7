"""The row model of the `records` table: one flat row per published event, the same columns on AWS and
locally, every value read from the EventBridge event by a plain JSON path.

A path is `$.` followed by dot-separated keys (`$.detail.normalized.amount`, `$.detail-type`): no filters,
no arrays, so an EventBridge input transformer can follow it as it is, and it is in every event of its
kind (its value may be null: an input transformer creates no variable for a missing key, which is why
`normalized.attribution` always has its four keys). A column with no path for a record kind is null in
that kind's rows. Two values are not read by a path:
- `record_kind` is the kind's name (the input template writes it as a literal);
- `event_date` is the UTC date of `event_time`, its first ten characters (Firehose's dynamic partitioning
  extracts it with `PARTITION_QUERIES`; locally `row_of` does).
One value joins several paths: an object row's `record_id` is `<run_id>:<object_id>` (`RECORD_ID_JOIN`),
because one backfill run publishes many objects, and a reconciliation row's is `<payout_id>:<revision>`,
because a payout's record is published again each time it changes.

Duplicates are expected (at-least-once publication): a redelivered event gives the very same row, so the
views de-duplicate on `record_id` and keep the latest state of an object by `order_key`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stripe_middleware.shared.contract import SOURCE, DetailType

EVENT, OBJECT, SIGNAL = "event", "object", "signal"
RECONCILIATION, DISCREPANCY = "reconciliation", "discrepancy"
MIDDLEWARE_PREFIX = f"{SOURCE}."  # middleware detail-types; every other one is a Stripe event type
RECORD_ID_JOIN = ":"
Path = str | tuple[str, ...]  # one JSON path, or several whose values are joined with RECORD_ID_JOIN
_PATH = re.compile(r"^\$(\.[A-Za-z0-9_-]+)+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class RecordKind:
    """A kind of row, and the detail-types it is made from (`pattern` is the bus rule's event pattern)."""

    name: str
    description: str
    pattern: Mapping[str, Any]
    detail_types: tuple[str, ...] = ()  # empty: every detail-type outside the middleware's own

    def takes(self, detail_type: str) -> bool:
        """Whether an event of this detail-type is a row of this kind (what `pattern` matches)."""
        if self.detail_types:
            return detail_type in self.detail_types
        return not detail_type.startswith(MIDDLEWARE_PREFIX)


_SIGNAL_TYPES = (str(DetailType.SIGNAL_ANOMALY), str(DetailType.SIGNAL_CHURN_RISK))
RECORD_KINDS: tuple[RecordKind, ...] = (
    RecordKind(
        EVENT,
        "a Stripe event the processor stored and published (detail-type = the Stripe event type)",
        {"source": [SOURCE], "detail-type": [{"anything-but": {"prefix": MIDDLEWARE_PREFIX}}]},
    ),
    RecordKind(
        OBJECT,
        "an object snapshot read by a backfill run",
        {"source": [SOURCE], "detail-type": [str(DetailType.OBJECT_BACKFILLED)]},
        (str(DetailType.OBJECT_BACKFILLED),),
    ),
    RecordKind(
        SIGNAL,
        "a churn-risk level change or an anomaly",
        {"source": [SOURCE], "detail-type": list(_SIGNAL_TYPES)},
        _SIGNAL_TYPES,
    ),
    RecordKind(
        RECONCILIATION,
        "a payout's reconciliation record, each time it changes",
        {"source": [SOURCE], "detail-type": [str(DetailType.RECONCILIATION_COMPLETED)]},
        (str(DetailType.RECONCILIATION_COMPLETED),),
    ),
    RecordKind(
        DISCREPANCY,
        "a gap reconciliation found between Stripe and the store, as first found",
        {"source": [SOURCE], "detail-type": [str(DetailType.RECONCILIATION_DISCREPANCY)]},
        (str(DetailType.RECONCILIATION_DISCREPANCY),),
    ),
)
KINDS = tuple(kind.name for kind in RECORD_KINDS)


@dataclass(frozen=True)
class Column:
    """A column of `records`: its Glue (Athena) and DuckDB types, and per record kind the JSON path into
    the EventBridge event its value comes from (a kind without a path gets null)."""

    name: str
    glue_type: str
    duckdb_type: str
    description: str
    paths: Mapping[str, Path] = field(default_factory=dict)
    partition: bool = False

    def path(self, kind: str) -> Path | None:
        return self.paths.get(kind)


# (Glue type, DuckDB type)
STRING, BOOLEAN, BIGINT, DOUBLE = (
    ("string", "VARCHAR"),
    ("boolean", "BOOLEAN"),
    ("bigint", "BIGINT"),
    ("double", "DOUBLE"),
)
TIMESTAMP = ("timestamp", "TIMESTAMP")
_N = "$.detail.normalized."
_BOTH = (EVENT, OBJECT)  # the kinds that carry the processor's `normalized` attributes
_MIDDLEWARE_KINDS = (OBJECT, SIGNAL, RECONCILIATION, DISCREPANCY)  # details the middleware itself makes


def _column(types: tuple[str, str], name: str, description: str, paths: Mapping[str, Path]) -> Column:
    return Column(name, types[0], types[1], description, paths)


def _normalized(
    name: str,
    types: tuple[str, str],
    description: str,
    key: str | None = None,
    more: Mapping[str, Path] | None = None,
) -> Column:
    """A column read from `normalized` in event and object rows (and from `more` in other kinds' rows),
    null in the other kinds' rows."""
    paths = dict.fromkeys(_BOTH, _N + (key or name)) | dict(more or {})
    return Column(name, types[0], types[1], description, paths)


COLUMNS: tuple[Column, ...] = (
    Column("record_kind", *STRING, " | ".join(KINDS) + " (partition)", partition=True),
    Column("event_date", *STRING, "YYYY-MM-DD: the UTC date of event_time (partition)", partition=True),
    _column(
        STRING,
        "record_id",
        "the de-duplication key: the Stripe event id, <run_id>:<object_id>, the signal id, "
        "<payout_id>:<revision>, or the discrepancy id",
        {
            EVENT: "$.detail.id",
            OBJECT: ("$.detail.run_id", "$.detail.object_id"),
            SIGNAL: "$.detail.signal_id",
            RECONCILIATION: ("$.detail.payout_id", "$.detail.revision"),
            DISCREPANCY: "$.detail.discrepancy_id",
        },
    ),
    _column(
        STRING,
        "event_id",
        "the Stripe event id (event rows) or the backfill run id (object rows)",
        {EVENT: "$.detail.id", OBJECT: "$.detail.run_id"},
    ),
    _column(
        STRING,
        "event_type",
        "the Stripe event type, or the middleware detail-type",
        {EVENT: "$.detail.type"} | dict.fromkeys(_MIDDLEWARE_KINDS, "$.detail-type"),
    ),
    _column(
        TIMESTAMP,
        "event_time",
        "event time: the Stripe event's created, the snapshot's or signal's as_of, or the payout's created",
        {EVENT: _N + "event_created"} | dict.fromkeys(_MIDDLEWARE_KINDS, "$.detail.as_of"),
    ),
    _column(
        STRING,
        "account",
        "the Connect account, null for the platform",
        dict.fromkeys(KINDS, "$.detail.account"),
    ),
    _column(
        BOOLEAN, "livemode", "live (true) or test (false) mode", dict.fromkeys(KINDS, "$.detail.livemode")
    ),
    _normalized(
        "object_type",
        STRING,
        "the Stripe object type (invoice, subscription, charge, ...); discrepancies: the object's",
        more={DISCREPANCY: "$.detail.object_type"},
    ),
    _normalized(
        "object_id",
        STRING,
        "the Stripe object id (discrepancies: of the object the gap is about)",
        more={DISCREPANCY: "$.detail.object_id"},
    ),
    _column(
        STRING,
        "customer_id",
        "the customer the object (or signal) belongs to",
        {EVENT: _N + "customer_id", OBJECT: _N + "customer_id", SIGNAL: "$.detail.customer_id"},
    ),
    _normalized(
        "subscription_id", STRING, "the subscription (subscriptions: their own id; invoices: theirs)"
    ),
    _normalized(
        "status",
        STRING,
        "the object's status; reconciliation: balanced | discrepancies | repaired | unreconcilable_by_stripe",
        more={RECONCILIATION: "$.detail.status"},
    ),
    _normalized(
        "amount",
        BIGINT,
        "amount, amount_total, amount_due or total, in the minor unit (reconciliation: the payout's)",
        more={RECONCILIATION: "$.detail.payout.amount"},
    ),
    _normalized("amount_refunded", BIGINT, "charges: the amount refunded, in the minor unit"),
    _normalized(
        "currency",
        STRING,
        "ISO currency code, lower case (reconciliation: the payout's; discrepancies: the unbalanced one)",
        more={RECONCILIATION: "$.detail.payout.currency", DISCREPANCY: "$.detail.currency"},
    ),
    _normalized("created", TIMESTAMP, "the object's created"),
    _normalized("order_key", STRING, "the store's order key: the latest state of an object has the greatest"),
    _normalized(
        "mrr_amount",
        BIGINT,
        "subscriptions: monthly recurring revenue, minor unit (any status; null: tiered)",
    ),
    _normalized("quantity", BIGINT, "subscriptions: the sum of the items' quantities"),
    _normalized("plan_interval", STRING, "subscriptions: month | year | week | day (the first item's)"),
    _normalized("cancel_at_period_end", BOOLEAN, "subscriptions: set to cancel at the period's end"),
    _normalized("trial_end", TIMESTAMP, "subscriptions: when the trial ends"),
    _normalized("canceled_at", TIMESTAMP, "when it was canceled (subscriptions, payment intents)"),
    _normalized(
        "erp_id", STRING, "metadata erp_id (normalized by the metadata schema)", "attribution.erp_id"
    ),
    _normalized("crm_account_id", STRING, "metadata crm_account_id", "attribution.crm_account_id"),
    _normalized("campaign", STRING, "metadata campaign", "attribution.campaign"),
    _normalized("cost_center", STRING, "metadata cost_center", "attribution.cost_center"),
    _column(STRING, "signal_kind", "signals: the anomaly kind, or churn_risk", {SIGNAL: "$.detail.kind"}),
    _column(
        STRING, "signal_level", "signals: the level (e.g. low | medium | high)", {SIGNAL: "$.detail.level"}
    ),
    _column(DOUBLE, "signal_score", "signals: the score", {SIGNAL: "$.detail.score"}),
    _column(
        BOOLEAN,
        "stale",
        "events: a newer snapshot was stored already (flags.stale)",
        {EVENT: "$.detail.flags.stale"},
    ),
    _column(
        STRING,
        "payout_id",
        "reconciliation and discrepancies: the payout",
        dict.fromkeys((RECONCILIATION, DISCREPANCY), "$.detail.payout_id"),
    ),
    _column(
        BIGINT,
        "revision",
        "reconciliation: the record's revision (a payout's latest record has the greatest)",
        {RECONCILIATION: "$.detail.revision"},
    ),
    _column(
        STRING,
        "discrepancy_kind",
        "discrepancies: unbalanced_payout | missing_in_store | amount_mismatch | status_mismatch | "
        "not_paid_out | missing_erp_id",
        {DISCREPANCY: "$.detail.kind"},
    ),
    _column(
        BOOLEAN,
        "repaired",
        "discrepancies: repaired (fetched from Stripe and stored) when it was found",
        {DISCREPANCY: "$.detail.repaired"},
    ),
)
COLUMN_NAMES = tuple(column.name for column in COLUMNS)
PARTITION_COLUMNS = tuple(column for column in COLUMNS if column.partition)
DATA_COLUMNS = tuple(column for column in COLUMNS if not column.partition)
# Firehose dynamic partitioning (JQ over a row): the S3 prefix record_kind=<k>/event_date=<d>/.
PARTITION_QUERIES = {"record_kind": ".record_kind", "event_date": ".event_time[0:10]"}


def record_kind(detail_type: str) -> RecordKind | None:
    """The kind of row an event of this detail-type makes; None when the warehouse does not take it."""
    return next((kind for kind in RECORD_KINDS if kind.takes(detail_type)), None)


def value_at(event: Mapping[str, Any], path: str) -> Any:
    """The value at a JSON path such as `$.detail.normalized.amount`; None when any key is missing."""
    if not _PATH.match(path):
        raise ValueError(f"not a plain JSON path: {path!r}")
    value: Any = event
    for key in path[2:].split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def path_exists(event: Mapping[str, Any], path: str) -> bool:
    """Whether every key of the path is in the event (its value may be null). An input transformer
    creates no variable for a path that is not there, so each path of a kind must exist in all its events."""
    if not _PATH.match(path):
        raise ValueError(f"not a plain JSON path: {path!r}")
    value: Any = event
    for key in path[2:].split("."):
        if not isinstance(value, Mapping) or key not in value:
            return False
        value = value[key]
    return True


def _value(event: Mapping[str, Any], path: Path | None) -> Any:
    if path is None:
        return None
    if isinstance(path, str):
        return value_at(event, path)
    parts = [value_at(event, p) for p in path]
    return None if any(p is None for p in parts) else RECORD_ID_JOIN.join(str(p) for p in parts)


def row_of(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `records` row of an EventBridge event (envelope with `detail-type` and `detail`), every value
    read by the column's path for the event's kind; None for a detail-type the warehouse does not take.
    Times stay ISO 8601 strings (the Parquet writer casts them)."""
    detail_type = event.get("detail-type")
    kind = record_kind(detail_type) if isinstance(detail_type, str) else None
    if kind is None or not isinstance(event.get("detail"), Mapping):
        return None
    row = {column.name: _value(event, column.path(kind.name)) for column in DATA_COLUMNS}
    event_time = row["event_time"]
    date = event_time[:10] if isinstance(event_time, str) and _DATE.match(event_time) else None
    return {"record_kind": kind.name, "event_date": date, **row}
