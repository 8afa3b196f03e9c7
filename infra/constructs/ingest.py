"""Verified webhook ingest: `POST /webhooks/stripe[/connect]` → ingest Lambda → events queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.api import HttpApi
from infra.constructs.python_function import PythonFunction
from infra.nag import acknowledge

WEBHOOK_PATH = "/webhooks/stripe"
CONNECT_WEBHOOK_PATH = "/webhooks/stripe/connect"


class WebhookIngest(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        api: HttpApi,
        events_queue: sqs.IQueue,
        layer: lambda_.ILayerVersion,
    ) -> None:
        super().__init__(scope, construct_id)
        # Created with a random placeholder; the operator puts the endpoint's whsec_ value in (README).
        self.webhook_secret = secretsmanager.Secret(
            self,
            "WebhookSecret",
            description="Stripe webhook signing secret(s): {current, previous}",
            removal_policy=stage.removal_policy,
        )
        self.connect_webhook_secret = secretsmanager.Secret(
            self,
            "ConnectWebhookSecret",
            description="Stripe Connect webhook signing secret(s): {current, previous}",
            removal_policy=stage.removal_policy,
        )
        for secret in (self.webhook_secret, self.connect_webhook_secret):
            acknowledge(
                secret,
                "AwsSolutions-SMG4",
                "Webhook signing secrets are issued by Stripe and rolled in the Stripe Dashboard (Roll "
                "secret); the function accepts current and previous during the roll window. A rotation "
                "Lambda cannot create a Stripe secret.",
            )
        self.handler = PythonFunction(
            self,
            "Ingest",
            name="ingest",
            stage=stage,
            layer=layer,
            memory_size=256,
            timeout=Duration.seconds(10),
            environment={
                "EVENTS_QUEUE_URL": events_queue.queue_url,
                "WEBHOOK_SECRET_ID": self.webhook_secret.secret_arn,
                "CONNECT_WEBHOOK_SECRET_ID": self.connect_webhook_secret.secret_arn,
                "SIGNATURE_TOLERANCE_SECONDS": str(stage.signature_tolerance_seconds),
            },
        ).function
        events_queue.grant_send_messages(self.handler)
        self.webhook_secret.grant_read(self.handler)
        self.connect_webhook_secret.grant_read(self.handler)
        routes = [f"POST {WEBHOOK_PATH}", f"POST {CONNECT_WEBHOOK_PATH}"]
        for route in api.add_lambda_routes("Ingest", self.handler, routes, iam=False):
            acknowledge(
                route,
                "AwsSolutions-APIG4",
                "Stripe cannot sign AWS requests; every webhook is authenticated by its Stripe-Signature "
                "HMAC in the ingest function before anything is stored.",
            )
