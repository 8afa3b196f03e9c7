"""11. Dunning: what a failed invoice costs, against the processor's cost of the same events in the same run.

`invoices` invoices fail twice each (`dunning_soak.failed_payments`: the first failure and Stripe's failed
retry), delivered with 30 % duplicates and shuffled. The processor handles them on moto (the reference: its
CPU per event). The starter Lambda's handler gets what its bus rule sends it (every published
`invoice.payment_failed`) in batches of 10 and must start exactly one execution per invoice on moto's Step
Functions. Then every stage of config/dunning.yaml runs through the step Lambda's handler for every invoice:
an unpaid invoice runs the whole policy, the most a failed invoice costs. The state transitions a workflow
takes are counted on the synthesized state machine's definition (`transitions`), so the price follows the
policy.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Mapping
from typing import Any

from bench.dunning_soak import failed_payments
from bench.measure import QUIET, CallCounter, drain_queue, in_process_aws
from bench.processor_bench import _Context, sqs_event

READS = ("GetItem", "Query", "BatchGetItem")


def transitions(definition: Mapping[str, Any], *, stop_after: int | None = None) -> int:
    """State transitions of one execution of an Amazon States Language `definition` whose steps are
    followed by a Choice on `$.outcome.stopped`: the whole policy, or stopped by its `stop_after`-th step.
    Step Functions bills every state entered."""
    states, name, count, steps = definition["States"], definition["StartAt"], 0, 0
    while True:
        state = states[name]
        count += 1
        if state["Type"] in ("Succeed", "Fail"):
            return count
        if state["Type"] == "Task":
            steps += 1
        if state["Type"] == "Choice":
            stop = stop_after is not None and steps >= stop_after
            name = state["Choices"][0]["Next"] if stop else state["Default"]
        else:
            name = state["Next"]


def state_machine_definition(
    template: Mapping[str, Any], logical_id_prefix: str = "Dunning"
) -> dict[str, Any]:
    """The definition of the template's state machine whose logical id starts with the prefix, its
    references (function ARNs) left as placeholders."""
    [machine] = [
        r["Properties"]
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine" and k.startswith(logical_id_prefix)
    ]
    body = machine["DefinitionString"]
    if isinstance(body, dict):  # {"Fn::Join": ["", [parts]]}
        body = "".join(part if isinstance(part, str) else "ref" for part in body["Fn::Join"][1])
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def synthesized_definition() -> dict[str, Any]:
    """The dunning state machine's definition in the dev stack, synthesized in-process (no bundling)."""
    from aws_cdk import App

    from infra.app import build_app

    app, stack = build_app(App(context={"stage": "dev", "aws:cdk:bundling-stacks": []}))
    return state_machine_definition(app.synth().get_stack_by_name(stack.stack_name).template)


