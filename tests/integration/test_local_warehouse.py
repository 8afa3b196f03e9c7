"""The local warehouse on moto: details published on the bus by the real publisher reach Parquet through
the record kinds' rules and queue, and the `records` view (and `stripe-middleware query`) reads them back;
a crash before or after a write loses nothing."""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from events import stripe_event
from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.publishing import Publication
from stripe_middleware_dev.local.warehouse import LocalWarehouse, ParquetWriter, warehouse_connection
from stripe_middleware_dev.query import register as register_query
from stripe_middleware_dev.query import run_query_command
from tests.unit.test_rows import (
    anomaly,
    backfilled,
    charge_event,
    churn_risk,
    stripe_published,
    subscription_event,
)

BUS = "stripe-middleware-test"


@dataclass
class Bus:
    sqs: Any
    events: Any
    state_dir: Path

    def publish(self, *details: tuple[str, dict[str, Any]]) -> None:
        publications = [
            Publication(f"k{n}", detail_type, detail) for n, (detail_type, detail) in enumerate(details)
        ]
        assert EventPublisher(self.events, BUS).publish(publications) == set()

    def warehouse(self, writer: ParquetWriter | None = None) -> LocalWarehouse:
        """The writer as local mode starts it (subscribing again is a no-op), batches written at once."""
        warehouse = LocalWarehouse.start(
            self.sqs, self.events, bus_name=BUS, state_dir=self.state_dir, flush_seconds=0, wait_seconds=0
        )
        if writer is not None:
            warehouse.writer = writer
        return warehouse

    def records(self, sql: str = "select * from records order by record_id") -> list[dict[str, Any]]:
        connection = warehouse_connection(self.state_dir)
        try:
            cursor = connection.execute(sql)
            names = [c[0] for c in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()

    def waiting(self, warehouse: LocalWarehouse, *, received_too: bool = True) -> int:
        """Messages in the queue: not received yet, and (`received_too`) received but not deleted."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"][: 1 + received_too]
        attributes = self.sqs.get_queue_attributes(QueueUrl=warehouse.queue_url, AttributeNames=names)
        return sum(int(v) for v in attributes["Attributes"].values())


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    with mock_aws():
        events = boto3.client("events", region_name="us-east-1")
        events.create_event_bus(Name=BUS)
        yield Bus(boto3.client("sqs", region_name="us-east-1"), events, tmp_path / ".local")


def every_kind() -> list[tuple[str, dict[str, Any]]]:
    return [
        stripe_published(subscription_event()),
        stripe_published(charge_event()),
        backfilled(),
        anomaly(),
        churn_risk(),
    ]


def not_for_the_warehouse() -> list[tuple[str, dict[str, Any]]]:
    violation = {"event_id": "evt_sub_1", "event_type": "customer.subscription.updated", "livemode": False}
    return [
        (DetailType.METADATA_VIOLATION, violation),
        (DetailType.COMMAND_SUCCEEDED, {"command_id": "cmd_1"}),
    ]


def parquet_files(state_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(state_dir)) for p in state_dir.glob("warehouse/**/*.parquet"))


def test_events_on_the_bus_reach_parquet_and_the_records_view(bus: Bus) -> None:
    warehouse = bus.warehouse()  # subscribed before anything is published
    bus.publish(*every_kind(), *not_for_the_warehouse())
    assert warehouse.drain() == 5 and bus.waiting(warehouse) == 0
    files = parquet_files(bus.state_dir)
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "warehouse/record_kind=event/event_date=2025-11-24",
        "warehouse/record_kind=object/event_date=2025-11-24",
        "warehouse/record_kind=signal/event_date=2025-11-24",
    ]
    rows = {row["record_id"]: row for row in bus.records()}
    assert {row["record_kind"] for row in rows.values()} == {"event", "object", "signal"}
    subscription = rows["evt_sub_1"]
    assert subscription["event_time"] == datetime(2025, 11, 24, 16, 0)  # a TIMESTAMP, UTC
    assert (subscription["mrr_amount"], subscription["campaign"], subscription["event_date"]) == (
        2000,
        "partner",
        "2025-11-24",  # the partition, a string as on Athena
    )
    charge = rows["evt_ch_1"]
    assert (charge["amount"], charge["amount_refunded"], charge["stale"]) == (2000, 500, False)
    assert sorted(r["signal_score"] for r in rows.values() if r["record_kind"] == "signal") == [0.42, 0.812]
    warehouse.writer.close()


def test_a_crash_before_the_write_loses_nothing(bus: Bus) -> None:
    class CrashingWriter(ParquetWriter):
        def write(self, rows: Sequence[dict[str, Any]]) -> list[Path]:
            raise OSError("disk full")

    crashing = bus.warehouse(CrashingWriter(bus.state_dir / "warehouse"))
    bus.publish(*every_kind())
    crashing._retry_delay = 0  # redeliver at once
    with pytest.raises(OSError, match="disk full"):
        crashing.drain()
    assert parquet_files(bus.state_dir) == [] and bus.waiting(crashing) == 5  # nothing deleted
    restarted = bus.warehouse()
    assert restarted.drain() == 5
    assert len(bus.records()) == 5 and bus.waiting(restarted) == 0


def test_a_crash_between_write_and_delete_gives_duplicates_the_record_id_removes(bus: Bus) -> None:
    warehouse = bus.warehouse()
    bus.publish(*every_kind())
    received: list[dict[str, Any]] = []

    def crash(messages: Sequence[dict[str, Any]]) -> None:
        received.extend(messages)
        raise ConnectionError("gone before the delete")

    warehouse._delete = crash  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        warehouse.drain()
    assert len(bus.records()) == 5 and bus.waiting(warehouse) == 5  # written; SQS still holds them
    for message in received:  # their visibility timeout ends: SQS delivers them again
        bus.sqs.change_message_visibility(
            QueueUrl=warehouse.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    assert bus.warehouse().drain() == 5
    assert len(bus.records()) == 10 and bus.waiting(warehouse) == 0
    assert bus.records("select count(distinct record_id) as n from records") == [{"n": 5}]


def test_a_redelivered_event_is_one_record_id(bus: Bus) -> None:
    warehouse = bus.warehouse()
    bus.publish(stripe_published(charge_event()), stripe_published(charge_event(), redelivered=True))
    warehouse.drain()
    assert [r["record_id"] for r in bus.records()] == ["evt_ch_1", "evt_ch_1"]


def test_local_mode_polls_until_stopped_and_writes_its_last_batch(bus: Bus) -> None:
    warehouse = LocalWarehouse.start(
        bus.sqs, bus.events, bus_name=BUS, state_dir=bus.state_dir, flush_seconds=60, wait_seconds=0
    )
    stop = threading.Event()
    thread = threading.Thread(target=warehouse.run, args=(stop,), daemon=True)
    thread.start()
    bus.publish(*every_kind())
    deadline = time.monotonic() + 5
    while bus.waiting(warehouse, received_too=False) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert parquet_files(bus.state_dir) == [] and bus.waiting(warehouse) == 5  # held for the batch
    stop.set()
    warehouse.close()
    assert len(bus.records()) == 5


def test_local_mode_drains_what_is_still_queued_when_it_stops(bus: Bus) -> None:
    warehouse = bus.warehouse()
    bus.publish(*every_kind())
    assert bus.waiting(warehouse, received_too=False) == 5  # on the queue, not received yet
    stop = threading.Event()
    stop.set()  # stopped before it polled: the queue ends with the emulator, so run must empty it
    warehouse.run(stop)
    warehouse.close()
    assert len(bus.records()) == 5 and bus.waiting(warehouse) == 0


def test_draining_on_stop_is_bounded_in_time(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    warehouse = LocalWarehouse.start(
        bus.sqs, bus.events, bus_name=BUS, state_dir=bus.state_dir, wait_seconds=0, console=sys.stdout
    )
    bus.publish(*every_kind())
    polls = 0

    def never_empty(wait_seconds: int | None = None) -> int:
        nonlocal polls
        polls += 1
        time.sleep(0.01)
        return 1  # a queue that is filled as fast as it is read

    warehouse.poll_once = never_empty  # type: ignore[method-assign]
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    warehouse.run(stop, drain_seconds=0.2)
    assert time.monotonic() - started < 2 and polls > 1
    assert "still queued after 0.2 s" in capsys.readouterr().out
    warehouse.writer.close()


def test_an_empty_warehouse_is_an_empty_typed_table(bus: Bus) -> None:
    assert bus.records() == []
    connection = warehouse_connection(bus.state_dir)
    types = dict(connection.execute("select column_name, column_type from (describe records)").fetchall())
    connection.close()
    assert (types["event_time"], types["amount"], types["event_date"], types["stale"]) == (
        "TIMESTAMP",
        "BIGINT",
        "VARCHAR",
        "BOOLEAN",
    )


def test_the_query_command_prints_a_table_csv_and_json(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    warehouse = bus.warehouse()
    bus.publish(*every_kind())
    warehouse.drain()
    sql = "select record_kind, count(*) as n, sum(amount) as amount from records group by 1 order by 1"

    def query(output_format: str) -> str:
        args = argparse.Namespace(sql=sql, format=output_format, state_dir=bus.state_dir)
        assert run_query_command(args) == 0
        return capsys.readouterr().out

    assert query("table").splitlines() == [
        "record_kind  n  amount",
        "-----------  -  ------",
        "event        2    2000",
        "object       1",
        "signal       2",
        "(3 rows)",
    ]
    assert query("csv").splitlines() == ["record_kind,n,amount", "event,2,2000", "object,1,", "signal,2,"]
    assert json.loads(query("json"))[0] == {"record_kind": "event", "n": 2, "amount": 2000}
    bad = argparse.Namespace(sql="select nope from records", format="table", state_dir=bus.state_dir)
    assert run_query_command(bad) == 2
    assert "nope" in capsys.readouterr().err


def test_the_query_help_lists_the_views_the_warehouse_has(bus: Bus) -> None:
    commands = argparse.ArgumentParser(prog="stripe-middleware").add_subparsers()
    register_query(commands)
    help_text = " ".join(commands.choices["query"].format_help().split())
    listed = re.search(r"analytics views \((?P<views>[^)]*)\)", help_text)
    assert listed is not None, help_text
    connection = warehouse_connection(bus.state_dir)
    sql = "select view_name from duckdb_views() where not internal and view_name <> 'records'"
    views = {name for (name,) in connection.execute(sql).fetchall()}
    connection.close()
    assert set(listed["views"].split(", ")) == views
    assert {"customer_mrr_months", "anomalies_at_risk"} <= views  # the views the hand-written list missed


def test_an_unknown_stripe_event_type_is_an_event_row(bus: Bus) -> None:
    warehouse = bus.warehouse()
    bus.publish(stripe_published(stripe_event("v2.core.brand_new_thing.created", event_id="evt_new")))
    warehouse.drain()
    assert [(r["record_kind"], r["record_id"]) for r in bus.records()] == [("event", "evt_new")]
