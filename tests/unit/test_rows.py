"""The `records` row model: `row_of` on EventBridge events shaped exactly as the middleware publishes them.

Every detail is built by the code that publishes it (the processor's `build_detail`, the backfill's
`backfilled_detail`, the signals' `detail()`) around the real Stripe fixtures, and wrapped in the envelope
EventBridge delivers (JSON round trip included), so the paths are checked against the real shapes.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from jsonschema import Draft4Validator

from events import load_event, stripe_event, stripe_object
from stripe_middleware.backfill.run import backfilled_detail
from stripe_middleware.export.rows import (
    COLUMN_NAMES,
    COLUMNS,
    DATA_COLUMNS,
    DISCREPANCY,
    EVENT,
    KINDS,
    OBJECT,
    PARTITION_COLUMNS,
    RECONCILIATION,
    RECORD_KINDS,
    SIGNAL,
    path_exists,
    record_kind,
    row_of,
    value_at,
)
from stripe_middleware.processing.models import StripeEvent
from stripe_middleware.processing.normalize import normalize, normalize_snapshot
from stripe_middleware.processing.processor import build_detail
from stripe_middleware.reconciliation.models import KINDS as DISCREPANCY_KINDS
from stripe_middleware.shared.contract import SOURCE, DetailType
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware.signals.churn import ChurnRisk, Contribution
from stripe_middleware.signals.facts import facts_of
from stripe_middleware.signals.ports import Anomaly, Reason
from tests.fakes.payouts import published_reconciliation

SCHEMA = load_metadata_schema()
T0 = 1_764_000_000  # 2025-11-24T16:00:00Z
RUN_ID = "bf_0123456789abcdef"
CUSTOMER = "cus_QXg1o8vcGmoR32"  # the fixtures' customer
METADATA = {"crm_account_id": " 001A00000abcDEF ", "campaign": " Partner ", "cost_center": "cc-123"}
PLAIN_PATH = re.compile(r"^\$(\.[A-Za-z0-9_-]+)+$")  # what an EventBridge input transformer follows


# -- events as the bus delivers them (also used by tests/integration/test_local_warehouse.py) -------------
def envelope(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The EventBridge event a rule's target receives: a fresh envelope id on every delivery."""
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": SOURCE,
        "account": "123456789012",
        "time": "2025-11-24T16:00:05Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    return dict(json.loads(json.dumps(event)))


def stripe_published(
    event: dict[str, Any], *, stale: bool = False, redelivered: bool = False
) -> tuple[str, dict[str, Any]]:
    """(detail-type, detail) the processor publishes for a Stripe event."""
    parsed = StripeEvent.model_validate(event)
    detail = build_detail(parsed, normalize(parsed, SCHEMA), stale=stale, redelivered=redelivered)
    return parsed.type, detail


def subscription_event(event_id: str = "evt_sub_1", *, created: int = T0, **fields: Any) -> dict[str, Any]:
    return stripe_event(
        "customer.subscription.updated", event_id=event_id, created=created, metadata=METADATA, **fields
    )


def charge_event(event_id: str = "evt_ch_1", *, created: int = T0, **fields: Any) -> dict[str, Any]:
    fields = {"customer": CUSTOMER, "amount": 2000, "amount_refunded": 500, **fields}
    event = stripe_event("charge.refunded", event_id=event_id, created=created, **fields)
    event["data"]["object"]["created"] = created  # `created=` dates the event; the charge is dated here
    return event


def backfilled(
    resource: str = "subscription", *, as_of: int = T0, account: str | None = None, **fields: Any
) -> tuple[str, dict[str, Any]]:
    obj = stripe_object(resource, **{"metadata": METADATA, **fields})
    stored = normalize_snapshot(obj, SCHEMA, account=account, livemode=False, run_id=RUN_ID, as_of=as_of)
    return DetailType.OBJECT_BACKFILLED, backfilled_detail(stored, RUN_ID)


def anomaly(signal_id: str = "sig_00000000000000000000d0b1", *, at: int = T0) -> tuple[str, dict[str, Any]]:
    evidence = tuple(facts_of(*stripe_published(charge_event(created=at))))
    found = Anomaly(
        signal_id=signal_id,
        kind="duplicate_charge",
        subject=f"customer:{CUSTOMER}",
        account=None,
        livemode=False,
        customer_id=CUSTOMER,
        score=0.8125,
        reasons=(Reason("same_amount_charges", 2, 2, "two charges of the same amount"),),
        evidence=evidence,
        model_version="duplicate_charge@0a1b2c3d",
    )
    return DetailType.SIGNAL_ANOMALY, found.detail()


