"""The analytics views on DuckDB against a hand-computed history: every expected number is written here.

The history is rows of the `records` table (the issue-12 row model), January to May 2025. MRR at the
month's end, Jan / Feb / Mar / Apr / May, in the currency's minor unit:

| who | story (usd unless said) | MRR |
| --- | --- | --- |
| A | monthly 2000 from Jan 10, upgraded mid-cycle to 4500 Mar 15 (1250 prorated) | 2000 2000 4500 4500 4500 |
| B | monthly 2000 from Jan 5; a 25 % coupon from Apr 20 (mrr_amount discounted) | 2000 2000 2000 1500 1500 |
| C | annual plan from Feb 1, 24000 a year (mrr_amount /12); 4000 refunded Mar 3 | - 2000 2000 2000 2000 |
| D | monthly 3000 from Jan 20, canceled Mar 5; a new subscription on May 2 | 3000 3000 0 0 3000 |
| E | trial from Feb 10 (excluded), active Apr 1 at 2000; no customer object | - 0 0 2000 2000 |
| F | eur: monthly 1800 from Jan 15; a customer without metadata | 1800 1800 1800 1800 1800 |
| G | no subscription: charges of 5000 (Feb 12) and 3000 (Apr 3), one failed (Mar 1) | - |

Customer campaigns: A, C and D paid_search, B partner (its subscription says events), G events.
Delivery noise that must not count twice: A's first events and charge delivered twice, an older event of
A's arriving after the upgrade, a backfill snapshot of B's subscription and of its first charge (Feb 20),
that snapshot's page written twice, a signal redelivered. Ids, the currency and the monthly price (2000)
come from the real Stripe fixtures. It is all the platform's own (account null) in test mode, so every row
of a summary view starts with `account, livemode` = `None, False`; the tests under "accounts and modes"
keep a live, a test-mode and a connected account's money apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pytest

from events import stripe_object
from stripe_middleware_dev.analytics import (
    VIEW_NAMES,
    VIEWS,
    athena_statements,
    create_views,
    view_name,
    view_sql,
)

_SUBSCRIPTION = stripe_object("subscription")
_CHARGE = stripe_object("charge")
_PRICE = _SUBSCRIPTION["items"]["data"][0]["price"]
USD = _SUBSCRIPTION["currency"]
MONTHLY = _PRICE["unit_amount"]  # 2000 a month, licensed
assert (USD, MONTHLY, _PRICE["recurring"]["interval"]) == ("usd", 2000, "month")
EUR = "eur"

# The `records` columns and their DuckDB types (the issue-12 row model), in order.
RECORDS = {
    "record_kind": "VARCHAR",
    "event_date": "VARCHAR",
    "record_id": "VARCHAR",
    "event_id": "VARCHAR",
    "event_type": "VARCHAR",
    "event_time": "TIMESTAMP",
    "account": "VARCHAR",
    "livemode": "BOOLEAN",
    "object_type": "VARCHAR",
    "object_id": "VARCHAR",
    "customer_id": "VARCHAR",
    "subscription_id": "VARCHAR",
    "status": "VARCHAR",
    "amount": "BIGINT",
    "amount_refunded": "BIGINT",
    "currency": "VARCHAR",
    "created": "TIMESTAMP",
    "order_key": "VARCHAR",
    "mrr_amount": "BIGINT",
    "quantity": "BIGINT",
    "plan_interval": "VARCHAR",
    "cancel_at_period_end": "BOOLEAN",
    "trial_end": "TIMESTAMP",
    "canceled_at": "TIMESTAMP",
    "erp_id": "VARCHAR",
    "crm_account_id": "VARCHAR",
    "campaign": "VARCHAR",
    "cost_center": "VARCHAR",
    "signal_kind": "VARCHAR",
    "signal_level": "VARCHAR",
    "signal_score": "DOUBLE",
    "stale": "BOOLEAN",
    "payout_id": "VARCHAR",
    "revision": "BIGINT",
    "discrepancy_kind": "VARCHAR",
    "repaired": "BOOLEAN",
}
Row = dict[str, Any]


def on(month: int, day: int, year: int = 2025) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


def first(month: int, year: int = 2025) -> date:
    return date(year, month, 1)


def customer_id(name: str) -> str:
    return f"{_SUBSCRIPTION['customer']}{name}"


def subscription_id(name: str) -> str:
    return f"{_SUBSCRIPTION['id']}{name}"


def charge_id(name: str) -> str:
    return f"{_CHARGE['id']}{name}"


# -- rows as the export writes them ----------------------------------------------------------------------
_RANKS = {"created": 0, "deleted": 2}


def _row(**values: Any) -> Row:
    unknown = set(values) - set(RECORDS)
    assert not unknown, unknown
    return {**dict.fromkeys(RECORDS), "livemode": False, **values}


def event(
    event_type: str, at: datetime, object_type: str, object_id: str, n: int = 0, **normalized: Any
) -> Row:
    """The row of a Stripe event carrying an object's state (`n` tells apart events of one object)."""
    event_id = f"evt_{object_id}_{at:%m%d}_{n}"
    rank = _RANKS.get(event_type.rsplit(".", 1)[-1], 1)
    return _row(
        record_kind="event",
        event_date=f"{at:%Y-%m-%d}",
        record_id=event_id,
        event_id=event_id,
        event_type=event_type,
        event_time=at,
        object_type=object_type,
        object_id=object_id,
        order_key=f"{int(at.timestamp()):012d}#{rank}#{event_id}",
        stale=False,
        **normalized,
    )


