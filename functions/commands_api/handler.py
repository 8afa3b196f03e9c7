"""Commands API Lambda: `POST /v1/commands` → validate → commands queue; `GET /v1/commands/{id}`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware import apigw, aws
from stripe_middleware.command_api import command_status, submit_command
from stripe_middleware.command_store import CommandStore, CommandStoreUnavailableError
from stripe_middleware.commands import GatewayConfig, load_gateway_config
from stripe_middleware.metadata_schema import MetadataSchema, load_metadata_schema
from stripe_middleware.read_api import Answer

logger = Logger()
metrics = Metrics()


@dataclass(frozen=True)
class Dependencies:
    store: CommandStore
    sqs: Any
    queue_url: str
    config: GatewayConfig
    schema: MetadataSchema


@cache
def dependencies() -> Dependencies:
    return Dependencies(
        store=CommandStore(aws.client("dynamodb"), os.environ["TABLE_NAME"]),
        sqs=aws.client("sqs"),
        queue_url=os.environ["COMMANDS_QUEUE_URL"],
        config=load_gateway_config(),
        schema=load_metadata_schema(),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = dependencies()
    route = apigw.route_key(event)
    try:
        if route == "POST /v1/commands":
            answer = submit_command(
                apigw.raw_body(event),
                store=deps.store,
                enqueue=lambda body: deps.sqs.send_message(QueueUrl=deps.queue_url, MessageBody=body),
                config=deps.config,
                schema=deps.schema,
            )
            reason = answer.body.get("error", "accepted")
            metrics.add_metric(
                "CommandsSubmitted" if answer.status == 202 else "CommandsRejected", MetricUnit.Count, 1
            )
            logger.set_correlation_id(answer.body.get("command_id"))
            logger.info("command submitted", extra={"status": answer.status, "reason": reason})
        else:
            command_id = (event.get("pathParameters") or {}).get("command_id", "")
            answer = command_status(deps.store, command_id)
            metrics.add_metric("CommandStatusReads", MetricUnit.Count, 1)
    except CommandStoreUnavailableError:
        logger.exception("command store unavailable")
        answer = Answer(503, {"error": "store_unavailable", "message": "retry later"})
    return apigw.json_response(answer.status, answer.body)
