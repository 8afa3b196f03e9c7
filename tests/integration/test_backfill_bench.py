"""The small variant of `make bench`'s backfill measure, so it cannot rot: every object listed is stored,
and the shared rate limit keeps the backfill under Stripe's limit (no 429). Speed is judged in the bench."""

from __future__ import annotations

from bench import backfill_bench


def test_a_small_backfill_loses_nothing_and_stays_under_stripes_limit() -> None:
    result = backfill_bench.run(customers=12)
    assert result["objects"] == 24 and result["lost_objects"] == 0 and result["poison"] == 0
    assert result["stripe_calls"] == 1 + 1 + 12  # a page of customers, a page of parents, 12 card lists
    assert result["stripe_429s"] == 0
    assert result["achieved_per_second"] > 0