def churn_risk(
    signal_id: str = "sig_00000000000000000000c0a1", *, at: int = T0
) -> tuple[str, dict[str, Any]]:
    evidence = tuple(facts_of(*stripe_published(subscription_event(created=at))))
    risk = ChurnRisk(
        signal_id=signal_id,
        subject=f"customer:{CUSTOMER}",
        account="acct_1Connect",
        livemode=True,
        customer_id=CUSTOMER,
        score=0.42,
        reasons=(Contribution("tenure_days", 30.0, 0.2, "a short tenure raises the risk"),),
        evidence=evidence,
        as_of=at,
        model_version="churn@0a1b2c3d",
        features={"tenure_days": 30.0},
    )
    return DetailType.SIGNAL_CHURN_RISK, risk.detail()


def samples() -> dict[str, list[dict[str, Any]]]:
    """Realistic events of every record kind, varied enough that each column's path finds a value."""
    return {
        EVENT: [
            envelope(*stripe_published(subscription_event())),
            envelope(*stripe_published(charge_event(account="acct_1Connect"), stale=True)),
            envelope(
                *stripe_published(
                    stripe_event("invoice.paid", event_id="evt_in_1", metadata={"erp_id": " ns-100001"})
                )
            ),
        ],
        OBJECT: [
            envelope(*backfilled()),
            envelope(*backfilled("charge", account="acct_1Connect", metadata={"erp_id": "SAP-123456"})),
        ],
        SIGNAL: [envelope(*anomaly()), envelope(*churn_risk())],
        **reconciliation_samples(),
    }


def reconciliation_samples() -> dict[str, list[dict[str, Any]]]:
    """A payout with every gap reconciled, on the platform and on a connected account in live mode."""
    published = [
        *published_reconciliation(),
        *published_reconciliation(account="acct_1Connect", livemode=True),
    ]
    return {
        RECONCILIATION: [envelope(t, d) for t, d in published if t == DetailType.RECONCILIATION_COMPLETED],
        DISCREPANCY: [envelope(t, d) for t, d in published if t == DetailType.RECONCILIATION_DISCREPANCY],
    }


# -- rows ---------------------------------------------------------------------------------------------------
def test_an_event_row_carries_the_normalized_attributes() -> None:
    row = row_of(envelope(*stripe_published(subscription_event())))
    assert row is not None
    sub = stripe_object("subscription")
    expected = {
        "record_kind": "event",
        "event_date": "2025-11-24",
        "record_id": "evt_sub_1",
        "event_id": "evt_sub_1",
        "event_type": "customer.subscription.updated",
        "event_time": "2025-11-24T16:00:00Z",
        "account": None,
        "livemode": False,
        "object_type": "subscription",
        "object_id": sub["id"],
        "customer_id": sub["customer"],
        "subscription_id": sub["id"],
        "status": "active",
        "amount": None,
        "amount_refunded": None,
        "currency": "usd",
        "created": "2009-02-13T23:31:30Z",
        "order_key": "001764000000#1#evt_sub_1",
        "mrr_amount": 2000,
        "quantity": 1,
        "plan_interval": "month",
        "cancel_at_period_end": True,
        "trial_end": "2009-02-13T23:31:30Z",
        "canceled_at": "2009-02-13T23:31:30Z",
        "erp_id": None,
        "crm_account_id": "001A00000abcDEF",  # normalized: trimmed
        "campaign": "partner",  # normalized: trimmed, lower case
        "cost_center": "CC-123",
        "signal_kind": None,
        "signal_level": None,
        "signal_score": None,
        "stale": False,
        "payout_id": None,
        "revision": None,
        "discrepancy_kind": None,
        "repaired": None,
    }
    assert row == expected
    assert list(row) == list(COLUMN_NAMES)  # the table's column order


def test_a_charge_row_has_its_refund_and_the_stale_flag() -> None:
    row = row_of(envelope(*stripe_published(charge_event(account="acct_1Connect"), stale=True)))
    assert row is not None
    assert (row["amount"], row["amount_refunded"], row["currency"]) == (2000, 500, "usd")
    assert (row["account"], row["stale"], row["mrr_amount"], row["subscription_id"]) == (
        "acct_1Connect",
        True,
        None,
        None,
    )


