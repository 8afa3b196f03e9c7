"""Outbound Stripe gateway: commands API + commands queue (from the API, SQS producers and EventBridge)
→ gateway Lambda → Stripe, rate-limited, idempotent, version-pinned."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.api import HttpApi
from infra.constructs.durable_queue import DurableQueue
from infra.constructs.lambda_code import PACKAGED_GATEWAY_CONFIG, PACKAGED_METADATA_SCHEMA
from infra.constructs.python_function import PythonFunction
from infra.nag import acknowledge
from stripe_middleware.shared.contract import STRIPE_API_VERSION, DetailType

GATEWAY_TIMEOUT = Duration.seconds(60)
# Crash safety net only: the gateway itself moves a command that used up its attempts to the DLQ.
COMMANDS_MAX_RECEIVE_COUNT = 100


class CommandGateway(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        api: HttpApi,
        layer: lambda_.ILayerVersion,
        table: dynamodb.ITable,
        bus: events.IEventBus,
    ) -> None:
        super().__init__(scope, construct_id)
        self.commands = DurableQueue(
            self,
            "Commands",
            stage=stage,
            visibility_timeout=Duration.seconds(GATEWAY_TIMEOUT.to_seconds() * 6),
            max_receive_count=COMMANDS_MAX_RECEIVE_COUNT,
        )
        self.stripe_api_key = secretsmanager.Secret(
            self,
            "StripeApiKey",
            description="Stripe restricted key (rk_...) with write access to exactly the allowed operations",
            removal_policy=stage.removal_policy,
        )
        acknowledge(
            self.stripe_api_key,
            "AwsSolutions-SMG4",
            "Stripe API keys are issued and rolled in the Stripe Dashboard; a rotation Lambda cannot create "
            "one. Roll the key there and put the new value here (the gateway rereads it on a new container).",
        )
        common = {
            "TABLE_NAME": table.table_name,
            "METADATA_SCHEMA_PATH": PACKAGED_METADATA_SCHEMA,
            "GATEWAY_CONFIG_PATH": PACKAGED_GATEWAY_CONFIG,
        }
        self.gateway = PythonFunction(
            self,
            "Gateway",
            name="gateway",
            stage=stage,
            layer=layer,
            memory_size=512,
            timeout=GATEWAY_TIMEOUT,
            environment={
                **common,
                "COMMANDS_QUEUE_URL": self.commands.queue.queue_url,
                "COMMANDS_DLQ_URL": self.commands.dead_letter_queue.queue_url,
                "EVENT_BUS_NAME": bus.event_bus_name,
                "STRIPE_API_VERSION": STRIPE_API_VERSION,
                "STRIPE_API_KEY_SECRET_ID": self.stripe_api_key.secret_arn,
            },
        ).function
        self.gateway.add_event_source(
            sources.SqsEventSource(
                self.commands.queue, batch_size=5, report_batch_item_failures=True, max_concurrency=10
            )
        )
        self.commands.dead_letter_queue.grant_send_messages(self.gateway)
        self.stripe_api_key.grant_read(self.gateway)
        bus.grant_put_events_to(self.gateway)
        self.gateway.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[table.table_arn],
            )
        )
        self.api_function = PythonFunction(
            self,
            "CommandsApi",
            name="commands_api",
            stage=stage,
            layer=layer,
            timeout=Duration.seconds(10),
            environment={**common, "COMMANDS_QUEUE_URL": self.commands.queue.queue_url},
        ).function
        self.commands.queue.grant_send_messages(self.api_function)
        self.api_function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:PutItem"], resources=[table.table_arn])
        )
        api.add_lambda_routes(
            "Commands", self.api_function, ["POST /v1/commands", "GET /v1/commands/{command_id}"], iam=True
        )
        # Event-driven producers: put `detail-type: stripe-middleware.command` on the bus.
        self.rule = events.Rule(
            self,
            "CommandsFromBus",
            event_bus=bus,
            event_pattern=events.EventPattern(detail_type=[DetailType.COMMAND]),
            targets=[
                targets.SqsQueue(self.commands.queue, dead_letter_queue=self.commands.dead_letter_queue)
            ],
        )
