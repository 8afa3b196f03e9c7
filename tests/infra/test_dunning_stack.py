"""The dunning workflow as synthesized, in a small stack of its own (the store table, the bus, the layer and
the Dunning construct), with cdk-nag's AwsSolutions checks: an unacknowledged finding fails the synth."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from infra.config import stage_config
from infra.constructs.dunning import Dunning, DunningConfigNotAllowedError
from infra.constructs.lambda_code import shared_layer
from infra.constructs.routing import EventRouting
from infra.constructs.store import ObjectStoreTable
from stripe_middleware.dunning.config import DAY, DunningConfig

POLICY = DunningConfig.model_validate(
    {
        "version": 1,
        "steps": [{"day": 1}, {"day": 3, "retry": True}, {"day": 7}],
        "final": {"day": 10, "action": "mark_uncollectible"},
    }
)
ALLOWED = ("invoices.pay", "invoices.mark_uncollectible", "subscriptions.update")


class DunningStack:
    def __init__(self, config: DunningConfig, allowed: Collection[str]) -> None:
        app = App(context={"aws:cdk:bundling-stacks": []})
        self.stack = Stack(app, "DunningTest")
        stage = stage_config("dev")
        self.dunning = Dunning(
            self.stack,
            "Dunning",
            stage=stage,
            layer=shared_layer(self.stack, "CoreLayer"),
            table=ObjectStoreTable(self.stack, "Store", stage=stage).table,
            bus=EventRouting(self.stack, "Routing", stage=stage).bus,
            config=config,
            allowed_operations=allowed,
        )
        Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
        app.synth()  # raises on any unacknowledged cdk-nag finding
        self.template = Template.from_stack(self.stack)

    def resources(self, resource_type: str) -> dict[str, Any]:
        found: dict[str, Any] = self.template.find_resources(resource_type)
        return found

    def logical_id(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)

    def function(self, construct: Any) -> dict[str, Any]:
        return self.resources("AWS::Lambda::Function")[self.logical_id(construct)]  # type: ignore[no-any-return]

    def statements(self, construct: Any) -> list[dict[str, Any]]:
        role = self.function(construct)["Properties"]["Role"]["Fn::GetAtt"][0]
        return [
            s
            for p in self.resources("AWS::IAM::Policy").values()
            if {"Ref": role} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]

    def definition(self) -> dict[str, Any]:
        (machine,) = self.resources("AWS::StepFunctions::StateMachine").values()
        parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
        return json.loads("".join(p if isinstance(p, str) else "0" for p in parts))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def synth() -> DunningStack:
    return DunningStack(POLICY, ALLOWED)


def actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def test_the_state_machine_waits_the_configured_days_then_runs_each_stage_with_its_policy(
    synth: DunningStack,
) -> None:
    states = synth.definition()["States"]
    order, name = [], synth.definition()["StartAt"]
    while name not in ("Finished",):
        order.append(name)
        state = states[name]
        name = state.get("Default") or state["Next"]
    assert order == [
        *("WaitUntilDay1", "Step1", "Step1Stopped"),
        *("WaitUntilDay3", "Step2", "Step2Stopped"),
        *("WaitUntilDay7", "Step3", "Step3Stopped"),
        *("WaitUntilDay10", "Final"),
    ]
    waits = [states[n]["Seconds"] for n in order if n.startswith("WaitUntil")]
    assert waits == [1 * DAY, 2 * DAY, 4 * DAY, 3 * DAY]  # days 1, 3, 7, then the final stage on day 10
    assert states["Step2"]["Parameters"] == {
        "case.$": "$.case",
        "stage": {"attempt": 2, "steps": 3, "day": 3, "retry": True},
    }
    assert states["Final"]["Parameters"]["stage"] == {
        "attempt": 4,
        "steps": 3,
        "day": 10,
        "retry": False,
        "action": "mark_uncollectible",
    }
    assert states["Final"]["Next"] == "Finished" and states["Finished"]["Type"] == "Succeed"
    for choice in ("Step1Stopped", "Step2Stopped", "Step3Stopped"):
        assert states[choice]["Choices"] == [
            {"Variable": "$.outcome.stopped", "BooleanEquals": True, "Next": "Stopped"}
        ]
    assert states["Stopped"]["Type"] == "Succeed"
    # The case stays in the state for every step; each step's answer goes under $.outcome.
    assert all(states[n]["ResultPath"] == "$.outcome" for n in ("Step1", "Step2", "Step3", "Final"))


def test_steps_are_retried_on_outages_only(synth: DunningStack) -> None:
    for name in ("Step1", "Final"):
        retried = {e for r in synth.definition()["States"][name]["Retry"] for e in r["ErrorEquals"]}
        assert {e for e in retried if not e.startswith("Lambda.")} == {"RetryLaterError"}
        assert "States.ALL" not in retried


def test_the_state_machine_is_standard_traced_logged_and_ends_after_the_policy(synth: DunningStack) -> None:
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    properties = machine["Properties"]
    assert properties["StateMachineType"] == "STANDARD"
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["LoggingConfiguration"]["IncludeExecutionData"] is False  # no invoice data in logs
    assert synth.definition()["TimeoutSeconds"] == 12 * DAY


def test_failed_payments_reach_the_starter_through_a_queue_with_a_dead_letter_queue(
    synth: DunningStack,
) -> None:
    (rule,) = synth.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["EventPattern"] == {
        "source": ["stripe-middleware"],
        "detail-type": ["invoice.payment_failed"],
    }
    (target,) = rule["Properties"]["Targets"]
    queues = synth.resources("AWS::SQS::Queue")
    queue_id = target["Arn"]["Fn::GetAtt"][0]
    dead_letter = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert (
        queues[queue_id]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] == dead_letter
    )
    starter_id = synth.logical_id(synth.dunning.starter)
    (mapping,) = [
        m["Properties"]
        for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": starter_id}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    timeout = synth.function(synth.dunning.starter)["Properties"]["Timeout"]
    assert queues[queue_id]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_the_starter_may_only_start_executions_of_its_state_machine(synth: DunningStack) -> None:
    function = synth.function(synth.dunning.starter)
    machine_id = synth.logical_id(synth.dunning.state_machine)
    assert function["Properties"]["Environment"]["Variables"]["STATE_MACHINE_ARN"] == {"Ref": machine_id}
    statements = synth.statements(synth.dunning.starter)
    (start,) = [s for s in statements if s["Action"] == "states:StartExecution"]
    assert start["Resource"] == {"Ref": machine_id}
    assert not any(a.startswith(("dynamodb:", "events:", "states:Stop")) for a in actions(statements))


def test_the_step_function_reads_only_invoices_subscriptions_and_churn_risk_and_writes_only_the_bus(
    synth: DunningStack,
) -> None:
    statements = synth.statements(synth.dunning.step)
    dynamodb = [s for s in statements if any(a.startswith("dynamodb:") for a in actions([s]))]
    conditions = {
        s["Action"]: s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] for s in dynamodb
    }
    assert conditions == {
        "dynamodb:Query": ["OBJ#invoice#*", "OBJ#subscription#*"],
        "dynamodb:GetItem": ["SIG#*"],
    }
    assert "events:PutEvents" in actions(statements)
    assert not any(
        a.startswith(("dynamodb:Put", "dynamodb:Update", "dynamodb:Delete", "states:"))
        for a in actions(statements)
    )
    env = synth.function(synth.dunning.step)["Properties"]["Environment"]["Variables"]
    assert {"TABLE_NAME", "EVENT_BUS_NAME"} <= set(env)


def test_a_policy_sending_a_command_the_gateway_refuses_fails_synth() -> None:
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Refused")
    stage = stage_config("dev")
    cancel = DunningConfig.model_validate(
        {**POLICY.model_dump(), "final": {"day": 10, "action": "cancel_subscription"}}
    )
    with pytest.raises(DunningConfigNotAllowedError, match=r"subscriptions\.cancel"):
        Dunning(
            stack,
            "Dunning",
            stage=stage,
            layer=shared_layer(stack, "CoreLayer"),
            table=ObjectStoreTable(stack, "Store", stage=stage).table,
            bus=EventRouting(stack, "Routing", stage=stage).bus,
            config=cancel,
            allowed_operations=ALLOWED,
        )


def test_a_disabled_policy_starts_no_workflow() -> None:
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Disabled")
    stage = stage_config("dev")
    dunning = Dunning(
        stack,
        "Dunning",
        stage=stage,
        layer=shared_layer(stack, "CoreLayer"),
        table=ObjectStoreTable(stack, "Store", stage=stage).table,
        bus=EventRouting(stack, "Routing", stage=stage).bus,
        config=DunningConfig.model_validate({**POLICY.model_dump(), "enabled": False}),
        allowed_operations=ALLOWED,
    )
    assert dunning.rule is None
    assert Template.from_stack(stack).find_resources("AWS::Events::Rule") == {}
