"""The small variant of `make bench`'s warehouse measure, so it cannot rot: Parquet and JSON give the MRR
view identical rows, and those rows are the month-end MRR the simulated history implies, recomputed here
in plain Python from the same rows (the latest state of each subscription by order_key at each month's
end; active and past_due count, trials and cancellations do not). Speed is judged in the bench."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

import pytest

from bench import warehouse_bench

CUSTOMERS, MONTHS = 300, 6


def month_end_mrr(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """[month, currency, mrr, customers with MRR] per month and currency, from the rows, without SQL."""
    states: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    months: set[date] = set()
    for row in rows:
        months.add(_month(row["event_time"]))
        if row["object_type"] == "subscription":
            states[row["object_id"]].append((row["event_time"], row["order_key"], row))
    first, last = min(months), max(months)
    answer = []
    month = first
    while month <= last:
        end = date(month.year + month.month // 12, month.month % 12 + 1, 1).isoformat()
        per_customer: dict[tuple[str, str], int] = defaultdict(int)
        for history in states.values():
            before = [(key, row) for at, key, row in history if at < end]
            if not before:
                continue
            row = max(before, key=lambda pair: pair[0])[1]
            mrr = (row["mrr_amount"] or 0) if row["status"] in ("active", "past_due") else 0
            per_customer[(row["currency"], row["customer_id"])] += mrr
        for currency in sorted({currency for currency, _ in per_customer}):
            amounts = [mrr for (c, _), mrr in per_customer.items() if c == currency]
            answer.append([month.isoformat(), currency, sum(amounts), sum(1 for a in amounts if a > 0)])
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return answer


def _month(iso_time: str) -> date:
    moment = datetime.fromisoformat(iso_time.replace("Z", "+00:00"))
    return date(moment.year, moment.month, 1)


def test_parquet_and_json_agree_and_give_the_mrr_the_history_implies() -> None:
    result = warehouse_bench.run(customers=CUSTOMERS, months=MONTHS, runs=1)
    assert result["identical"] is True
    assert result["events"] == result["rows"] > 1000  # every Stripe event is a row
    assert result["parquet_files"] > MONTHS and result["parquet_ms"] > 0 and result["json_ms"] > 0
    # The ratio comes from the exact times, the times shown are rounded to 0.1 ms.
    assert result["json_over_parquet"] == pytest.approx(result["json_ms"] / result["parquet_ms"], rel=0.1)

    rows = [row for row in warehouse_bench.simulated_rows(CUSTOMERS, MONTHS) if row is not None]
    expected = month_end_mrr(rows)
    assert result["mrr_by_month"] == expected
    assert len(expected) == MONTHS and all(mrr > 0 and customers > 0 for _, _, mrr, customers in expected)
    assert result["subscribers"] > CUSTOMERS / 2  # 80 % of the simulated customers subscribe
    last = result["last_month"]
    assert [last["month"], last["currency"], last["mrr"], last["customers"]] == expected[-1]
