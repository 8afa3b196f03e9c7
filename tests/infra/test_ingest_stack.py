from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from infra.config import STAGES
from tests.infra.conftest import PARTNER_SOURCE, Synthesized, function_named, synthesized

# What Step Functions needs to deliver its logs: CloudWatch Logs grants these on "*" only.
LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def test_events_queue_is_encrypted_tls_only_with_dlq_and_visibility_sized_to_the_consumer(
    dev: Synthesized,
) -> None:
    queues = dev.resources("AWS::SQS::Queue")
    main = [q for name, q in queues.items() if name.startswith("EventsQueue")]
    assert len(main) == 1
    props = main[0]["Properties"]
    assert props["RedrivePolicy"]["maxReceiveCount"] == STAGES["dev"].max_receive_count
    assert props["VisibilityTimeout"] == 360  # 6 x the processor's 60 s timeout
    assert props["MaximumMessageSize"] == 1_048_576
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    policies = dev.resources("AWS::SQS::QueuePolicy")
    denies = [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denies) == len(queues)


def test_every_function_is_arm64_python313_traced_with_json_logs_and_own_log_group(dev: Synthesized) -> None:
    functions = dev.resources("AWS::Lambda::Function")
    ours = {
        logical_id: f
        for logical_id, f in functions.items()
        if "POWERTOOLS_SERVICE_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})
    }
    # The one other function is CDK's custom resource provider framework (Stripe registration): Node.js.
    assert [f["Properties"]["Runtime"][:6] for i, f in functions.items() if i not in ours] == ["nodejs"]
    for function in ours.values():
        props = function["Properties"]
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] == "python3.13"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert "LogGroup" in props["LoggingConfig"]
    for group in dev.resources("AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 7


def test_prod_keeps_logs_a_year_and_retains_data(prod: Synthesized) -> None:
    for group in prod.resources("AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 365
        assert group["DeletionPolicy"] == "Retain"
    for queue in prod.resources("AWS::SQS::Queue").values():
        assert queue["DeletionPolicy"] == "Retain"


def test_webhook_routes_exist_with_throttling_and_access_logs(dev: Synthesized) -> None:
    routes = {r["Properties"]["RouteKey"] for r in dev.resources("AWS::ApiGatewayV2::Route").values()}
    assert {"POST /webhooks/stripe", "POST /webhooks/stripe/connect"} <= routes
    dev.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "DefaultRouteSettings": {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100},
            "AccessLogSettings": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("requestId"),
            },
        },
    )


def test_ingest_reads_only_its_secrets_and_sends_only_to_the_events_queue(dev: Synthesized) -> None:
    env = function_named(dev, "ingest")[1]["Properties"]["Environment"]["Variables"]
    assert set(env) >= {"EVENTS_QUEUE_URL", "WEBHOOK_SECRET_ID", "CONNECT_WEBHOOK_SECRET_ID"}
    assert not any(str(v).startswith("whsec_") for v in env.values())
    statements = [
        s
        for p in dev.resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Resource"] == "*":  # only where AWS supports no resource-level permissions
            assert all(a.startswith("xray:") or a in LOG_DELIVERY for a in actions), statement
        assert not any(a.endswith(":*") for a in actions), statement
    assert (
        len(dev.resources("AWS::SecretsManager::Secret")) == 4
    )  # two webhook secrets, the gateway's API key, the read-only key of backfill and catch-up
    assert not dev.resources("AWS::IAM::ManagedPolicy")
    for role in dev.resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


def test_partner_bus_rule_only_with_context(dev: Synthesized, with_partner_source: Synthesized) -> None:
    assert not [
        b for b in dev.resources("AWS::Events::EventBus").values() if "EventSourceName" in b["Properties"]
    ]
    with_partner_source.template.has_resource_properties(
        "AWS::Events::EventBus", {"EventSourceName": PARTNER_SOURCE, "Name": PARTNER_SOURCE}
    )
    with_partner_source.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {"source": [{"prefix": "aws.partner/stripe.com/"}]},
            "Targets": [
                Match.object_like({"DeadLetterConfig": Match.any_value(), "RetryPolicy": Match.any_value()})
            ],
        },
    )


def test_bad_partner_source_is_refused_at_synth() -> None:
    with pytest.raises(Exception, match="stripePartnerEventSource"):
        synthesized("dev", stripePartnerEventSource="aws.partner/other.com/x")


def test_unknown_stage_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown stage 'qa'"):
        synthesized("qa")


@pytest.mark.parametrize("stage", ["dev", "staging", "prod"])
def test_every_stage_synthesizes_nag_clean_and_cfn_lint_clean(stage: str) -> None:
    synth = synthesized(stage)  # an unacknowledged AwsSolutions finding raises inside synth
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(synth.template_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    # cfn-lint's exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational; 1 = it failed to run.
    assert result.returncode & 3 == 0, result.stdout + result.stderr


def test_acknowledged_findings_all_carry_a_reason(dev: Synthesized) -> None:
    suppressions = [
        rule
        for resource in dev.json()["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert suppressions
    for rule in suppressions:
        assert len(rule["reason"]) > 40, rule
