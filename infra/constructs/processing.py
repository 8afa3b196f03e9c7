"""The processor: events queue → de-duplicate, order, store → EventBridge."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.lambda_code import PACKAGED_METADATA_SCHEMA
from infra.constructs.python_function import PythonFunction
from stripe_middleware.shared.contract import STRIPE_API_VERSION

BATCH_SIZE = 10


class EventProcessor(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        layer: lambda_.ILayerVersion,
        events_queue: sqs.IQueue,
        table: dynamodb.ITable,
        bus: events.IEventBus,
        timeout: Duration,
        stripe_read_key: secretsmanager.ISecret | None,
    ) -> None:
        super().__init__(scope, construct_id)
        environment = {
            "TABLE_NAME": table.table_name,
            "EVENT_BUS_NAME": bus.event_bus_name,
            "STRIPE_API_VERSION": STRIPE_API_VERSION,
            "METADATA_SCHEMA_PATH": PACKAGED_METADATA_SCHEMA,
        }
        if stripe_read_key is not None:
            environment["STRIPE_API_KEY_SECRET_ID"] = stripe_read_key.secret_arn
        self.function = PythonFunction(
            self,
            "Processor",
            name="processor",
            stage=stage,
            layer=layer,
            memory_size=512,
            timeout=timeout,
            environment=environment,
        ).function
        self.function.add_event_source(
            sources.SqsEventSource(
                events_queue,
                batch_size=BATCH_SIZE,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
            )
        )
        # Exactly the calls the processor makes, on the table only (it reads no index).
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem"],
                resources=[table.table_arn],
            )
        )
        bus.grant_put_events_to(self.function)
        if stripe_read_key is not None:
            stripe_read_key.grant_read(self.function)
