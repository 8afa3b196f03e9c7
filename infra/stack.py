"""The stack only composes constructs; each construct owns one concern."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, Stack
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.api import HttpApi
from infra.constructs.durable_queue import DurableQueue
from infra.constructs.ingest import WEBHOOK_PATH, WebhookIngest
from infra.constructs.lambda_code import shared_layer
from infra.constructs.partner_source import StripePartnerEventSource

# The processor's timeout; SQS visibility is six times it, as AWS advises for Lambda event sources.
PROCESSOR_TIMEOUT = Duration.seconds(60)


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    stage: StageConfig
    stripe_partner_event_source: str | None = None


class StripeMiddlewareStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, options: StackOptions, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        stage = options.stage
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
        CfnOutput(self, "WebhookUrl", value=f"{self.api.url}{WEBHOOK_PATH}")
        CfnOutput(self, "ConnectWebhookUrl", value=f"{self.api.url}{WEBHOOK_PATH}/connect")
        CfnOutput(self, "WebhookSecretArn", value=self.ingest.webhook_secret.secret_arn)
        CfnOutput(self, "ConnectWebhookSecretArn", value=self.ingest.connect_webhook_secret.secret_arn)
        CfnOutput(self, "EventsQueueUrl", value=self.events.queue.queue_url)
        CfnOutput(self, "EventsDeadLetterQueueUrl", value=self.events.dead_letter_queue.queue_url)
