"""Signals: every Stripe event and backfilled object on the bus → queue (with DLQ) → signals Lambda; a daily
re-score of the one-off buyers; the churn model's retraining."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.durable_queue import DurableQueue
from infra.constructs.python_function import PythonFunction
from infra.nag import acknowledge
from stripe_middleware.adapters.dynamodb.table import RESCORE_PARTITIONS, SIGNAL_PARTITIONS
from stripe_middleware.adapters.s3 import EVENTS_PREFIX
from stripe_middleware.shared.contract import SOURCE, DetailType
from stripe_middleware.signals.config import RetrainingConfig
from stripe_middleware.signals.retraining import APPROVED_KEY, MODELS_PREFIX

TIMEOUT = Duration.seconds(60)
BATCH_SIZE = 10
# The retraining Lambda keeps a digest of each archived event (its facts): some 2.2 KB per event and 0.5 ms
# of CPU (bench/signals_bench.py `training`), so 3 GB and 15 minutes train on about a million events.
RETRAIN_MEMORY_MB = 3008
RESCORE_TIMEOUT = Duration.minutes(15)


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
        models_bucket: s3.IBucket,
        retraining: RetrainingConfig,
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
            environment={
                "TABLE_NAME": table.table_name,
                "EVENT_BUS_NAME": bus.event_bus_name,
                **({"MODEL_BUCKET_NAME": models_bucket.bucket_name} if retraining.enabled else {}),
            },
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
        self._rescore(stage, layer, table, bus)
        if retraining.enabled:
            self._retraining(stage, layer, models_bucket, retraining)

    def _rescore(
        self, stage: StageConfig, layer: lambda_.ILayerVersion, table: dynamodb.ITable, bus: events.IEventBus
    ) -> None:
        """One-off buyers scored again every day: their risk grows while nothing happens."""
        self.rescore = PythonFunction(
            self,
            "Rescore",
            name="rescore",
            stage=stage,
            layer=layer,
            memory_size=512,
            timeout=RESCORE_TIMEOUT,
            environment={"TABLE_NAME": table.table_name, "EVENT_BUS_NAME": bus.event_bus_name},
            reserved_concurrency=1,  # one re-score at a time, a retry included
        ).function
        # It reads the watches' partitions and writes watches and churn-risk records: all under SIG#, none of
        # the anomaly records (SIGNAL#), and no index.
        self.rescore.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query", "dynamodb:PutItem"],
                resources=[table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(RESCORE_PARTITIONS)}},
            )
        )
        bus.grant_put_events_to(self.rescore)
        self.rescore_schedule = events.Rule(
            self,
            "RescoreSchedule",
            description="re-score the one-off buyers' churn risk as of the day",
            schedule=events.Schedule.rate(Duration.days(1)),
            targets=[targets.LambdaFunction(self.rescore, retry_attempts=2)],
        )

    def _retraining(
        self,
        stage: StageConfig,
        layer: lambda_.ILayerVersion,
        bucket: s3.IBucket,
        retraining: RetrainingConfig,
    ) -> None:
        """The churn model learned again every `every_days` from the event archive; the signals Lambda reads
        only the approved artifact."""
        self.retrain = PythonFunction(
            self,
            "Retrain",
            name="retrain",
            stage=stage,
            layer=layer,
            memory_size=RETRAIN_MEMORY_MB,
            timeout=Duration.minutes(15),
            environment={"MODEL_BUCKET_NAME": bucket.bucket_name},
            reserved_concurrency=1,  # one retraining at a time
        ).function
        bucket.grant_read(self.retrain, f"{EVENTS_PREFIX}*")
        bucket.grant_read_write(self.retrain, f"{MODELS_PREFIX}*")
        bucket.grant_read(self.function, APPROVED_KEY)
        self.retrain_schedule = events.Rule(
            self,
            "RetrainSchedule",
            description="retrain the churn model on the event archive",
            schedule=events.Schedule.rate(Duration.days(retraining.every_days)),
            targets=[targets.LambdaFunction(self.retrain, retry_attempts=2)],
        )
        bucket_id = Stack.of(self).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        roles = [f.role for f in (self.retrain, self.function) if f.role is not None]
        for prefix, reason in (
            (EVENTS_PREFIX, "reads the archive files Firehose named"),
            (MODELS_PREFIX, "writes candidates named by their version"),
        ):
            acknowledge(
                roles[0],
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
                f"The retraining Lambda {reason}, only under {prefix}.",
            )
        for role in roles:
            for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"):
                acknowledge(
                    role,
                    f"AwsSolutions-IAM5[Action::{action}]",
                    "grant_read/grant_read_write's action groups, on the warehouse bucket's model and "
                    "archive keys only (the signals Lambda: the approved model's one key).",
                )
