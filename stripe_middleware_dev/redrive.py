"""`stripe-middleware redrive`: move dead-lettered messages back to their queue once the cause is fixed.

On AWS it starts an SQS message move task (what the console's "Start DLQ redrive" does). Local mode, an
endpoint without StartMessageMoveTask, `--dry-run` and `--max` (a move task can do neither) use a loop
instead: receive from the DLQ, send to the queue, and delete only once the send succeeded, one line per
message. Processing is idempotent (events by id, commands by idempotency key), so a redrive never applies
anything twice; a command the gateway dead-lettered is marked `retry_failed` and runs again.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from stripe_middleware.shared.envelope import unwrap_eventbridge
from stripe_middleware_dev import targets

# --queue -> (output name of the DLQ's URL, output name of the queue's URL)
QUEUES = {
    "events": ("events_dead_letter_queue_url", "events_queue_url"),
    "commands": ("commands_dead_letter_queue_url", "commands_queue_url"),
}
# What an endpoint answers for an action it does not know (moto in-process raises NotImplementedError).
UNSUPPORTED = {"InvalidAction", "UnknownOperationException", "UnsupportedOperation", "NotImplemented"}
HOLD_SECONDS = 120  # how long a received message stays invisible while it is moved (or listed)


@dataclass(frozen=True)
class Redriven:
    moved: int  # with a move task: the DLQ's approximate count when the task started
    left: int
    task_handle: str | None = None


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("redrive", help="move dead-lettered messages back to their queue")
    parser.add_argument("--queue", required=True, choices=sorted(QUEUES), help="which DLQ to redrive")
    parser.add_argument("--dry-run", action="store_true", help="print what would move; move nothing")
    parser.add_argument(
        "--max", type=targets.positive_int, default=None, metavar="N", help="move at most N messages"
    )
    targets.add_stage_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    target = targets.resolve(args)
    dlq_output, queue_output = QUEUES[args.queue]
    dlq_url, queue_url = target.require(dlq_output), target.require(queue_output)  # exits if missing
    try:
        redrive(
            target.client("sqs"),
            dlq_url,
            queue_url,
            args.queue,
            dry_run=args.dry_run,
            max_messages=args.max,
            # moto (local mode) has no StartMessageMoveTask, and its server answers it with a bare 500.
            move_task=not target.local,
        )
    except ClientError as error:
        print(f"error: {error}\nwhat was not moved is still in the DLQ", file=sys.stderr)
        return 1
    return 0


def redrive(
    sqs: Any,
    dlq_url: str,
    queue_url: str,
    kind: str,
    *,
    dry_run: bool = False,
    max_messages: int | None = None,
    move_task: bool = True,
    wait_seconds: int = 1,
) -> Redriven:
    """Move the messages of `dlq_url` back to `queue_url`; `kind` is "events" or "commands"."""
    if move_task and not dry_run and max_messages is None:
        started = start_move_task(sqs, dlq_url, queue_url)
        if started is not None:
            return started
    moved, held = 0, []
    try:
        while max_messages is None or moved < max_messages:
            batch = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=10 if max_messages is None else min(10, max_messages - moved),
                WaitTimeSeconds=wait_seconds,  # long polling asks every server: empty means empty
                VisibilityTimeout=HOLD_SECONDS,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                if dry_run:
                    held.append(message["ReceiptHandle"])  # kept invisible so that each is listed once
                else:  # a failed send raises before the delete: the message stays in the DLQ
                    sqs.send_message(
                        QueueUrl=queue_url,
                        MessageBody=message["Body"],
                        MessageAttributes=_attributes(message),
                    )
                    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                print(
                    f"{'would move' if dry_run else 'moved'}  {describe(kind, message['Body'])}", flush=True
                )
                moved += 1
    finally:
        for handle in held:
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    counts = _attributes_of(
        sqs, dlq_url, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"
    )
    left = sum(int(value) for value in counts.values())
    print(f"{'would move' if dry_run else 'moved'} {moved}, left {left} in {dlq_url}", flush=True)
    return Redriven(moved, left)


def start_move_task(sqs: Any, dlq_url: str, queue_url: str) -> Redriven | None:
    """Start an SQS message move task; None when the endpoint does not have StartMessageMoveTask."""
    dlq = _attributes_of(sqs, dlq_url, "QueueArn", "ApproximateNumberOfMessages")
    queue_arn = _attributes_of(sqs, queue_url, "QueueArn")["QueueArn"]
    try:
        handle = sqs.start_message_move_task(SourceArn=dlq["QueueArn"], DestinationArn=queue_arn)[
            "TaskHandle"
        ]
    except NotImplementedError:
        return None
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in UNSUPPORTED:
            return None
        raise
    count = int(dlq["ApproximateNumberOfMessages"])
    print(
        f"started message move task {handle}\n"
        f"  about {count} messages from {dlq['QueueArn']} to {queue_arn}\n"
        f"  progress: aws sqs list-message-move-tasks --source-arn {dlq['QueueArn']}",
        flush=True,
    )
    return Redriven(count, 0, task_handle=str(handle))


def describe(kind: str, body: str) -> str:
    """One line about a message: a Stripe event's id and type, or a command's id and operation."""
    try:
        document = unwrap_eventbridge(json.loads(body))
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return f"(not a JSON object) {body[:60]!r}"
    if kind == "events":
        return f"{document.get('id', '-')}  {document.get('type', '-')}"
    retry = "  (runs again: retry_failed)" if document.get("retry_failed") is True else ""
    return f"{document.get('command_id') or '-'}  {document.get('operation', '-')}{retry}"


def _attributes(message: dict[str, Any]) -> dict[str, Any]:
    """The message attributes as send_message takes them (received ones carry empty list fields too)."""
    return {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
    }


def _attributes_of(sqs: Any, queue_url: str, *names: str) -> dict[str, str]:
    attributes: dict[str, str] = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))[
        "Attributes"
    ]
    return attributes