def backfilled(row: Row, run_id: str, as_of: datetime) -> Row:
    """A backfill run's snapshot of the object `row` describes, as of `as_of`."""
    kept = {k: v for k, v in row.items() if k not in {"record_kind", "event_date", "stale"}}
    return {
        **kept,
        "record_kind": "object",
        "event_date": f"{as_of:%Y-%m-%d}",
        "record_id": f"{run_id}:{row['object_id']}",
        "event_id": run_id,
        "event_type": "stripe-middleware.object.backfilled",
        "event_time": as_of,
        "order_key": f"{int(as_of.timestamp()):012d}#5#{run_id}",
        "stale": None,
    }


def customer(name: str, at: datetime, **metadata: str) -> Row:
    return event(
        "customer.created", at, "customer", customer_id(name), customer_id=customer_id(name), **metadata
    )


def subscription(
    event_type: str, name: str, at: datetime, status: str, mrr: int, *, of: str | None = None, **fields: Any
) -> Row:
    """A state of subscription `name` of customer `of` (default: the same letter)."""
    sub = subscription_id(name)
    return event(
        event_type,
        at,
        "subscription",
        sub,
        customer_id=customer_id(of or name[0]),
        subscription_id=sub,
        status=status,
        currency=fields.pop("currency", USD),
        created=fields.pop("created", at),
        mrr_amount=mrr,
        quantity=1,
        plan_interval=fields.pop("plan_interval", "month"),
        cancel_at_period_end=False,
        **fields,
    )


def charge(name: str, of: str, at: datetime, amount: int, *, status: str = "succeeded", **fields: Any) -> Row:
    event_type = "charge.refunded" if fields.get("amount_refunded") else f"charge.{status}"
    refunded = fields.pop("amount_refunded", 0)
    return event(
        event_type,
        fields.pop("event_at", at),
        "charge",
        charge_id(name),
        customer_id=customer_id(of),
        status=status,
        amount=amount,
        amount_refunded=refunded,
        currency=fields.pop("currency", USD),
        created=at,
        **fields,
    )


def signal(signal_id: str, of: str, at: datetime, level: str, kind: str = "churn_risk", **scope: Any) -> Row:
    """A signal about customer `of`; `scope` may set its `account` and `livemode`."""
    detail_type = "churn_risk" if kind == "churn_risk" else "anomaly"
    return _row(
        **scope,
        record_kind="signal",
        event_date=f"{at:%Y-%m-%d}",
        record_id=signal_id,
        event_type=f"stripe-middleware.signal.{detail_type}",
        event_time=at,
        customer_id=customer_id(of),
        signal_kind=kind,
        signal_level=level,
        signal_score={"low": 0.1, "medium": 0.5, "high": 0.9}[level],
    )


def history() -> list[Row]:
    crm = {name: f"001{name * 12}" for name in "ABCD"}
    a_created = subscription("customer.subscription.created", "A", on(1, 10), "active", 2000)
    a_paid = charge("A1", "A", on(1, 10), 2000)
    b_active = subscription("customer.subscription.created", "B", on(1, 5), "active", 2000, campaign="events")
    b_paid = charge("B1", "B", on(1, 5), 2000)
    b_snapshot = backfilled(b_active, "run_feb", on(2, 20))
    return [
        customer("A", on(1, 9), campaign="paid_search", erp_id="NS-1001", crm_account_id=crm["A"]),
        customer("B", on(1, 4), campaign="partner", erp_id="NS-1002", crm_account_id=crm["B"]),
        customer("C", on(1, 30), campaign="paid_search", erp_id="NS-1003", crm_account_id=crm["C"]),
        customer("D", on(1, 19), campaign="paid_search", erp_id="NS-1004", crm_account_id=crm["D"]),
        customer("F", on(1, 14)),
        customer("G", on(2, 11), campaign="events"),
        # A: an upgrade in the middle of the cycle, its first events delivered twice.
        a_created,
        dict(a_created),
        a_paid,
        dict(a_paid),
        subscription("customer.subscription.updated", "A", on(3, 15), "active", 4500, created=on(1, 10)),
        charge("A2", "A", on(3, 15), 1250),  # the proration of the upgrade
        # An older event of the same month arriving after the upgrade: the upgrade stays the month's end.
        subscription("customer.subscription.updated", "A", on(3, 2), "active", 2000, created=on(1, 10)),
        charge("A3", "A", on(4, 10), 4500),
        # B: a coupon (mrr_amount already discounted); a backfill snapshot of the same objects, twice.
        b_active,
        b_paid,
        b_snapshot,
        dict(b_snapshot),
        backfilled(b_paid, "run_feb", on(2, 20)),
        subscription(
            "customer.subscription.updated",
            "B",
            on(4, 20),
            "active",
            1500,
            created=on(1, 5),
            campaign="events",
        ),
        charge("B2", "B", on(5, 5), 1500),
        # C: an annual plan (mrr_amount already divided by 12); part of its charge refunded a month later.
        subscription("customer.subscription.created", "C", on(2, 1), "active", 2000, plan_interval="year"),
        charge("C1", "C", on(2, 1), 24000),
        charge("C1", "C", on(2, 1), 24000, amount_refunded=4000, event_at=on(3, 3)),
        # D: churns (canceled), then comes back on a new subscription.
        subscription("customer.subscription.created", "D1", on(1, 20), "active", 3000),
        charge("D1", "D", on(1, 20), 3000),
        subscription(
            "customer.subscription.deleted",
            "D1",
            on(3, 5),
            "canceled",
            3000,
            created=on(1, 20),
            canceled_at=on(3, 5),
        ),
        subscription("customer.subscription.created", "D2", on(5, 2), "active", 3000),
        charge("D2", "D", on(5, 2), 3000),
        # E: a trial (no MRR while trialing, whatever mrr_amount says), converted on Apr 1.
        subscription("customer.subscription.created", "E", on(2, 10), "trialing", 2000, trial_end=on(4, 1)),
        subscription("customer.subscription.updated", "E", on(4, 1), "active", 2000, created=on(2, 10), n=1),
        charge("E1", "E", on(4, 1), 2000),
        # F: another currency.
        subscription("customer.subscription.created", "F", on(1, 15), "active", 1800, currency=EUR),
        charge("F1", "F", on(1, 15), 1800, currency=EUR),
        # G: one-off purchases, one failed.
        charge("G1", "G", on(2, 12), 5000),
        charge("G2", "G", on(3, 1), 3000, status="failed"),
        charge("G3", "G", on(4, 3), 3000),
        # Churn-risk signals: the latest level per customer counts; an anomaly is not a churn risk.
        signal("sig_A1", "A", on(2, 1), "medium"),
        signal("sig_A2", "A", on(4, 2), "high"),
        signal("sig_A2", "A", on(4, 2), "high"),
        signal("sig_A3", "A", on(5, 4), "medium", kind="card_testing"),
        signal("sig_B1", "B", on(3, 1), "high"),
        signal("sig_B2", "B", on(4, 25), "low"),
        signal("sig_C1", "C", on(5, 3), "medium"),
        signal("sig_D1", "D", on(3, 1), "high"),
        signal("sig_F1", "F", on(4, 1), "high"),
        signal("sig_G1", "G", on(5, 1), "high"),
    ]


