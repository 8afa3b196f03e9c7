"""Issue 12's "done when", on a local mode of its own: a simulated history sent like Stripe's deliveries
lands in the local warehouse, `stripe-middleware query` shows the MRR the simulator's events imply, and
`stripe-middleware report` writes the page with its charts."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from stripe_middleware.processing.normalize import monthly_recurring_amount
from stripe_middleware_dev.simulate import read_jsonl
from tests.e2e.conftest import LocalStack, eventually, running_local
from tests.fakes.stripe_server import FakeStripe

LIVE = ("active", "past_due")


@pytest.fixture(scope="module")
def warehouse_stack(
    tmp_path_factory: pytest.TempPathFactory, fake_stripe_api: FakeStripe
) -> Iterator[LocalStack]:
    with running_local(tmp_path_factory.mktemp("warehouse"), fake_stripe_api) as stack:
        yield stack


def query(stack: LocalStack, sql: str) -> list[dict[str, str]]:
    done = stack.cli("query", sql, "--format", "csv")
    assert done.returncode == 0, done.stderr
    return list(csv.DictReader(io.StringIO(done.stdout)))


def implied_mrr(events: list[dict[str, Any]]) -> dict[date, int]:
    """Each month's MRR at its end, from the simulated events alone: every subscription's latest state in or
    before the month, its monthly amount when active or past due."""
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    by_month: dict[date, int] = {}
    subscriptions = sorted(
        (e for e in events if e["data"]["object"].get("object") == "subscription"), key=lambda e: e["created"]
    )
    months = sorted({datetime.fromtimestamp(e["created"], UTC).date().replace(day=1) for e in events})
    pending = iter(subscriptions)
    upcoming = next(pending, None)
    for month in months:
        end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC).timestamp()
        while upcoming is not None and upcoming["created"] < end:
            obj = upcoming["data"]["object"]
            latest[obj["id"]] = (upcoming["created"], obj)
            upcoming = next(pending, None)
        by_month[month] = sum(
            monthly_recurring_amount(obj, as_of=at) or 0
            for at, obj in latest.values()
            if obj.get("status") in LIVE
        )
    return by_month


def test_a_simulated_history_shows_its_mrr_in_the_warehouse_and_the_report(
    warehouse_stack: LocalStack, tmp_path: Path
) -> None:
    history = tmp_path / "history.jsonl.gz"
    simulated = warehouse_stack.cli(
        *("simulate", "--customers", "15", "--months", "4", "--seed", "5", "--start", "2026-05-01"),
        *("--attacks", "none", "--out", str(history)),
    )
    assert simulated.returncode == 0, simulated.stderr
    events = list(read_jsonl(history))
    assert warehouse_stack.cli("send", "--history", str(history)).returncode == 0

    unique = len({e["id"] for e in events})
    eventually(
        lambda: (
            int(query(warehouse_stack, "select count(distinct record_id) as n from events_deduped")[0]["n"])
            == unique
        ),
        timeout=180,
        interval=2,
    )
    # The simulator sends test-mode events of the platform's own account: that account and mode's MRR.
    rows = query(
        warehouse_stack,
        "select month, currency, mrr from mrr_movements "
        "where livemode = false and account is null order by month",
    )
    found = {date.fromisoformat(r["month"][:10]): int(r["mrr"]) for r in rows if r["currency"] == "usd"}
    expected = implied_mrr(events)
    assert expected and max(expected.values()) > 0
    assert {m: found.get(m, 0) for m in expected} == expected

    page = tmp_path / "report.html"
    assert warehouse_stack.cli("report", "--out", str(page), "--test").returncode == 0
    html = page.read_text()
    assert 'data-chart="mrr-movements"' in html and "<script" not in html
    assert "Data: test mode, the platform&#x27;s own account" in html
    assert html.count("<rect") > 10
