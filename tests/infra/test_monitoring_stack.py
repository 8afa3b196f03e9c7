"""Alarms, their topic and the dashboard in the synthesized stack, checked against the contract, what the
handlers emit, and the README's runbook."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk.assertions import Template

from infra.config import STAGES, StageConfig
from infra.constructs.monitoring import INVALID_SIGNATURE, AlarmTopic, contract_metric, search_by
from stripe_middleware.ingest.signature import SignatureError, compute_signature, verify_signature
from stripe_middleware.shared.contract import METRIC_DIMENSIONS, METRICS_NAMESPACE, SERVICE, Metric
from tests.infra.conftest import Synthesized

ROOT = Path(__file__).parents[2]
SEARCH = re.compile(
    r"""SEARCH\('\{(?P<schema>[^}]*)\} MetricName="(?P<name>\w+)" service="(?P<service>[^"]+)"'"""
)

# ---- reading the template --------------------------------------------------------------------------------


def alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """Alarm properties by name, without the `stripe-middleware-<stage>-` prefix every alarm has."""
    found = {}
    for alarm in synth.resources("AWS::CloudWatch::Alarm").values():
        name = alarm["Properties"]["AlarmName"]
        prefix = f"{SERVICE}-{synth.stack.node.try_get_context('stage')}-"
        assert name.startswith(prefix), name
        found[name.removeprefix(prefix)] = alarm["Properties"]
    return found


def alarm_metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The alarm's metrics as {namespace, name, dimensions, stat, period}, math or not."""
    if "MetricName" in alarm:
        return [
            {
                "namespace": alarm["Namespace"],
                "name": alarm["MetricName"],
                "dimensions": {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])},
                "stat": alarm.get("Statistic") or alarm.get("ExtendedStatistic"),
                "period": alarm["Period"],
            }
        ]
    return [
        {
            "namespace": m["MetricStat"]["Metric"]["Namespace"],
            "name": m["MetricStat"]["Metric"]["MetricName"],
            "dimensions": {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"].get("Dimensions", [])},
            "stat": m["MetricStat"]["Stat"],
            "period": m["MetricStat"]["Period"],
        }
        for m in alarm["Metrics"]
        if "MetricStat" in m
    ]


def token_text(token: dict[str, Any]) -> str:
    """A CloudFormation reference inside the dashboard body, as text the tests can look for."""
    if "Ref" in token:
        return f"Ref:{token['Ref']}"
    if "Fn::GetAtt" in token:
        return "GetAtt:" + ".".join(token["Fn::GetAtt"])
    return "Token"


def dashboard(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    [resource] = synth.resources("AWS::CloudWatch::Dashboard").values()
    parts = resource["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = json.loads("".join(p if isinstance(p, str) else token_text(p) for p in parts))
    return resource["Properties"]["DashboardName"], body


def dashboard_metrics(body: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(namespace, metric name, dimensions) of every graphed metric; SEARCH expressions with their schema's
    dimensions (the split one as "*")."""
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            fields = [f for f in line if not isinstance(f, dict)]
            if fields:
                namespace, name, *pairs = fields
                yield namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))
            for options in (f for f in line if isinstance(f, dict)):
                if search := SEARCH.search(options.get("expression", "")):
                    namespace, *keys = [k.strip('"') for k in search["schema"].split(",")]
                    dimensions = {k: "*" for k in keys} | {"service": search["service"]}
                    yield namespace, search["name"], dimensions


def contract_metrics_used(synth: Synthesized) -> set[tuple[str, str, frozenset[str]]]:
    """(metric name, service, dimension names) of each StripeMiddleware metric in alarms and the dashboard."""
    used = {
        (name, dimensions["service"], frozenset(dimensions))
        for namespace, name, dimensions in dashboard_metrics(dashboard(synth)[1])
        if namespace == METRICS_NAMESPACE
    }
    for alarm in alarms(synth).values():
        for stat in alarm_metric_stats(alarm):
            if stat["namespace"] == METRICS_NAMESPACE:
                used.add((stat["name"], stat["dimensions"]["service"], frozenset(stat["dimensions"])))
    return used


# ---- reading the handlers --------------------------------------------------------------------------------


def _metric_of(node: ast.AST) -> Metric | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Metric":
        return Metric[node.attr]
    return None


def _is_single_metric(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.With)
        and isinstance(call := node.items[0].context_expr, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "single_metric"
    )


def _dimension_calls(nodes: list[ast.stmt]) -> Iterator[ast.Call]:
    """`….add_dimension(...)` calls among `nodes`, not inside a `with single_metric(...)` block."""
    for node in nodes:
        if _is_single_metric(node):
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _dimension_calls([child])
            else:
                for inner in ast.walk(child):
                    if isinstance(inner, ast.Call) and getattr(inner.func, "attr", None) == "add_dimension":
                        yield inner


def _dimension_name(call: ast.Call) -> str:
    node = next((k.value for k in call.keywords if k.arg == "name"), call.args[0] if call.args else None)
    assert isinstance(node, ast.Constant) and isinstance(node.value, str), ast.dump(call)
    return node.value


def emitted_metrics(handler: Path) -> dict[Metric, frozenset[str]]:
    """The contract metrics a handler emits, each with its dimensions besides `service`, read from its code
    in the three shapes the handlers use: `metrics.add(Metric.X, value, route=...)` (ingest's EMF writer),
    `with single_metric(name=Metric.X, ...) as m: m.add_dimension(name="kind", ...)`, and Powertools'
    `metrics.add_metric(Metric.X, ...)` with the module's `metrics.add_dimension("outcome", ...)` calls."""
    tree = ast.parse(handler.read_text())
    found: dict[Metric, frozenset[str]] = {}
    claimed: set[int] = set()
    for node in ast.walk(tree):
        if _is_single_metric(node):
            assert isinstance(node, ast.With) and isinstance(node.items[0].context_expr, ast.Call)
            name = next(k.value for k in node.items[0].context_expr.keywords if k.arg == "name")
            metric = _metric_of(name)
            assert metric is not None, ast.dump(name)
            found[metric] = frozenset(_dimension_name(c) for c in _dimension_calls(node.body))
            claimed.add(id(name))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "add"
            and node.args
            and (metric := _metric_of(node.args[0])) is not None
        ):
            found[metric] = frozenset(k.arg for k in node.keywords if k.arg not in (None, "unit"))
            claimed.add(id(node.args[0]))
    module_dimensions = frozenset(_dimension_name(c) for c in _dimension_calls(tree.body))
    for node in ast.walk(tree):
        if (metric := _metric_of(node)) is not None and id(node) not in claimed:
            found.setdefault(metric, module_dimensions)
    return found


def handlers() -> dict[str, dict[Metric, frozenset[str]]]:
    """`functions/<name>/handler.py` → the metrics it emits (its `service` is stripe-middleware-<name>)."""
    return {path.parent.name: emitted_metrics(path) for path in sorted(ROOT.glob("functions/*/handler.py"))}


# ---- reading the README ----------------------------------------------------------------------------------


def runbook_alarms() -> list[str]:
    """The alarm names in the README's Operations → Alarms table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n### Alarms\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)


# ---- the alarms ------------------------------------------------------------------------------------------


def test_the_readme_has_one_runbook_line_per_alarm(dev: Synthesized) -> None:
    names = runbook_alarms()
    assert len(names) == len(set(names)), "an alarm is listed twice in the README"
    assert sorted(names) == sorted(alarms(dev))


def test_every_alarm_notifies_the_alarm_topic_when_it_fires_and_clears(dev: Synthesized) -> None:
    [topic_id] = dev.resources("AWS::SNS::Topic")
    for name, alarm in alarms(dev).items():
        assert alarm["ActionsEnabled"] is True, name
        assert alarm["AlarmActions"] == [{"Ref": topic_id}], name
        assert alarm["OKActions"] == [{"Ref": topic_id}], name
        assert alarm["TreatMissingData"] == "notBreaching", name  # an idle stage is not an alarm
        assert "README.md" in alarm["AlarmDescription"], name


def pipe_alarms(stage: StageConfig) -> dict[str, tuple[str, dict[str, str], str, int, float, int]]:
    """name → (metric, dimensions, statistic, period s, threshold, datapoints) for `stage`'s thresholds."""
    return {
        "invalid-signatures": (
            "WebhookRejected",
            {"service": "stripe-middleware-ingest", "reason": "invalid_signature"},
            "Sum",
            300,
            stage.alarm_invalid_signatures,
            1,
        ),
        "stored-latency-p99": (
            "StripeToStoredLatency",
            {"service": "stripe-middleware-processor"},
            "p99",
            300,
            stage.alarm_stored_latency_p99_seconds * 1000,  # the metric is in milliseconds
            3,
        ),
        "catchup-recovered-events": (
            "CatchupEventsRecovered",
            {"service": "stripe-middleware-catchup"},
            "Sum",
            3600,
            0,
            1,
        ),
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_pipe_alarms_watch_the_contract_metrics_with_the_stage_thresholds(
    stage: str, request: pytest.FixtureRequest
) -> None:
    synth: Synthesized = request.getfixturevalue(stage)
    found = alarms(synth)
    for name, (metric, dimensions, stat, period, threshold, datapoints) in pipe_alarms(STAGES[stage]).items():
        alarm = found[name]
        [watched] = alarm_metric_stats(alarm)
        assert watched == {
            "namespace": METRICS_NAMESPACE,
            "name": metric,
            "dimensions": dimensions,
            "stat": stat,
            "period": period,
        }, name
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", name
        assert alarm["Threshold"] == threshold, name
        assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"] == datapoints, name


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_gateway_failure_rate_is_failed_over_finished_commands_once_enough_finished(
    stage: str, request: pytest.FixtureRequest
) -> None:
    config = STAGES[stage]
    alarm = alarms(request.getfixturevalue(stage))["gateway-failure-rate"]
    [expression] = [m for m in alarm["Metrics"] if "Expression" in m]
    assert expression["ReturnData"] is True
    assert expression["Expression"] == (
        f"IF(FILL(succeeded, 0) + FILL(failed, 0) >= {config.alarm_gateway_min_commands}, "
        "100 * FILL(failed, 0) / (FILL(succeeded, 0) + FILL(failed, 0)), 0)"
    )
    inputs = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {i: s["Metric"]["MetricName"] for i, s in inputs.items()} == {
        "succeeded": "CommandsSucceeded",
        "failed": "CommandsFailed",
    }
    for stat in inputs.values():
        assert stat["Metric"]["Dimensions"] == [{"Name": "service", "Value": "stripe-middleware-gateway"}]
        assert stat["Stat"] == "Sum" and stat["Period"] == 900
    assert alarm["Threshold"] == config.alarm_gateway_failure_percent


def test_dev_alarms_are_looser_than_prod() -> None:
    dev, prod = STAGES["dev"], STAGES["prod"]
    assert dev.alarm_invalid_signatures > prod.alarm_invalid_signatures
    assert dev.alarm_http_api_5xx > prod.alarm_http_api_5xx
    assert dev.alarm_stored_latency_p99_seconds > prod.alarm_stored_latency_p99_seconds
    assert dev.alarm_events_age_seconds == prod.alarm_events_age_seconds == 300  # the 5 minutes


def test_5xx_on_the_http_api_alarm(prod: Synthesized) -> None:
    alarm = alarms(prod)["http-api-5xx"]
    [watched] = alarm_metric_stats(alarm)
    [api_id] = prod.resources("AWS::ApiGatewayV2::Api")
    assert watched == {
        "namespace": "AWS/ApiGateway",
        "name": "5xx",
        "dimensions": {"ApiId": {"Ref": api_id}, "Stage": "$default"},
        "stat": "Sum",
        "period": 300,
    }
    assert alarm["Threshold"] == STAGES["prod"].alarm_http_api_5xx


def queue_alarms(synth: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    """(queue logical id, SQS metric) → alarm."""
    found = {}
    for alarm in alarms(synth).values():
        for stat in alarm_metric_stats(alarm):
            if stat["namespace"] == "AWS/SQS":
                queue_id = stat["dimensions"]["QueueName"]["Fn::GetAtt"][0]
                found[(queue_id, stat["name"])] = alarm
    return found


def test_every_queue_alarms_on_its_oldest_message_and_every_dead_letter_queue_on_any_message(
    dev: Synthesized,
) -> None:
    watched = queue_alarms(dev)
    queues = dev.resources("AWS::SQS::Queue")
    work_queues = {q for q, resource in queues.items() if "RedrivePolicy" in resource["Properties"]}
    assert len(work_queues) >= 3 and len(queues) - len(work_queues) >= 5
    for queue_id in queues:
        if queue_id in work_queues:
            alarm = watched[(queue_id, "ApproximateAgeOfOldestMessage")]
            assert alarm["AlarmName"].endswith("-oldest-message")
            if not queue_id.startswith("EventsQueue"):  # one redelivery after a failure is not an alarm yet
                visibility = queues[queue_id]["Properties"]["VisibilityTimeout"]
                assert alarm["Threshold"] == visibility + STAGES["dev"].alarm_work_queue_age_seconds
        else:  # a dead-letter queue: one message is one too many
            alarm = watched[(queue_id, "ApproximateNumberOfMessagesVisible")]
            assert alarm["AlarmName"].endswith("-dlq-not-empty")
            assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
            assert alarm["DatapointsToAlarm"] == 1
    [events_queue] = [q for q in work_queues if q.startswith("EventsQueue")]
    events_age = watched[(events_queue, "ApproximateAgeOfOldestMessage")]
    assert events_age["AlarmName"] == "stripe-middleware-dev-events-oldest-message"
    assert events_age["Threshold"] == 300  # older than 5 minutes


def test_every_state_machine_alarms_on_a_failed_execution(dev: Synthesized) -> None:
    state_machines = dev.resources("AWS::StepFunctions::StateMachine")
    failed = {
        stat["dimensions"]["StateMachineArn"]["Ref"]
        for alarm in alarms(dev).values()
        for stat in alarm_metric_stats(alarm)
        if stat["name"] == "ExecutionsFailed" and alarm["Threshold"] == 0
    }
    assert failed == set(state_machines)


# ---- the topic -------------------------------------------------------------------------------------------


def test_the_alarm_topic_is_encrypted_tls_only_and_only_this_stacks_alarms_publish(dev: Synthesized) -> None:
    [(topic_id, topic)] = dev.resources("AWS::SNS::Topic").items()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = dev.resources("AWS::KMS::Key")[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [s["Action"] for s in cloudwatch] == [["kms:Decrypt", "kms:GenerateDataKey*"]]
    [policy] = [p["Properties"] for p in dev.resources("AWS::SNS::TopicPolicy").values()]
    assert policy["Topics"] == [{"Ref": topic_id}]
    statements = policy["PolicyDocument"]["Statement"]
    [tls] = [s for s in statements if s["Effect"] == "Deny"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and tls["Principal"] == "*"
    [publish] = [s for s in statements if s["Effect"] == "Allow"]
    assert (
        publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and publish["Action"] == "sns:Publish"
    )
    source = publish["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1]
    assert source[-1] == ":alarm:stripe-middleware-dev-*"
    assert not dev.resources("AWS::SNS::Subscription")  # no e-mail without `-c alarmEmail=`


def test_the_monitoring_resources_needed_no_cdk_nag_acknowledgment(dev: Synthesized) -> None:
    # `dev` synthesized with the AwsSolutions checks, which raise on any unacknowledged finding.
    monitoring = [
        resource
        for logical_id, resource in dev.json()["Resources"].items()
        if logical_id.startswith("Monitoring")
    ]
    assert len(monitoring) >= len(alarms(dev)) + 4  # the alarms, the dashboard, the topic, its policy and key
    assert not [r for r in monitoring if r.get("Metadata", {}).get("cdk_nag")]


def topic_template(**options: Any) -> Template:
    stack = Stack(App(), "Topic")
    AlarmTopic(
        stack,
        "Alarms",
        alarm_name_prefix="stripe-middleware-dev",
        removal_policy=RemovalPolicy.DESTROY,
        **options,
    )
    return Template.from_stack(stack)


def test_alarm_email_subscribes_that_address() -> None:
    subscriptions = topic_template(alarm_email="ops@example.com").find_resources("AWS::SNS::Subscription")
    [subscription] = [s["Properties"] for s in subscriptions.values()]
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == "ops@example.com"


def test_an_alarm_email_that_is_no_address_is_refused_at_synth() -> None:
    with pytest.raises(ValueError, match="alarm_email must be an e-mail address"):
        topic_template(alarm_email="ops")


# ---- the dashboard and the contract ----------------------------------------------------------------------


def test_the_dashboard_shows_every_function_and_queue(dev: Synthesized) -> None:
    name, body = dashboard(dev)
    assert name == "stripe-middleware-dev"
    text = json.dumps(body)
    functions = [
        logical_id
        for logical_id, f in dev.resources("AWS::Lambda::Function").items()
        if "POWERTOOLS_SERVICE_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(functions) >= 8
    for logical_id in functions:
        assert f'"FunctionName", "Ref:{logical_id}"' in text, logical_id
    for queue_id in dev.resources("AWS::SQS::Queue"):
        assert f'"QueueName", "GetAtt:{queue_id}.QueueName"' in text, queue_id


def test_every_contract_metric_in_alarms_and_graphs_is_one_its_function_emits_with_those_dimensions(
    dev: Synthesized,
) -> None:
    emitted = handlers()
    used = contract_metrics_used(dev)
    assert len(used) > 30
    for name, service, dimensions in used:
        assert name in set(Metric), f"{name} is not in contract.Metric"
        function = service.removeprefix(f"{SERVICE}-")
        assert Metric(name) in emitted.get(function, {}), (
            f"functions/{function}/handler.py does not emit {name}"
        )
        assert dimensions == {"service", *emitted[function][Metric(name)]}, (name, dimensions)


def test_every_metric_a_handler_emits_is_on_the_dashboard(dev: Synthesized) -> None:
    graphed = {(name, service) for name, service, _ in contract_metrics_used(dev)}
    missing = [
        f"{metric} of functions/{function}/"
        for function, metrics in handlers().items()
        for metric in metrics
        if (metric, f"{SERVICE}-{function}") not in graphed
    ]
    assert not missing, "add a Graph to infra/constructs/monitoring.py SECTIONS for: " + ", ".join(missing)


def test_the_contracts_metric_dimensions_are_what_the_handlers_emit() -> None:
    emitted = handlers()
    assert emitted["ingest"][Metric.WEBHOOK_REJECTED] == {"reason"}  # the reader sees all three shapes
    assert emitted["signals"][Metric.SIGNALS_RAISED] == {"kind"}
    assert emitted["retrain"][Metric.CHURN_MODEL_RETRAININGS] == {"outcome"}
    assert emitted["processor"][Metric.STRIPE_TO_STORED_LATENCY] == frozenset()
    for function, metrics in emitted.items():
        for metric, dimensions in metrics.items():
            declared = set(METRIC_DIMENSIONS.get(metric, ()))
            assert dimensions == declared, f"functions/{function}/ emits {metric} with {sorted(dimensions)}"


def test_the_invalid_signature_alarm_watches_the_code_ingest_rejects_a_bad_signature_with() -> None:
    body, now = b'{"id": "evt_1"}', 1_700_000_000
    header = f"t={now},v1={compute_signature(body, 'whsec_old', now)}"
    with pytest.raises(SignatureError) as rejected:
        verify_signature(body, header, ["whsec_new"], now=now)
    assert rejected.value.code == INVALID_SIGNATURE


def test_a_metric_named_without_all_its_dimensions_is_refused_at_synth() -> None:
    with pytest.raises(ValueError, match=r"WebhookRejected is emitted with service \+ \['reason'\]"):
        contract_metric("ingest", Metric.WEBHOOK_REJECTED, "Sum")
    with pytest.raises(ValueError, match="cannot be split by 'reason'"):
        search_by("processor", Metric.EVENTS_PROCESSED, "reason", "Sum")
    assert contract_metric("ingest", Metric.WEBHOOK_REJECTED, "Sum", reason=INVALID_SIGNATURE).dimensions == {
        "service": "stripe-middleware-ingest",
        "reason": "invalid_signature",
    }
