"""The commands queue, as the commands API sends to it."""

from __future__ import annotations

from typing import Any

from stripe_middleware.commands.ports import NotQueuedError


class SqsCommandQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, body: str) -> None:
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=body)
        except Exception as error:
            raise NotQueuedError(f"SQS send_message failed: {type(error).__name__}") from error
