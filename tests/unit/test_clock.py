"""Time as the contracts write it, both ways."""

from __future__ import annotations

from typing import Any

import pytest

from stripe_middleware.shared.clock import epoch, iso


def test_epoch_reads_back_what_iso_writes() -> None:
    assert iso(1_764_000_000) == "2025-11-24T16:00:00Z"
    assert epoch("2025-11-24T16:00:00Z") == 1_764_000_000
    assert epoch("2025-11-24T17:00:00+01:00") == 1_764_000_000
    assert epoch("2025-11-24T16:00:00") == 1_764_000_000  # no zone: UTC, whatever the machine's


@pytest.mark.parametrize("value", [None, "", "yesterday", 1_764_000_000, "2025-13-40T00:00:00Z"])
def test_epoch_is_none_for_anything_that_is_not_a_time(value: Any) -> None:
    assert epoch(value) is None
