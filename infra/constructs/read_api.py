"""Internal read API over the store, the signals' and the reconciliation records, IAM-authorized."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.api import HttpApi
from infra.constructs.python_function import PythonFunction
from stripe_middleware.adapters.dynamodb.table import INDEXES

READ_ROUTES = (
    "GET /v1/objects/{object_type}/{object_id}",
    "GET /v1/customers/{customer_id}/objects",
    "GET /v1/customers/{customer_id}/signals",
    "GET /v1/signals",
    "GET /v1/reconciliation/payouts/{payout_id}",
    "GET /v1/reconciliation",
)


class ReadApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        api: HttpApi,
        layer: lambda_.ILayerVersion,
        table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = PythonFunction(
            self,
            "ReadApi",
            name="read_api",
            stage=stage,
            layer=layer,
            memory_size=256,
            timeout=Duration.seconds(10),
            environment={"TABLE_NAME": table.table_name},
        ).function
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:GetItem"],
                resources=[table.table_arn, *(f"{table.table_arn}/index/{index.name}" for index in INDEXES)],
            )
        )
        api.add_lambda_routes("Read", self.function, READ_ROUTES, iam=True)
