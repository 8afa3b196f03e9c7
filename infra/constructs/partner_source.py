"""Second entry point: Stripe's native Amazon EventBridge destination (partner event bus) → events queue."""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PARTNER_SOURCE_PREFIX = "aws.partner/stripe.com/"


class StripePartnerEventSource(Construct):
    """Associates the partner event source (creates its bus) and forwards every Stripe event to the queue.

    AWS authenticates the partner source, so these events carry no HMAC; the processor unwraps `detail`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        event_source_name: str,
        events_queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        if not event_source_name.startswith(PARTNER_SOURCE_PREFIX):
            raise ValueError(
                f"stripePartnerEventSource must look like {PARTNER_SOURCE_PREFIX}ed_..., "
                f"got {event_source_name!r}"
            )
        self.bus = events.EventBus(self, "PartnerBus", event_source_name=event_source_name)
        self.rule = events.Rule(
            self,
            "ToEventsQueue",
            event_bus=self.bus,
            description="Every Stripe event from the native EventBridge destination into the events queue",
            event_pattern=events.EventPattern(source=events.Match.prefix(PARTNER_SOURCE_PREFIX)),
            targets=[targets.SqsQueue(events_queue, dead_letter_queue=dead_letter_queue, retry_attempts=185)],
        )
