"""10. The local warehouse: time of the MRR view (`mrr_movements`) on Parquet, against DuckDB reading the
very same rows from JSON lines.

A simulated history (`stripe_middleware_dev.simulate`, `customers` x `months`, in chunks of at most
1,000 customers with their own seeds so memory stays flat) goes through the processor's normalization and
`row_of`, the path local mode's warehouse takes, and the rows are written twice: as Parquet partitioned
like the local warehouse (`record_kind=<k>/event_date=<d>/`, TIMESTAMP columns, DuckDB's `COPY`), and as
one JSON lines file. The analytics views are created on each (`records` over `read_parquet` with hive
partitioning, or over `read_json_auto`); `VIEW_QUERY` (`mrr_movements`) runs `runs` times on each after a
warm-up, and the medians are compared. Both must give identical rows.

`read_json_auto` types the ISO times with their `Z` as TIMESTAMP WITH TIME ZONE, so both connections run
with `TimeZone = 'UTC'` (months are UTC months, as on Athena).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHUNK = 1_000  # customers simulated at once
START = datetime(2024, 1, 1, tzinfo=UTC)
VIEW_QUERY = (  # the simulator's history is the platform's own (account null), in test mode
    "SELECT month, currency, mrr, new, expansion, contraction, churned, reactivated, customers "
    "FROM mrr_movements WHERE NOT livemode AND account IS NULL ORDER BY currency, month"
)


def run(customers: int = 10_000, months: int = 24, runs: int = 5, seed: int = 7) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="warehouse-bench-") as work:
        folder = Path(work)
        started = time.perf_counter()
        jsonl, events, rows = _write_rows(folder / "records.jsonl", customers, months, seed)
        built = time.perf_counter() - started
        parquet = folder / "warehouse"
        _write_parquet(jsonl, parquet)
        parquet_db = _connection(
            "SELECT * FROM read_parquet("
            f"'{parquet}/**/*.parquet', hive_partitioning = true, "
            "hive_types = {'record_kind': VARCHAR, 'event_date': VARCHAR})"
        )
        json_db = _connection(f"SELECT * FROM read_json_auto('{jsonl}', format = 'newline_delimited')")
        parquet_rows, parquet_ms = _timed(parquet_db, runs)
        json_rows, json_ms = _timed(json_db, runs)
        parquet_bytes = sum(f.stat().st_size for f in parquet.glob("**/*.parquet"))
        subscribers = parquet_db.execute(
            "SELECT count(DISTINCT customer_id) FROM subscription_months"
        ).fetchone()
        result = {
            "customers": customers,
            "months": months,
            "events": events,
            "rows": rows,
            "subscribers": subscribers[0] if subscribers else 0,
            "build_s": round(built, 1),
            "parquet_files": sum(1 for _ in parquet.glob("**/*.parquet")),
            "parquet_mb": round(parquet_bytes / 1e6, 1),
            "json_mb": round(jsonl.stat().st_size / 1e6, 1),
            "mrr_movements_rows": len(parquet_rows),
            "runs": runs,
            "parquet_ms": round(parquet_ms, 1),
            "json_ms": round(json_ms, 1),
            "json_over_parquet": round(json_ms / parquet_ms, 2) if parquet_ms else None,
            "identical": parquet_rows == json_rows,
            "last_month": _last(parquet_rows),
            "mrr_by_month": [[r[0].isoformat(), r[1], r[2], r[8]] for r in parquet_rows],  # mrr, customers
        }
        parquet_db.close()
        json_db.close()
        return result


def _write_rows(path: Path, customers: int, months: int, seed: int) -> tuple[Path, int, int]:
    """Every row of the simulated history, one JSON object a line; (path, events, rows)."""
    events = rows = 0
    with path.open("w") as out:
        for row_or_none in simulated_rows(customers, months, seed):
            events += 1
            if row_or_none is not None:
                out.write(json.dumps(row_or_none, separators=(",", ":")) + "\n")
                rows += 1
    return path, events, rows


def simulated_rows(customers: int, months: int, seed: int = 7) -> Iterator[dict[str, Any] | None]:
    """The `records` row of each simulated event (None for an event the warehouse does not take), as the
    processor normalizes it and `row_of` flattens its published detail. Deterministic."""
    from stripe_middleware.export.rows import row_of
    from stripe_middleware.processing.models import StripeEvent
    from stripe_middleware.processing.normalize import normalize
    from stripe_middleware.shared.metadata_schema import load_metadata_schema
    from stripe_middleware_dev import use_repo_config
    from stripe_middleware_dev.simulate import simulate

    use_repo_config()
    schema = load_metadata_schema()
    for chunk, first in enumerate(range(0, customers, CHUNK)):
        history = simulate(min(CHUNK, customers - first), months, seed * 1_000 + chunk, START)
        for raw in history.events:
            event = StripeEvent.model_validate(raw)
            stored = normalize(event, schema)
            detail = {
                "id": event.id,
                "type": event.type,
                "created": event.created,
                "livemode": event.livemode,
                "account": event.account,
                "normalized": stored.model_dump(mode="json", exclude={"object"}),
                "flags": {"stale": False},
            }
            yield row_of({"detail-type": event.type, "source": "stripe-middleware", "detail": detail})


def _write_parquet(jsonl: Path, root: Path) -> None:
    """The rows as the local warehouse keeps them: Parquet under record_kind=<k>/event_date=<d>/."""
    import duckdb

    from stripe_middleware.export.rows import COLUMNS

    types = ", ".join(f"'{c.name}': '{c.duckdb_type}'" for c in COLUMNS)
    with duckdb.connect() as db:
        db.execute("SET enable_progress_bar = false")
        db.execute(
            f"COPY (SELECT * FROM read_json('{jsonl}', format = 'newline_delimited', columns = {{{types}}})) "
            f"TO '{root}' (FORMAT parquet, PARTITION_BY (record_kind, event_date))"
        )


def _connection(records_source: str) -> Any:
    import duckdb

    from stripe_middleware_dev.analytics import create_views

    db = duckdb.connect()
    db.execute("SET enable_progress_bar = false")
    db.execute("SET TimeZone = 'UTC'")
    db.execute(f"CREATE VIEW records AS {records_source}")
    create_views(db)
    return db


def _timed(db: Any, runs: int) -> tuple[list[tuple[Any, ...]], float]:
    """The view's rows and the median wall time (ms) of `runs` queries after one warm-up."""
    rows = db.execute(VIEW_QUERY).fetchall()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        db.execute(VIEW_QUERY).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return [tuple(row) for row in rows], statistics.median(times)


def _last(rows: list[tuple[Any, ...]]) -> dict[str, Any] | None:
    """The last month's movements of the main currency, to read next to the timings."""
    if not rows:
        return None
    month, currency, mrr, new, expansion, contraction, churned, reactivated, customers = max(
        rows, key=lambda r: (r[0], r[2])
    )
    return {
        "month": month.isoformat(),
        "currency": currency,
        "mrr": mrr,
        "new": new,
        "expansion": expansion,
        "contraction": contraction,
        "churned": churned,
        "reactivated": reactivated,
        "customers": customers,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
