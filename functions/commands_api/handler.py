"""Commands API Lambda: `POST /v1/commands` → validate → commands queue; `GET /v1/commands/{id}`.

It never loads the Stripe SDK (an import contract keeps it so): only the gateway talks to Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.dynamodb.commands import DynamoCommandStore
from stripe_middleware.adapters.sqs.commands import SqsCommandQueue
from stripe_middleware.commands.config import GatewayConfig, load_gateway_config
from stripe_middleware.commands.ports import CommandQueue, CommandStore
from stripe_middleware.commands.settings import CommandsApiSettings
from stripe_middleware.commands.submit import command_status, submit_command
from stripe_middleware.shared import http
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import RejectedError, UnavailableError
from stripe_middleware.shared.metadata_schema import MetadataSchema, load_metadata_schema

logger = Logger()
metrics = Metrics()


@dataclass(frozen=True)
class Dependencies:
    store: CommandStore
    queue: CommandQueue
    config: GatewayConfig
    schema: MetadataSchema


@cache
def dependencies() -> Dependencies:
    settings = CommandsApiSettings.from_env()
    return Dependencies(
        store=DynamoCommandStore(aws.client("dynamodb"), settings.table_name),
        queue=SqsCommandQueue(aws.client("sqs"), settings.commands_queue_url),
        config=load_gateway_config(),
        schema=load_metadata_schema(),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = dependencies()
    submitting = http.route_key(event) == "POST /v1/commands"
    reason = "accepted"
    try:
        if submitting:
            body = submit_command(
                http.raw_body(event),
                store=deps.store,
                queue=deps.queue,
                config=deps.config,
                schema=deps.schema,
            )
            logger.set_correlation_id(body["command_id"])
            response = http.json_response(202, body)
        else:
            command_id = (event.get("pathParameters") or {}).get("command_id", "")
            response = http.json_response(200, command_status(deps.store, command_id))
    except RejectedError as error:
        reason, response = error.code, http.rejected_response(error)
    except UnavailableError as error:
        reason, response = error.code, http.unavailable_response(error)
        logger.exception("a dependency is unavailable", extra={"reason": reason})
    status = response["statusCode"]
    if submitting:
        metrics.add_metric(
            Metric.COMMANDS_SUBMITTED if status == 202 else Metric.COMMANDS_REJECTED, MetricUnit.Count, 1
        )
        logger.info("command submitted", extra={"status": status, "reason": reason})
    else:
        metrics.add_metric(Metric.COMMAND_STATUS_READS, MetricUnit.Count, 1)
    return response
