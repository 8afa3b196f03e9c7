"""What Lambda's SQS event source mapping does, for local mode and tests: poll, batch, invoke, and
delete only what the function did not report as failed (ReportBatchItemFailures)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any] | None]
log = logging.getLogger(__name__)


class SqsEventSource:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        batch_window_seconds: int = 0,
        retry_delay_seconds: int = 1,
        context: Any = None,
        long_poll_seconds: int = 0,
    ) -> None:
        """`long_poll_seconds`: how long a receive waits on an empty queue (Lambda long-polls; a loop that
        polls for ever should too, or it spins on moto); 0 answers at once (`drain`)."""
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._handler = handler
        self._batch_size = batch_size
        self._wait = max(batch_window_seconds, long_poll_seconds)
        self._retry_delay = retry_delay_seconds
        self._context = context

    def poll_once(self) -> int:
        """Receive one batch and run the handler on it; return how many messages were received."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        try:
            response = self._handler(event, self._context) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:  # a crash: like Lambda, nothing of the batch is deleted
            log.exception("handler crashed; the whole batch will be redelivered")
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        for message in messages:
            if message["MessageId"] in failed:
                self._sqs.change_message_visibility(
                    QueueUrl=self._queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self._retry_delay,
                )
        return len(messages)

    def drain(self, max_polls: int = 1000) -> None:
        """Poll until the queue answers empty (tests, and the soak run)."""
        for _ in range(max_polls):
            if self.poll_once() == 0:
                return

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType")}
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
        }
