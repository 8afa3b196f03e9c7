"""A batch of queued `invoice.payment_failed` details in, one workflow per invoice started: what the
starter Lambda runs.

A message fails alone, so SQS redelivers just it: when the scheduler was unavailable (starting again is
harmless: an invoice's workflow is named by its id), or when it is not a failed invoice at all (after
`maxReceiveCount` deliveries it waits in the dead-letter queue).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from stripe_middleware.dunning.models import Case, case_from_detail
from stripe_middleware.dunning.ports import Scheduler
from stripe_middleware.shared.envelope import unwrap_eventbridge
from stripe_middleware.shared.errors import PoisonError, UnavailableError


@dataclass(frozen=True)
class Message:
    message_id: str
    body: str


@dataclass
class StartOutcome:
    started: list[Case] = field(default_factory=list)
    already: list[Case] = field(default_factory=list)  # a workflow for the invoice exists: nothing started
    errors: dict[str, str] = field(default_factory=dict)  # message id -> reason (the failed messages)


def start_workflows(messages: Sequence[Message], scheduler: Scheduler) -> StartOutcome:
    outcome = StartOutcome()
    for message in messages:
        try:
            detail = unwrap_eventbridge(json.loads(message.body))
            if not isinstance(detail, dict):
                raise PoisonError("the message is not a JSON object")
            case = case_from_detail(detail)
            started = scheduler.start(case)
        except (ValueError, PoisonError) as error:
            outcome.errors[message.message_id] = f"{type(error).__name__}: {error}"
            continue
        except UnavailableError as error:
            outcome.errors[message.message_id] = f"{error.code}: {error}"
            continue
        except Exception as error:  # a bug or an input we did not foresee: this message fails, not the batch
            outcome.errors[message.message_id] = f"unexpected {type(error).__name__}: {error}"
            continue
        (outcome.started if started else outcome.already).append(case)
    return outcome
