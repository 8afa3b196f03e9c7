"""Create, on moto, exactly what the synthesized CloudFormation template declares.

Local mode never keeps a second list of resources: it synthesizes the real stack (bundling skipped)
and walks its template, so a queue, index or route added to the stack exists locally too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stripe_middleware_dev import REPO_CONFIG

SERVICE_PREFIX = "stripe-middleware-"


def synthesize_template(stage: str = "dev") -> dict[str, Any]:
    from aws_cdk import App

    from infra.app import build_app

    app, stack = build_app(App(context={"stage": stage, "aws:cdk:bundling-stacks": []}))
    assembly = app.synth()
    template: dict[str, Any] = assembly.get_stack_by_name(stack.stack_name).template
    return template


@dataclass
class LocalFunction:
    logical_id: str
    name: str  # folder under functions/
    environment: dict[str, str]


@dataclass
class LocalResources:
    region: str
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> {Ref, Arn, ...}
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)  # route key -> function logical id
    event_sources: list[dict[str, Any]] = field(default_factory=list)  # queue url/arn, function, batch
    outputs: dict[str, str] = field(default_factory=dict)

    def triggered(self) -> set[str]:
        """Functions something invokes locally (a route or a queue); the backfill and catch-up functions
        run on demand in the CLI's own process instead (`stripe-middleware backfill`, `catchup`)."""
        return {*self.routes.values(), *(source["function"] for source in self.event_sources)}

    def resolve(self, value: Any) -> Any:
        """The intrinsic functions the stack uses: Ref, Fn::GetAtt, Fn::Join."""
        if isinstance(value, dict) and len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return self.values.get(arg, {}).get("Ref", arg)
            if fn == "Fn::GetAtt":
                return self.values.get(arg[0], {}).get(arg[1], "")
            if fn == "Fn::Join":
                return arg[0].join(str(self.resolve(v)) for v in arg[1])
        return value


ACCOUNT = "123456789012"
Resources = list[tuple[str, dict[str, Any]]]
OfType = Callable[[str], Resources]


def provision(template: dict[str, Any], clients: dict[str, Any], *, region: str) -> LocalResources:
    """Create every queue, table, bus, rule and secret of `template` (secrets with a placeholder value)."""
    local = LocalResources(region=region)

    def of_type(kind: str) -> Resources:
        return [(k, v.get("Properties", {})) for k, v in template["Resources"].items() if v["Type"] == kind]

    _create_storage(local, of_type, clients, region)
    _create_routing(local, of_type, clients)
    _create_state_machines(local, of_type, clients, region)
    _wire_compute(local, of_type)
    for name, output in template.get("Outputs", {}).items():
        local.outputs[name] = str(local.resolve(output["Value"]))
    return local


def _create_storage(local: LocalResources, of_type: OfType, clients: dict[str, Any], region: str) -> None:
    # Queues without a redrive policy first: the DLQs they point at must exist.
    for logical_id, props in sorted(of_type("AWS::SQS::Queue"), key=lambda item: "RedrivePolicy" in item[1]):
        attributes: dict[str, str] = {
            k: str(props[k])
            for k in ("VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize")
            if k in props
        }
        if "RedrivePolicy" in props:
            policy = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": local.resolve(policy["deadLetterTargetArn"]),
                    "maxReceiveCount": policy["maxReceiveCount"],
                }
            )
        url = clients["sqs"].create_queue(QueueName=logical_id, Attributes=attributes)["QueueUrl"]
        arn = f"arn:aws:sqs:{region}:{ACCOUNT}:{logical_id}"
        local.values[logical_id] = {"Ref": url, "Arn": arn, "QueueName": logical_id, "QueueUrl": url}

    for logical_id, props in of_type("AWS::DynamoDB::Table"):
        request = {
            "TableName": logical_id,
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
        }
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        clients["dynamodb"].create_table(**request)
        if "TimeToLiveSpecification" in props:
            clients["dynamodb"].update_time_to_live(
                TableName=logical_id, TimeToLiveSpecification=props["TimeToLiveSpecification"]
            )
        local.values[logical_id] = {
            "Ref": logical_id,
            "Arn": f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{logical_id}",
        }


