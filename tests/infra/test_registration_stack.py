"""The self-registration construct, synthesized once in a small app of its own (two stacks: Connect with
chosen events, and the defaults), cdk-nag AwsSolutions checks on: custom resources, the provider, and
roles that can read the key and read and write the two webhook secrets, nothing more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from infra.config import stage_config
from infra.constructs.lambda_code import shared_layer
from infra.constructs.registration import RESOURCE_TYPE, StripeRegistration
from infra.nag import acknowledge
from stripe_middleware.shared.contract import STRIPE_API_VERSION

URL = "https://k3v9x2qf7a.execute-api.us-east-1.amazonaws.com/webhooks/stripe"
EVENTS = ["invoice.paid", "invoice.payment_failed", "customer.subscription.deleted"]


class Synthesized:
    def __init__(self, app: App, stack: Stack, registration: StripeRegistration, assembly_dir: Path) -> None:
        self.stack, self.registration = stack, registration
        self.template = Template.from_stack(stack)
        self.json: dict[str, Any] = self.template.to_json()
        self.template_path = assembly_dir / stack.template_file

    def resources(self, kind: str) -> dict[str, Any]:
        found: dict[str, Any] = self.template.find_resources(kind)
        return found

    def logical_id(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)

    def statements_of_role(self, role_id: str) -> list[dict[str, Any]]:
        return [
            s
            for p in self.resources("AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]


def _registration_stack(app: App, name: str, **options: Any) -> tuple[Stack, StripeRegistration]:
    stack = Stack(app, name)
    secrets = [secretsmanager.Secret(stack, n) for n in ("WebhookSecret", "ConnectWebhookSecret")]
    for secret in secrets:
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "Webhook signing secrets are issued and rolled by Stripe, not by a rotation Lambda.",
        )
    registration = StripeRegistration(
        stack,
        "Registration",
        stage=stage_config("dev"),
        layer=shared_layer(stack, "CoreLayer"),
        webhook_url=URL,
        webhook_secret=secrets[0],
        connect_webhook_url=f"{URL}/connect",
        connect_webhook_secret=secrets[1],
        **options,
    )
    return stack, registration


@pytest.fixture(scope="module")
def synthesized() -> dict[str, Synthesized]:
    """One synth for the module: a Connect stack with chosen events and a stack with the defaults."""
    app = App(context={"aws:cdk:bundling-stacks": []})
    stacks = {
        "connect": _registration_stack(
            app, "stripe-middleware-regtest", enabled_events=EVENTS, connect=True, revision="7"
        ),
        "defaults": _registration_stack(app, "stripe-middleware-regdefaults"),
    }
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )
    assembly_dir = Path(app.synth().directory)  # raises on any unacknowledged cdk-nag finding
    return {
        k: Synthesized(app, stack, registration, assembly_dir) for k, (stack, registration) in stacks.items()
    }


@pytest.fixture(scope="module")
def connect(synthesized: dict[str, Synthesized]) -> Synthesized:
    return synthesized["connect"]


@pytest.fixture(scope="module")
def defaults(synthesized: dict[str, Synthesized]) -> Synthesized:
    return synthesized["defaults"]


def _endpoints(synth: Synthesized) -> dict[bool, dict[str, Any]]:
    """Connect flag -> the custom resource's properties."""
    return {r["Properties"]["Connect"]: r["Properties"] for r in synth.resources(RESOURCE_TYPE).values()}


def test_each_webhook_route_is_one_custom_resource_with_the_pinned_version_and_its_own_secret(
    connect: Synthesized,
) -> None:
    endpoints = _endpoints(connect)
    assert set(endpoints) == {False, True}
    secret_ids = {
        flag: connect.stack.get_logical_id(connect.stack.node.find_child(name).node.default_child)  # type: ignore[arg-type]
        for flag, name in ((False, "WebhookSecret"), (True, "ConnectWebhookSecret"))
    }
    for flag, properties in endpoints.items():
        assert properties["Url"] == (f"{URL}/connect" if flag else URL)
        assert properties["EnabledEvents"] == EVENTS
        assert properties["ApiVersion"] == STRIPE_API_VERSION
        assert properties["KeySecretId"] == "stripe-middleware-regtest/stripe-registration-key"
        assert properties["WebhookSecretId"] == {"Ref": secret_ids[flag]}
        assert properties["Revision"] == "7"


def test_by_default_only_the_account_endpoint_is_registered_for_every_event(defaults: Synthesized) -> None:
    (properties,) = _endpoints(defaults).values()
    assert properties["Connect"] is False and properties["EnabledEvents"] == ["*"]
    assert defaults.registration.connect_endpoint is None
    assert "ConnectWebhookEndpointId" not in defaults.registration.outputs


