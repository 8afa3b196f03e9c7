"""The warehouse export's cost model: the total is its lines, and more events cost more a month."""

from __future__ import annotations

import pytest

from bench.cost import export_per_million
from infra.constructs.warehouse import BUFFER_MIB, BUFFER_SECONDS
from stripe_middleware_dev.analytics import athena_statements


def test_the_export_total_is_the_sum_of_its_lines_and_grows_with_volume() -> None:
    small, large = export_per_million(), export_per_million(events_per_month=50_000_000)
    for priced in (small, large):
        lines = priced["lines_usd_per_million_events"]
        assert priced["total_usd_per_million_events"] == pytest.approx(sum(lines.values()), abs=1e-3)
        assert all(value >= 0 for value in lines.values())
        millions = priced["assumptions"]["events_per_month"] / 1e6
        assert priced["writing_usd_per_million_events"] + priced["querying_usd_per_month"] / millions == (
            pytest.approx(priced["total_usd_per_million_events"], abs=1e-2)
        )
    assert large["total_usd_per_month"] > small["total_usd_per_month"] > 0
    # Per-GB lines scale with the events; files per partition and interval do not, so they thin out.
    assert large["lines_usd_per_million_events"]["firehose_ingestion"] == pytest.approx(
        small["lines_usd_per_million_events"]["firehose_ingestion"]
    )
    assert large["objects_per_month"] == small["objects_per_month"]
    # A row is billed as 5 KB however small: a 1 KB and a 5 KB row cost the same to ingest.
    assert (
        export_per_million(row_json_bytes=1_000)["lines_usd_per_million_events"]["firehose_ingestion"]
        == export_per_million(row_json_bytes=5_120)["lines_usd_per_million_events"]["firehose_ingestion"]
        < export_per_million(row_json_bytes=5_121)["lines_usd_per_million_events"]["firehose_ingestion"]
    )


def test_the_defaults_are_the_deployed_buffer_and_one_saved_query_per_view() -> None:
    priced = export_per_million()
    assert priced["assumptions"]["saved_queries"] == len(athena_statements())  # the stack's named queries
    assert priced["assumptions"]["buffer_seconds"] == BUFFER_SECONDS
    # At low volume every active partition closes a file at each buffer interval of the stack's.
    intervals = 30 * 86_400 / BUFFER_SECONDS
    assert priced["objects_per_month"] == round(priced["assumptions"]["active_partitions"] * intervals)
    # At high volume a file closes at each buffer size of the stack's (BUFFER_MIB) instead.
    huge = export_per_million(events_per_month=1e9, event_bytes_parquet=1_000.0)
    assert huge["objects_per_month"] == round(1e9 * 1_000.0 / (BUFFER_MIB * 1024**2))
