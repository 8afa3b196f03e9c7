"""The stack only composes constructs; each construct owns one concern."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.api import HttpApi
from infra.constructs.dunning import DUNNING_CONFIG, Dunning
from infra.constructs.durable_queue import DurableQueue
from infra.constructs.gateway import CommandGateway
from infra.constructs.history import History
from infra.constructs.ingest import CONNECT_WEBHOOK_PATH, WEBHOOK_PATH, WebhookIngest
from infra.constructs.lambda_code import (
    BUYERS_MODEL,
    CHURN_MODEL,
    GATEWAY_CONFIG,
    METADATA_SCHEMA,
    SIGNALS_CONFIG,
    shared_layer,
)
from infra.constructs.monitoring import Monitoring
from infra.constructs.partner_source import StripePartnerEventSource
from infra.constructs.processing import EventProcessor
from infra.constructs.read_api import ReadApi
from infra.constructs.reconciliation import Reconciliation
from infra.constructs.registration import StripeRegistration
from infra.constructs.routing import EventRouting
from infra.constructs.signals import Signals
from infra.constructs.store import ObjectStoreTable
from infra.constructs.warehouse import Warehouse
from infra.nag import acknowledge
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.dunning.config import load_dunning_config
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware.signals.buyers import load_buyer_model
from stripe_middleware.signals.churn import load_churn_model
from stripe_middleware.signals.config import load_signals_config

# The processor's timeout; SQS visibility is six times it, as AWS advises for Lambda event sources.
PROCESSOR_TIMEOUT = Duration.seconds(60)


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    stage: StageConfig
    stripe_partner_event_source: str | None = None
    refetch_same_second: bool = False  # the processor reads the StripeReadOnlyKey secret too
    catchup_minutes: int = 15  # how often catch-up lists Stripe's Events API
    alarm_email: str | None = None  # subscribed to the alarm topic (it confirms by e-mail)
    webhook_events: tuple[str, ...] = ("*",)  # what the registered endpoint(s) are sent
    stripe_connect: bool = False  # register the Connect endpoint too
    reconcile_accounts: tuple[str, ...] = ()  # connected accounts the daily reconciliation sweep covers
    registration_revision: str = ""  # a new value registers again (a key added later, an endpoint deleted)

    def __post_init__(self) -> None:
        if not 1 <= self.catchup_minutes <= 1440:
            raise ValueError(f"catchupMinutes must be 1..1440, not {self.catchup_minutes}")


class StripeMiddlewareStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, options: StackOptions, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        stage = options.stage
        # A broken config file fails synth here, not at 3 a.m.
        load_metadata_schema(METADATA_SCHEMA)
        gateway_config = load_gateway_config(GATEWAY_CONFIG)
        signals_config = load_signals_config(SIGNALS_CONFIG)
        load_churn_model(CHURN_MODEL)
        load_buyer_model(BUYERS_MODEL)
        layer = shared_layer(self, "CoreLayer")
        self.events = DurableQueue(
            self,
            "Events",
            stage=stage,
            visibility_timeout=Duration.seconds(PROCESSOR_TIMEOUT.to_seconds() * 6),
        )
        self.api = HttpApi(self, "Http", stage=stage)
        self.ingest = WebhookIngest(
            self, "WebhookIngest", stage=stage, api=self.api, events_queue=self.events.queue, layer=layer
        )
        if options.stripe_partner_event_source:
            StripePartnerEventSource(
                self,
                "StripePartnerSource",
                event_source_name=options.stripe_partner_event_source,
                events_queue=self.events.queue,
                dead_letter_queue=self.events.dead_letter_queue,
            )
        self.store = ObjectStoreTable(self, "Store", stage=stage)
        self.routing = EventRouting(self, "Routing", stage=stage)
        # Backfill and catch-up read with it; the processor too when it refetches same-second ties.
        stripe_read_key = secretsmanager.Secret(
            self,
            "StripeReadOnlyKey",
            description="Stripe restricted key with read access (rk_...)",
            removal_policy=stage.removal_policy,
        )
        acknowledge(
            stripe_read_key,
            "AwsSolutions-SMG4",
            "Stripe API keys are issued and rolled in the Stripe Dashboard; a rotation Lambda cannot "
            "create one. Roll the key there and put the new value here.",
        )
        self.processor = EventProcessor(
            self,
            "Processing",
            stage=stage,
            layer=layer,
            events_queue=self.events.queue,
            table=self.store.table,
            bus=self.routing.bus,
            timeout=PROCESSOR_TIMEOUT,
            stripe_read_key=stripe_read_key if options.refetch_same_second else None,
        )
        self.read_api = ReadApi(self, "Read", stage=stage, api=self.api, layer=layer, table=self.store.table)
        self.gateway = CommandGateway(
            self,
            "Gateway",
            stage=stage,
            api=self.api,
            layer=layer,
            table=self.store.table,
            bus=self.routing.bus,
        )
        self.history = History(
            self,
            "History",
            stage=stage,
            layer=layer,
            table=self.store.table,
            bus=self.routing.bus,
            events_queue=self.events.queue,
            stripe_read_key=stripe_read_key,
            catchup_minutes=options.catchup_minutes,
        )
        self.reconciliation = Reconciliation(
            self,
            "Reconciliation",
            stage=stage,
            layer=layer,
            table=self.store.table,
            bus=self.routing.bus,
            stripe_read_key=stripe_read_key,
            history_environment=self.history.environment,
            accounts=options.reconcile_accounts,
        )
        self.warehouse = Warehouse(self, "Warehouse", stage=stage, bus=self.routing.bus)
        self.signals = Signals(
            self,
            "Signals",
            stage=stage,
            layer=layer,
            table=self.store.table,
            bus=self.routing.bus,
            models_bucket=self.warehouse.bucket,
            retraining=signals_config.retraining,
        )
        self.dunning = Dunning(
            self,
            "Dunning",
            stage=stage,
            layer=layer,
            table=self.store.table,
            bus=self.routing.bus,
            config=load_dunning_config(DUNNING_CONFIG),
            allowed_operations=gateway_config.operations,
        )
        self.registration = StripeRegistration(
            self,
            "Registration",
            stage=stage,
            layer=layer,
            webhook_url=f"{self.api.url}{WEBHOOK_PATH}",
            webhook_secret=self.ingest.webhook_secret,
            connect_webhook_url=f"{self.api.url}{CONNECT_WEBHOOK_PATH}",
            connect_webhook_secret=self.ingest.connect_webhook_secret,
            enabled_events=options.webhook_events,
            connect=options.stripe_connect,
            revision=options.registration_revision,
        )
        self.registration.node.add_dependency(self.ingest)  # Stripe delivers as soon as it is registered
        # Last: it puts every function built above on the dashboard. Every queue and state machine goes here.
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            stage=stage,
            alarm_email=options.alarm_email,
            api=self.api.api,
            events_queue=self.events,
            work_queues={
                "commands": self.gateway.commands,
                "signals": self.signals.inputs,
                "reconciliation": self.reconciliation.inputs,
                "dunning": self.dunning.inputs,
            },
            dead_letter_queues={
                "backfill": self.history.dead_letter_queue,
                "export": self.warehouse.dead_letter_queue,
            },
            state_machines={"backfill": self.history.state_machine, "dunning": self.dunning.state_machine},
        )
        outputs = {
            "WebhookUrl": f"{self.api.url}{WEBHOOK_PATH}",
            "ConnectWebhookUrl": f"{self.api.url}{CONNECT_WEBHOOK_PATH}",
            "ApiUrl": self.api.url,
            "WebhookSecretArn": self.ingest.webhook_secret.secret_arn,
            "ConnectWebhookSecretArn": self.ingest.connect_webhook_secret.secret_arn,
            "EventsQueueUrl": self.events.queue.queue_url,
            "EventsDeadLetterQueueUrl": self.events.dead_letter_queue.queue_url,
            "TableName": self.store.table.table_name,
            "EventBusName": self.routing.bus.event_bus_name,
            "CommandsQueueUrl": self.gateway.commands.queue.queue_url,
            "CommandsDeadLetterQueueUrl": self.gateway.commands.dead_letter_queue.queue_url,
            "StripeApiKeySecretArn": self.gateway.stripe_api_key.secret_arn,
            "StripeReadOnlyKeySecretArn": stripe_read_key.secret_arn,
            "BackfillStateMachineArn": self.history.state_machine.state_machine_arn,
            "BackfillDeadLetterQueueUrl": self.history.dead_letter_queue.queue_url,
            "CatchupFunctionName": self.history.catchup.function_name,
            "SignalsQueueUrl": self.signals.inputs.queue.queue_url,
            "SignalsDeadLetterQueueUrl": self.signals.inputs.dead_letter_queue.queue_url,
            "DunningStateMachineArn": self.dunning.state_machine.state_machine_arn,
            "ReconcileFunctionName": self.reconciliation.function.function_name,
            "ReconciliationQueueUrl": self.reconciliation.inputs.queue.queue_url,
            "ReconciliationDeadLetterQueueUrl": self.reconciliation.inputs.dead_letter_queue.queue_url,
            "WarehouseBucketName": self.warehouse.bucket.bucket_name,
            "AthenaWorkGroupName": self.warehouse.workgroup.ref,
            "GlueDatabaseName": self.warehouse.database.ref,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
        }
        outputs.update(self.registration.outputs)  # `stripe-middleware status` reads them
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
