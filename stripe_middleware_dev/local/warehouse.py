"""The local warehouse: what Firehose does on AWS, for local mode. A queue subscribed to the bus with the
record kinds' patterns; each message becomes a `records` row (`row_of`, the same paths the AWS input
transformers follow), appended as Parquet under

    <state_dir>/warehouse/record_kind=<kind>/event_date=<YYYY-MM-DD>/part-<n>.parquet

in small batches. A message is deleted only once the file holding its row is in place (written under a
temporary name, then renamed), so a crash loses nothing: the queue redelivers, and a row written twice is
de-duplicated by the views on `record_id`, as on AWS.

`warehouse_connection(state_dir)` opens DuckDB with a `records` view over those files, plus the analytics
views (`stripe_middleware_dev.analytics`) when they exist.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from stripe_middleware.export.rows import DATA_COLUMNS, PARTITION_COLUMNS, RECORD_KINDS, row_of

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

WAREHOUSE = "warehouse"  # under the state directory
QUEUE_NAME = "LocalWarehouseQueue"
RULE_PREFIX = "LocalWarehouse-"
UNKNOWN_DATE = "unknown"  # a row without an event time (none of the middleware's publishers sends one)
VISIBILITY_TIMEOUT_SECONDS = 60  # far longer than a batch stays unwritten (FLUSH_SECONDS)
FLUSH_SECONDS = 2.0
DRAIN_SECONDS = 5.0  # on stop, well within `LocalWarehouse.close`'s wait, before the emulator goes
MAX_BATCH_ROWS = 1000


def warehouse_dir(state_dir: Path | str) -> Path:
    return Path(state_dir) / WAREHOUSE


def subscribe(sqs: Any, events: Any, *, bus_name: str, queue_name: str = QUEUE_NAME) -> str:
    """Create the warehouse queue and one rule per record kind on the bus (the kind's pattern, as the AWS
    rules have it) delivering to it; the queue URL. Idempotent."""
    url: str = sqs.create_queue(
        QueueName=queue_name, Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS)}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for kind in RECORD_KINDS:
        rule = f"{RULE_PREFIX}{kind.name}"
        events.put_rule(Name=rule, EventBusName=bus_name, EventPattern=json.dumps(kind.pattern))
        events.put_targets(Rule=rule, EventBusName=bus_name, Targets=[{"Id": "warehouse", "Arn": arn}])
    return url


def _partition(row: dict[str, Any]) -> tuple[str, str]:
    return str(row["record_kind"]), str(row["event_date"] or UNKNOWN_DATE)


def _quoted(text: str | Path) -> str:
    return "'" + str(text).replace("'", "''") + "'"


# read_json's `columns`: the data columns and their DuckDB types (partition values live in the path).
_JSON_COLUMNS = "{" + ", ".join(f"{c.name}: {_quoted(c.duckdb_type)}" for c in DATA_COLUMNS) + "}"


class ParquetWriter:
    """Appends rows to the warehouse: one new Parquet file per partition a batch touches."""

    def __init__(self, root: Path) -> None:
        import duckdb

        self.root = root
        self._db = duckdb.connect()
        self._lock = threading.Lock()

    def write(self, rows: Sequence[dict[str, Any]]) -> list[Path]:
        """Write the rows; the files written (each complete when it appears under its final name)."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(_partition(row), []).append(row)
        with self._lock:
            return [self._write_part(kind, date, part) for (kind, date), part in sorted(groups.items())]

    def _write_part(self, kind: str, date: str, rows: list[dict[str, Any]]) -> Path:
        folder = self.root / f"record_kind={kind}" / f"event_date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        n = time.time_ns()
        while (folder / f"part-{n}.parquet").exists():
            n += 1
        final = folder / f"part-{n}.parquet"
        unfinished = folder / f".part-{n}.parquet.tmp"  # outside the readers' `*.parquet` glob
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=folder, delete=False) as lines:
            for row in rows:
                lines.write(json.dumps({c.name: row.get(c.name) for c in DATA_COLUMNS}) + "\n")
        try:
            self._db.execute(
                f"COPY (SELECT * FROM read_json({_quoted(lines.name)}, format = 'newline_delimited', "  # noqa: S608 - our own paths, quoted
                f"columns = {_JSON_COLUMNS})) TO {_quoted(unfinished)} (FORMAT parquet)"
            )
            os.replace(unfinished, final)
        finally:
            Path(lines.name).unlink(missing_ok=True)
            unfinished.unlink(missing_ok=True)
        return final

    def close(self) -> None:
        self._db.close()


@dataclass
class _Pending:
    messages: list[dict[str, Any]] = field(default_factory=list)
    since: float = 0.0  # monotonic time of the oldest message


