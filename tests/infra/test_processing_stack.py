from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from events import DETAIL_SCHEMAS, load_event
from infra.constructs.read_api import READ_ROUTES
from infra.constructs.subscription import StripeEventSubscription, to_lambda
from stripe_middleware.shared.metadata_schema import (
    MetadataSchemaError,
    load_metadata_schema,
    parse_metadata_schema,
)
from stripe_middleware_dev.tables import create_table_request
from tests.infra.conftest import Synthesized, function_named, policy_statements_of, synthesized


def test_table_matches_the_shared_definition_with_pitr_encryption_and_ttl(dev: Synthesized) -> None:
    [table] = dev.resources("AWS::DynamoDB::Table").values()
    props = table["Properties"]
    expected = create_table_request("x")
    assert props["KeySchema"] == expected["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        expected["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    for index in expected["GlobalSecondaryIndexes"]:
        assert indexes[index["IndexName"]]["KeySchema"] == index["KeySchema"]
        assert indexes[index["IndexName"]]["Projection"] == index["Projection"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert not props.get("DeletionProtectionEnabled")


def test_prod_table_has_deletion_protection(prod: Synthesized) -> None:
    [table] = prod.resources("AWS::DynamoDB::Table").values()
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_bus_has_an_archive_and_the_schemas_are_registered(dev: Synthesized) -> None:
    dev.template.has_resource_properties(
        "AWS::Events::Archive",
        {"EventPattern": {"source": ["stripe-middleware"]}, "RetentionDays": 30},
    )
    schemas = dev.resources("AWS::EventSchemas::Schema")
    assert {s["Properties"]["SchemaName"] for s in schemas.values()} == {
        f"stripe-middleware@{name}" for name in DETAIL_SCHEMAS
    }
    for schema in schemas.values():
        name = schema["Properties"]["SchemaName"].split("@", 1)[1]
        assert json.loads(schema["Properties"]["Content"]) == load_event(DETAIL_SCHEMAS[name])
        assert schema["Properties"]["Type"] == "JSONSchemaDraft4"


def test_processor_consumes_the_events_queue_with_partial_batch_failures(dev: Synthesized) -> None:
    name, function = function_named(dev, "processor")
    dev.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": name},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("EventsQueue"), "Arn"]},
        },
    )
    assert function["Properties"]["Timeout"] == 60
    assert function["Properties"]["Environment"]["Variables"]["METADATA_SCHEMA_PATH"].startswith(
        "/opt/python/"
    )


def test_processor_and_read_api_have_exactly_the_dynamodb_calls_they_make(dev: Synthesized) -> None:
    def dynamodb_actions(function: dict[str, Any]) -> set[str]:
        actions: set[str] = set()
        for statement in policy_statements_of(dev, function):
            listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            actions.update(a for a in listed if a.startswith("dynamodb:"))
        return actions

    _, processor = function_named(dev, "processor")
    assert dynamodb_actions(processor) == {
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
    }
    _, read_api = function_named(dev, "read_api")
    # Indexes, signal details by key, a payout's reconciliation record by key.
    assert dynamodb_actions(read_api) == {"dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:GetItem"}
    put_events = [s for s in policy_statements_of(dev, processor) if s["Action"] == "events:PutEvents"]
    assert put_events and put_events[0]["Resource"] != "*"


def test_read_routes_require_iam(dev: Synthesized) -> None:
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in dev.resources("AWS::ApiGatewayV2::Route").values()
    }
    for key in READ_ROUTES:
        assert routes[key]["AuthorizationType"] == "AWS_IAM"
    assert routes["POST /webhooks/stripe"].get("AuthorizationType", "NONE") == "NONE"


def test_refetch_key_secret_only_when_asked() -> None:
    with_refetch = synthesized("dev", refetchSameSecond="true")
    _, processor = function_named(with_refetch, "processor")
    assert "STRIPE_API_KEY_SECRET_ID" in processor["Properties"]["Environment"]["Variables"]
    _, plain = function_named(synthesized("dev"), "processor")
    assert "STRIPE_API_KEY_SECRET_ID" not in plain["Properties"]["Environment"]["Variables"]


def test_the_repository_metadata_schema_is_valid() -> None:
    schema = load_metadata_schema()
    assert "customer" in schema.objects and schema.version >= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: [", "not valid YAML"),
        ("- a list", "must be a mapping"),
        ("version: 1\nobjects:\n  customer:\n    required: [erp]\n", "not declared under keys"),
        ("version: 1\nkeys:\n  erp:\n    pattern: '('\n", "not a valid regular expression"),
        ("version: 1\nkeys:\n  erp:\n    normalize: [shout]\n", "normalize"),
    ],
)
def test_a_broken_metadata_schema_fails_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(MetadataSchemaError, match=message):
        parse_metadata_schema(text)


def test_subscription_construct_wires_types_filter_target_and_dlq() -> None:
    app = App()
    stack = Stack(app, "FinanceTeam")
    function = lambda_.Function(
        stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(e, c): pass"),
    )
    subscription = StripeEventSubscription(
        stack,
        "LargeInvoices",
        bus=events.EventBus.from_event_bus_name(stack, "Bus", "stripe-middleware-prod"),
        event_types=["invoice.paid", "invoice.payment_failed"],
        detail_filter={"object": {"amount_due": [{"numeric": [">", 10000]}]}},
        livemode=True,
        target=to_lambda(function),
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventBusName": "stripe-middleware-prod",
            "EventPattern": {
                "source": ["stripe-middleware"],
                "detail-type": ["invoice.paid", "invoice.payment_failed"],
                "detail": {"object": {"amount_due": [{"numeric": [">", 10000]}]}, "livemode": [True]},
            },
            "Targets": [Match.object_like({"DeadLetterConfig": Match.any_value()})],
        },
    )
    assert subscription.dead_letter_queue is not None
    with pytest.raises(ValueError, match="event_types"):
        StripeEventSubscription(
            stack,
            "Empty",
            bus=events.EventBus.from_event_bus_name(stack, "Other", "b"),
            event_types=[],
            target=to_lambda(function),
        )
