"""History: the backfill (a Step Functions loop over a Lambda that reads pages until close to its timeout)
with its dead-letter queue for objects that cannot be stored, and the catch-up (a Lambda on an EventBridge
Scheduler schedule that enqueues the events webhooks missed).

Step Functions rather than a self-invoking Lambda: each step and its progress is visible in the execution
history, a failure stops with Stripe's reason instead of recursing silently, outages are retried with
backoff by the state machine, and an operator can stop a run from the console.

The catch-up schedule has no dead-letter queue: each run starts from the cursor the last successful run
left, so a failed invocation is healed by the next one; its retries stop before the next run is due.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.durable_queue import dead_letter_queue
from infra.constructs.lambda_code import PACKAGED_GATEWAY_CONFIG, PACKAGED_METADATA_SCHEMA
from infra.constructs.python_function import PythonFunction
from infra.nag import acknowledge
from stripe_middleware.backfill.ports import RetryLaterError
from stripe_middleware.shared.contract import STRIPE_API_VERSION

BACKFILL_TIMEOUT = Duration.minutes(15)
CATCHUP_TIMEOUT = Duration.minutes(5)
# The backfill function raises every outage as this one error; any other error stops the run, with its reason.
RETRIED_ERRORS = [RetryLaterError.__name__]


class History(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        layer: lambda_.ILayerVersion,
        table: dynamodb.ITable,
        bus: events.IEventBus,
        events_queue: sqs.IQueue,
        stripe_read_key: secretsmanager.ISecret,
        catchup_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = dead_letter_queue(self, "BackfillDeadLetterQueue", stage)
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the backfill: objects that could not be stored.",
        )
        self.environment = environment = {  # HistorySettings: the same for its functions and reconciliation
            "TABLE_NAME": table.table_name,
            "EVENT_BUS_NAME": bus.event_bus_name,
            "STRIPE_API_VERSION": STRIPE_API_VERSION,
            "STRIPE_API_KEY_SECRET_ID": stripe_read_key.secret_arn,
            "BACKFILL_DLQ_URL": self.dead_letter_queue.queue_url,
            "EVENTS_QUEUE_URL": events_queue.queue_url,
            "METADATA_SCHEMA_PATH": PACKAGED_METADATA_SCHEMA,
            "GATEWAY_CONFIG_PATH": PACKAGED_GATEWAY_CONFIG,
        }
        self.backfill = PythonFunction(
            self,
            "Backfill",
            name="backfill",
            stage=stage,
            layer=layer,
            memory_size=512,
            timeout=BACKFILL_TIMEOUT,
            environment=environment,
        ).function
        # Objects under the order guard, cursors, and the shared rate limit: exactly these calls.
        self.backfill.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
                resources=[table.table_arn],
            )
        )
        bus.grant_put_events_to(self.backfill)
        self.dead_letter_queue.grant_send_messages(self.backfill)
        stripe_read_key.grant_read(self.backfill)

        read_pages = tasks.LambdaInvoke(
            self,
            "ReadPages",
            lambda_function=self.backfill,
            payload_response_only=True,
            retry_on_service_exceptions=True,
            task_timeout=sfn.Timeout.duration(BACKFILL_TIMEOUT.plus(Duration.minutes(1))),
        )
        read_pages.add_retry(
            errors=RETRIED_ERRORS, interval=Duration.seconds(30), backoff_rate=2, max_attempts=6
        )
        done = sfn.Choice(self, "AllTypesDone").when(
            sfn.Condition.boolean_equals("$.done", True), sfn.Succeed(self, "Backfilled")
        )
        self.logs = logs.LogGroup(
            self, "StateMachineLogs", retention=stage.log_retention, removal_policy=stage.removal_policy
        )
        self.state_machine = sfn.StateMachine(
            self,
            "BackfillStateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(read_pages.next(done.otherwise(read_pages))),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.logs, level=sfn.LogLevel.ALL, include_execution_data=False),
            timeout=Duration.days(7),
        )
        function_id = Stack.of(self).get_logical_id(self.backfill.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            self.state_machine,
            f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
            "Generated by CDK's LambdaInvoke: the state machine invokes the backfill function's versions.",
        )
        acknowledge(
            self.state_machine,
            "AwsSolutions-IAM5[Resource::*]",
            "Log delivery (logs:CreateLogDelivery, ...) and X-Ray (xray:PutTraceSegments) support no "
            "resource-level permissions; every other grant names its resource.",
        )

        self.catchup = PythonFunction(
            self,
            "Catchup",
            name="catchup",
            stage=stage,
            layer=layer,
            timeout=CATCHUP_TIMEOUT,
            environment=environment,
        ).function
        # Processed-event ids (BatchGetItem), its cursor (GetItem, PutItem), the rate limit (UpdateItem).
        self.catchup.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:BatchGetItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ],
                resources=[table.table_arn],
            )
        )
        events_queue.grant_send_messages(self.catchup)
        bus.grant_put_events_to(self.catchup)  # the catch-up gap report
        stripe_read_key.grant_read(self.catchup)
        schedule_role = iam.Role(
            self, "CatchupScheduleRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com")
        )
        self.schedule = scheduler.Schedule(
            self,
            "CatchupSchedule",
            description="Enqueue the Stripe events webhooks missed (stripe-middleware catch-up)",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(catchup_minutes)),
            target=scheduler_targets.LambdaInvoke(
                self.catchup,
                role=schedule_role,
                retry_attempts=2,
                max_event_age=Duration.minutes(max(1, min(catchup_minutes - 1, 60))),
            ),
        )
        catchup_id = Stack.of(self).get_logical_id(self.catchup.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            schedule_role,
            f"AwsSolutions-IAM5[Resource::<{catchup_id}.Arn>:*]",
            "Generated by CDK's scheduler target: the schedule invokes the catch-up function's versions.",
        )
