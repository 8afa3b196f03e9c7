"""`stripe-middleware query "SQL" [--format table|csv|json]`: SQL on the local warehouse with DuckDB.

The `records` table (every row local mode wrote under `<state dir>/warehouse/`) and the analytics views
(`mrr_movements`, `mrr_summary`, `revenue_by_metadata`, ...), the same names Athena has on AWS.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from stripe_middleware_dev.analytics import VIEW_NAMES

FORMATS = ("table", "csv", "json")


def register(commands: Any) -> None:
    query = commands.add_parser(
        "query",
        help="run SQL on the local warehouse (DuckDB): the records table and the analytics views",
        description=(
            "Run one SQL statement on the local warehouse: the `records` table and the analytics views "
            f"({', '.join(VIEW_NAMES)})."
        ),
    )
    query.add_argument("sql", help='e.g. "select * from mrr_movements order by month"')
    query.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    query.set_defaults(run=run_query_command)


def run_query_command(args: argparse.Namespace) -> int:
    import duckdb

    from stripe_middleware_dev.local.warehouse import warehouse_connection

    connection = warehouse_connection(args.state_dir)
    try:
        cursor = connection.execute(args.sql)
        names = [column[0] for column in cursor.description or []]
        rows = cursor.fetchall() if names else []
    except duckdb.Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        connection.close()
    sys.stdout.write(render(names, rows, args.format))
    return 0


def render(names: Sequence[str], rows: Sequence[Sequence[Any]], output_format: str = "table") -> str:
    """The result as a plain-text table, CSV (header first) or JSON (a list of objects)."""
    if output_format == "json":
        records = [{name: _json_value(v) for name, v in zip(names, row, strict=True)} for row in rows]
        return json.dumps(records, indent=2) + "\n"
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_text(v) for v in row] for row in rows)
        return buffer.getvalue()
    return table(names, rows)


def table(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest value, numbers right-aligned, a rule under the header."""
    if not names:
        return "(no result)\n"
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(names)]
    numeric = [
        all(
            isinstance(row[i], int | float | Decimal) and not isinstance(row[i], bool)
            for row in rows
            if row[i] is not None
        )
        for i in range(len(names))
    ]

    def line(values: Sequence[str]) -> str:
        padded = (
            v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric, strict=True)
        )
        return "  ".join(padded).rstrip()

    out = [line(names), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells)
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out) + "\n"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 1e15:  # NaN, infinities, huge: as Python writes them
            return repr(value)
        return f"{value:.6f}".rstrip("0").rstrip(".") or "0"  # money and rates, without float noise
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