def database(rows: Sequence[Row]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with `records` holding `rows` (in the order given) and every view created."""
    connection = duckdb.connect(config={"threads": 1})  # tiny tables: threads would only wait on each other
    columns = ", ".join(f"{name} {kind}" for name, kind in RECORDS.items())
    connection.execute(f"CREATE TABLE records ({columns})")
    if rows:
        placeholders = ", ".join("?" for _ in RECORDS)
        connection.executemany(
            f"INSERT INTO records VALUES ({placeholders})",
            [[_naive(row[name]) for name in RECORDS] for row in rows],
        )
    create_views(connection)
    return connection


def _naive(value: Any) -> Any:
    """`records` timestamps are UTC without a time zone."""
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def select(connection: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(_plain(value) for value in row) for row in connection.execute(sql).fetchall()]


def _plain(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = database(history())
    yield connection
    connection.close()


# -- the files and the two engines ------------------------------------------------------------------------
def test_one_view_per_file_in_order_each_reading_only_records_and_earlier_views() -> None:
    assert VIEW_NAMES == (
        "events_deduped",
        "objects_latest",
        "subscription_months",
        "customer_mrr_months",
        "mrr_movements",
        "mrr_summary",
        "succeeded_charges",
        "revenue_by_metadata",
        "cohort_retention",
        "clv",
        "current_mrr",
        "revenue_at_risk",
        "anomalies_at_risk",
        "payout_reconciliation",
        "reconciliation_summary",
    )
    assert [path.name[:2] for path in VIEWS] == [f"{n:02d}" for n in range(1, len(VIEWS) + 1)]
    for index, path in enumerate(VIEWS):
        sql = "\n".join(line for line in view_sql(path).splitlines() if not line.lstrip().startswith("--"))
        later = VIEW_NAMES[index + 1 :]
        assert not [name for name in later if f" {name}\n" in sql or f" {name} " in sql], path.name


@pytest.mark.parametrize(
    "pattern",
    [
        "::",
        "qualify",
        "generate_series",
        "range(",
        "filter (where",
        "list_",
        "struct_",
        "strftime",
        "strptime",
        "date_format",
        "date_diff",  # the engines count month boundaries differently
        "epoch",
        "window ",
        "exclude",
    ],
)
def test_the_sql_stays_in_the_subset_duckdb_and_athena_share(pattern: str) -> None:
    for path in VIEWS:
        code = "\n".join(
            line for line in view_sql(path).lower().splitlines() if not line.strip().startswith("--")
        )
        assert pattern not in code, f"{path.name} uses {pattern!r}"


def test_athena_gets_the_same_statements_without_comment_lines() -> None:
    statements = athena_statements()
    assert [name for name, _ in statements] == list(VIEW_NAMES)
    for (name, sql), path in zip(statements, VIEWS, strict=True):
        assert sql.startswith(f"CREATE OR REPLACE VIEW {name} AS\n")
        assert "--" not in sql and not sql.endswith(";")
        code = [line for line in view_sql(path).splitlines() if not line.lstrip().startswith("--")]
        assert sql == "\n".join(code).strip()


def test_a_misnamed_file_is_refused(tmp_path: Any) -> None:
    wrong = tmp_path / "03_mrr.sql"
    wrong.write_text("CREATE OR REPLACE VIEW revenue AS\nSELECT 1 AS x")
    with pytest.raises(ValueError, match="must create exactly the view mrr"):
        view_sql(wrong)
    with pytest.raises(ValueError, match="NN_<view>"):
        view_name(tmp_path / "mrr.sql")


def test_the_views_answer_on_an_empty_warehouse() -> None:
    connection = database([])
    for name in VIEW_NAMES:
        assert select(connection, f"SELECT * FROM {name}") == []


# -- accounts and modes -----------------------------------------------------------------------------------
# The platform's live money, its test-mode money and a connected account's (live) money, in one month and
# one currency. The ids are the same in all three on purpose: only `account` and `livemode` tell them apart.
PLATFORM_TEST, PLATFORM_LIVE, CONNECTED = (None, False), (None, True), ("acct_x", True)
SCOPES = (  # (account, livemode), MRR and charge, customer campaign, churn-risk level
    (PLATFORM_TEST, 5000, "events", "medium"),
    (PLATFORM_LIVE, 10000, "paid_search", "high"),
    (CONNECTED, 7000, "partner", "high"),
)


def scoped_history() -> list[Row]:
    rows = []
    for n, ((account, livemode), amount, campaign, level) in enumerate(SCOPES):
        scope = {"account": account, "livemode": livemode}
        rows += [
            customer("K", on(1, 2), n=n, campaign=campaign, **scope),
            subscription("customer.subscription.created", "K", on(1, 3), "active", amount, n=n, **scope),
            charge("K1", "K", on(1, 3), amount, n=n, **scope),
            signal(f"sig_risk_{n}", "K", on(1, 20), level, **scope),
            signal(f"sig_card_{n}", "K", on(1, 21), "high", kind="card_testing", **scope),
        ]
    return rows


def test_an_accounts_and_a_modes_money_are_never_added_together() -> None:
    connection = database(scoped_history())
    order = "ORDER BY account NULLS FIRST, livemode"
    test, live, connected = PLATFORM_TEST, PLATFORM_LIVE, CONNECTED
    assert select(connection, f"SELECT * FROM mrr_movements {order}") == [
        # account, livemode, month, currency, mrr, new, expansion, contraction, churned, reactivated,
        # customers
        (*test, first(1), USD, 5000, 5000, 0, 0, 0, 0, 1),
        (*live, first(1), USD, 10000, 10000, 0, 0, 0, 0, 1),
        (*connected, first(1), USD, 7000, 7000, 0, 0, 0, 0, 1),
    ]
    assert select(connection, f"SELECT * FROM mrr_summary {order}") == [
        (*test, first(1), USD, 5000, 60000, None, None, 1),
        (*live, first(1), USD, 10000, 120000, None, None, 1),
        (*connected, first(1), USD, 7000, 84000, None, None, 1),
    ]
    # Each charge and subscription takes the campaign of its own account's and mode's customer.
    assert select(
        connection,
        "SELECT account, livemode, month, currency, value, revenue, mrr FROM revenue_by_metadata "
        f"WHERE dimension = 'campaign' {order}",
    ) == [
        (*test, first(1), USD, "events", 5000, 5000),
        (*live, first(1), USD, "paid_search", 10000, 10000),
        (*connected, first(1), USD, "partner", 7000, 7000),
    ]
    assert select(connection, f"SELECT * FROM cohort_retention {order}") == [
        (*test, first(1), 0, 1, 1, 1.0),
        (*live, first(1), 0, 1, 1, 1.0),
        (*connected, first(1), 0, 1, 1, 1.0),
    ]
    assert select(connection, f"SELECT * FROM clv {order}") == [
        (*test, first(1), "events", 1, 5000, 5000.0, USD),
        (*live, first(1), "paid_search", 1, 10000, 10000.0, USD),
        (*connected, first(1), "partner", 1, 7000, 7000.0, USD),
    ]
    assert select(connection, f"SELECT * FROM revenue_at_risk {order}") == [
        (*test, USD, "medium", 1, 5000),
        (*live, USD, "high", 1, 10000),
        (*connected, USD, "high", 1, 7000),
    ]
    assert select(connection, f"SELECT * FROM anomalies_at_risk {order}") == [
        (*test, USD, "card_testing", 1, 5000),
        (*live, USD, "card_testing", 1, 10000),
        (*connected, USD, "card_testing", 1, 7000),
    ]
    # The platform's live numbers, as the report reads them: none of the other 12,000.
    assert select(
        connection, "SELECT mrr, customers FROM mrr_movements WHERE livemode AND account IS NULL"
    ) == [(10000, 1)]


def test_the_yearly_nrr_waits_for_a_year_of_data_of_the_same_account_and_mode() -> None:
    """Test-mode data from January 2024 does not make the live data, which starts in January 2025, reach
    back a year: live February 2025 is still the monthly NRR (3000 / 2000), test-mode February 2025 the
    yearly one (1000 / 1000)."""
    live = {"livemode": True}
    connection = database(
        [
            subscription("customer.subscription.created", "T", on(1, 5, 2024), "active", 1000),
            subscription("customer.subscription.created", "L", on(1, 5, 2025), "active", 2000, **live),
            subscription(
                "customer.subscription.updated",
                "L",
                on(2, 5, 2025),
                "active",
                3000,
                created=on(1, 5, 2025),
                **live,
            ),
        ]
    )
    assert select(
        connection,
        "SELECT livemode, month, mrr, nrr, nrr_months FROM mrr_summary "
        "WHERE month >= DATE '2025-01-01' ORDER BY livemode, month",
    ) == [
        (False, first(1), 1000, 1.0, 12),
        (False, first(2), 1000, 1.0, 12),
        (True, first(1), 2000, None, 1),
        (True, first(2), 3000, 1.5, 1),
    ]


# -- de-duplication and latest state ----------------------------------------------------------------------
def test_events_deduped_keeps_one_row_per_event(db: duckdb.DuckDBPyConnection) -> None:
    rows = history()
    event_ids = {row["record_id"] for row in rows if row["record_kind"] == "event"}
    assert (
        len([row for row in rows if row["record_kind"] == "event"]) == len(event_ids) + 2
    )  # A's redeliveries
    assert select(db, "SELECT count(*), count(DISTINCT record_id) FROM events_deduped") == [
        (len(event_ids), len(event_ids))
    ]
    assert select(db, "SELECT DISTINCT record_kind FROM events_deduped") == [("event",)]


def test_objects_latest_takes_the_greatest_order_key_over_events_and_snapshots(
    db: duckdb.DuckDBPyConnection,
) -> None:
    latest = select(
        db,
        "SELECT object_id, status, mrr_amount, amount_refunded, record_kind FROM objects_latest "
        "WHERE object_type IN ('subscription', 'charge') AND object_id IN "
        f"('{subscription_id('A')}', '{subscription_id('B')}', '{subscription_id('D1')}', "
        f"'{charge_id('B1')}', '{charge_id('C1')}') ORDER BY object_id",
    )
    assert latest == [
        (charge_id("B1"), "succeeded", None, 0, "object"),  # the snapshot (Feb 20) is newer than the event
        (charge_id("C1"), "succeeded", None, 4000, "event"),  # the refund
        (subscription_id("A"), "active", 4500, None, "event"),  # the upgrade
        (subscription_id("B"), "active", 1500, None, "event"),  # the coupon beats the older snapshot
        (subscription_id("D1"), "canceled", 3000, None, "event"),
    ]
    assert select(db, "SELECT count(*) FROM objects_latest") == [(6 + 7 + 13,)]  # customers, subs, charges


def test_subscription_months_carry_the_month_end_state_forward(db: duckdb.DuckDBPyConnection) -> None:
    months = select(
        db,
        "SELECT subscription_id, month, status, mrr, currency, campaign FROM subscription_months "
        f"WHERE subscription_id IN ('{subscription_id('B')}', '{subscription_id('E')}') "
        "ORDER BY subscription_id, month",
    )
    b, e = subscription_id("B"), subscription_id("E")
    assert months == [
        (b, first(1), "active", 2000, "usd", "events"),
        (b, first(2), "active", 2000, "usd", "events"),  # the snapshot is the same state: still one row
        (b, first(3), "active", 2000, "usd", "events"),
        (b, first(4), "active", 1500, "usd", "events"),
        (b, first(5), "active", 1500, "usd", "events"),
        (e, first(2), "trialing", 0, "usd", None),  # a trial has no MRR
        (e, first(3), "trialing", 0, "usd", None),
        (e, first(4), "active", 2000, "usd", None),
        (e, first(5), "active", 2000, "usd", None),
    ]
    assert select(db, "SELECT count(*), count(DISTINCT subscription_id) FROM subscription_months") == [
        (5 + 5 + 4 + 5 + 1 + 4 + 5, 7)
    ]
    # Metadata: the subscription's own value, else its customer's.
    assert select(
        db,
        "SELECT DISTINCT campaign, crm_account_id FROM subscription_months "
        f"WHERE subscription_id = '{subscription_id('A')}'",
    ) == [("paid_search", "001" + "A" * 12)]


def test_a_redelivery_or_a_backfill_never_changes_a_number(db: duckdb.DuckDBPyConnection) -> None:
    """The same history without any duplicate row or snapshot gives every view the same rows."""
    rows = history()
    seen: set[str] = set()
    clean = []
    for row in rows:
        if row["record_kind"] != "object" and row["record_id"] not in seen:
            seen.add(row["record_id"])
            clean.append(row)
    assert len(clean) == len(rows) - 3 - 2 - 1  # 3 snapshot rows, 2 event and 1 signal redeliveries
    reference = database(clean)
    for name in VIEW_NAMES[2:]:
        query = f"SELECT * FROM {name} ORDER BY ALL"
        assert select(db, query) == select(reference, query), name
    # Shuffled input: the same answer.
    shuffled = database(list(reversed(rows)))
    for name in VIEW_NAMES:
        query = f"SELECT * FROM {name} ORDER BY ALL"
        assert select(db, query) == select(shuffled, query), name


# -- MRR --------------------------------------------------------------------------------------------------
def test_mrr_movements(db: duckdb.DuckDBPyConnection) -> None:
    assert select(db, "SELECT * FROM mrr_movements ORDER BY currency, month") == [
        # account, livemode, month, currency, mrr, new, expansion, contraction, churned, reactivated,
        # customers
        (None, False, first(1), "eur", 1800, 1800, 0, 0, 0, 0, 1),
        (None, False, first(2), "eur", 1800, 0, 0, 0, 0, 0, 1),
        (None, False, first(3), "eur", 1800, 0, 0, 0, 0, 0, 1),
        (None, False, first(4), "eur", 1800, 0, 0, 0, 0, 0, 1),
        (None, False, first(5), "eur", 1800, 0, 0, 0, 0, 0, 1),
        (None, False, first(1), "usd", 7000, 7000, 0, 0, 0, 0, 3),  # A, B, D new
        (None, False, first(2), "usd", 9000, 2000, 0, 0, 0, 0, 4),  # C (annual / 12) new; E trialing: nothing
        (None, False, first(3), "usd", 8500, 0, 2500, 0, -3000, 0, 3),  # A upgraded, D churned
        (None, False, first(4), "usd", 10000, 2000, 0, -500, 0, 0, 4),  # E converted, B's coupon
        (None, False, first(5), "usd", 13000, 0, 0, 0, 0, 3000, 5),  # D reactivated
    ]


def test_movements_add_up_to_the_change_in_mrr(db: duckdb.DuckDBPyConnection) -> None:
    rows = select(db, "SELECT * FROM mrr_movements ORDER BY currency, month")
    previous: dict[tuple[str | None, bool, str], int] = {}
    for account, livemode, _, currency, mrr, *moves, _customers in rows:
        key = (account, livemode, currency)
        assert mrr == previous.get(key, 0) + sum(moves)
        previous[key] = mrr


def test_mrr_summary_arr_monthly_nrr_and_logo_churn(db: duckdb.DuckDBPyConnection) -> None:
    assert select(db, "SELECT * FROM mrr_summary ORDER BY currency, month") == [
        # account, livemode, month, currency, mrr, arr, nrr, logo_churn_rate, nrr_months (less than 12 months
        # of data: monthly); the history is the platform's (account null), in test mode
        (None, False, first(1), "eur", 1800, 21600, None, None, 1),
        (None, False, first(2), "eur", 1800, 21600, 1.0, 0.0, 1),
        (None, False, first(3), "eur", 1800, 21600, 1.0, 0.0, 1),
        (None, False, first(4), "eur", 1800, 21600, 1.0, 0.0, 1),
        (None, False, first(5), "eur", 1800, 21600, 1.0, 0.0, 1),
        (None, False, first(1), "usd", 7000, 84000, None, None, 1),
        (None, False, first(2), "usd", 9000, 108000, 1.0, 0.0, 1),  # A, B, D kept their 7000
        (
            None,
            False,
            first(3),
            "usd",
            8500,
            102000,
            round(8500 / 9000, 6),
            0.25,
            1,
        ),  # D of A, B, C, D churned
        (None, False, first(4), "usd", 10000, 120000, round(8000 / 8500, 6), 0.0, 1),  # B's coupon; E is new
        (None, False, first(5), "usd", 13000, 156000, 1.0, 0.0, 1),  # D's return is not retention
    ]


def test_nrr_over_twelve_months_once_the_data_reaches_back_a_year() -> None:
    """X 1000 from Jan 2024, 1500 from Jun 2024; Y 2000 from Jan 2024, canceled Feb 10 2024; Z new at
    5000 in Jun 2024. Jan 2025: (1500 + 0) / (1000 + 2000) = 0.5; Feb 2025: only X had MRR a year
    before: 1500 / 1000."""

    def sub(event_type: str, name: str, at: datetime, status: str, mrr: int, n: int = 0) -> Row:
        return subscription(event_type, name, at, status, mrr, n=n, created=on(1, 5, 2024))

    connection = database(
        [
            sub("customer.subscription.created", "X", on(1, 5, 2024), "active", 1000),
            sub("customer.subscription.updated", "X", on(6, 5, 2024), "active", 1500),
            sub("customer.subscription.created", "Y", on(1, 5, 2024), "active", 2000),
            sub("customer.subscription.deleted", "Y", on(2, 10, 2024), "canceled", 2000),
            sub("customer.subscription.created", "Z", on(6, 1, 2024), "active", 5000),
            charge("X2", "X", on(2, 5, 2025), 1500),  # the data reaches into February 2025
        ]
    )
    assert select(
        connection,
        "SELECT month, mrr, nrr, nrr_months, logo_churn_rate FROM mrr_summary "
        "WHERE month IN (DATE '2024-02-01', DATE '2024-12-01', DATE '2025-01-01', DATE '2025-02-01') "
        "ORDER BY month",
    ) == [
        (first(2, 2024), 1000, round(1000 / 3000, 6), 1, 0.5),
        (first(12, 2024), 6500, 1.0, 1, 0.0),
        (first(1, 2025), 6500, 0.5, 12, 0.0),
        (first(2, 2025), 6500, 1.5, 12, 0.0),
    ]


# -- attribution ------------------------------------------------------------------------------------------
def test_revenue_and_mrr_by_campaign_with_a_missing_bucket(db: duckdb.DuckDBPyConnection) -> None:
    assert select(
        db,
        "SELECT account, livemode, month, currency, value, revenue, mrr FROM revenue_by_metadata "
        "WHERE dimension = 'campaign' ORDER BY currency, month, value",
    ) == [
        (None, False, first(1), "eur", "(missing)", 1800, 1800),
        (None, False, first(2), "eur", "(missing)", 0, 1800),
        (None, False, first(3), "eur", "(missing)", 0, 1800),
        (None, False, first(4), "eur", "(missing)", 0, 1800),
        (None, False, first(5), "eur", "(missing)", 0, 1800),
        (None, False, first(1), "usd", "events", 0, 2000),  # B's subscription says events
        (None, False, first(1), "usd", "paid_search", 5000, 5000),  # A and D
        (None, False, first(1), "usd", "partner", 2000, 0),  # B's charge: its customer says partner
        (None, False, first(2), "usd", "events", 5000, 2000),  # G's purchase; B's MRR
        (None, False, first(2), "usd", "paid_search", 20000, 7000),  # C's annual charge net of its refund
        (None, False, first(3), "usd", "events", 0, 2000),  # G's failed charge is no revenue
        (None, False, first(3), "usd", "paid_search", 1250, 6500),  # A's proration
        (None, False, first(4), "usd", "(missing)", 2000, 2000),  # E: no customer object, no metadata
        (None, False, first(4), "usd", "events", 3000, 1500),
        (None, False, first(4), "usd", "paid_search", 4500, 6500),
        (None, False, first(5), "usd", "(missing)", 0, 2000),
        (None, False, first(5), "usd", "events", 0, 1500),
        (None, False, first(5), "usd", "paid_search", 3000, 9500),
        (None, False, first(5), "usd", "partner", 1500, 0),
    ]


def test_every_dimension_adds_up_to_the_same_totals(db: duckdb.DuckDBPyConnection) -> None:
    totals = select(
        db,
        "SELECT dimension, account, livemode, month, currency, sum(revenue), sum(mrr) "
        "FROM revenue_by_metadata GROUP BY ALL ORDER BY dimension, currency, month",
    )
    per_dimension: dict[str, list[tuple[Any, ...]]] = {}
    for dimension, *rest in totals:
        per_dimension.setdefault(dimension, []).append(tuple(rest))
    assert sorted(per_dimension) == ["campaign", "cost_center", "crm_account_id", "erp_id"]
    expected = [
        (None, False, first(1), "eur", 1800, 1800),
        (None, False, first(2), "eur", 0, 1800),
        (None, False, first(3), "eur", 0, 1800),
        (None, False, first(4), "eur", 0, 1800),
        (None, False, first(5), "eur", 0, 1800),
        (None, False, first(1), "usd", 7000, 7000),
        (None, False, first(2), "usd", 25000, 9000),
        (None, False, first(3), "usd", 1250, 8500),
        (None, False, first(4), "usd", 9500, 10000),
        (None, False, first(5), "usd", 4500, 13000),
    ]
    assert all(rows == expected for rows in per_dimension.values())
    # Nobody set a cost center: everything is in the missing bucket. ERP ids come from the customers.
    assert select(db, "SELECT DISTINCT value FROM revenue_by_metadata WHERE dimension = 'cost_center'") == [
        ("(missing)",)
    ]
    assert select(
        db,
        "SELECT value, sum(revenue) FROM revenue_by_metadata WHERE dimension = 'erp_id' AND currency = 'usd' "
        "GROUP BY value ORDER BY value",
    ) == [("(missing)", 10000), ("NS-1001", 7750), ("NS-1002", 3500), ("NS-1003", 20000), ("NS-1004", 6000)]


# -- cohorts and lifetime value ---------------------------------------------------------------------------
def test_cohort_retention(db: duckdb.DuckDBPyConnection) -> None:
    assert select(db, "SELECT * FROM cohort_retention ORDER BY cohort_month, months_since") == [
        # January: A, B, D and F (eur) paid first. D churns in March and is back in May.
        (None, False, first(1), 0, 4, 4, 1.0),
        (None, False, first(1), 1, 4, 4, 1.0),
        (None, False, first(1), 2, 4, 3, 0.75),
        (None, False, first(1), 3, 4, 3, 0.75),
        (None, False, first(1), 4, 4, 4, 1.0),
        # February: C (annual, MRR every month) and G (buys in February and April only).
        (None, False, first(2), 0, 2, 2, 1.0),
        (None, False, first(2), 1, 2, 1, 0.5),
        (None, False, first(2), 2, 2, 2, 1.0),
        (None, False, first(2), 3, 2, 1, 0.5),
        # April: E, once its trial converted and it paid.
        (None, False, first(4), 0, 1, 1, 1.0),
        (None, False, first(4), 1, 1, 1, 1.0),
    ]


def test_clv_by_cohort_campaign_and_currency(db: duckdb.DuckDBPyConnection) -> None:
    assert select(db, "SELECT * FROM clv ORDER BY cohort_month, currency, campaign") == [
        # account, livemode, cohort_month, campaign, customers, revenue, clv, currency
        (None, False, first(1), "(missing)", 1, 1800, 1800.0, "eur"),  # F
        (None, False, first(1), "paid_search", 2, 2000 + 1250 + 4500 + 3000 + 3000, 6875.0, "usd"),  # A and D
        (None, False, first(1), "partner", 1, 3500, 3500.0, "usd"),  # B: the customer's campaign
        (None, False, first(2), "events", 1, 8000, 8000.0, "usd"),  # G
        (None, False, first(2), "paid_search", 1, 20000, 20000.0, "usd"),  # C, net of the refund
        (None, False, first(4), "(missing)", 1, 2000, 2000.0, "usd"),  # E
    ]


def test_clv_falls_back_to_the_earliest_subscription_campaign() -> None:
    connection = database(
        [
            customer("H", on(1, 1)),
            subscription("customer.subscription.created", "H2", on(3, 1), "active", 2000, campaign="events"),
            subscription(
                "customer.subscription.created", "H1", on(1, 2), "active", 2000, campaign="outbound"
            ),
            charge("H1", "H", on(1, 2), 2000),
            charge("H2", "H", on(3, 1), 2000),
        ]
    )
    assert select(connection, "SELECT * FROM clv") == [
        (None, False, first(1), "outbound", 1, 4000, 4000.0, "usd")
    ]


# -- revenue at risk --------------------------------------------------------------------------------------
def test_anomalies_at_risk_is_the_mrr_behind_open_anomalies(db: duckdb.DuckDBPyConnection) -> None:
    # A's card_testing anomaly (May 4, within 90 days of the last data) puts A's 4,500 behind it; churn-risk
    # signals are not anomalies.
    assert select(db, "SELECT * FROM anomalies_at_risk ORDER BY currency, kind") == [
        (None, False, "usd", "card_testing", 1, 4500)
    ]


def test_revenue_at_risk_from_the_latest_churn_risk_level(db: duckdb.DuckDBPyConnection) -> None:
    assert select(db, "SELECT * FROM revenue_at_risk ORDER BY currency, level") == [
        (None, False, "eur", "high", 1, 1800),  # F
        (None, False, "usd", "high", 2, 4500 + 3000),  # A (its card_testing anomaly is no churn risk), D
        (None, False, "usd", "medium", 1, 2000),  # C; B's latest level is low; G has no MRR to lose
    ]


# -- reconciliation -----------------------------------------------------------------------------------
def reconciliation(payout: str, at: datetime, revision: int, status: str, amount: int, **scope: Any) -> Row:
    """Revision `revision` of payout `payout`'s reconciliation record; `scope` may set account and mode."""
    return _row(
        **scope,
        record_kind="reconciliation",
        event_date=f"{at:%Y-%m-%d}",
        record_id=f"{payout}:{revision}",
        event_type="stripe-middleware.reconciliation.completed",
        event_time=at,
        status=status,
        amount=amount,
        currency=USD,
        payout_id=payout,
        revision=revision,
    )


def discrepancy(number: int, payout: str, at: datetime, kind: str, *, repaired: bool = False) -> Row:
    return _row(
        record_kind="discrepancy",
        event_date=f"{at:%Y-%m-%d}",
        record_id=f"rd_{number:024d}",
        event_type="stripe-middleware.reconciliation.discrepancy",
        event_time=at,
        object_type="charge",
        object_id=charge_id(str(number)),
        payout_id=payout,
        discrepancy_kind=kind,
        repaired=repaired,
    )


def test_a_payouts_latest_revision_is_its_state_and_each_discrepancy_counts_once() -> None:
    connected = {"account": "acct_x", "livemode": True}
    rows = [
        reconciliation("po_A", on(3, 2), 2, "balanced", 50_000),  # the gap closed: revision 2 ...
        reconciliation("po_A", on(3, 2), 1, "discrepancies", 50_000),  # ... delivered before revision 1
        reconciliation("po_A", on(3, 2), 1, "discrepancies", 50_000),  # and revision 1 redelivered
        discrepancy(1, "po_A", on(3, 2), "status_mismatch"),
        reconciliation("po_B", on(3, 9), 1, "repaired", 20_000),
        discrepancy(2, "po_B", on(3, 9), "missing_in_store", repaired=True),
        discrepancy(2, "po_B", on(3, 9), "missing_in_store", repaired=True),  # redelivered
        reconciliation("po_C", on(3, 16), 1, "discrepancies", 30_000),
        discrepancy(3, "po_C", on(3, 16), "missing_erp_id"),
        discrepancy(4, "po_C", on(3, 16), "missing_in_store", repaired=True),
        reconciliation("po_D", on(4, 1), 1, "balanced", 40_000),
        reconciliation("po_A", on(3, 2), 1, "balanced", 70_000, **connected),  # same id, another account
    ]
    connection = database(rows)
    assert select(
        connection, "SELECT * FROM payout_reconciliation ORDER BY account NULLS FIRST, payout_id"
    ) == [
        (None, False, "po_A", first(3), USD, 50_000, "balanced", 2, 1, 0),
        (None, False, "po_B", first(3), USD, 20_000, "repaired", 1, 1, 1),
        (None, False, "po_C", first(3), USD, 30_000, "discrepancies", 1, 2, 1),
        (None, False, "po_D", first(4), USD, 40_000, "balanced", 1, 0, 0),
        ("acct_x", True, "po_A", first(3), USD, 70_000, "balanced", 1, 0, 0),
    ]
    summary = "SELECT * FROM reconciliation_summary ORDER BY account NULLS FIRST, month, status"
    assert select(connection, summary) == [
        (None, False, first(3), USD, "balanced", 1, 50_000),
        (None, False, first(3), USD, "discrepancies", 1, 30_000),
        (None, False, first(3), USD, "repaired", 1, 20_000),
        (None, False, first(4), USD, "balanced", 1, 40_000),
        ("acct_x", True, first(3), USD, "balanced", 1, 70_000),
    ]
