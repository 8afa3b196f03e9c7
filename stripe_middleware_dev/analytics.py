"""The analytics views (MRR movements, attribution, cohorts, CLV, revenue at risk) over the `records` table.

The SQL lives in `analytics/NN_<view>.sql` at the repository root, one `CREATE OR REPLACE VIEW` per file,
applied in file order (a view reads only `records` and the views before it). It is written once for both
engines: DuckDB locally (`create_views`) and Athena engine v3 (`athena_statements`, for the infra helper).
The metric rules are in `analytics/README.md` and in each file's comments.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from stripe_middleware_dev import REPO_ROOT

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

ANALYTICS_DIR = REPO_ROOT / "analytics"
VIEWS: tuple[Path, ...] = tuple(sorted(ANALYTICS_DIR.glob("[0-9][0-9]_*.sql")))  # in the order they apply

_FILE_NAME = re.compile(r"^\d{2}_(?P<view>[a-z][a-z0-9_]*)\.sql$")
_CREATE = re.compile(r"^CREATE OR REPLACE VIEW (?P<view>[a-z][a-z0-9_]*) AS$", re.MULTILINE)


def view_name(path: Path) -> str:
    """`analytics/05_mrr_movements.sql` -> `mrr_movements` (the file must create exactly that view)."""
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path.name}: an analytics file is named NN_<view>.sql")
    return match["view"]


def view_sql(path: Path) -> str:
    """The statement of one file, checked: one `CREATE OR REPLACE VIEW <its view> AS`, no `;`."""
    sql = path.read_text().strip()
    created = _CREATE.findall(sql)
    if created != [view_name(path)]:
        raise ValueError(f"{path.name}: must create exactly the view {view_name(path)}, creates {created}")
    if ";" in _without_comment_lines(sql):
        raise ValueError(f"{path.name}: one statement, no ';'")
    return sql


VIEW_NAMES: tuple[str, ...] = tuple(view_name(path) for path in VIEWS)


def create_views(connection: DuckDBPyConnection) -> tuple[str, ...]:
    """Create (or replace) every view on a DuckDB connection that has a `records` table or view; their names.

    The timestamp columns of `records` must be `TIMESTAMP` (UTC, no time zone): months are UTC months."""
    for path in VIEWS:
        connection.execute(view_sql(path))
    return VIEW_NAMES


def athena_statements() -> list[tuple[str, str]]:
    """(view name, statement) for each view, in order, as Athena engine v3 runs them.

    The SQL is the same as DuckDB's; the one change is that comment lines are dropped: the console and
    StartQueryExecution refuse some DDL that begins with a comment, and the view's stored text stays short.
    (Every comment in the files is on a line of its own, so dropping those lines leaves the SQL intact.)"""
    return [(view_name(path), _without_comment_lines(view_sql(path))) for path in VIEWS]


def _without_comment_lines(sql: str) -> str:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    if any("--" in line for line in lines):
        raise ValueError("a comment after SQL on the same line: put comments on lines of their own")
    return "\n".join(lines).strip()
