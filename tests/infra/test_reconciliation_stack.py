"""Reconciliation in the synthesized stack: payout events → queue (with DLQ) → function ← daily schedule,
with the history functions' settings and exactly the calls it makes."""

from __future__ import annotations

import json

from tests.infra.conftest import Synthesized, function_named, policy_statements_of


def test_payout_events_reach_the_function_one_per_message_with_a_dead_letter_queue(dev: Synthesized) -> None:
    [rule] = [
        r["Properties"]
        for logical_id, r in dev.resources("AWS::Events::Rule").items()
        if logical_id.startswith("ReconciliationPayoutsToReconciliation")
    ]
    assert rule["EventPattern"] == {
        "source": ["stripe-middleware"],
        "detail-type": ["payout.paid", "payout.reconciliation_completed"],
    }
    [target] = rule["Targets"]
    queue_id = target["Arn"]["Fn::GetAtt"][0]
    function_id, function = function_named(dev, "reconcile")
    [mapping] = [
        m["Properties"]
        for m in dev.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert (mapping["BatchSize"], mapping["FunctionResponseTypes"]) == (1, ["ReportBatchItemFailures"])
    queue = dev.resources("AWS::SQS::Queue")[queue_id]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Properties"]["Timeout"]
    assert "deadLetterTargetArn" in queue["RedrivePolicy"]


def test_a_daily_sweep_runs_the_function_with_its_history_settings(dev: Synthesized) -> None:
    function_id, function = function_named(dev, "reconcile")
    [schedule] = [
        s["Properties"]
        for s in dev.resources("AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert schedule["ScheduleExpression"] == "rate(1 day)" and schedule["Target"]["Input"] == "{}"
    variables = function["Properties"]["Environment"]["Variables"]
    assert {"STRIPE_API_KEY_SECRET_ID", "TABLE_NAME", "EVENT_BUS_NAME", "RECONCILE_ACCOUNTS"} <= set(
        variables
    )
    assert "ReconcileFunctionName" in dev.json()["Outputs"]


def test_the_function_reads_and_repairs_the_store_publishes_and_reads_its_key(dev: Synthesized) -> None:
    _, function = function_named(dev, "reconcile")
    statements = policy_statements_of(dev, function)
    actions = {
        a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert {
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "events:PutEvents",
        "secretsmanager:GetSecretValue",
    } <= actions
    assert not {
        a for a in actions if a.startswith("dynamodb:") and ("Delete" in a or "Scan" in a or a.endswith("*"))
    }
    [query] = [s for s in statements if "dynamodb:Query" in s["Action"]]
    assert "/index/type_created" in json.dumps(query["Resource"]) and query["Action"] == "dynamodb:Query"
    [items] = [s for s in statements if "dynamodb:PutItem" in s["Action"]]
    assert items["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["OBJ#*", "RECON#*", "RATE#*"]}
    }  # never commands, de-duplication records, cursors or signals
    assert function["Properties"]["ReservedConcurrentExecutions"] == 1  # one run at a time
