"""The publishing port every context uses: what to put on the bus, and which publications failed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_DETAIL_BYTES = 250_000  # EventBridge refuses entries over 256 KB


def fit_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """A detail too big for EventBridge goes without its `object` (`flags.object_truncated`): subscribers
    read the full object from the read API instead."""
    if len(json.dumps(detail, separators=(",", ":"), default=str)) > MAX_DETAIL_BYTES:
        detail["object"] = None
        detail["flags"]["object_truncated"] = True
    return detail


@dataclass(frozen=True)
class Publication:
    key: str  # what the caller tracks the outcome by (a Stripe event id, a command id)
    detail_type: str
    detail: dict[str, Any]


class Publisher(Protocol):
    def publish(self, publications: Sequence[Publication]) -> set[str]:
        """Publish everything; return the keys of the publications that failed (the caller retries)."""
        ...
