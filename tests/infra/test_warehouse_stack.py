"""The warehouse in the synthesized stack: bus rules → Firehose (Parquet, partitioned) → S3 → Glue → Athena.

The rules' input transformers are checked the way EventBridge fills them in (eb-transform-target-input):
an unquoted placeholder becomes the JSON value at its path (a string with its quotes, a number, true/false,
null), a placeholder inside a JSON string becomes the value's text, and a path the event does not have
creates no variable, which leaves an empty placeholder (LocalStack's AWS-recorded behaviour). The events
are real: Stripe fixtures through the processor, a backfill snapshot, a churn-risk signal from `detect`, a
reconciliation sweep's records and discrepancies.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk import App, Stack, aws_events

from events import stripe_event
from infra.config import stage_config
from infra.constructs import warehouse
from infra.constructs.warehouse import (
    BUFFER_MIB,
    BYTES_SCANNED_CUTOFF_PER_QUERY,
    MAX_INPUT_PATHS,
    Warehouse,
    row_transformer,
)
from stripe_middleware.backfill.run import backfilled_detail
from stripe_middleware.export.rows import (
    COLUMNS,
    DATA_COLUMNS,
    KINDS,
    PARTITION_COLUMNS,
    RECORD_KINDS,
    Column,
    row_of,
)
from stripe_middleware.processing.models import StoredObject
from stripe_middleware.processing.processor import Message, process_batch
from stripe_middleware.shared.contract import SOURCE
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware.signals.churn import load_churn_model
from stripe_middleware.signals.config import load_signals_config
from stripe_middleware.signals.detect import detect
from stripe_middleware.signals.facts import facts_of
from stripe_middleware.signals.training import detail_of
from stripe_middleware_dev.analytics import athena_statements
from stripe_middleware_dev.targets import OUTPUT_NAMES
from tests.fakes.payouts import published_reconciliation
from tests.fakes.ports import FakePublisher, FakeStore
from tests.fakes.signals import InMemorySignalState
from tests.infra.conftest import Synthesized

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z
FULL_METADATA = {
    "erp_id": "NS-100200",
    "crm_account_id": "001A00000abcDEF",
    "campaign": "partner",
    "cost_center": "CC-4100",
}


def of_warehouse(synth: Synthesized, resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in synth.resources(resource_type).items() if k.startswith("Warehouse")}


def data_bucket(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    [(logical_id, bucket)] = [
        (k, b)
        for k, b in of_warehouse(synth, "AWS::S3::Bucket").items()
        if "VersioningConfiguration" in b["Properties"]
    ]
    return logical_id, bucket


def statements_on(synth: Synthesized, bucket_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in synth.resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def delivery_stream(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    """The records (Parquet) stream; the other one is the event archive (see test_signals_stack.py)."""
    [(logical_id, stream)] = [
        (logical_id, stream)
        for logical_id, stream in of_warehouse(synth, "AWS::KinesisFirehose::DeliveryStream").items()
        if stream["Properties"]["DeliveryStreamName"].endswith("-records")
    ]
    return logical_id, stream["Properties"]


def role_statements(synth: Synthesized, role_id: str) -> list[dict[str, Any]]:
    role = synth.resources("AWS::IAM::Role")[role_id]["Properties"]
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def kind_rules(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """The export rule of each record kind, found by its event pattern."""
    rules = {
        logical_id: rule
        for logical_id, rule in of_warehouse(synth, "AWS::Events::Rule").items()
        if "InputTransformer" in rule["Properties"]["Targets"][0]  # not the archive's rule
    }
    return {
        kind.name: next(
            r["Properties"] for r in rules.values() if r["Properties"]["EventPattern"] == kind.pattern
        )
        for kind in RECORD_KINDS
    }


# -- EventBridge's input transformer, as documented ----------------------------------------------------
_MISSING = object()
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_-]+)>")


def value_at(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for key in path[2:].split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def fill_in(paths: dict[str, str], template: str, event: dict[str, Any]) -> str:
    """The text EventBridge sends the target for `event`."""
    values = {name: value_at(event, path) for name, path in paths.items()}
    out: list[str] = []
    in_string, escaped, i = False, False, 0
    while i < len(template):
        char = template[i]
        match = _PLACEHOLDER.match(template, i) if char == "<" else None
        if match and match[1] in values:
            value = values[match[1]]
            if value is _MISSING:
                text = ""
            elif in_string:
                text = value if isinstance(value, str) else json.dumps(value)
            else:
                text = json.dumps(value)
            out.append(text)
            i = match.end()
            continue
        if char == '"' and not escaped:
            in_string = not in_string
        escaped = char == "\\" and not escaped
        out.append(char)
        i += 1
    return "".join(out)


def envelope(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The EventBridge event a rule sees (detail as the publisher serializes it)."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": SOURCE,
        "account": "123456789012",
        "time": "2025-11-24T16:00:05Z",
        "region": "us-east-1",
        "resources": [],
        "detail": json.loads(json.dumps(detail, default=str)),
    }


@pytest.fixture(scope="module")
def published_events() -> list[dict[str, Any]]:
    """Real published events of every record kind: Stripe events (a customer with every attribution key,
    a subscription, an invoice and a refunded charge without them), a backfill snapshot, a signal, and
    what a reconciliation sweep of a connected account's payouts publishes."""
    stripe_events = [
        stripe_event("customer.created", created=T0, metadata=FULL_METADATA),
        stripe_event("customer.subscription.created", created=T0 + 10),
        stripe_event("invoice.paid", created=T0 + 20, status="paid"),
        stripe_event("charge.refunded", created=T0 + 30, amount_refunded=40),
    ]
    store, publisher = FakeStore(), FakePublisher()
    outcome = process_batch(
        [Message(f"m-{e['id']}", json.dumps(e)) for e in stripe_events],
        store=store,
        publisher=publisher,
        schema=load_metadata_schema(),
    )
    assert outcome.failed_message_ids == []
    published = [envelope(p.detail_type, p.detail) for p in publisher.published]
    snapshot: StoredObject = outcome.processed[1]
    published.append(
        envelope("stripe-middleware.object.backfilled", backfilled_detail(snapshot, "run_0a1b2c3d4e5f"))
    )
    signals, state = FakePublisher(), InMemorySignalState()
    for p in publisher.published:
        detect(
            p.detail_type,
            p.detail,
            state=state,
            publisher=signals,
            config=load_signals_config(),
            model=load_churn_model(),
        )
    published += [envelope(s.detail_type, s.detail) for s in signals.published]
    published += [envelope(*p) for p in published_reconciliation(account="acct_1Connect", livemode=True)]
    return published


