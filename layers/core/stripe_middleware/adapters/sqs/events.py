"""The events queue: the only place the ingest path touches AWS after verification."""

from __future__ import annotations

from typing import Any

from stripe_middleware.ingest.ports import NotDurableError, QueuedEvent


class SqsEventQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def enqueue(self, event: QueuedEvent) -> str:
        """Return the SQS message id once SQS has durably accepted the message."""
        attributes = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in event.attributes.items()
            if value  # SQS refuses empty attribute values
        }
        try:
            response = self._client.send_message(
                QueueUrl=self._queue_url, MessageBody=event.body, MessageAttributes=attributes
            )
        except Exception as error:  # botocore ClientError / BotoCoreError / timeouts alike
            raise NotDurableError(f"SQS send_message failed: {type(error).__name__}") from error
        return str(response["MessageId"])
