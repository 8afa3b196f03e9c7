"""`backfill.ports.PoisonSink` on SQS: objects a backfill could not store, kept in its dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

from stripe_middleware.shared.errors import UnavailableError


class SqsPoisonSink:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def put(self, record: dict[str, Any]) -> None:
        body = json.dumps(record, default=str)
        if len(body.encode()) > 1_000_000:  # SQS takes 1 MiB: keep the id and the reason, drop the object
            body = json.dumps({**record, "object": None, "object_dropped": True}, default=str)
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=body)
        except Exception as error:
            raise UnavailableError(f"SQS send_message failed: {type(error).__name__}") from error
