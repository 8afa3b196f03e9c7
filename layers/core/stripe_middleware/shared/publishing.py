"""The publishing port every context uses: what to put on the bus, and which publications failed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Publication:
    key: str  # what the caller tracks the outcome by (a Stripe event id, a command id)
    detail_type: str
    detail: dict[str, Any]


class Publisher(Protocol):
    def publish(self, publications: Sequence[Publication]) -> set[str]:
        """Publish everything; return the keys of the publications that failed (the caller retries)."""
        ...
