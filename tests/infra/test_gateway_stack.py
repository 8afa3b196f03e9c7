from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from stripe_middleware.shared.contract import STRIPE_API_VERSION
from tests.infra.conftest import Synthesized, function_named, policy_statements_of


def actions(synth: Synthesized, function: dict[str, Any], prefix: str) -> set[str]:
    found: set[str] = set()
    for statement in policy_statements_of(synth, function):
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        found.update(a for a in listed if a.startswith(prefix))
    return found


def test_command_routes_require_iam(dev: Synthesized) -> None:
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in dev.resources("AWS::ApiGatewayV2::Route").values()
    }
    assert routes["POST /v1/commands"]["AuthorizationType"] == "AWS_IAM"
    assert routes["GET /v1/commands/{command_id}"]["AuthorizationType"] == "AWS_IAM"


def test_gateway_consumes_the_commands_queue_with_bounded_concurrency(dev: Synthesized) -> None:
    name, gateway = function_named(dev, "gateway")
    dev.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": name},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 10},
            "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("GatewayCommandsQueue"), "Arn"]},
        },
    )
    env = gateway["Properties"]["Environment"]["Variables"]
    assert env["STRIPE_API_VERSION"] == STRIPE_API_VERSION
    assert actions(dev, gateway, "dynamodb:") == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert "secretsmanager:GetSecretValue" in actions(dev, gateway, "secretsmanager:")


def test_commands_api_can_only_record_and_queue(dev: Synthesized) -> None:
    commands_api = next(
        f
        for f in dev.resources("AWS::Lambda::Function").values()
        if "COMMANDS_QUEUE_URL" in f["Properties"]["Environment"]["Variables"]
        and "STRIPE_API_KEY_SECRET_ID" not in f["Properties"]["Environment"]["Variables"]
    )
    assert actions(dev, commands_api, "dynamodb:") == {"dynamodb:GetItem", "dynamodb:PutItem"}
    assert actions(dev, commands_api, "secretsmanager:") == set()
    assert "sqs:SendMessage" in actions(dev, commands_api, "sqs:")


def test_commands_from_the_bus_reach_the_commands_queue(dev: Synthesized) -> None:
    dev.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {"detail-type": ["stripe-middleware.command"]},
            "Targets": [
                Match.object_like(
                    {"Arn": {"Fn::GetAtt": [Match.string_like_regexp("GatewayCommandsQueue"), "Arn"]}}
                )
            ],
        },
    )