def test_the_resources_are_served_by_the_provider_framework_calling_the_register_function(
    connect: Synthesized,
) -> None:
    functions = connect.resources("AWS::Lambda::Function")
    framework_id = connect.logical_id(connect.registration.provider.node.find_child("framework-onEvent"))
    register_id = connect.logical_id(connect.registration.function)
    for resource in connect.resources(RESOURCE_TYPE).values():
        assert resource["Properties"]["ServiceToken"] == {"Fn::GetAtt": [framework_id, "Arn"]}
        assert resource["Properties"]["ServiceTimeout"] == "300"  # seconds, as CloudFormation takes it
    framework_env = functions[framework_id]["Properties"]["Environment"]["Variables"]
    assert framework_env["USER_ON_EVENT_FUNCTION_ARN"] == {"Fn::GetAtt": [register_id, "Arn"]}
    register = functions[register_id]["Properties"]
    assert register["Handler"] == "handler.handler" and register["Timeout"] == 120
    assert register["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "stripe-middleware-register"
    assert register["TracingConfig"] == {"Mode": "Active"}


def _secrets_statements(synth: Synthesized, role: Any) -> list[dict[str, Any]]:
    return [
        s
        for s in synth.statements_of_role(synth.logical_id(role))
        if any(
            a.startswith("secretsmanager:")
            for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        )
    ]


def test_the_register_function_reads_the_key_and_reads_and_writes_the_webhook_secrets_only(
    connect: Synthesized, defaults: Synthesized
) -> None:
    role = connect.registration.function.role
    key, webhook = _secrets_statements(connect, role)
    assert key["Action"] == "secretsmanager:GetSecretValue"
    key_arn = "".join(p if isinstance(p, str) else "" for p in key["Resource"]["Fn::Join"][1])
    assert key_arn.endswith(":secret:stripe-middleware-regtest/stripe-registration-key-??????")
    assert webhook["Action"] == ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
    assert webhook["Resource"] == [
        {"Ref": connect.stack.get_logical_id(connect.stack.node.find_child(n).node.default_child)}  # type: ignore[arg-type]
        for n in ("WebhookSecret", "ConnectWebhookSecret")
    ]
    # without Connect, the Connect secret is out of reach
    (_, webhook_only) = _secrets_statements(defaults, defaults.registration.function.role)
    assert webhook_only["Resource"] == {
        "Ref": defaults.stack.get_logical_id(
            defaults.stack.node.find_child("WebhookSecret").node.default_child
        )  # type: ignore[arg-type]
    }
    actions = {
        a
        for s in connect.statements_of_role(connect.logical_id(role))
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
    }


def test_the_provider_framework_has_its_own_role_that_only_invokes_the_register_function(
    connect: Synthesized,
) -> None:
    framework = connect.registration.provider.node.find_child("framework-onEvent")
    role_id = connect.resources("AWS::Lambda::Function")[connect.logical_id(framework)]["Properties"]["Role"][
        "Fn::GetAtt"
    ][0]
    actions = {
        a
        for s in connect.statements_of_role(role_id)
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "lambda:InvokeFunction",
        "lambda:GetFunction",
    }
    assert not connect.resources("AWS::IAM::ManagedPolicy")
    for role in connect.resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]  # no AWSLambdaBasicExecutionRole


def test_every_acknowledged_finding_carries_a_reason(connect: Synthesized) -> None:
    suppressions = [
        rule
        for resource in connect.json["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert suppressions
    for rule in suppressions:
        assert len(rule["reason"]) > 40, rule


def test_the_template_is_cfn_lint_clean(connect: Synthesized) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(connect.template_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode & 3 == 0, result.stdout + result.stderr  # 2 errors, 1 failed to run


def test_the_outputs_say_what_status_compares_stripe_against(connect: Synthesized) -> None:
    outputs = connect.registration.outputs
    assert set(outputs) == {
        "WebhookEndpointId",
        "ConnectWebhookEndpointId",
        "WebhookEnabledEvents",
        "StripeApiVersion",
        "StripeRegistrationKeySecretName",
    }
    assert outputs["WebhookEnabledEvents"] == ",".join(EVENTS)
    assert outputs["StripeApiVersion"] == STRIPE_API_VERSION
    assert outputs["StripeRegistrationKeySecretName"] == "stripe-middleware-regtest/stripe-registration-key"


def test_a_malformed_event_type_fails_synth() -> None:
    app = App(context={"aws:cdk:bundling-stacks": []})
    with pytest.raises(ValueError, match="not an event type: invoice paid"):
        _registration_stack(app, "bad", enabled_events=["invoice paid"])
