"""Time as the contracts write it: ISO 8601 in UTC with a `Z`."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(timestamp: float | None) -> str | None:
    """`1764000000` → `"2025-11-24T16:00:00Z"`; None stays None; ValueError when out of range."""
    if timestamp is None:
        return None
    try:
        moment = datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError) as error:  # e.g. nanoseconds: the platform's time_t cannot hold it
        raise ValueError(f"timestamp {timestamp} is out of range") from error
    return moment.isoformat().replace("+00:00", "Z")


def epoch(moment: object) -> int | None:
    """`iso`'s inverse: `"2025-11-24T16:00:00Z"` → `1764000000` (a time without a zone is UTC); None for
    anything that is not such a time."""
    if not isinstance(moment, str) or not moment:
        return None
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())


def now_iso() -> str:
    return iso(time.time()) or ""
