"""Subscribe another team's target to stripe-middleware events in a few lines, with a DLQ on the target.

StripeEventSubscription(
    self, "LargeInvoicesToFinance",
    bus=events.EventBus.from_event_bus_name(self, "Stripe", "stripe-middleware-prod"),
    event_types=["invoice.paid", "invoice.payment_failed"],
    detail_filter={"object": {"amount_due": [{"numeric": [">", 10000]}]}},
    target=to_lambda(finance_function),
)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stripe_middleware.shared.contract import SOURCE

TargetFactory = Callable[[sqs.IQueue], events.IRuleTarget]


def to_lambda(function: lambda_.IFunction) -> TargetFactory:
    return lambda dlq: targets.LambdaFunction(function, dead_letter_queue=dlq, retry_attempts=185)


def to_queue(queue: sqs.IQueue) -> TargetFactory:
    return lambda dlq: targets.SqsQueue(queue, dead_letter_queue=dlq, retry_attempts=185)


class StripeEventSubscription(Construct):
    """A rule on the stripe-middleware bus; events the target could not take land in `dead_letter_queue`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus: events.IEventBus,
        event_types: Sequence[str],
        target: TargetFactory,
        detail_filter: Mapping[str, Any] | None = None,
        livemode: bool | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if not event_types:
            raise ValueError("event_types must name at least one detail-type, e.g. ['invoice.paid']")
        detail: dict[str, Any] = dict(detail_filter or {})
        if livemode is not None:
            detail["livemode"] = [livemode]
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.rule = events.Rule(
            self,
            "Rule",
            event_bus=bus,
            event_pattern=events.EventPattern(
                source=[SOURCE], detail_type=list(event_types), detail=detail or None
            ),
            targets=[target(self.dead_letter_queue)],
        )
