"""The backfill's state machine, function and dead-letter queue, as synthesized."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import stage_config
from infra.stack import StackOptions
from tests.infra.conftest import Synthesized, function_named, policy_statements_of


def _definition(dev: Synthesized) -> dict[str, Any]:
    (machine,) = [
        m
        for logical_id, m in dev.resources("AWS::StepFunctions::StateMachine").items()
        if logical_id.startswith("HistoryBackfillStateMachine")
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "0" for p in parts))


def test_the_state_machine_loops_until_every_type_is_done_and_retries_only_outages(dev: Synthesized) -> None:
    definition = _definition(dev)
    read = definition["States"]["ReadPages"]
    assert read["Next"] == "AllTypesDone"
    choice = definition["States"]["AllTypesDone"]
    assert choice["Choices"] == [{"Variable": "$.done", "BooleanEquals": True, "Next": "Backfilled"}]
    assert choice["Default"] == "ReadPages"
    retried = {e for r in read["Retry"] for e in r["ErrorEquals"]}
    # The name the backfill function gives every outage, and Lambda's own service errors.
    assert {e for e in retried if not e.startswith("Lambda.")} == {"RetryLaterError"}
    assert not retried & {"BackfillFailedError", "RejectedError", "States.ALL"}  # those stop, with the reason


def test_the_state_machine_is_traced_and_logs_every_step(dev: Synthesized) -> None:
    (machine,) = [
        m
        for logical_id, m in dev.resources("AWS::StepFunctions::StateMachine").items()
        if logical_id.startswith("HistoryBackfillStateMachine")
    ]
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"


def test_the_backfill_function_has_exactly_the_calls_it_makes(dev: Synthesized) -> None:
    _, function = function_named(dev, "backfill")
    env = function["Properties"]["Environment"]["Variables"]
    assert set(env) >= {"TABLE_NAME", "EVENT_BUS_NAME", "STRIPE_API_KEY_SECRET_ID", "BACKFILL_DLQ_URL"}
    assert function["Properties"]["Timeout"] == 900
    actions = {
        a
        for s in policy_statements_of(dev, function)
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    dynamodb = {a for a in actions if a.startswith("dynamodb:")}
    assert dynamodb == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"}
    assert "events:PutEvents" in actions and "sqs:SendMessage" in actions
    assert not any(a.startswith(("dynamodb:Delete", "dynamodb:Scan", "sqs:Delete")) for a in actions)


def test_the_stack_says_where_to_start_a_backfill_and_where_its_dead_letters_go(dev: Synthesized) -> None:
    outputs = dev.json()["Outputs"]
    assert {"BackfillStateMachineArn", "BackfillDeadLetterQueueUrl", "StripeReadOnlyKeySecretArn"} <= set(
        outputs
    )


def test_catch_up_runs_every_15_minutes_by_default_with_retries_that_end_before_the_next_run(
    dev: Synthesized,
) -> None:
    function_id, _ = function_named(dev, "catchup")
    (schedule,) = [
        s
        for s in dev.resources("AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    retry = schedule["Properties"]["Target"]["RetryPolicy"]
    assert retry["MaximumRetryAttempts"] == 2 and retry["MaximumEventAgeInSeconds"] == 14 * 60


def test_the_catch_up_function_reads_ids_and_enqueues_and_nothing_else(dev: Synthesized) -> None:
    _, function = function_named(dev, "catchup")
    assert function["Properties"]["Timeout"] == 300
    actions = {
        a
        for s in policy_statements_of(dev, function)
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    dynamodb = {a for a in actions if a.startswith("dynamodb:")}
    assert dynamodb == {
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert {"sqs:SendMessage", "events:PutEvents", "secretsmanager:GetSecretValue"} <= actions
    assert not any(
        a.startswith(("sqs:Receive", "sqs:Delete", "dynamodb:Query", "dynamodb:Scan")) for a in actions
    )


def test_the_catch_up_interval_is_validated() -> None:
    with pytest.raises(ValueError, match="catchupMinutes"):
        StackOptions(stage=stage_config("dev"), catchup_minutes=0)
