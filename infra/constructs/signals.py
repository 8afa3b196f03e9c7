"""Signals: every Stripe event and backfilled object on the bus → queue (with DLQ) → signals Lambda."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.durable_queue import DurableQueue
from infra.constructs.python_function import PythonFunction
from stripe_middleware.adapters.dynamodb.table import SIGNAL_PARTITIONS
from stripe_middleware.shared.contract import SOURCE, DetailType

TIMEOUT = Duration.seconds(60)
BATCH_SIZE = 10


def signal_inputs() -> events.EventPattern:
    """Stripe events (published under their own type) and backfilled objects; not the middleware's other
    detail-types, its signals included."""
    return events.EventPattern(
        source=[SOURCE],
        detail_type=events.Match.any_of(
            events.Match.anything_but_prefix("stripe-middleware."),
            events.Match.exact_string(DetailType.OBJECT_BACKFILLED),
        ),
    )


class Signals(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        layer: lambda_.ILayerVersion,
        table: dynamodb.ITable,
        bus: events.IEventBus,
    ) -> None:
        super().__init__(scope, construct_id)
        self.inputs = DurableQueue(
            self, "Inputs", stage=stage, visibility_timeout=Duration.seconds(TIMEOUT.to_seconds() * 6)
        )
        self.rule = events.Rule(
            self,
            "StripeEventsToSignals",
            event_bus=bus,
            event_pattern=signal_inputs(),
            targets=[targets.SqsQueue(self.inputs.queue, dead_letter_queue=self.inputs.dead_letter_queue)],
        )
        self.function = PythonFunction(
            self,
            "Signals",
            name="signals",
            stage=stage,
            layer=layer,
            memory_size=512,
            timeout=TIMEOUT,
            environment={"TABLE_NAME": table.table_name, "EVENT_BUS_NAME": bus.event_bus_name},
        ).function
        self.function.add_event_source(
            sources.SqsEventSource(
                self.inputs.queue,
                batch_size=BATCH_SIZE,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
            )
        )
        # Exactly the calls the signal state makes, on the table only (it reads no index), and only on its
        # own items: the table also holds objects, de-duplication records and commands.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:DeleteItem",  # a churned customer's churn-risk record
                    "dynamodb:Query",
                    "dynamodb:BatchGetItem",
                ],
                resources=[table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(SIGNAL_PARTITIONS)}},
            )
        )
        bus.grant_put_events_to(self.function)