class LocalWarehouse:
    """Polls the warehouse queue and writes its rows in batches of at most `flush_seconds` age."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        writer: ParquetWriter,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        max_rows: int = MAX_BATCH_ROWS,
        wait_seconds: int = 1,
        retry_delay_seconds: int = 1,
        console: TextIO | None = None,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self.writer = writer
        self._flush_seconds = flush_seconds
        self._max_rows = max_rows
        self._wait = wait_seconds
        self._retry_delay = retry_delay_seconds
        self._console = console
        self._pending = _Pending()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.rows_written = 0

    @classmethod
    def start(
        cls, sqs: Any, events: Any, *, bus_name: str, state_dir: Path, **options: Any
    ) -> LocalWarehouse:
        """Subscribe the warehouse queue to the bus and make the writer (`run` polls)."""
        url = subscribe(sqs, events, bus_name=bus_name)
        return cls(sqs, url, ParquetWriter(warehouse_dir(state_dir)), **options)

    def poll_once(self, wait_seconds: int | None = None) -> int:
        """Receive one batch of messages (kept pending), and write the pending rows when the oldest has
        waited `flush_seconds` or they are `max_rows`; how many messages were received."""
        messages = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self._wait if wait_seconds is None else wait_seconds,
        ).get("Messages", [])
        with self._lock:
            if messages and not self._pending.messages:
                self._pending.since = time.monotonic()
            self._pending.messages.extend(messages)
            due = time.monotonic() - self._pending.since >= self._flush_seconds
            if self._pending.messages and (due or len(self._pending.messages) >= self._max_rows):
                self._flush()
        return len(messages)

    def flush(self) -> int:
        """Write every pending row now; the number of rows written."""
        with self._lock:
            return self._flush()

    def drain(self, max_polls: int = 1000, *, seconds: float | None = None) -> int:
        """Poll until the queue answers empty (at most `max_polls` times, for at most `seconds`), then write
        what is pending; the number of rows written."""
        before = self.rows_written
        deadline = None if seconds is None else time.monotonic() + seconds
        for _ in range(max_polls):
            if self.poll_once(wait_seconds=0) == 0:
                break
            if deadline is not None and time.monotonic() >= deadline:
                self._say(f"warehouse: messages still queued after {seconds:g} s of draining are not written")
                break
        self.flush()
        return self.rows_written - before

    def run(self, stop: threading.Event, *, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Poll until `stop` is set, then drain the queue for at most `drain_seconds`: what is pending and
        what is still queued is written (`close` waits for it), since the queue ends with the emulator."""
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                except Exception as error:  # moto stopping, or a transient error: keep polling
                    if stop.is_set():
                        break
                    self._say(f"warehouse error: {error}")
                    time.sleep(0.5)
            try:
                self.drain(seconds=drain_seconds)
            except Exception as error:  # the emulator is gone: its queue (and messages) with it
                self._say(f"warehouse: last batch not written: {error}")
        finally:
            self._stopped.set()

    def close(self, timeout: float = 10.0) -> None:
        """Wait for `run` to write its last batch (after its `stop` was set), then close the writer."""
        self._stopped.wait(timeout)
        self.writer.close()

    def _flush(self) -> int:
        messages, self._pending = self._pending.messages, _Pending()
        if not messages:
            return 0
        rows = list(_rows(messages))
        try:
            if rows:
                self.writer.write(rows)
        except Exception:
            self._retry_soon(messages)  # not deleted: the queue delivers them again
            raise
        self._delete(messages)
        self.rows_written += len(rows)
        return len(rows)

    def _delete(self, messages: Sequence[dict[str, Any]]) -> None:
        handles = list({m["MessageId"]: m["ReceiptHandle"] for m in messages}.values())
        for start in range(0, len(handles), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + 10])
                ],
            )

    def _retry_soon(self, messages: Sequence[dict[str, Any]]) -> None:
        for message in messages:
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self._retry_delay,
                )
            except Exception as error:  # the visibility timeout brings it back anyway
                self._say(f"warehouse: a message waits for its visibility timeout: {error}")

    def _say(self, text: str) -> None:
        if self._console is not None:
            print(text, file=self._console, flush=True)


def _rows(messages: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    """The rows of the messages; a body that is no event of a kind the warehouse takes has none."""
    for message in messages:
        try:
            event = json.loads(message["Body"])
        except ValueError:
            continue
        row = row_of(event) if isinstance(event, dict) else None
        if row is not None:
            yield row


def records_sql(root: Path) -> str:
    """The `records` view: every Parquet file of the warehouse, partition values as strings; typed and
    empty when nothing is written yet."""
    columns = ", ".join(c.name for c in (*PARTITION_COLUMNS, *DATA_COLUMNS))
    if not any(root.glob("**/*.parquet")):
        empty = ", ".join(
            f"CAST(NULL AS {c.duckdb_type}) AS {c.name}" for c in (*PARTITION_COLUMNS, *DATA_COLUMNS)
        )
        return f"CREATE OR REPLACE VIEW records AS SELECT {empty} WHERE false"
    partition_types = ", ".join(f"{_quoted(c.name)}: {c.duckdb_type}" for c in PARTITION_COLUMNS)
    files = _quoted(root.resolve() / "**" / "*.parquet")
    return (
        f"CREATE OR REPLACE VIEW records AS SELECT {columns} FROM read_parquet({files}, "  # noqa: S608 - quoted path
        f"hive_partitioning = true, hive_types = {{{partition_types}}}, union_by_name = true)"
    )


def warehouse_connection(state_dir: Path | str) -> DuckDBPyConnection:
    """An in-memory DuckDB connection with the `records` view over the local warehouse, and the analytics
    views when `stripe_middleware_dev.analytics` is there."""
    import duckdb

    connection = duckdb.connect()
    connection.execute(records_sql(warehouse_dir(state_dir)))
    try:
        from stripe_middleware_dev import analytics
    except ImportError:
        return connection
    analytics.create_views(connection)
    return connection
