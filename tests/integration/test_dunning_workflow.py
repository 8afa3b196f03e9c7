"""Dunning on moto: the step Lambda against the store and the bus, the starter against Step Functions, and
the whole flow as local mode runs it (the construct's template provisioned on moto's server, failed payments
of a simulated history through the processor and the starter's queue, then `stripe-middleware dunning
--advance` moving the clock while the history's later events arrive)."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from aws_cdk import App, Stack
from jsonschema import Draft4Validator
from moto.server import ThreadedMotoServer

from events import load_event, stripe_event, stripe_object
from functions.dunning import handler as step_function
from functions.dunning_start import handler as starter_function
from functions.processor import handler as processor_function
from infra.config import stage_config
from infra.constructs.dunning import Dunning
from infra.constructs.lambda_code import shared_layer
from infra.constructs.routing import EventRouting
from infra.constructs.store import ObjectStoreTable
from stripe_middleware.adapters.dynamodb.signals import SignalStore
from stripe_middleware.dunning.config import DAY, DunningConfig, load_dunning_config
from stripe_middleware.dunning.models import Case, StepRequest
from stripe_middleware.dunning.ports import RetryLaterError
from stripe_middleware.shared.contract import STRIPE_API_VERSION, DetailType
from stripe_middleware.signals.facts import customer_subject, facts_of
from stripe_middleware_dev import cli, targets
from stripe_middleware_dev.dunning import list_deployed
from stripe_middleware_dev.local.event_source import SqsEventSource
from stripe_middleware_dev.local.provision import LocalResources, provision
from stripe_middleware_dev.simulate import simulate
from tests.integration.conftest import LambdaContext, ProcessorStack

T0 = 1_764_000_000
STEP_SCHEMA = Draft4Validator(load_event("schemas/dunning-step.detail.schema.json"))
# Reminders on days 1 and 3, retries on days 3, 7 and 14 (when Stripe is not retrying), then write it off.
POLICY = {
    "version": 1,
    "steps": [{"day": 1}, {"day": 3, "retry": True}, {"day": 7, "retry": True}, {"day": 14, "retry": True}],
    "final": {"day": 15, "action": "mark_uncollectible"},
}
STAGES = DunningConfig.model_validate(POLICY).stages()


def on_the_bus(published: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [p["detail"] for p in published if p["detail-type"] == detail_type]


# -- the step and starter functions on moto (in-process) --------------------------------------------------
@dataclass
class Functions:
    processor: ProcessorStack
    stepfunctions: Any
    state_machine_arn: str
    _messages: int = 0

    def failed_payment(self, obj: dict[str, Any], at: int) -> dict[str, Any]:
        """Process an invoice.payment_failed and return the detail the processor published for it."""
        event = stripe_event("invoice.payment_failed", obj=obj, created=at)
        assert self.processor.deliver(event) == []
        [detail] = [p for p in on_the_bus(self.processor.published(), "invoice.payment_failed")]
        return detail

    def start(self, *details: dict[str, Any]) -> dict[str, Any]:
        records = []
        for detail in details:
            self._messages += 1
            body = json.dumps(
                {"detail-type": detail["type"], "source": "stripe-middleware", "detail": detail}
            )
            records.append({"messageId": f"m{self._messages}", "body": body})
        result: dict[str, Any] = starter_function.handler({"Records": records}, LambdaContext())
        return result

    def executions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.stepfunctions.list_executions(
            stateMachineArn=self.state_machine_arn
        )["executions"]
        return found

    def step(self, case: Case, attempt: int) -> dict[str, Any]:
        """One invocation of the step function, as the state machine makes it."""
        payload = {"case": case.model_dump(), "stage": STAGES[attempt - 1].model_dump(exclude_none=True)}
        result: dict[str, Any] = step_function.handler(json.loads(json.dumps(payload)), LambdaContext())
        return result


@pytest.fixture
def functions(processor_stack: ProcessorStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Functions]:
    client = boto3.client("stepfunctions")
    arn = client.create_state_machine(
        name="Dunning",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/dunning",
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    step_function.dependencies.cache_clear()
    starter_function.dependencies.cache_clear()
    yield Functions(processor_stack, client, arn)
    step_function.dependencies.cache_clear()
    starter_function.dependencies.cache_clear()


def open_invoice(**fields: Any) -> dict[str, Any]:
    values = {
        "id": "in_moto1",
        "status": "open",
        "customer": "cus_moto1",
        "subscription": "sub_moto1",
        "next_payment_attempt": None,
        "created": T0 - 3600,
        **fields,
    }
    return stripe_object("invoice", **values)


def test_the_step_function_reads_the_store_and_publishes_the_step_and_its_retry(functions: Functions) -> None:
    subscription = stripe_object("subscription", id="sub_moto1", customer="cus_moto1", status="past_due")
    assert functions.processor.deliver(stripe_event("customer.subscription.updated", obj=subscription)) == []
    detail = functions.failed_payment(open_invoice(), T0)
    # The churn risk the signals function recorded for this customer, under its own subject.
    [fact, *_] = facts_of("invoice.payment_failed", detail)
    store = SignalStore(functions.processor.dynamodb, functions.processor.table_name)
    subject = customer_subject(fact)
    assert subject is not None
    store.put_churn_risk(
        subject,
        {
            "signal_id": "sig_1",
            "kind": "churn_risk",
            "level": "high",
            "as_of": "2025-11-24T16:00:00Z",
            "livemode": False,
            "customer_id": "cus_moto1",
            "account": None,
        },
    )
    case = Case.model_validate(
        {
            "invoice_id": "in_moto1",
            "customer_id": "cus_moto1",
            "subscription_id": "sub_moto1",
            "account": None,
            "livemode": False,
            "failed_at": T0,
            "event_id": detail["id"],
        }
    )
    assert functions.step(case, 2) == {
        "stopped": False,
        "reason": "waiting",
        "step_id": functions.step(case, 2)["step_id"],
    }
    published = functions.processor.published()
    steps = on_the_bus(published, DetailType.DUNNING_STEP)
    assert len(steps) == 2 and steps[0] == steps[1] | {"as_of": steps[0]["as_of"]}  # a repeat: same step
    assert list(STEP_SCHEMA.iter_errors(steps[0])) == []
    assert (steps[0]["churn_risk"], steps[0]["subscription_status"], steps[0]["retry"]) == (
        "high",
        "past_due",
        "sent",
    )
    commands = on_the_bus(published, DetailType.COMMAND)
    assert {json.dumps(c, sort_keys=True) for c in commands} == {
        json.dumps(
            {
                "operation": "invoices.pay",
                "params": {"id": "in_moto1"},
                "idempotency_key": "dunning-in_moto1-2-invoices.pay",
            },
            sort_keys=True,
        )
    }
    # The customer paid: the next stage stops without a word.
    paid = open_invoice(status="paid", amount_remaining=0)
    assert functions.processor.deliver(stripe_event("invoice.paid", obj=paid, created=T0 + 2 * DAY)) == []
    functions.processor.published()
    assert functions.step(case, 3) == {"stopped": True, "reason": "invoice paid", "step_id": None}
    assert on_the_bus(functions.processor.published(), DetailType.DUNNING_STEP) == []


def test_an_outage_is_raised_as_the_one_error_the_state_machine_retries(
    functions: Functions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    step_function.dependencies.cache_clear()
    case = Case(
        invoice_id="in_moto1",
        customer_id="cus_moto1",
        subscription_id=None,
        account=None,
        livemode=False,
        failed_at=T0,
        event_id="evt_1",
    )
    with pytest.raises(RetryLaterError):
        functions.step(case, 1)
    with pytest.raises(ValueError):  # not a step request: the execution fails at once, no retry
        step_function.handler({"case": case.model_dump()}, LambdaContext())


def test_the_starter_starts_one_execution_per_invoice_named_by_it(functions: Functions) -> None:
    first = functions.failed_payment(open_invoice(next_payment_attempt=T0 + 3 * DAY), T0)
    again = functions.failed_payment(open_invoice(attempt_count=2), T0 + 3 * DAY)  # Stripe's retry failed
    other = functions.failed_payment(open_invoice(id="in_moto2"), T0 + 60)
    assert functions.start(first, other) == {"batchItemFailures": []}
    assert functions.start(again) == {"batchItemFailures": []}  # ExecutionAlreadyExists is success
    assert functions.start(first) == {"batchItemFailures": []}  # a redelivered message: the same execution
    executions = functions.executions()
    assert sorted(e["name"] for e in executions) == ["in_moto1", "in_moto2"]
    described = functions.stepfunctions.describe_execution(
        executionArn=next(e["executionArn"] for e in executions if e["name"] == "in_moto1")
    )
    execution_input = json.loads(described["input"])
    assert execution_input["case"]["event_id"] == first["id"]  # the first failure started it
    # What the state machine passes on to each step is a valid step request.
    StepRequest.model_validate({**execution_input, "stage": STAGES[0].model_dump()})


def test_the_starter_fails_only_the_messages_it_could_not_start(
    functions: Functions, monkeypatch: pytest.MonkeyPatch
) -> None:
    detail = functions.failed_payment(open_invoice(), T0)
    not_an_invoice = {**detail, "type": "charge.failed"}
    result = functions.start(detail, not_an_invoice)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    monkeypatch.setenv("STATE_MACHINE_ARN", functions.state_machine_arn.replace("Dunning", "Gone"))
    starter_function.dependencies.cache_clear()
    assert functions.start(functions.failed_payment(open_invoice(id="in_moto3"), T0)) == {
        "batchItemFailures": [{"itemIdentifier": "m3"}]
    }


# -- the local flow: the construct on moto's server, the clock advanced by the CLI -----------------------
@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The Dunning construct's resources (with the store table and the bus it needs), synthesized once."""
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "DunningLocal")
    stage = stage_config("dev")
    Dunning(
        stack,
        "Dunning",
        stage=stage,
        layer=shared_layer(stack, "CoreLayer"),
        table=ObjectStoreTable(stack, "Store", stage=stage).table,
        bus=EventRouting(stack, "Routing", stage=stage).bus,
        config=DunningConfig.model_validate(POLICY),
        allowed_operations=("invoices.pay", "invoices.mark_uncollectible"),
    )
    result: dict[str, Any] = app.synth().get_stack_by_name("DunningLocal").template
    return result


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    werkzeug = logging.getLogger("werkzeug")  # moto's server logs every AWS call
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    werkzeug.setLevel(level)


