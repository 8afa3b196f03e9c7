"""SQS adapter for the events queue: the only place the ingest path touches AWS after verification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class NotDurableError(Exception):
    """SQS did not accept the message: the delivery must be answered with a 5xx so Stripe retries."""


@dataclass(frozen=True)
class QueuedEvent:
    body: str
    attributes: dict[str, str]


class EventQueue:
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
