"""Warehouse: every published Stripe event, backfilled object, signal and reconciliation result as one
Parquet row in S3, queried with Athena. No Lambda on the path:

    bus rule (one per record kind, input transformer → one flat JSON row)
      → Amazon Data Firehose (JSON → Parquet against the Glue table, partitioned by JQ)
      → s3://<bucket>/records/record_kind=<k>/event_date=<YYYY-MM-DD>/ → Glue table `records` → Athena

The row model (columns, types, each kind's JSON paths, the partition queries) is
`stripe_middleware.export.rows`; everything here is derived from it.

Rows are at least once: EventBridge and Firehose both retry, the processor publishes again after a crash,
so the analytics views de-duplicate on `record_id`.

The bucket is encrypted with S3-managed keys (SSE-S3), not KMS: the server access log bucket can only be
SSE-S3, Athena's readers and Firehose then need no key grants, and Athena's many small GETs cost no KMS
requests. The bucket holds billing facts, not card data.

Every JSON path of a kind must exist in every published detail of that kind (its value may be null): for
a path that is not in the event EventBridge creates no variable ("that variable isn't created and won't
appear in the output", eb-transform-target-input; LocalStack's AWS-recorded tests show an empty value),
so an unquoted placeholder leaves the row invalid JSON, which format conversion sends to `errors/`
instead of the table. tests/infra/test_warehouse_stack.py fills the templates in from real details.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_events as events
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.durable_queue import dead_letter_queue
from infra.nag import acknowledge
from stripe_middleware.adapters.s3 import EVENTS_PREFIX
from stripe_middleware.export.rows import (
    DATA_COLUMNS,
    EVENT,
    KINDS,
    PARTITION_COLUMNS,
    PARTITION_QUERIES,
    RECORD_ID_JOIN,
    RECORD_KINDS,
    RecordKind,
)
from stripe_middleware.shared.contract import SERVICE
from stripe_middleware_dev.analytics import athena_statements

TABLE = "records"
RECORDS_PREFIX = f"{TABLE}/"
ERRORS_PREFIX = "errors/"
ERRORS_OUTPUT_PREFIX = ERRORS_PREFIX + "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
ATHENA_RESULTS_PREFIX = "athena-results/"
ACCESS_LOGS_PREFIX = "warehouse/"
# EventBridge input transformer limits (API_InputTransformer).
MAX_INPUT_PATHS = 100
MAX_INPUT_TEMPLATE_CHARS = 8192
# Firehose: record format conversion and dynamic partitioning both need a buffer of at least 64 MiB. A
# partition's file closes at 128 MiB or after 15 minutes, the longest Firehose allows (it may hold a batch
# 1.5 times as long): at this product's volumes files are small, and every file costs a Firehose object
# fee, a PUT, and a GET in each Athena scan for as long as it is kept, so fewer files beat fresher rows
# (revenue analytics can wait 20 minutes). A day makes at most 96 files per active partition.
BUFFER_MIB = 128
BUFFER_SECONDS = 900
PARTITIONING_RETRY = Duration.minutes(5)  # then the record goes to errors/
# Bus → Firehose: retry throttling for a day (EventBridge's maximum), then the export dead-letter queue.
RULE_MAX_EVENT_AGE = Duration.hours(24)
RULE_RETRY_ATTEMPTS = 185
# Lifecycle: Parquet moves to Infrequent Access after 90 days (only files of 128 KiB and more: IA bills
# every smaller object as 128 KiB); errors, query results and old versions go.
INFREQUENT_ACCESS_AFTER = Duration.days(90)
INFREQUENT_ACCESS_MIN_BYTES = 128 * 1024
ERRORS_EXPIRE_AFTER = Duration.days(30)
ATHENA_RESULTS_EXPIRE_AFTER = Duration.days(7)
NONCURRENT_VERSIONS_EXPIRE_AFTER = Duration.days(30)
ACCESS_LOGS_EXPIRE_AFTER = Duration.days(90)
# Athena: a query that would scan more than this is cancelled (10 GiB ≈ $0.05 at $5 per TB).
BYTES_SCANNED_CUTOFF_PER_QUERY = int(Size.gibibytes(10).to_bytes())
ATHENA_ENGINE = "Athena engine version 3"
# Partition projection: event dates from here to tomorrow (UTC), so no crawler and no MSCK REPAIR. Rows
# reach the warehouse at most 30 days after the event (catch-up's reach); 2024 predates any deployment.
# Every query without an event_date filter lists each projected partition (an S3 LIST, billed like a
# PUT), empty or not: a later first date makes the views cheaper (bench/cost.py, s3_lists_for_queries).
PROJECTION_FIRST_DATE = "2024-01-01"


@dataclass(frozen=True)
class RowTransformer:
    """An EventBridge input transformer that turns an event of one record kind into its `records` row."""

    paths: dict[str, str]  # InputPathsMap: variable -> JSON path
    template: str  # InputTemplate: a JSON object, each column a literal or a placeholder


def row_transformer(kind: RecordKind) -> RowTransformer:
    """The kind's row as an input template: `record_kind` as a literal, each data column by its path
    (unquoted, so EventBridge inserts the JSON value: strings quoted, numbers, booleans and null as they
    are), `null` where the kind has no path, and joined ids as one string. `event_date` is left to
    Firehose's partitioning query."""
    paths: dict[str, str] = {}
    fields = [f'"record_kind":{json.dumps(kind.name)}']
    for column in DATA_COLUMNS:
        path = column.path(kind.name)
        if path is None:
            value = "null"
        elif isinstance(path, str):
            paths[column.name] = path
            value = f"<{column.name}>"
        else:
            names = [f"{column.name}_{i}" for i in range(len(path))]
            paths.update(zip(names, path, strict=True))
            value = '"' + RECORD_ID_JOIN.join(f"<{name}>" for name in names) + '"'
        fields.append(f"{json.dumps(column.name)}:{value}")
    transformer = RowTransformer(paths, "{" + ",".join(fields) + "}")
    if len(paths) > MAX_INPUT_PATHS or len(transformer.template) > MAX_INPUT_TEMPLATE_CHARS:
        raise ValueError(
            f"the {kind.name} row needs {len(paths)} input paths and {len(transformer.template)} template "
            f"characters; EventBridge allows {MAX_INPUT_PATHS} and {MAX_INPUT_TEMPLATE_CHARS}"
        )
    return transformer