@dataclass
class LocalMode:
    resources: LocalResources
    clients: dict[str, Any]
    state_dir: Path
    capture_url: str
    starter: SqsEventSource
    state_machine_arn: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    def deliver(self, events: list[dict[str, Any]]) -> None:
        """The processor on these events (the local poller's batches), then the starter on its queue."""
        for start in range(0, len(events), 10):
            records = [
                {"messageId": e["id"], "body": json.dumps(e), "attributes": {"ApproximateReceiveCount": "1"}}
                for e in events[start : start + 10]
            ]
            assert (
                processor_function.handler({"Records": records}, LambdaContext())["batchItemFailures"] == []
            )
        self.starter.drain()

    def dunning(self, *args: str) -> int:
        return cli.main(["--state-dir", str(self.state_dir), "dunning", *args])

    def published(self) -> list[dict[str, Any]]:
        sqs = self.clients["sqs"]
        while batch := sqs.receive_message(QueueUrl=self.capture_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                self.seen.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"])
        return self.seen


@pytest.fixture
def local_mode(
    template: dict[str, Any], moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalMode]:
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"))
    outputs: dict[str, Any] = {"aws_endpoint_url": moto_endpoint, "region": "us-east-1"}
    target = targets.Target(outputs, local=True)
    clients = {n: target.client(n) for n in ("sqs", "dynamodb", "events", "secretsmanager", "stepfunctions")}
    resources = provision(template, clients, region="us-east-1")
    [table] = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::DynamoDB::Table"]
    [bus] = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::Events::EventBus"]
    [machine] = [
        k for k, v in template["Resources"].items() if v["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    outputs |= {
        "table_name": resources.values[table]["Ref"],
        "event_bus_name": resources.values[bus]["Name"],
        "dunning_state_machine_arn": resources.values[machine]["Ref"],
    }
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    policy = tmp_path / "dunning.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    monkeypatch.setenv("DUNNING_CONFIG_PATH", str(policy))
    load_dunning_config.cache_clear()
    # What local mode gives the functions: the template's environment, every client on the emulator.
    [starter] = [f for f in resources.functions.values() if f.name == "dunning_start"]
    for name, value in starter.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TABLE_NAME", outputs["table_name"])
    monkeypatch.setenv("EVENT_BUS_NAME", outputs["event_bus_name"])
    monkeypatch.setenv("STRIPE_API_VERSION", STRIPE_API_VERSION)
    monkeypatch.delenv("STRIPE_API_KEY_SECRET_ID", raising=False)
    capture_url = clients["sqs"].create_queue(QueueName="capture")["QueueUrl"]
    capture_arn = clients["sqs"].get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    pattern = {"detail-type": [DetailType.DUNNING_STEP, DetailType.COMMAND]}
    clients["events"].put_rule(
        Name="capture", EventBusName=outputs["event_bus_name"], EventPattern=json.dumps(pattern)
    )
    clients["events"].put_targets(
        Rule="capture",
        EventBusName=outputs["event_bus_name"],
        Targets=[{"Id": "capture", "Arn": capture_arn}],
    )
    [source] = resources.event_sources
    assert source["function"] == starter.logical_id  # local mode's poller runs the starter on its queue
    poller = SqsEventSource(
        clients["sqs"],
        source["queue_url"],
        source["queue_arn"],
        starter_function.handler,
        context=LambdaContext(),
    )
    for module in (processor_function, starter_function):
        module.dependencies.cache_clear()
    yield LocalMode(resources, clients, tmp_path, capture_url, poller, outputs["dunning_state_machine_arn"])
    for module in (processor_function, starter_function):
        module.dependencies.cache_clear()
    load_dunning_config.cache_clear()


def test_a_simulated_history_is_dunned_step_by_step_as_the_local_clock_advances(
    local_mode: LocalMode, capsys: pytest.CaptureFixture[str]
) -> None:
    history = simulate(
        customers=40, months=4, seed=6, start=datetime(2026, 1, 1, tzinfo=UTC), attacks={}, churn_rate=0.25
    )
    stories: dict[str, list[dict[str, Any]]] = {}
    for event in history.events:
        obj = event["data"]["object"]
        if obj.get("object") == "invoice" and event["type"] in ("invoice.payment_failed", "invoice.paid"):
            stories.setdefault(obj["id"], []).append(event)
    recovered = next(
        i
        for i, s in stories.items()
        if s[0]["type"] == "invoice.payment_failed" and s[-1]["type"] == "invoice.paid"
    )
    churned = next(i for i, s in stories.items() if [e["type"] for e in s] == ["invoice.payment_failed"] * 4)
    invoices = {recovered, churned}
    failed_at = {i: stories[i][0]["created"] for i in invoices}
    customers = {stories[i][0]["data"]["object"]["customer"]: i for i in invoices}

    def invoice_of(event: dict[str, Any]) -> str | None:
        obj = event["data"]["object"]
        return customers.get(obj.get("customer") or obj.get("id"))

    events = [e for e in history.events if invoice_of(e)]
    delivered: set[str] = set()

    def deliver_until(day: float) -> None:
        """Each customer's events up to `day` days after their invoice's first failed payment."""
        due = [
            e
            for e in events
            if e["id"] not in delivered and e["created"] <= failed_at[invoice_of(e) or ""] + day * DAY
        ]
        delivered.update(e["id"] for e in due)
        local_mode.deliver(due)

    deliver_until(0)  # up to the first invoice.payment_failed: the starter starts both workflows
    executions = local_mode.clients["stepfunctions"].list_executions(
        stateMachineArn=local_mode.state_machine_arn
    )["executions"]
    assert sorted(e["name"] for e in executions) == sorted(invoices)

    day = 0
    for stage in STAGES:
        deliver_until(stage.day)
        assert local_mode.dunning("--advance", f"{stage.day - day}d") == 0
        day = stage.day
    out = capsys.readouterr().out

    published = local_mode.published()
    steps = {
        i: [d for d in on_the_bus(published, DetailType.DUNNING_STEP) if d["invoice_id"] == i]
        for i in invoices
    }
    assert all(list(STEP_SCHEMA.iter_errors(d)) == [] for s in steps.values() for d in s)
    # Stripe retried the churned invoice until day 14: the middleware only retried once Stripe had stopped,
    # then wrote it off on day 15.
    assert [(d["day"], d["retry"]) for d in steps[churned]] == [
        (1, "off"),
        (3, "stripe_retrying"),
        (7, "stripe_retrying"),
        (14, "sent"),
        (15, "off"),
    ]
    assert steps[churned][-1]["action_status"] == "sent"
    commands = on_the_bus(published, DetailType.COMMAND)
    assert [(c["operation"], c["idempotency_key"]) for c in commands] == [
        ("invoices.pay", f"dunning-{churned}-4-invoices.pay"),
        ("invoices.mark_uncollectible", f"dunning-{churned}-5-invoices.mark_uncollectible"),
    ]
    # The recovered invoice got reminders while Stripe retried it, and nothing once it was paid.
    paid_day = (stories[recovered][-1]["created"] - failed_at[recovered]) / DAY
    assert [d["day"] for d in steps[recovered]] == [s.day for s in STAGES if s.day < paid_day]
    assert all(d["retry"] in ("off", "stripe_retrying") for d in steps[recovered])
    assert f"{recovered}" in out and "stopped, invoice paid" in out
    assert "0 workflow(s) in progress" in out.splitlines()[-1]
    # Both workflows ended: another failure of the churned invoice starts nothing.
    again = stripe_event(
        "invoice.payment_failed",
        obj=stories[churned][-1]["data"]["object"],
        created=failed_at[churned] + 20 * DAY,
    )
    local_mode.deliver([again])
    machine = json.loads((local_mode.state_dir / "outputs.json").read_text())["dunning_state_machine_arn"]
    running = local_mode.clients["stepfunctions"].list_executions(
        stateMachineArn=machine, statusFilter="RUNNING"
    )
    assert running["executions"] == []


def test_on_a_deployed_stage_the_command_lists_workflows_and_never_moves_a_clock(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    functions.start(functions.failed_payment(open_invoice(), T0))
    target = targets.Target({"dunning_state_machine_arn": functions.state_machine_arn}, local=False)
    assert list_deployed(target) == 0
    listed = capsys.readouterr().out
    assert "in_moto1" in listed and "1 workflow(s) in progress" in listed
    assert cli.main(["dunning", "--stage", "prod", "--advance", "3d"]) == 2
    assert "--advance moves local mode's clock" in capsys.readouterr().err
