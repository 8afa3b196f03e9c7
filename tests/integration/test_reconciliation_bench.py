"""The small variant of `make bench`'s reconciliation measure, so it cannot rot: a payout of 300 balance
transactions with one gap of every kind, on moto's server and the fake Stripe over loopback. Behaviour and
counts only; speed is judged in the bench."""

from __future__ import annotations

import math

from bench import reconciliation_bench


def test_a_small_reconciliation_finds_every_gap_in_batched_reads_at_the_floors_pages() -> None:
    result = reconciliation_bench.run(transactions=300)
    assert (result["gaps_found"], result["false_discrepancies"]) == (result["gaps_injected"], 0) == (8, 0)
    assert result["repaired"] == 4 and result["status"] == "discrepancies"  # 4 missing, 4 left open
    pages = math.ceil((300 + 1) / 100)  # with the payout's own transaction
    assert result["transaction_pages"] == result["floor_pages"] == pages
    # the payout's GET, its pages, and one GET each for the missing transfer and customer (not listed)
    assert result["stripe_calls"] == 1 + pages + 2
    assert result["aws_calls"]["UpdateItem"] == 3 * result["stripe_calls"]  # every call took the shared limit
    assert result["floor_aws_calls"] == {"UpdateItem": 3 * pages}
    assert result["aws_calls"]["BatchGetItem"] == result["store_reads"]
    assert (
        math.ceil(result["store_keys"] / 100)
        <= result["store_reads"]
        <= math.ceil(result["store_keys"] / 100) + 2
    )
    assert result["rerun_written"] is False and result["rerun_published"] == 0
    assert "PutItem" not in result["rerun_aws_calls"] and "PutEvents" not in result["rerun_aws_calls"]
    assert result["seconds"] > 0 and result["floor_seconds"] > 0