def test_an_object_row_is_keyed_by_run_and_object() -> None:
    row = row_of(envelope(*backfilled(as_of=T0 + 86_400)))
    assert row is not None
    sub = stripe_object("subscription")
    assert row["record_kind"] == "object" and row["record_id"] == f"{RUN_ID}:{sub['id']}"
    assert (row["event_id"], row["event_type"]) == (RUN_ID, "stripe-middleware.object.backfilled")
    assert (row["event_time"], row["event_date"]) == ("2025-11-25T16:00:00Z", "2025-11-25")
    assert row["order_key"] == f"{T0 + 86_400:012d}#5#{RUN_ID}"  # a snapshot's key (processing/ordering)
    assert (row["mrr_amount"], row["customer_id"], row["campaign"]) == (2000, sub["customer"], "partner")
    assert row["stale"] is None and row["signal_kind"] is None


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        (
            anomaly,
            ("sig_00000000000000000000d0b1", "duplicate_charge", "high", 0.812, None, False),
        ),  # score rounded to 3
        (churn_risk, ("sig_00000000000000000000c0a1", "churn_risk", "low", 0.42, "acct_1Connect", True)),
    ],
)
def test_a_signal_row_carries_kind_level_and_score(signal: Any, expected: tuple[Any, ...]) -> None:
    detail_type, detail = signal()
    row = row_of(envelope(detail_type, detail))
    assert row is not None
    assert row["record_kind"] == "signal" and row["event_type"] == detail_type
    got = tuple(
        row[k] for k in ("record_id", "signal_kind", "signal_level", "signal_score", "account", "livemode")
    )
    assert got == expected
    assert (row["customer_id"], row["event_time"], row["event_date"]) == (
        CUSTOMER,
        detail["as_of"],
        "2025-11-24",
    )
    assert row["event_id"] is None and row["object_id"] is None and row["mrr_amount"] is None


def test_a_payouts_reconciliation_is_a_row_per_revision_and_each_discrepancy_a_row() -> None:
    rows = {kind: [row_of(event) for event in events] for kind, events in reconciliation_samples().items()}
    platform = {
        row["payout_id"]: row for row in rows[RECONCILIATION] if row is not None and row["account"] is None
    }
    assert platform["po_1Earlier"]["status"] == "balanced"
    record = platform["po_1Later"]
    assert record["record_id"] == f"{record['payout_id']}:1" and record["revision"] == 1
    assert (record["status"], record["currency"], record["event_date"]) == (
        "discrepancies",
        "usd",
        "2025-11-24",
    )
    assert record["amount"] is not None and record["event_type"] == DetailType.RECONCILIATION_COMPLETED
    found = [row for row in rows[DISCREPANCY] if row is not None and row["account"] is None]
    assert {row["discrepancy_kind"] for row in found} == set(DISCREPANCY_KINDS)  # one of every kind
    assert {row["payout_id"] for row in found} == {record["payout_id"]}
    assert all(
        row["record_id"].startswith("rd_") and row["event_time"] == record["event_time"] for row in found
    )
    assert {row["repaired"] for row in found if row["discrepancy_kind"] == "missing_in_store"} == {True}
    unbalanced = [row for row in found if row["discrepancy_kind"] == "unbalanced_payout"]
    assert [(row["currency"], row["object_id"]) for row in unbalanced] == [("usd", record["payout_id"])]


def test_the_signal_details_used_here_are_the_published_contract() -> None:
    for name, (detail_type, detail) in {
        "signal-anomaly": anomaly(),
        "signal-churn-risk": churn_risk(),
        "object-backfilled": backfilled(),
        "stripe-event": stripe_published(subscription_event()),
    }.items():
        Draft4Validator(load_event(f"schemas/{name}.detail.schema.json")).validate(detail)
        assert record_kind(detail_type) is not None
    for detail_type, detail in published_reconciliation():
        name = detail_type.removeprefix("stripe-middleware.").replace(".", "-")
        Draft4Validator(load_event(f"schemas/{name}.detail.schema.json")).validate(detail)
        assert record_kind(detail_type) is not None


def test_a_redelivered_event_gives_the_same_row() -> None:
    first = row_of(envelope(*stripe_published(charge_event())))
    again = row_of(envelope(*stripe_published(charge_event(), redelivered=True)))  # new envelope id too
    assert first is not None and first == again
    assert first["record_id"] == "evt_ch_1"
    snapshot, redone = row_of(envelope(*backfilled())), row_of(envelope(*backfilled()))
    assert snapshot is not None and snapshot == redone


@pytest.mark.parametrize(
    "detail_type",
    [
        "stripe-middleware.metadata.violation",
        "stripe-middleware.command.succeeded",
        "stripe-middleware.command.failed",
        "stripe-middleware.catchup.gap",
        "stripe-middleware.something.new",
    ],
)
def test_detail_types_the_warehouse_does_not_take_give_none(detail_type: str) -> None:
    assert row_of(envelope(detail_type, {"event_id": "evt_1", "livemode": False})) is None
    assert record_kind(detail_type) is None


def test_an_event_without_a_detail_gives_none() -> None:
    assert row_of({"detail-type": "invoice.paid"}) is None
    assert row_of({"detail": {"id": "evt_1"}}) is None


def test_unknown_stripe_event_types_are_events() -> None:
    row = row_of(
        envelope(*stripe_published(stripe_event("v2.money_management.new_thing.created", event_id="evt_n")))
    )
    assert row is not None and row["record_kind"] == "event" and row["record_id"] == "evt_n"


