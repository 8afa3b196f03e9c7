"""The signals path in the synthesized stack: rule → queue (with DLQ) → Lambda, least privilege."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synthesized, function_named, policy_statements_of


def signals_rule(dev: Synthesized) -> dict[str, Any]:
    [rule] = [
        r["Properties"]
        for logical_id, r in dev.resources("AWS::Events::Rule").items()
        if logical_id.startswith("SignalsStripeEventsToSignals")
    ]
    return rule


def test_the_rule_sends_stripe_events_and_backfilled_objects_but_no_signals_to_the_signals_queue(
    dev: Synthesized,
) -> None:
    rule = signals_rule(dev)
    assert rule["EventPattern"] == {
        "source": ["stripe-middleware"],
        "detail-type": [
            {"anything-but": {"prefix": "stripe-middleware."}},
            "stripe-middleware.object.backfilled",
        ],
    }
    [target] = rule["Targets"]
    queues = dev.resources("AWS::SQS::Queue")
    queue_id = target["Arn"]["Fn::GetAtt"][0]
    assert queues[queue_id]["Properties"]["RedrivePolicy"]["maxReceiveCount"] >= 3
    dead_letter = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert (
        queues[queue_id]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] == dead_letter
    )
    assert all(queues[q]["Properties"]["SqsManagedSseEnabled"] for q in (queue_id, dead_letter))


def test_the_signals_function_consumes_the_queue_with_partial_batch_failures(dev: Synthesized) -> None:
    logical_id, function = function_named(dev, "signals")
    [mapping] = [
        m["Properties"]
        for m in dev.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": logical_id}
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue_id = mapping["EventSourceArn"]["Fn::GetAtt"][0]
    assert signals_rule(dev)["Targets"][0]["Arn"]["Fn::GetAtt"][0] == queue_id
    timeout = function["Properties"]["Timeout"]
    visibility = dev.resources("AWS::SQS::Queue")[queue_id]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * timeout
    assert function["Properties"]["Architectures"] == ["arm64"]


def test_the_signals_function_has_exactly_the_calls_it_makes(dev: Synthesized) -> None:
    _, function = function_named(dev, "signals")
    statements = policy_statements_of(dev, function)
    dynamodb = [s for s in statements if "dynamodb:PutItem" in s["Action"]]
    [table_statement] = dynamodb
    assert set(table_statement["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
    }
    assert "/index/" not in str(table_statement["Resource"])  # it reads no index
    assert table_statement["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["SIG#*", "SIGNAL#*"]}
    }  # only its own items of the shared table
    [put_events] = [s for s in statements if s["Action"] == "events:PutEvents"]
    assert put_events["Resource"] != "*"
    others = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    [model] = [s for s in statements if "s3:GetObject*" in s["Action"]]
    assert model["Action"] == ["s3:GetObject*", "s3:GetBucket*", "s3:List*"]
    assert [r["Fn::Join"][1][-1] for r in model["Resource"] if "Fn::Join" in r] == [
        "/models/churn/approved.json"
    ]
    assert others - set(table_statement["Action"]) - {"events:PutEvents", *model["Action"]} == {
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }  # and what the queue event source, its log group and tracing need, nothing more


def test_the_churn_model_is_retrained_weekly_from_the_archive_and_only_writes_models(
    dev: Synthesized,
) -> None:
    logical_id, function = function_named(dev, "retrain")
    [schedule] = [
        r["Properties"]
        for r in dev.resources("AWS::Events::Rule").values()
        if r["Properties"].get("ScheduleExpression")
        and r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    ]
    assert schedule["ScheduleExpression"] == "rate(7 days)"
    assert (
        function["Properties"]["Timeout"] == 900
        and function["Properties"]["ReservedConcurrentExecutions"] == 1
    )
    statements = policy_statements_of(dev, function)
    s3_resources = {
        r["Fn::Join"][1][-1]
        for s in statements
        if any(str(a).startswith("s3:") for a in s["Action"])
        for r in s["Resource"]
        if "Fn::Join" in r
    }
    assert s3_resources == {"/events/*", "/models/churn/*"}
    writes = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert [r["Fn::Join"][1][-1] for s in writes for r in s["Resource"] if "Fn::Join" in r] == [
        "/models/churn/*"
    ]
    _, signals = function_named(dev, "signals")
    assert signals["Properties"]["Environment"]["Variables"]["MODEL_BUCKET_NAME"] == {
        "Ref": next(k for k in dev.resources("AWS::S3::Bucket") if k.startswith("WarehouseBucket"))
    }


def test_the_archive_takes_every_stripe_events_detail_as_gzipped_json_lines(dev: Synthesized) -> None:
    [archive] = [
        r["Properties"]
        for logical_id, r in dev.resources("AWS::Events::Rule").items()
        if logical_id.startswith("WarehouseArchiveEvents")
    ]
    assert archive["EventPattern"]["detail-type"] == [{"anything-but": {"prefix": "stripe-middleware."}}]
    [target] = archive["Targets"]
    assert target["InputPath"] == "$.detail" and "DeadLetterConfig" in target
    [stream] = [
        r["Properties"]["ExtendedS3DestinationConfiguration"]
        for r in dev.resources("AWS::KinesisFirehose::DeliveryStream").values()
        if r["Properties"]["DeliveryStreamName"].endswith("-events")
    ]
    assert stream["Prefix"] == "events/!{timestamp:yyyy/MM/dd/HH}/"  # what S3EventArchive lists by
    assert stream["CompressionFormat"] == "GZIP"
    assert stream["ProcessingConfiguration"]["Processors"] == [{"Type": "AppendDelimiterToRecord"}]


def test_the_buyers_are_rescored_daily_with_only_their_own_keys_and_the_bus(dev: Synthesized) -> None:
    logical_id, function = function_named(dev, "rescore")
    [schedule] = [
        r["Properties"]
        for r in dev.resources("AWS::Events::Rule").values()
        if r["Properties"].get("ScheduleExpression")
        and r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    ]
    assert schedule["ScheduleExpression"] == "rate(1 day)"
    assert schedule["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] == 2
    properties = function["Properties"]
    assert properties["Timeout"] == 900 and properties["ReservedConcurrentExecutions"] == 1
    assert set(properties["Environment"]["Variables"]) >= {"TABLE_NAME", "EVENT_BUS_NAME"}
    statements = policy_statements_of(dev, function)
    [table_statement] = [s for s in statements if any(str(a).startswith("dynamodb:") for a in s["Action"])]
    assert set(table_statement["Action"]) == {"dynamodb:Query", "dynamodb:PutItem"}
    assert "/index/" not in str(table_statement["Resource"])
    assert table_statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["SIG#*"]}}
    [put_events] = [s for s in statements if s["Action"] == "events:PutEvents"]
    assert put_events["Resource"] != "*"
    actions = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions - set(table_statement["Action"]) == {
        "events:PutEvents",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }  # no SQS, no S3, no anomaly records
