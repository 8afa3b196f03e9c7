"""EventBridge adapter: batched, size-aware PutEvents with per-entry failure handling."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stripe_middleware.shared.contract import SOURCE
from stripe_middleware.shared.publishing import Publication

MAX_ENTRIES_PER_CALL = 10
MAX_REQUEST_BYTES = 256 * 1024


def entry(publication: Publication, bus_name: str) -> dict[str, Any]:
    return {
        "Source": SOURCE,
        "DetailType": str(publication.detail_type),
        "Detail": json.dumps(publication.detail, separators=(",", ":"), default=str),
        "EventBusName": bus_name,
    }


def entry_size(entry: dict[str, Any]) -> int:
    """EventBridge's size rule: Source, DetailType, Detail and Resources in UTF-8, plus 14 for Time."""
    size = 14 + sum(len(entry[k].encode()) for k in ("Source", "DetailType", "Detail"))
    return size + sum(len(r.encode()) for r in entry.get("Resources", []))


class EventPublisher:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def publish(self, publications: Sequence[Publication]) -> set[str]:
        """Publish everything; return the keys of publications that failed (to be retried by the caller)."""
        failed: set[str] = set()
        for chunk in self._chunks(publications):
            try:
                response = self._client.put_events(Entries=[entry(p, self._bus) for p in chunk])
            except Exception:
                failed.update(p.key for p in chunk)
                continue
            if response.get("FailedEntryCount", 0):
                for publication, result in zip(chunk, response["Entries"], strict=True):
                    if "ErrorCode" in result or "EventId" not in result:
                        failed.add(publication.key)
        return failed

    def _chunks(self, publications: Sequence[Publication]) -> list[list[Publication]]:
        chunks: list[list[Publication]] = []
        current: list[Publication] = []
        size = 0
        for publication in publications:
            entry_bytes = entry_size(entry(publication, self._bus))
            if current and (len(current) == MAX_ENTRIES_PER_CALL or size + entry_bytes > MAX_REQUEST_BYTES):
                chunks.append(current)
                current, size = [], 0
            current.append(publication)
            size += entry_bytes
        if current:
            chunks.append(current)
        return chunks