def run(
    invoices: int = 200, definition: Mapping[str, Any] | None = None, duplicate_share: float = 0.3
) -> dict[str, Any]:
    in_process_aws()
    import boto3
    from moto import mock_aws

    from stripe_middleware.dunning.config import load_dunning_config
    from stripe_middleware.shared.contract import SOURCE, STRIPE_API_VERSION
    from stripe_middleware_dev import use_repo_config
    from stripe_middleware_dev.tables import create_table_request

    use_repo_config()
    stages = [s.model_dump(exclude_none=True) for s in load_dunning_config().stages()]
    failures = failed_payments(invoices)
    rng = random.Random(7)
    duplicates = int(len(failures) * duplicate_share / (1 - duplicate_share))
    deliveries = [json.dumps(e) for e in failures] + [
        json.dumps(rng.choice(failures)) for _ in range(duplicates)
    ]
    rng.shuffle(deliveries)
    real_stdout, sys.stdout = sys.stdout, QUIET
    try:
        from functions.dunning import handler as step
        from functions.dunning_start import handler as starter
        from functions.processor import handler as processor

        with mock_aws():
            dynamodb, events, sqs = boto3.client("dynamodb"), boto3.client("events"), boto3.client("sqs")
            stepfunctions = boto3.client("stepfunctions")
            dynamodb.create_table(**create_table_request("store"))
            events.create_event_bus(Name="bus")
            queue_url = sqs.create_queue(QueueName="starter")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
            pattern = {"source": [SOURCE], "detail-type": ["invoice.payment_failed"]}  # the starter's rule
            events.put_rule(Name="starter", EventBusName="bus", EventPattern=json.dumps(pattern))
            events.put_targets(
                Rule="starter", EventBusName="bus", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}]
            )
            machine = stepfunctions.create_state_machine(
                name="dunning",
                definition=json.dumps({"StartAt": "Bench", "States": {"Bench": {"Type": "Succeed"}}}),
                roleArn="arn:aws:iam::123456789012:role/dunning",
            )["stateMachineArn"]
            os.environ.update(
                TABLE_NAME="store",
                EVENT_BUS_NAME="bus",
                STRIPE_API_VERSION=STRIPE_API_VERSION,
                STATE_MACHINE_ARN=machine,
            )
            os.environ.pop("STRIPE_API_KEY_SECRET_ID", None)
            for function in (processor, starter, step):
                function.dependencies.cache_clear()

            start = time.process_time()
            for i in range(0, len(deliveries), 10):
                batch = sqs_event(deliveries[i : i + 10], i)
                assert processor.handler(batch, _Context())["batchItemFailures"] == []
            processor_cpu = time.process_time() - start

            published = drain_queue(sqs, queue_url)
            started = CallCounter()
            started.attach(starter.dependencies()._client)
            start = time.process_time()
            for i in range(0, len(published), 10):
                batch = sqs_event(published[i : i + 10], i)
                assert starter.handler(batch, _Context())["batchItemFailures"] == []
            starter_cpu = time.process_time() - start
            executions = [
                e["executionArn"]
                for page in stepfunctions.get_paginator("list_executions").paginate(stateMachineArn=machine)
                for e in page["executions"]
            ]
            cases = [
                json.loads(stepfunctions.describe_execution(executionArn=arn)["input"])["case"]
                for arn in executions
            ]

            steps = CallCounter()
            deps = step.dependencies()
            steps.attach(deps.publisher._client)
            steps.attach(deps.billing._objects._client)
            entries = 0
            real_put_events = deps.publisher._client.put_events

            def counted_put_events(**kwargs: Any) -> Any:
                nonlocal entries
                entries += len(kwargs["Entries"])
                return real_put_events(**kwargs)

            deps.publisher._client.put_events = counted_put_events
            reading = 0.0  # CPU in the store reads: moto's Query scans, which DynamoDB does not
            for name in ("invoice", "subscription", "churn_risk_level"):
                real_read = getattr(deps.billing, name)

                def timed(*args: Any, _read: Any = real_read, **kwargs: Any) -> Any:
                    nonlocal reading
                    began = time.process_time()
                    try:
                        return _read(*args, **kwargs)
                    finally:
                        reading += time.process_time() - began

                setattr(deps.billing, name, timed)
            start = time.process_time()
            outcomes = [
                step.handler({"case": case, "stage": stage}, _Context()) for case in cases for stage in stages
            ]
            step_cpu = time.process_time() - start
    finally:
        sys.stdout = real_stdout

    ran = len(outcomes)
    result: dict[str, Any] = {
        "invoices": invoices,
        "failure_events": len(failures),
        "failure_deliveries": len(deliveries),
        "published_failures": len(published),
        "stages": len(stages),
        "starter": {
            "start_execution_calls": started.calls["StartExecution"],
            "executions": len(executions),
            "executions_per_invoice": round(len(executions) / invoices, 3),
            "cpu_ms_per_message": round(starter_cpu / len(published) * 1000, 3),
        },
        "steps": {
            "ran": ran,
            "finished": sum(1 for o in outcomes if o["stopped"]),
            "cpu_ms_per_step": round(step_cpu / ran * 1000, 3),
            "cpu_ms_per_step_but_store_reads": round((step_cpu - reading) / ran * 1000, 3),
            "dynamodb_reads_per_step": round(sum(steps.calls[c] for c in READS) / ran, 3),
            "put_events_entries_per_step": round(entries / ran, 3),
            "calls": dict(steps.calls),
        },
        "processor": {"cpu_ms_per_event": round(processor_cpu / len(deliveries) * 1000, 3)},
    }
    result["step_cpu_over_processor_event"] = round(
        result["steps"]["cpu_ms_per_step"] / result["processor"]["cpu_ms_per_event"], 3
    )
    result["step_cpu_but_store_reads_over_processor_event"] = round(
        result["steps"]["cpu_ms_per_step_but_store_reads"] / result["processor"]["cpu_ms_per_event"], 3
    )
    if definition is not None:
        result["transitions"] = {
            "whole_policy": transitions(definition),
            "stopped_by_the_first_step": transitions(definition, stop_after=1),
        }
    return result