# -- the bucket ------------------------------------------------------------------------------------------
def test_the_bucket_is_encrypted_private_tls_only_versioned_and_logged(dev: Synthesized) -> None:
    bucket_id, bucket = data_bucket(dev)
    props = bucket["Properties"]
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert {"Bool": {"aws:SecureTransport": "false"}} in [
        s.get("Condition") for s in statements_on(dev, bucket_id) if s["Effect"] == "Deny"
    ]
    logs_id = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    [delivery] = [s for s in statements_on(dev, logs_id) if s["Effect"] == "Allow"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    logs = dev.resources("AWS::S3::Bucket")[logs_id]["Properties"]
    assert logs["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert logs["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True


def test_the_bucket_moves_parquet_to_infrequent_access_and_expires_what_is_not_kept(dev: Synthesized) -> None:
    rules = {r["Id"]: r for r in data_bucket(dev)[1]["Properties"]["LifecycleConfiguration"]["Rules"]}
    parquet = rules["ParquetToInfrequentAccess"]
    assert parquet["Prefix"] == "records/"
    assert parquet["Transitions"] == [{"StorageClass": "STANDARD_IA", "TransitionInDays": 90}]
    assert parquet["ObjectSizeGreaterThan"] == "131072"  # smaller objects would cost more in IA
    assert (rules["ExpireErrors"]["Prefix"], rules["ExpireErrors"]["ExpirationInDays"]) == ("errors/", 30)
    assert rules["ExpireQueryResults"]["Prefix"] == "athena-results/"
    assert rules["ExpireOldVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert all(r["Status"] == "Enabled" for r in rules.values())


def test_prod_retains_the_warehouse_and_dev_removes_it(dev: Synthesized, prod: Synthesized) -> None:
    kept = (
        "AWS::S3::Bucket",
        "AWS::Glue::Database",
        "AWS::Glue::Table",
        "AWS::KinesisFirehose::DeliveryStream",
    )
    for resource_type in kept:
        assert {r["DeletionPolicy"] for r in of_warehouse(prod, resource_type).values()} == {"Retain"}
        assert {r["DeletionPolicy"] for r in of_warehouse(dev, resource_type).values()} == {"Delete"}


# -- Glue --------------------------------------------------------------------------------------------
def test_the_glue_table_has_the_row_models_columns_as_parquet(dev: Synthesized) -> None:
    [database] = of_warehouse(dev, "AWS::Glue::Database").values()
    [table] = of_warehouse(dev, "AWS::Glue::Table").values()
    table_input = table["Properties"]["TableInput"]
    assert table["Properties"]["DatabaseName"] == database["Properties"]["DatabaseInput"]["Name"]
    assert table_input["Name"] == "records"
    descriptor = table_input["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == [
        (c.name, c.glue_type) for c in DATA_COLUMNS
    ]
    assert [(c["Name"], c["Type"]) for c in table_input["PartitionKeys"]] == [
        (c.name, c.glue_type) for c in PARTITION_COLUMNS
    ]
    names = [c["Name"] for c in descriptor["Columns"] + table_input["PartitionKeys"]]
    assert sorted(names) == sorted(c.name for c in COLUMNS)  # every column once, partitions apart
    assert descriptor["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert descriptor["InputFormat"].endswith("MapredParquetInputFormat")


def test_partitions_are_projected_so_no_crawler_is_needed(dev: Synthesized) -> None:
    [table] = of_warehouse(dev, "AWS::Glue::Table").values()
    parameters = table["Properties"]["TableInput"]["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.record_kind.type"] == "enum"
    assert parameters["projection.record_kind.values"].split(",") == list(KINDS)
    assert parameters["projection.event_date.type"] == "date"
    assert parameters["projection.event_date.format"] == "yyyy-MM-dd"
    assert parameters["projection.event_date.range"].endswith(",NOW+1DAYS")
    template = json.dumps(parameters["storage.location.template"])
    assert "/records/record_kind=${record_kind}/event_date=${event_date}/" in template
    assert not dev.resources("AWS::Glue::Crawler")


# -- Firehose ------------------------------------------------------------------------------------------
def test_firehose_writes_parquet_against_the_table_partitioned_by_kind_and_date(dev: Synthesized) -> None:
    _, stream = delivery_stream(dev)
    assert stream["DeliveryStreamType"] == "DirectPut"
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    s3 = stream["ExtendedS3DestinationConfiguration"]
    conversion = s3["DataFormatConversionConfiguration"]
    assert conversion["Enabled"] is True
    assert conversion["InputFormatConfiguration"] == {"Deserializer": {"OpenXJsonSerDe": {}}}
    assert "ParquetSerDe" in conversion["OutputFormatConfiguration"]["Serializer"]
    schema = conversion["SchemaConfiguration"]
    assert (schema["DatabaseName"], schema["TableName"], schema["VersionId"]) == (
        "stripe_middleware_dev",
        "records",
        "LATEST",
    )
    assert s3["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert s3["Prefix"] == (
        "records/record_kind=!{partitionKeyFromQuery:record_kind}/event_date=!{partitionKeyFromQuery:event_date}/"
    )
    assert s3["ErrorOutputPrefix"].startswith("errors/!{firehose:error-output-type}/")
    [processor] = s3["ProcessingConfiguration"]["Processors"]
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert processor["Type"] == "MetadataExtraction"
    assert parameters == {
        "MetadataExtractionQuery": "{record_kind: .record_kind, event_date: .event_time[0:10]}",
        "JsonParsingEngine": "JQ-1.6",
    }
    assert s3["BufferingHints"]["SizeInMBs"] == BUFFER_MIB >= 64  # what conversion and partitioning need
    assert s3["CompressionFormat"] == "UNCOMPRESSED"  # Parquet compresses inside the file
    logging = s3["CloudWatchLoggingOptions"]
    assert logging["Enabled"] is True
    [group] = of_warehouse(dev, "AWS::Logs::LogGroup").values()
    assert group["Properties"]["LogGroupName"] == "/aws/kinesisfirehose/stripe-middleware-dev-records"


def test_the_delivery_role_writes_its_three_prefixes_reads_the_table_and_logs_nothing_more(
    dev: Synthesized,
) -> None:
    _, stream = delivery_stream(dev)
    role_id = stream["ExtendedS3DestinationConfiguration"]["RoleARN"]["Fn::GetAtt"][0]
    assert stream["ExtendedS3DestinationConfiguration"]["DataFormatConversionConfiguration"][
        "SchemaConfiguration"
    ]["RoleARN"] == {"Fn::GetAtt": [role_id, "Arn"]}
    trust = dev.resources("AWS::IAM::Role")[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "firehose.amazonaws.com"}]
    statements = role_statements(dev, role_id)
    by_action = {a: s for s in statements for a in as_list(s["Action"])}
    assert set(by_action) == {
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:GetBucketLocation",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "glue:GetTable",
        "glue:GetTableVersion",
        "glue:GetTableVersions",
        "logs:PutLogEvents",
    }
    written = json.dumps(by_action["s3:PutObject"]["Resource"])
    assert [written.count(f"/{prefix}/*") for prefix in ("records", "events", "errors")] == [1, 1, 1]
    assert "athena-results" not in written
    glue = json.dumps(by_action["glue:GetTable"]["Resource"])
    assert ":table/stripe_middleware_dev/records" in glue and ":database/stripe_middleware_dev" in glue
    assert ":log-stream:" in json.dumps(by_action["logs:PutLogEvents"]["Resource"])
    assert all(s["Resource"] != "*" and "*" not in str(s["Action"]) for s in statements)


# -- the bus rules --------------------------------------------------------------------------------------
def test_one_rule_per_record_kind_puts_rows_with_retries_and_a_dead_letter_queue(dev: Synthesized) -> None:
    stream_id, _ = delivery_stream(dev)
    rules = kind_rules(dev)
    queues = dev.resources("AWS::SQS::Queue")
    dead_letters = set()
    for rule in rules.values():
        [target] = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [stream_id, "Arn"]}
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400
        dead_letter = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert queues[dead_letter]["Properties"]["SqsManagedSseEnabled"] is True
        dead_letters.add(dead_letter)
        [put] = role_statements(dev, target["RoleArn"]["Fn::GetAtt"][0])
        assert set(put["Action"]) == {"firehose:PutRecord", "firehose:PutRecordBatch"}
        assert {"Fn::GetAtt": [stream_id, "Arn"]} in put["Resource"]  # and the archive's stream
    [dead_letter] = dead_letters
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in dev.resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": dead_letter} in p["Properties"]["Queues"]
    ]
    [allow] = [s for s in policy if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    rule_ids = {k for k, r in of_warehouse(dev, "AWS::Events::Rule").items()}
    assert {a["Fn::GetAtt"][0] for a in allow["Condition"]["ArnEquals"]["aws:SourceArn"]} == rule_ids


def paths_of(column: Column, kind: str) -> set[str]:
    path = column.path(kind)
    return set() if path is None else {path} if isinstance(path, str) else set(path)


@pytest.mark.parametrize("kind", KINDS)
def test_each_rules_input_transformer_reads_every_column_path_of_its_kind(
    dev: Synthesized, kind: str
) -> None:
    transformer = kind_rules(dev)[kind]["Targets"][0]["InputTransformer"]
    paths = transformer["InputPathsMap"]
    assert set(paths.values()) == set().union(*(paths_of(c, kind) for c in DATA_COLUMNS))
    assert len(paths) <= MAX_INPUT_PATHS and len(transformer["InputTemplate"]) <= 8192
    assert set(_PLACEHOLDER.findall(transformer["InputTemplate"])) == set(paths)
    row = json.loads(_PLACEHOLDER.sub("null", transformer["InputTemplate"]))
    assert list(row) == ["record_kind", *(c.name for c in DATA_COLUMNS)]  # event_date: Firehose's JQ
    assert row["record_kind"] == kind


def test_every_published_event_becomes_the_row_local_mode_writes(
    dev: Synthesized, published_events: list[dict[str, Any]]
) -> None:
    rules = kind_rules(dev)
    kinds_seen, campaigns = set(), []
    for event in published_events:
        local = row_of(event)
        if local is None:
            continue  # a detail-type the warehouse does not take (a metadata violation)
        kinds_seen.add(local["record_kind"])
        transformer = rules[local["record_kind"]]["Targets"][0]["InputTransformer"]
        missing = [p for p in transformer["InputPathsMap"].values() if value_at(event, p) is _MISSING]
        assert missing == [], f"{event['detail-type']}: no {missing} in the published detail"
        sent = fill_in(transformer["InputPathsMap"], transformer["InputTemplate"], event)
        row = json.loads(sent)
        assert row == {k: v for k, v in local.items() if k != "event_date"}, event["detail-type"]
        assert row["event_time"][0:10] == local["event_date"]  # what the partitioning JQ extracts
        campaigns.append(row["campaign"])
    assert kinds_seen == set(KINDS)
    assert "partner" in campaigns and None in campaigns  # attribution present, and absent


def test_a_row_model_beyond_eventbridges_limits_fails_synth(monkeypatch: pytest.MonkeyPatch) -> None:
    many = tuple(Column(f"c{i}", "string", "VARCHAR", "", {"event": f"$.detail.c{i}"}) for i in range(101))
    monkeypatch.setattr(warehouse, "DATA_COLUMNS", many)
    with pytest.raises(ValueError, match="input paths"):
        row_transformer(RECORD_KINDS[0])


def test_the_first_projected_date_is_validated() -> None:
    stack = Stack(App(), "Check")
    bus = aws_events.EventBus.from_event_bus_name(stack, "Bus", "stripe-middleware-dev")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        Warehouse(stack, "Warehouse", stage=stage_config("dev"), bus=bus, projection_first_date="2024/01/01")


# -- Athena ----------------------------------------------------------------------------------------------
def test_the_athena_workgroup_enforces_encrypted_results_in_the_bucket_and_a_scan_limit(
    dev: Synthesized,
) -> None:
    bucket_id, _ = data_bucket(dev)
    [workgroup] = of_warehouse(dev, "AWS::Athena::WorkGroup").values()
    configuration = workgroup["Properties"]["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == BYTES_SCANNED_CUTOFF_PER_QUERY
    assert configuration["EngineVersion"]["SelectedEngineVersion"] == "Athena engine version 3"
    results = configuration["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    location = json.dumps(results["OutputLocation"])
    assert bucket_id in location and "/athena-results/" in location


def test_the_views_are_saved_as_named_queries_in_order(dev: Synthesized) -> None:
    [(workgroup_id, _)] = of_warehouse(dev, "AWS::Athena::WorkGroup").items()
    queries = sorted(
        (q["Properties"] for q in of_warehouse(dev, "AWS::Athena::NamedQuery").values()),
        key=lambda q: q["Name"],
    )
    statements = athena_statements()
    assert [(q["Name"], q["QueryString"]) for q in queries] == [
        (f"{n:02d} {view}", sql) for n, (view, sql) in enumerate(statements, start=1)
    ]
    assert {q["Database"] for q in queries} == {"stripe_middleware_dev"}
    assert {json.dumps(q["WorkGroup"]) for q in queries} == {json.dumps({"Ref": workgroup_id})}


def test_the_stack_says_where_the_warehouse_is(dev: Synthesized) -> None:
    outputs = dev.json()["Outputs"]
    names = {"WarehouseBucketName", "AthenaWorkGroupName", "GlueDatabaseName"}
    assert names <= set(outputs) and names <= set(OUTPUT_NAMES)


def test_the_archive_keeps_each_stripe_events_detail_as_retraining_reads_it(
    dev: Synthesized, published_events: list[dict[str, Any]]
) -> None:
    """The archive rule sends `$.detail` of every Stripe event: retraining reads that line back to the very
    detail the signals function learned from."""
    [archive] = [
        r["Properties"]
        for r in of_warehouse(dev, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0].get("InputPath")
    ]
    assert archive["Targets"][0]["InputPath"] == "$.detail"
    [events_kind] = [kind for kind in RECORD_KINDS if kind.name == "event"]
    archived = [e for e in published_events if events_kind.takes(e["detail-type"])]
    assert len(archived) == 4
    for event in archived:
        line = json.loads(json.dumps(event["detail"]))  # what Firehose writes and S3EventArchive reads
        found = detail_of(line)
        assert found is not None and found[0] == event["detail-type"]
        assert facts_of(*found) == facts_of(event["detail-type"], event["detail"])
