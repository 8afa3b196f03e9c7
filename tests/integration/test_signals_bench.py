"""The small variant of `make bench`'s signals measure, so it cannot rot: every event the processor
publishes reaches the signals handler without a failure, nothing it publishes comes back to its own queue,
and the cost model prices what was measured. Speed is judged in the bench."""

from __future__ import annotations

import pytest

from bench import cost, signals_bench


def test_a_small_signals_run_processes_every_published_event_and_is_priced() -> None:
    result = signals_bench.run(unique=40)
    assert result["published_events"] == 40  # every unique event, once (the processor drops duplicates)
    assert result["signals_requeued"] == 0
    ours = result["ours"]
    assert ours["calls"]["PutItem"] > 0 and ours["dynamodb_write_units_per_event"] > 0
    assert ours["cpu_ms_per_event"] > 0 and result["cpu_ratio_over_processor"] > 0
    priced = cost.signals_per_million(result)
    # The total is rounded from the exact lines, so it may differ from the sum of the rounded lines by a cent.
    assert priced["total_usd_per_million_events"] == pytest.approx(
        sum(priced["lines_usd_per_million_events"].values()), abs=0.01
    )
    assert priced["total_usd_per_million_events"] > 0


def test_a_small_retraining_run_reads_every_archived_event_and_is_measured() -> None:
    result = signals_bench.training(customers=60, months=6)
    assert result["archived_events"] > 1000 and result["status"] in ("approved", "rejected")
    # a digest of each event's facts, not the events: less memory than their JSON text
    assert result["peak_bytes_per_event"] > 0 and 0 < result["memory_ratio_over_json"] < 1
    assert result["cpu_ratio_over_parsing"] > 0
