"""The product's one HTTP API (API Gateway HTTP API): webhook routes and, IAM-authorized, internal routes.

HTTP API rather than REST API: $1.00 vs $3.50 per million requests, lower latency, and the webhook path
needs nothing REST adds (request validation happens in the signature check; body size in the Lambda).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import StageConfig

ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
}


class HttpApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.api = apigw.HttpApi(self, "Api", description="stripe-middleware", create_default_stage=False)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=stage.log_retention, removal_policy=stage.removal_policy
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=stage.webhook_rate_limit, burst_limit=stage.webhook_burst_limit
            ),
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.access_logs.log_group_arn, format=json.dumps(ACCESS_LOG_FORMAT)
        )

    def add_lambda_routes(
        self, name: str, function: lambda_.IFunction, routes: Sequence[str], *, iam: bool
    ) -> list[apigw.HttpRoute]:
        """Route `"METHOD /path"` keys to one function; internal routes (`iam=True`) need SigV4."""
        integration = integrations.HttpLambdaIntegration(f"{name}Integration", function)
        authorizer = authorizers.HttpIamAuthorizer() if iam else None
        added: list[apigw.HttpRoute] = []
        for route in routes:
            method, path = route.split(" ", 1)
            added += self.api.add_routes(
                path=path, methods=[apigw.HttpMethod(method)], integration=integration, authorizer=authorizer
            )
        return added

    @property
    def url(self) -> str:
        return self.api.api_endpoint