def partitioning_query() -> str:
    """Firehose's JQ over a row: `{record_kind: .record_kind, event_date: .event_time[0:10]}`."""
    return "{" + ", ".join(f"{key}: {query}" for key, query in PARTITION_QUERIES.items()) + "}"


def records_prefix() -> str:
    """`records/record_kind=!{partitionKeyFromQuery:record_kind}/event_date=!{...:event_date}/`."""
    keys = [column.name for column in PARTITION_COLUMNS]
    if keys != list(PARTITION_QUERIES):
        raise ValueError(f"partition columns {keys} and partition queries {list(PARTITION_QUERIES)} differ")
    return RECORDS_PREFIX + "".join(f"{key}=!{{partitionKeyFromQuery:{key}}}/" for key in keys)


class Warehouse(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        bus: events.IEventBus,
        projection_first_date: str = PROJECTION_FIRST_DATE,
    ) -> None:
        super().__init__(scope, construct_id)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", projection_first_date):
            raise ValueError(f"the warehouse's first date is YYYY-MM-DD, not {projection_first_date!r}")
        self.projection_first_date = projection_first_date
        stack = Stack.of(self)
        self.database_name = f"{SERVICE}_{stage.name}".replace("-", "_")  # Athena: no hyphens unquoted
        self.table_name = TABLE
        self.workgroup_name = f"{SERVICE}-{stage.name}"

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption log delivery supports
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireLogs", expiration=ACCESS_LOGS_EXPIRE_AFTER)],
            removal_policy=stage.removal_policy,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ParquetToInfrequentAccess",
                    prefix=RECORDS_PREFIX,
                    object_size_greater_than=INFREQUENT_ACCESS_MIN_BYTES,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=INFREQUENT_ACCESS_AFTER,
                        )
                    ],
                ),
                s3.LifecycleRule(id="ExpireErrors", prefix=ERRORS_PREFIX, expiration=ERRORS_EXPIRE_AFTER),
                s3.LifecycleRule(
                    id="ExpireQueryResults",
                    prefix=ATHENA_RESULTS_PREFIX,
                    expiration=ATHENA_RESULTS_EXPIRE_AFTER,
                ),
                s3.LifecycleRule(
                    id="ExpireOldVersions",
                    noncurrent_version_expiration=NONCURRENT_VERSIONS_EXPIRE_AFTER,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
            removal_policy=stage.removal_policy,
        )
        bucket_resource: s3.CfnBucket = self.bucket.node.default_child  # type: ignore[assignment]
        # CloudFormation types the size filter as a string; CDK writes a number.
        bucket_resource.add_property_override(
            "LifecycleConfiguration.Rules.0.ObjectSizeGreaterThan", str(INFREQUENT_ACCESS_MIN_BYTES)
        )
        # Server access logs by bucket policy (not the log-delivery ACL, which owner-enforced buckets refuse).
        bucket_resource.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
            destination_bucket_name=self.access_logs.bucket_name, log_file_prefix=ACCESS_LOGS_PREFIX
        )
        self.access_logs.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[self.access_logs.arn_for_objects(f"{ACCESS_LOGS_PREFIX}*")],
                conditions={
                    "ArnLike": {"aws:SourceArn": self.bucket.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )

        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="stripe-middleware warehouse: events, objects, signals, reconciliations",
            ),
        )
        self.database.apply_removal_policy(stage.removal_policy)
        self.table = glue.CfnTable(
            self,
            "RecordsTable",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=TABLE,
                description="a row per published Stripe event, object, signal, payout record, discrepancy",
                table_type="EXTERNAL_TABLE",
                parameters=self._projection(),
                partition_keys=[
                    glue.CfnTable.ColumnProperty(
                        name=column.name, type=column.glue_type, comment=column.description
                    )
                    for column in PARTITION_COLUMNS
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[
                        glue.CfnTable.ColumnProperty(
                            name=column.name, type=column.glue_type, comment=column.description
                        )
                        for column in DATA_COLUMNS
                    ],
                    location=self.bucket.s3_url_for_object(RECORDS_PREFIX),
                    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                        parameters={"serialization.format": "1"},
                    ),
                ),
            ),
        )
        self.table.node.add_dependency(self.database)
        self.table.apply_removal_policy(stage.removal_policy)

        self.stream = self._delivery_stream(stage, stack)
        self.archive_stream = self._archive_stream(stage)
        self._rules(stage, bus)
        self.workgroup = self._workgroup(stage)

    def _projection(self) -> dict[str, str]:
        """Partition projection: Athena computes the partitions from the S3 layout, no crawler needed."""
        return {
            "classification": "parquet",
            "projection.enabled": "true",
            "projection.record_kind.type": "enum",
            "projection.record_kind.values": ",".join(KINDS),
            "projection.event_date.type": "date",
            "projection.event_date.format": "yyyy-MM-dd",
            "projection.event_date.range": f"{self.projection_first_date},NOW+1DAYS",
            "projection.event_date.interval": "1",
            "projection.event_date.interval.unit": "DAYS",
            "storage.location.template": self.bucket.s3_url_for_object(RECORDS_PREFIX)
            + "".join(f"{column.name}=${{{column.name}}}/" for column in PARTITION_COLUMNS),
        }

    def _delivery_stream(self, stage: StageConfig, stack: Stack) -> firehose.CfnDeliveryStream:
        Stream = firehose.CfnDeliveryStream  # its property types, readably
        stream_name = f"{SERVICE}-{stage.name}-{TABLE}"
        self.delivery_logs = logs.LogGroup(
            self,
            "DeliveryLogs",
            log_group_name=f"/aws/kinesisfirehose/{stream_name}",
            retention=stage.log_retention,
            removal_policy=stage.removal_policy,
        )
        log_stream = logs.LogStream(
            self,
            "DeliveryLogStream",
            log_group=self.delivery_logs,
            log_stream_name="DestinationDelivery",
            removal_policy=stage.removal_policy,
        )
        self.archive_log_stream = logs.LogStream(
            self,
            "ArchiveDeliveryLogStream",
            log_group=self.delivery_logs,
            log_stream_name="ArchiveDelivery",
            removal_policy=stage.removal_policy,
        )
        glue_resources = [
            stack.format_arn(service="glue", resource="catalog"),
            stack.format_arn(service="glue", resource="database", resource_name=self.database_name),
            stack.format_arn(service="glue", resource="table", resource_name=f"{self.database_name}/{TABLE}"),
        ]
        # Exactly what delivery needs: write Parquet and errors under their prefixes, read the table's
        # schema, log delivery errors to its one stream.
        self.delivery_role = iam.Role(
            self,
            "DeliveryRole",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": Aws.ACCOUNT_ID}}
            ),
            description="Amazon Data Firehose: write the warehouse's Parquet files",
            inline_policies={
                "Delivery": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                            resources=[
                                self.bucket.arn_for_objects(f"{RECORDS_PREFIX}*"),
                                self.bucket.arn_for_objects(f"{EVENTS_PREFIX}*"),
                                self.bucket.arn_for_objects(f"{ERRORS_PREFIX}*"),
                            ],
                        ),
                        iam.PolicyStatement(
                            actions=[
                                "s3:GetBucketLocation",
                                "s3:ListBucket",
                                "s3:ListBucketMultipartUploads",
                            ],
                            resources=[self.bucket.bucket_arn],
                        ),
                        iam.PolicyStatement(
                            actions=["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
                            resources=glue_resources,
                        ),
                        iam.PolicyStatement(
                            actions=["logs:PutLogEvents"],
                            resources=[
                                stack.format_arn(
                                    service="logs",
                                    resource="log-group",
                                    resource_name=f"{self.delivery_logs.log_group_name}:log-stream:"
                                    f"{stream.log_stream_name}",
                                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                                )
                                for stream in (log_stream, self.archive_log_stream)
                            ],
                        ),
                    ]
                )
            },
        )
        bucket_id = stack.get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            self.delivery_role,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{RECORDS_PREFIX}*]",
            "Firehose names each Parquet file itself (partition, time, random suffix); the role may write "
            "only under the records/ prefix.",
        )
        acknowledge(
            self.delivery_role,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{EVENTS_PREFIX}*]",
            "Firehose names each archive file itself (hour, random suffix); the role may write only under "
            "the events/ prefix.",
        )
        acknowledge(
            self.delivery_role,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{ERRORS_PREFIX}*]",
            "Firehose names each error file itself (error type, date, random suffix); the role may write "
            "only under the errors/ prefix.",
        )
        stream = Stream(
            self,
            "DeliveryStream",
            delivery_stream_name=stream_name,
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=(
                Stream.DeliveryStreamEncryptionConfigurationInputProperty(key_type="AWS_OWNED_CMK")
            ),
            extended_s3_destination_configuration=Stream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=self.delivery_role.role_arn,
                prefix=records_prefix(),
                error_output_prefix=ERRORS_OUTPUT_PREFIX,
                buffering_hints=Stream.BufferingHintsProperty(
                    interval_in_seconds=BUFFER_SECONDS, size_in_m_bs=BUFFER_MIB
                ),
                compression_format="UNCOMPRESSED",  # Parquet compresses its own pages (Snappy)
                cloud_watch_logging_options=Stream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=self.delivery_logs.log_group_name,
                    log_stream_name=log_stream.log_stream_name,
                ),
                data_format_conversion_configuration=Stream.DataFormatConversionConfigurationProperty(
                    enabled=True,
                    input_format_configuration=Stream.InputFormatConfigurationProperty(
                        deserializer=Stream.DeserializerProperty(
                            open_x_json_ser_de=Stream.OpenXJsonSerDeProperty()
                        )
                    ),
                    output_format_configuration=Stream.OutputFormatConfigurationProperty(
                        serializer=Stream.SerializerProperty(
                            parquet_ser_de=Stream.ParquetSerDeProperty(compression="SNAPPY")
                        )
                    ),
                    schema_configuration=Stream.SchemaConfigurationProperty(
                        catalog_id=Aws.ACCOUNT_ID,
                        database_name=self.database_name,
                        table_name=TABLE,
                        region=Aws.REGION,
                        role_arn=self.delivery_role.role_arn,
                        version_id="LATEST",
                    ),
                ),
                dynamic_partitioning_configuration=Stream.DynamicPartitioningConfigurationProperty(
                    enabled=True,
                    retry_options=Stream.RetryOptionsProperty(
                        duration_in_seconds=int(PARTITIONING_RETRY.to_seconds())
                    ),
                ),
                processing_configuration=Stream.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        Stream.ProcessorProperty(
                            type="MetadataExtraction",
                            parameters=[
                                Stream.ProcessorParameterProperty(
                                    parameter_name="MetadataExtractionQuery",
                                    parameter_value=partitioning_query(),
                                ),
                                Stream.ProcessorParameterProperty(
                                    parameter_name="JsonParsingEngine", parameter_value="JQ-1.6"
                                ),
                            ],
                        )
                    ],
                ),
                s3_backup_mode="Disabled",
            ),
        )
        stream.node.add_dependency(self.table)  # format conversion reads the table's schema on creation
        stream.apply_removal_policy(stage.removal_policy)
        return stream

    def _archive_stream(self, stage: StageConfig) -> firehose.CfnDeliveryStream:
        """The event archive: every Stripe event's published detail, one JSON line each, gzipped, under
        events/YYYY/MM/DD/HH/ (arrival hour, UTC). The churn model is retrained from it, and `signals
        train --events` reads its files as they are."""
        Stream = firehose.CfnDeliveryStream
        stream = Stream(
            self,
            "ArchiveStream",
            delivery_stream_name=f"{SERVICE}-{stage.name}-events",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=(
                Stream.DeliveryStreamEncryptionConfigurationInputProperty(key_type="AWS_OWNED_CMK")
            ),
            extended_s3_destination_configuration=Stream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=self.delivery_role.role_arn,
                prefix=EVENTS_PREFIX + "!{timestamp:yyyy/MM/dd/HH}/",
                error_output_prefix=ERRORS_OUTPUT_PREFIX,
                buffering_hints=Stream.BufferingHintsProperty(
                    interval_in_seconds=BUFFER_SECONDS, size_in_m_bs=BUFFER_MIB
                ),
                compression_format="GZIP",
                cloud_watch_logging_options=Stream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=self.delivery_logs.log_group_name,
                    log_stream_name=self.archive_log_stream.log_stream_name,
                ),
                processing_configuration=Stream.ProcessingConfigurationProperty(
                    enabled=True, processors=[Stream.ProcessorProperty(type="AppendDelimiterToRecord")]
                ),
                s3_backup_mode="Disabled",
            ),
        )
        stream.apply_removal_policy(stage.removal_policy)
        return stream

    def _target(self, stream: firehose.CfnDeliveryStream, **shape: Any) -> events.CfnRule.TargetProperty:
        """A bus rule's target: the delivery stream, retried for a day, then the export dead-letter queue."""
        return events.CfnRule.TargetProperty(
            id="DeliveryStream",
            arn=stream.attr_arn,
            role_arn=self.put_records_role.role_arn,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self.dead_letter_queue.queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_event_age_in_seconds=int(RULE_MAX_EVENT_AGE.to_seconds()),
                maximum_retry_attempts=RULE_RETRY_ATTEMPTS,
            ),
            **shape,
        )

    def _rules(self, stage: StageConfig, bus: events.IEventBus) -> None:
        """One bus rule per record kind, each turning its events into rows for the delivery stream."""
        self.dead_letter_queue = dead_letter_queue(self, "ExportDeadLetterQueue", stage)
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the export rules: rows Firehose did not take.",
        )
        self.put_records_role = iam.Role(
            self,
            "PutRecordsRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description="EventBridge: put warehouse rows into the delivery stream",
            inline_policies={
                "PutRecords": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=["firehose:PutRecord", "firehose:PutRecordBatch"],
                            resources=[self.stream.attr_arn, self.archive_stream.attr_arn],
                        )
                    ]
                )
            },
        )
        self.rules: dict[str, events.CfnRule] = {}
        for kind in RECORD_KINDS:
            transformer = row_transformer(kind)
            rule = events.CfnRule(
                self,
                f"{kind.name.capitalize()}Rows",
                event_bus_name=bus.event_bus_name,
                description=f"warehouse rows: {kind.description}",
                event_pattern=dict(kind.pattern),
                state="ENABLED",
                targets=[
                    self._target(
                        self.stream,
                        input_transformer=events.CfnRule.InputTransformerProperty(
                            input_paths_map=transformer.paths, input_template=transformer.template
                        ),
                    )
                ],
            )
            self.rules[kind.name] = rule
        [stripe_events] = [kind for kind in RECORD_KINDS if kind.name == EVENT]
        self.archive_rule = events.CfnRule(
            self,
            "ArchiveEvents",
            event_bus_name=bus.event_bus_name,
            description="event archive: every Stripe event's detail, one JSON line each",
            event_pattern=dict(stripe_events.pattern),
            state="ENABLED",
            targets=[self._target(self.archive_stream, input_path="$.detail")],
        )
        self.dead_letter_queue.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self.dead_letter_queue.queue_arn],
                conditions={
                    "ArnEquals": {
                        "aws:SourceArn": [r.attr_arn for r in (*self.rules.values(), self.archive_rule)]
                    }
                },
            )
        )

    def _workgroup(self, stage: StageConfig) -> athena.CfnWorkGroup:
        workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=self.workgroup_name,
            description="stripe-middleware analytics: the records table and its views",
            recursive_delete_option=stage.removal_policy == RemovalPolicy.DESTROY,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF_PER_QUERY,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version=ATHENA_ENGINE
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.bucket.s3_url_for_object(ATHENA_RESULTS_PREFIX),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )
        workgroup.apply_removal_policy(stage.removal_policy)
        # The analytics views (analytics/NN_<view>.sql), saved in the workgroup: run them once, in order,
        # after a deploy that changed them (each view reads `records` and the views before it).
        self.named_queries: list[athena.CfnNamedQuery] = []
        for number, (view, statement) in enumerate(athena_statements(), start=1):
            query = athena.CfnNamedQuery(
                self,
                f"View-{view}",
                name=f"{number:02d} {view}",
                description=f"Create the {view} view (run the views in their number order)",
                database=self.database_name,
                work_group=workgroup.ref,
                query_string=statement,
            )
            query.node.add_dependency(self.database)
            self.named_queries.append(query)
        return workgroup
