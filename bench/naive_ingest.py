"""Reference: the ingest handler a competent engineer writes first (Stripe SDK + Powertools + boto3).

Kept in bench/ only, to measure our ingest against it. Not a strawman: it verifies with Stripe's own
library, routes with Powertools, reads the secret from Secrets Manager once and enqueues to SQS.
"""

import json
import os

import boto3
import stripe
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

logger = Logger()
app = APIGatewayHttpResolver()
sqs = boto3.client("sqs")
secrets = boto3.client("secretsmanager")
_secret: dict[str, str] = {}


def secret() -> str:
    if "value" not in _secret:
        _secret["value"] = secrets.get_secret_value(SecretId=os.environ["WEBHOOK_SECRET_ID"])["SecretString"]
    return _secret["value"]


@app.post("/webhooks/stripe")
def webhook() -> Response:  # type: ignore[type-arg]
    payload = app.current_event.decoded_body
    try:
        event = stripe.Webhook.construct_event(
            payload, app.current_event.headers.get("stripe-signature"), secret()
        )
    except (ValueError, stripe.SignatureVerificationError) as error:
        return Response(400, "application/json", json.dumps({"error": "invalid", "message": str(error)}))
    sqs.send_message(QueueUrl=os.environ["EVENTS_QUEUE_URL"], MessageBody=payload)
    return Response(200, "application/json", json.dumps({"received": True, "id": event.id}))


def handler(event: dict, context: object) -> dict:  # type: ignore[type-arg]
    return app.resolve(event, context)
