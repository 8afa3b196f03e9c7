"""Reconciliation: each automatic payout's balance transactions against the store.

    bus rule (payout.paid, payout.reconciliation_completed) → queue (with DLQ) → reconcile λ ← daily schedule

The function reads Stripe with the history functions' key and shared rate limit (their settings) and
repairs the store the way a backfill writes it, so it has their table rights plus BatchGetItem; one payout
per message, so a payout that fails is retried alone and then waits in the DLQ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.durable_queue import DurableQueue
from infra.constructs.python_function import PythonFunction
from infra.nag import acknowledge
from stripe_middleware.adapters.dynamodb.table import RECONCILIATION_PARTITIONS, TYPE_CREATED_INDEX
from stripe_middleware.reconciliation.run import TRIGGERS
from stripe_middleware.shared.contract import SOURCE

# Its items: the objects it reads and repairs, its records, the shared rate limit's windows.
PARTITIONS = ("OBJ#*", *RECONCILIATION_PARTITIONS, "RATE#*")
TIMEOUT = Duration.minutes(15)  # a payout of 10,000 transactions: about 100 pages and 100 batched reads


class Reconciliation(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        layer: lambda_.ILayerVersion,
        table: dynamodb.ITable,
        bus: events.IEventBus,
        stripe_read_key: secretsmanager.ISecret,
        history_environment: Mapping[str, str],
        accounts: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.inputs = DurableQueue(
            self, "Payouts", stage=stage, visibility_timeout=Duration.seconds(TIMEOUT.to_seconds() * 6)
        )
        self.rule = events.Rule(
            self,
            "PayoutsToReconciliation",
            event_bus=bus,
            event_pattern=events.EventPattern(source=[SOURCE], detail_type=list(TRIGGERS)),
            targets=[targets.SqsQueue(self.inputs.queue, dead_letter_queue=self.inputs.dead_letter_queue)],
        )
        self.function = PythonFunction(
            self,
            "Reconcile",
            name="reconcile",
            stage=stage,
            layer=layer,
            memory_size=1024,
            timeout=TIMEOUT,
            environment={**history_environment, "RECONCILE_ACCOUNTS": ",".join(accounts)},
            # One run at a time: an event-triggered run and the sweep never check the same payout together
            # (both would publish its discrepancies before either wrote the record).
            reserved_concurrency=1,
        ).function
        self.function.add_event_source(
            sources.SqsEventSource(self.inputs.queue, batch_size=1, report_batch_item_failures=True)
        )
        # Only its own items of the shared table: objects (batched reads, repairs under the order guard),
        # its records, the shared rate limit; and the charges and refunds of a period from the type_created
        # index. Never commands, de-duplication records, cursors or signals.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:BatchGetItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ],
                resources=[table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(PARTITIONS)}},
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[f"{table.table_arn}/index/{TYPE_CREATED_INDEX.name}"],
            )
        )
        bus.grant_put_events_to(self.function)
        stripe_read_key.grant_read(self.function)
        schedule_role = iam.Role(
            self, "SweepScheduleRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com")
        )
        self.schedule = scheduler.Schedule(
            self,
            "DailySweep",
            description="Reconcile the payouts of the last 16 days and find what no payout paid out",
            schedule=scheduler.ScheduleExpression.rate(Duration.days(1)),
            target=scheduler_targets.LambdaInvoke(
                self.function,
                input=scheduler.ScheduleTargetInput.from_object({}),
                role=schedule_role,
                retry_attempts=2,
                max_event_age=Duration.hours(6),
            ),
        )
        function_id = Stack.of(self).get_logical_id(self.function.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            schedule_role,
            f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
            "Generated by CDK's scheduler target: the schedule invokes the reconcile function's versions.",
        )
