"""A batch of queued bus events in, per-message outcomes out: what the signals Lambda runs.

Each message is an EventBridge event (a published Stripe event or a backfilled object) as the bus rule
delivered it to SQS. A message fails alone, whatever it raised, so SQS redelivers just it: when a dependency
was unavailable (the redelivery finishes the job, and detection is idempotent), or when it is not an event at
all or hit a bug (after `maxReceiveCount` deliveries it waits in the dead-letter queue, nothing lost).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.signals.detect import Detection

Detect = Callable[[str, dict[str, Any]], Detection]


@dataclass(frozen=True)
class Message:
    message_id: str
    body: str


@dataclass
class Consumed:
    event_id: str  # the Stripe event id (or backfill run id): the correlation id of its logs
    detail_type: str
    detection: Detection
    created: int | None  # a Stripe event's `created` (None for a backfilled object): for the latency metric


@dataclass
class BatchOutcome:
    consumed: list[Consumed] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # message id -> reason (the failed messages)
    event_ids: dict[str, str] = field(default_factory=dict)  # message id -> event id (the correlation id)


def consume(messages: Sequence[Message], detect: Detect) -> BatchOutcome:
    outcome = BatchOutcome()
    for message in messages:
        try:
            envelope = json.loads(message.body)
            detail_type, detail = envelope["detail-type"], envelope["detail"]
            if not isinstance(detail_type, str) or not isinstance(detail, dict):
                raise TypeError("detail-type must be a string and detail an object")
        except (ValueError, KeyError, TypeError) as error:
            outcome.errors[message.message_id] = f"not an EventBridge event: {type(error).__name__}: {error}"
            continue
        event_id = str(detail.get("id") or detail.get("run_id") or envelope.get("id"))
        outcome.event_ids[message.message_id] = event_id
        try:
            detection = detect(detail_type, detail)
        except UnavailableError as error:
            outcome.errors[message.message_id] = f"{error.code}: {error}"
            continue
        except Exception as error:  # a bug or an input we did not foresee: this message fails, not the batch
            outcome.errors[message.message_id] = f"unexpected {type(error).__name__}: {error}"
            continue
        created = detail.get("created")
        outcome.consumed.append(
            Consumed(event_id, detail_type, detection, created if isinstance(created, int) else None)
        )
    return outcome
