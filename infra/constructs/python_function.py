"""Every Lambda of the product is built the same way: arm64, Python 3.13, JSON logs, X-Ray, own log group."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.lambda_code import ARCHITECTURE, RUNTIME, function_code
from infra.nag import acknowledge
from stripe_middleware.shared.contract import METRICS_NAMESPACE, SERVICE


class PythonFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        stage: StageConfig,
        layer: lambda_.ILayerVersion,
        environment: Mapping[str, str],
        timeout: Duration,
        memory_size: int = 256,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name  # functions/<name>/; its metrics carry `service` = f"{SERVICE}-{name}"
        self.log_group = logs.LogGroup(
            self, "Logs", retention=stage.log_retention, removal_policy=stage.removal_policy
        )
        # An own role instead of AWSLambdaBasicExecutionRole: logs go to this function's group only.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"{SERVICE} {name} ({stage.name})",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=function_code(name),
            layers=[layer],
            memory_size=memory_size,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=self.log_group,
            role=self.role,
            environment={
                "POWERTOOLS_SERVICE_NAME": f"{SERVICE}-{name}",
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "STAGE": stage.name,
                **environment,
            },
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Only X-Ray's PutTraceSegments/PutTelemetryRecords use Resource '*': X-Ray supports no "
            "resource-level permissions. Every other grant is scoped to one resource by grant_*.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "The product targets python3.13 on purpose: the layer is built and tested for it (pydantic-core "
            "wheels, Powertools); moving to a newer runtime is a tested change of lambda_code.py.",
        )