def _create_routing(local: LocalResources, of_type: OfType, clients: dict[str, Any]) -> None:
    for logical_id, props in of_type("AWS::Events::EventBus"):
        if "EventSourceName" in props:
            continue  # a partner bus exists only on AWS, associated by Stripe
        name = props["Name"]
        arn = clients["events"].create_event_bus(Name=name)["EventBusArn"]
        local.values[logical_id] = {"Ref": name, "Arn": arn, "Name": name}

    for logical_id, props in of_type("AWS::Events::Rule"):
        bus = local.resolve(props.get("EventBusName", "default"))
        if bus not in {v.get("Name") for v in local.values.values()}:
            continue  # a rule on the partner bus, which exists only on AWS
        targets = [
            {"Id": t["Id"], "Arn": arn} for t in props.get("Targets", []) if (arn := local.resolve(t["Arn"]))
        ]
        if not targets:
            continue  # a target local mode does not create: Firehose (local/warehouse.py writes the rows)
        clients["events"].put_rule(
            Name=logical_id, EventBusName=bus, EventPattern=json.dumps(props["EventPattern"])
        )
        clients["events"].put_targets(Rule=logical_id, EventBusName=bus, Targets=targets)

    for logical_id, _ in of_type("AWS::SecretsManager::Secret"):
        arn = clients["secretsmanager"].create_secret(Name=logical_id, SecretString="placeholder")["ARN"]
        local.values[logical_id] = {"Ref": arn, "Arn": arn}


def _create_state_machines(
    local: LocalResources, of_type: OfType, clients: dict[str, Any], region: str
) -> None:
    """State machines exist locally but never run: a started execution stays RUNNING (with its name and
    input, and Step Functions' rules for names) until a local runner acts for it, e.g. `stripe-middleware
    dunning --advance 3d` with its clock."""
    for logical_id, props in of_type("AWS::StepFunctions::StateMachine"):
        arn = f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:{logical_id}"
        if "stepfunctions" in clients:
            arn = clients["stepfunctions"].create_state_machine(
                name=logical_id,
                definition=json.dumps({"StartAt": "Local", "States": {"Local": {"Type": "Succeed"}}}),
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/{logical_id}",
                type=props.get("StateMachineType", "STANDARD"),
            )["stateMachineArn"]
        local.values[logical_id] = {"Ref": arn, "Arn": arn, "Name": logical_id}


def _wire_compute(local: LocalResources, of_type: OfType) -> None:
    for logical_id, props in of_type("AWS::Lambda::Function"):
        environment = {
            k: str(local.resolve(v)) for k, v in props.get("Environment", {}).get("Variables", {}).items()
        }
        if "POWERTOOLS_SERVICE_NAME" not in environment:
            continue  # not one of ours (CDK's custom resource provider): local mode runs none of them
        name = environment["POWERTOOLS_SERVICE_NAME"].removeprefix(SERVICE_PREFIX)
        # Paths inside the layer (/opt/...): locally the repository's config files are used.
        environment = {
            k: REPO_CONFIG.get(k, v) if v.startswith("/opt/") else v for k, v in environment.items()
        }
        local.functions[logical_id] = LocalFunction(logical_id, name, environment)
        local.values[logical_id] = {"Ref": logical_id, "Arn": logical_id}

    integrations = {
        k: local.resolve(p["IntegrationUri"]) for k, p in of_type("AWS::ApiGatewayV2::Integration")
    }
    for _, props in of_type("AWS::ApiGatewayV2::Route"):
        target = props["Target"]["Fn::Join"][1][1]["Ref"]
        local.routes[props["RouteKey"]] = integrations[target]

    for _, props in of_type("AWS::Lambda::EventSourceMapping"):
        queue_id = props["EventSourceArn"]["Fn::GetAtt"][0]
        local.event_sources.append(
            {
                "queue_url": local.values[queue_id]["QueueUrl"],
                "queue_arn": local.values[queue_id]["Arn"],
                "function": props["FunctionName"]["Ref"],
                "batch_size": int(props.get("BatchSize", 10)),
                "batch_window": int(props.get("MaximumBatchingWindowInSeconds", 0)),
            }
        )