# -- the model -------------------------------------------------------------------------------------------
def test_every_column_has_a_path_or_is_null_for_each_kind_and_every_path_finds_a_value() -> None:
    rows = {kind: [row_of(event) for event in events] for kind, events in samples().items()}
    for kind in KINDS:
        for column in DATA_COLUMNS:
            values = [row[column.name] for row in rows[kind] if row is not None]
            assert len(values) == len(rows[kind])  # every row has every column
            if column.path(kind) is None:
                assert values == [None] * len(values), (kind, column.name)
            else:  # a typo in a path would leave the column null in every realistic event
                assert any(v is not None for v in values), (kind, column.name)


def test_every_path_of_a_kind_is_in_every_event_of_that_kind() -> None:
    """An input transformer creates no variable for a missing path (the row would not be JSON)."""
    bare = stripe_object("charge", metadata={})
    truncated = stripe_published(stripe_event("charge.succeeded", obj=bare, event_id="evt_bare"))
    truncated[1].update(object=None, flags={**truncated[1]["flags"], "object_truncated": True})
    events = {**samples()}
    events[EVENT] = [*events[EVENT], envelope(*truncated)]
    events[OBJECT] = [*events[OBJECT], envelope(*backfilled("customer", metadata={}))]
    for kind, kind_events in events.items():
        for event in kind_events:
            for column in DATA_COLUMNS:
                path = column.path(kind)
                parts = () if path is None else (path,) if isinstance(path, str) else path
                missing = [p for p in parts if not path_exists(event, p)]
                assert missing == [], (kind, event["detail-type"], column.name)


def test_paths_are_plain_enough_for_an_eventbridge_input_transformer() -> None:
    for kind in KINDS:
        variables = 0
        for column in DATA_COLUMNS:
            path = column.path(kind)
            parts = () if path is None else (path,) if isinstance(path, str) else path
            assert all(PLAIN_PATH.match(p) for p in parts), (kind, column.name, path)
            variables += len(parts)
        assert variables <= 100  # an input transformer takes at most 100 variables


def test_partition_columns_come_first_and_have_no_path() -> None:
    assert [c.name for c in PARTITION_COLUMNS] == ["record_kind", "event_date"] == list(COLUMN_NAMES[:2])
    assert all(not c.paths for c in PARTITION_COLUMNS)
    assert len(set(COLUMN_NAMES)) == len(COLUMNS)
    assert {c.glue_type for c in COLUMNS} <= {"string", "bigint", "double", "boolean", "timestamp"}
    assert {c.duckdb_type for c in COLUMNS} <= {"VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMP"}


def test_each_kinds_bus_pattern_takes_what_row_of_takes() -> None:
    event, obj, signal, reconciliation, discrepancy = RECORD_KINDS
    assert event.pattern == {
        "source": [SOURCE],
        "detail-type": [{"anything-but": {"prefix": "stripe-middleware."}}],
    }
    assert obj.pattern["detail-type"] == list(obj.detail_types) == ["stripe-middleware.object.backfilled"]
    assert signal.pattern["detail-type"] == list(signal.detail_types)
    assert set(signal.detail_types) == {DetailType.SIGNAL_ANOMALY, DetailType.SIGNAL_CHURN_RISK}
    assert reconciliation.pattern["detail-type"] == [DetailType.RECONCILIATION_COMPLETED]
    assert discrepancy.pattern["detail-type"] == [DetailType.RECONCILIATION_DISCREPANCY]
    assert all(kind.pattern["source"] == [SOURCE] for kind in RECORD_KINDS)


def test_the_path_getter_follows_keys_only() -> None:
    event = {"detail-type": "x", "detail": {"a": {"b": 0}, "list": [1]}}
    assert value_at(event, "$.detail.a.b") == 0
    assert value_at(event, "$.detail-type") == "x"
    assert value_at(event, "$.detail.a.missing") is None
    assert value_at(event, "$.detail.a.b.deeper") is None  # through a number
    assert value_at(event, "$.detail.list.0") is None  # no arrays
    assert path_exists(event, "$.detail.a.b") and not path_exists(event, "$.detail.a.missing")
    assert path_exists({"detail": {"x": None}}, "$.detail.x")  # there, and null
    for bad in ("$", "detail.a", "$.detail[0]", "$..a", "$.detail.*"):
        with pytest.raises(ValueError, match="plain JSON path"):
            value_at(event, bad)


def test_the_readme_documents_every_column_of_the_row_model() -> None:
    from stripe_middleware.export.rows import COLUMNS
    from stripe_middleware_dev import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("### The row model") : readme.index("### Querying")]
    documented = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    assert documented == [c.name for c in COLUMNS]
