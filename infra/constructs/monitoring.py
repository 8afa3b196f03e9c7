"""Alarms and the dashboard (cdk-monitoring-constructs), every metric named from the contract.

Every alarm notifies one SNS topic (KMS-encrypted, TLS-only; an e-mail subscription with `-c alarmEmail=`),
is named `stripe-middleware-<stage>-<name>`, and has its runbook line in the README (Operations → Alarms; a
test keeps the two lists equal). Thresholds that differ by stage are StageConfig data.

A CloudWatch alarm matches a metric on its whole dimension set and cannot SEARCH, so every metric here names
`service` and exactly the dimensions `METRIC_DIMENSIONS` declares; graphs split "by reason / kind / outcome"
with SEARCH expressions. Functions are found, not listed: every PythonFunction built before this construct
gets its errors, throttles and duration on the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

import cdk_monitoring_constructs as cmc
from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.durable_queue import DurableQueue
from infra.constructs.python_function import PythonFunction
from stripe_middleware.shared.contract import METRIC_DIMENSIONS, METRICS_NAMESPACE, SERVICE, Metric

PERIOD = Duration.minutes(5)
GATEWAY_RATE_PERIOD = Duration.minutes(15)
CATCHUP_PERIOD = Duration.hours(1)  # catch-up runs every `catchupMinutes`: an hour holds at least one run
LATENCY_PERIODS = 3  # a redrive or a burst of late deliveries lasts a period or two; a slow pipe lasts longer
INVALID_SIGNATURE = "invalid_signature"  # WebhookRejected's `reason` when no secret matches the signature
RUNBOOK = "Runbook: README.md, Operations → Alarms."
SUM, P50, P99 = "Sum", "p50", "p99"


class AlarmText(TypedDict):
    """What every alarm gets: its name, what it means (the README says what to do), missing data is fine."""

    alarm_name_override: str
    alarm_description_override: str
    treat_missing_data_override: cloudwatch.TreatMissingData


def service(function: str) -> str:
    """The `service` dimension of the metrics `functions/<function>/` emits."""
    return f"{SERVICE}-{function}"


@dataclass(frozen=True)
class Graph:
    """A dashboard graph of metrics that one function (`functions/<function>/`) emits."""

    title: str
    function: str
    metrics: tuple[Metric, ...]
    by: str | None = None  # the dimension to split by (SEARCH); needed for a metric emitted with one
    statistics: tuple[str, ...] = (SUM,)


LATENCY = (P50, P99)
# The dashboard's metric sections, in order. A new metric is one Graph here: its name in contract.Metric,
# its dimensions besides `service` in contract.METRIC_DIMENSIONS.
SECTIONS: Mapping[str, tuple[Graph, ...]] = {
    "Webhooks (ingest)": (
        Graph("Received by route", "ingest", (Metric.WEBHOOK_RECEIVED,), by="route"),
        Graph("Enqueued by route", "ingest", (Metric.WEBHOOK_ENQUEUED,), by="route"),
        Graph("Rejected by reason", "ingest", (Metric.WEBHOOK_REJECTED,), by="reason"),
        Graph("503s: not made durable (Stripe retries)", "ingest", (Metric.WEBHOOK_NOT_DURABLE,)),
        Graph("Stripe → enqueued (ms)", "ingest", (Metric.STRIPE_TO_ENQUEUED_LATENCY,), statistics=LATENCY),
    ),
    "Processing": (
        Graph(
            "Throughput",
            "processor",
            (Metric.EVENTS_RECEIVED, Metric.EVENTS_PROCESSED, Metric.EVENTS_PUBLISHED),
        ),
        Graph("Duplicates and stale events", "processor", (Metric.DUPLICATES, Metric.STALE_EVENTS)),
        Graph(
            "Failures and metadata violations",
            "processor",
            (Metric.PROCESSING_FAILURES, Metric.METADATA_VIOLATIONS),
        ),
        Graph("Stripe → stored (ms)", "processor", (Metric.STRIPE_TO_STORED_LATENCY,), statistics=LATENCY),
    ),
    "Commands and reads": (
        Graph(
            "Commands API",
            "commands_api",
            (Metric.COMMANDS_SUBMITTED, Metric.COMMANDS_REJECTED, Metric.COMMAND_STATUS_READS),
        ),
        Graph(
            "Gateway outcomes",
            "gateway",
            (Metric.COMMANDS_SUCCEEDED, Metric.COMMANDS_FAILED, Metric.GATEWAY_UNAVAILABLE),
        ),
        Graph(
            "Gateway waits (Stripe 429s, 5xx, busy rate limit) and Stripe 429s alone",
            "gateway",
            (Metric.COMMANDS_QUEUED, Metric.STRIPE_RATE_LIMITED),
        ),
        Graph("Read API requests", "read_api", (Metric.READ_REQUESTS,)),
    ),
    "History: backfill and catch-up": (
        Graph(
            "Backfill progress",
            "backfill",
            (Metric.BACKFILL_PAGES, Metric.BACKFILL_OBJECTS, Metric.BACKFILL_STORED, Metric.BACKFILL_POISON),
        ),
        Graph("Backfill: Stripe 429 / 5xx retried", "backfill", (Metric.STRIPE_RETRIES,)),
        Graph(
            "Catch-up (recovered: webhooks missed)",
            "catchup",
            (Metric.CATCHUP_EVENTS_LISTED, Metric.CATCHUP_EVENTS_RECOVERED, Metric.CATCHUP_GAP),
        ),
        Graph("Catch-up: Stripe 429 / 5xx retried", "catchup", (Metric.STRIPE_RETRIES,)),
    ),
    "Signals": (
        Graph(
            "Events, facts, failures",
            "signals",
            (Metric.SIGNAL_EVENTS_RECEIVED, Metric.SIGNAL_FACTS, Metric.SIGNAL_FAILURES),
        ),
        Graph("Signals raised by kind", "signals", (Metric.SIGNALS_RAISED,), by="kind"),
        Graph("Stripe → signal (ms)", "signals", (Metric.STRIPE_TO_SIGNAL_LATENCY,), statistics=LATENCY),
        Graph("Approved churn model unusable", "signals", (Metric.CHURN_MODEL_UNUSABLE,)),
        Graph("Retraining outcomes", "retrain", (Metric.CHURN_MODEL_RETRAININGS,), by="outcome"),
        Graph(
            "Retraining: events read, lines skipped",
            "retrain",
            (Metric.CHURN_MODEL_TRAINING_EVENTS, Metric.CHURN_MODEL_SKIPPED_LINES),
            by="outcome",
        ),
        Graph(
            "One-off buyers' daily re-score",
            "rescore",
            (Metric.BUYERS_RESCORED, Metric.BUYER_RISK_CHANGES, Metric.BUYER_RESCORE_FAILURES),
        ),
    ),
    "Reconciliation": (
        Graph("Payouts reconciled by status", "reconcile", (Metric.PAYOUTS_RECONCILED,), by="status"),
        Graph("Discrepancies by kind", "reconcile", (Metric.RECONCILIATION_DISCREPANCIES,), by="kind"),
        Graph(
            "Repairs, Stripe calls, failures",
            "reconcile",
            (
                Metric.RECONCILIATION_REPAIRED,
                Metric.RECONCILIATION_NOT_JUDGED,
                Metric.RECONCILIATION_STRIPE_CALLS,
                Metric.RECONCILIATION_FAILURES,
            ),
        ),
    ),
    "Dunning": (
        Graph(
            "Workflows started, start failures",
            "dunning_start",
            (Metric.DUNNING_STARTED, Metric.DUNNING_START_FAILURES),
        ),
        Graph("Steps by stage", "dunning", (Metric.DUNNING_STEPS,), by="stage"),
        Graph("Gateway commands by operation", "dunning", (Metric.DUNNING_COMMANDS,), by="operation"),
    ),
}


def contract_metric(
    function: str,
    metric: Metric,
    statistic: str,
    *,
    period: Duration = PERIOD,
    label: str | None = None,
    **dimensions: str,
) -> cloudwatch.Metric:
    """`metric` as `functions/<function>/` emits it: `service` plus every dimension the contract declares."""
    declared = set(METRIC_DIMENSIONS.get(metric, ()))
    if set(dimensions) != declared:
        raise ValueError(f"{metric} is emitted with service + {sorted(declared)}, not {sorted(dimensions)}")
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=metric,
        dimensions_map={"service": service(function), **dimensions},
        statistic=statistic,
        period=period,
        label=label or (metric if statistic == SUM else f"{metric} {statistic}"),
    )


def search_by(function: str, metric: Metric, by: str, statistic: str) -> cloudwatch.MathExpression:
    """One line per value of `by` (a reason, a kind, an outcome): for graphs only, alarms cannot SEARCH."""
    declared = METRIC_DIMENSIONS.get(metric, ())
    if declared != (by,):
        raise ValueError(f"{metric} is emitted with service + {list(declared)}: it cannot be split by {by!r}")
    schema = ",".join(f'"{part}"' for part in (METRICS_NAMESPACE, by, "service"))
    query = f'{{{schema}}} MetricName="{metric}" service="{service(function)}"'
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{query}', '{statistic}', {int(PERIOD.to_seconds())})",
        using_metrics={},
        label=f"{metric} ${{PROP('Dim.{by}')}}",
        period=PERIOD,
    )


def graph_metrics(graph: Graph) -> list[cloudwatch.Metric | cloudwatch.MathExpression]:
    if graph.by is not None:
        return [search_by(graph.function, m, graph.by, s) for m in graph.metrics for s in graph.statistics]
    return [contract_metric(graph.function, m, s) for m in graph.metrics for s in graph.statistics]


class AlarmTopic(Construct):
    """The topic every alarm notifies: KMS-encrypted with a key CloudWatch may use (the AWS-managed SNS key
    lets no alarm publish), TLS-only, published to only by this stack's alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alarm_name_prefix: str,
        removal_policy: RemovalPolicy,
        alarm_email: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if alarm_email is not None and "@" not in alarm_email:
            raise ValueError(f"alarm_email must be an e-mail address, not {alarm_email!r}")
        cloudwatch_service = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        self.key = kms.Key(
            self,
            "Key",
            description=f"{alarm_name_prefix}: alarm notifications",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.key.grant(cloudwatch_service, "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self, "Topic", display_name=f"{alarm_name_prefix} alarms", master_key=self.key, enforce_ssl=True
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsOfThisStackPublish",
                principals=[cloudwatch_service],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": Stack.of(self).format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name=f"{alarm_name_prefix}-*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))


class Monitoring(Construct):
    """The alarm topic, the alarms and the `stripe-middleware-<stage>` dashboard.

    Pass every queue and state machine of the stack (a test fails for one missing): `events_queue` and
    `work_queues` get an oldest-message alarm and, on their DLQ, an any-message alarm; `dead_letter_queues`
    (queues that are only a DLQ) the any-message alarm; `state_machines` a failed-executions alarm.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        api: apigw.IHttpApi,
        events_queue: DurableQueue,
        work_queues: Mapping[str, DurableQueue],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        state_machines: Mapping[str, sfn.IStateMachine],
        alarm_email: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        self.alarm_name_prefix = f"{SERVICE}-{stage.name}"
        self.topic = AlarmTopic(
            self,
            "Alarms",
            alarm_name_prefix=self.alarm_name_prefix,
            removal_policy=stage.removal_policy,
            alarm_email=alarm_email,
        ).topic
        action = cmc.SnsAlarmActionStrategy(on_alarm_topic=self.topic, on_ok_topic=self.topic)
        self.facade = cmc.MonitoringFacade(
            self,
            "Facade",
            alarm_factory_defaults=cmc.AlarmFactoryDefaults(
                alarm_name_prefix=self.alarm_name_prefix,
                actions_enabled=True,
                action=action,
                datapoints_to_alarm=1,
            ),
            metric_factory_defaults=cmc.MetricFactoryDefaults(namespace=METRICS_NAMESPACE, period=PERIOD),
            dashboard_factory=cmc.DefaultDashboardFactory(
                self,
                "Dashboards",
                dashboard_name_prefix=self.alarm_name_prefix,
                create_dashboard=True,
                create_summary_dashboard=False,
                create_alarm_dashboard=False,
            ),
        )
        self.facade.add_large_header(f"{SERVICE} ({stage.name})")
        self._pipe_alarms()
        self.facade.monitor_api_gateway_v2_http_api(
            api=api,
            human_readable_name="HTTP API (webhooks, read and command routes)",
            alarm_friendly_name="HttpApi",
            add5xx_count_alarm={
                "Critical": cmc.ErrorCountThreshold(
                    max_error_count=stage.alarm_http_api_5xx,
                    **self._alarm(
                        "http-api-5xx",
                        "The HTTP API answered 5xx: webhooks not arriving (Stripe retries) or reads failing.",
                    ),
                )
            },
        )
        for title, graphs in SECTIONS.items():
            self.facade.monitor_custom(
                human_readable_name=title,
                alarm_friendly_name=title,
                metric_groups=[
                    cmc.CustomMetricGroup(title=graph.title, metrics=graph_metrics(graph)) for graph in graphs
                ],
            )
        self._work_queue("events", events_queue, stage.alarm_events_age_seconds)
        for name, queue in work_queues.items():
            # A message retried once after a failure is as old as the visibility timeout: not yet an alarm.
            max_age = int(queue.visibility_timeout.to_seconds()) + stage.alarm_work_queue_age_seconds
            self._work_queue(name, queue, max_age)
        for name, dead_letters in dead_letter_queues.items():
            self.facade.monitor_sqs_queue(
                queue=dead_letters,
                human_readable_name=f"{name} dead-letter queue",
                alarm_friendly_name=f"{name}-dlq",
                add_queue_max_size_alarm={"Critical": self._dead_letters_alarm(name)},
            )
        for name, state_machine in state_machines.items():
            self.facade.monitor_step_function(
                state_machine=state_machine,
                human_readable_name=f"{name} state machine",
                alarm_friendly_name=name,
                add_failed_execution_count_alarm={
                    "Critical": cmc.ErrorCountThreshold(
                        max_error_count=0,
                        **self._alarm(
                            f"{name}-failed-executions",
                            f"An execution of the {name} state machine failed: its history says why.",
                        ),
                    )
                },
            )
        self._functions()

    def _alarm(self, name: str, meaning: str) -> AlarmText:
        """`stripe-middleware-<stage>-<name>`; no data (an idle stage, an empty queue) is not an alarm."""
        return AlarmText(
            alarm_name_override=f"{self.alarm_name_prefix}-{name}",
            alarm_description_override=f"{meaning} {RUNBOOK}",
            treat_missing_data_override=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _dead_letters_alarm(self, name: str) -> cmc.MaxMessageCountThreshold:
        return cmc.MaxMessageCountThreshold(
            max_message_count=0,
            **self._alarm(
                f"{name}-dlq-not-empty",
                f"A message is waiting in the {name} dead-letter queue: it failed every delivery.",
            ),
        )

    def _work_queue(self, name: str, queue: DurableQueue, max_age_seconds: int) -> None:
        self.facade.monitor_sqs_queue_with_dlq(
            queue=queue.queue,
            dead_letter_queue=queue.dead_letter_queue,
            human_readable_name=f"{name} queue",
            alarm_friendly_name=name,
            add_queue_max_message_age_alarm={
                "Critical": cmc.MaxMessageAgeThreshold(
                    max_age_in_seconds=max_age_seconds,
                    **self._alarm(
                        f"{name}-oldest-message",
                        f"The oldest message in the {name} queue is older than {max_age_seconds} s: "
                        "its consumer is failing, throttled or too slow.",
                    ),
                )
            },
            add_dead_letter_queue_max_size_alarm={"Critical": self._dead_letters_alarm(name)},
        )

    def _pipe_alarms(self) -> None:
        """The alarms on the contract's metrics, first on the dashboard: what pages you is what you see."""
        stage = self.stage
        invalid_signatures = contract_metric(
            "ingest", Metric.WEBHOOK_REJECTED, SUM, reason=INVALID_SIGNATURE, label="invalid_signature"
        )
        stored_p99 = contract_metric("processor", Metric.STRIPE_TO_STORED_LATENCY, P99)
        succeeded = contract_metric("gateway", Metric.COMMANDS_SUCCEEDED, SUM, period=GATEWAY_RATE_PERIOD)
        failed = contract_metric("gateway", Metric.COMMANDS_FAILED, SUM, period=GATEWAY_RATE_PERIOD)
        finished = "FILL(succeeded, 0) + FILL(failed, 0)"
        enough = f"{finished} >= {stage.alarm_gateway_min_commands}"
        failure_rate = cloudwatch.MathExpression(
            expression=f"IF({enough}, 100 * FILL(failed, 0) / ({finished}), 0)",
            using_metrics={"succeeded": succeeded, "failed": failed},
            label="failed % of finished commands",
            period=GATEWAY_RATE_PERIOD,
        )
        recovered = contract_metric("catchup", Metric.CATCHUP_EVENTS_RECOVERED, SUM, period=CATCHUP_PERIOD)
        above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        alarms = (
            (
                "Webhooks rejected: invalid_signature",
                invalid_signatures,
                "invalid-signatures",
                cmc.CustomThreshold(
                    threshold=stage.alarm_invalid_signatures,
                    comparison_operator=above,
                    **self._alarm(
                        "invalid-signatures",
                        f"More than {stage.alarm_invalid_signatures} webhooks in 5 minutes had a signature "
                        "no secret matches: a secret roll went wrong, or someone probes the endpoint.",
                    ),
                ),
            ),
            (
                "Stripe → stored p99 (ms)",
                stored_p99,
                "stored-latency-p99",
                cmc.CustomThreshold(
                    threshold=stage.alarm_stored_latency_p99_seconds * 1000,
                    comparison_operator=above,
                    datapoints_to_alarm=LATENCY_PERIODS,
                    evaluation_periods=LATENCY_PERIODS,
                    **self._alarm(
                        "stored-latency-p99",
                        f"For {LATENCY_PERIODS * 5} minutes, 1 % of events took more than "
                        f"{stage.alarm_stored_latency_p99_seconds} s from Stripe's `created` to the store.",
                    ),
                ),
            ),
            (
                "Gateway: failed % of finished commands",
                failure_rate,
                "gateway-failure-rate",
                cmc.CustomThreshold(
                    threshold=stage.alarm_gateway_failure_percent,
                    comparison_operator=above,
                    **self._alarm(
                        "gateway-failure-rate",
                        f"More than {stage.alarm_gateway_failure_percent} % of the commands that finished in "
                        f"15 minutes failed (at least {stage.alarm_gateway_min_commands} finished).",
                    ),
                ),
            ),
            (
                "Catch-up: events webhooks missed (per hour)",
                recovered,
                "catchup-recovered-events",
                cmc.CustomThreshold(
                    threshold=0,
                    comparison_operator=above,
                    **self._alarm(
                        "catchup-recovered-events",
                        "Catch-up found events in Stripe's Events API that no webhook had delivered.",
                    ),
                ),
            ),
        )
        self.facade.monitor_custom(
            human_readable_name="Alarms on the pipe",
            alarm_friendly_name="Pipe",
            metric_groups=[
                cmc.CustomMetricGroup(
                    title=title,
                    metrics=[
                        cmc.CustomMetricWithAlarm(
                            metric=metric, alarm_friendly_name=name, add_alarm={"Critical": threshold}
                        )
                    ],
                )
                for title, metric, name, threshold in alarms
            ],
        )

    def _functions(self) -> None:
        """Every PythonFunction of the stack built so far: errors, throttles, p99 duration, concurrency."""
        functions = [found for found in Stack.of(self).node.find_all() if isinstance(found, PythonFunction)]
        measures = (
            ("Function errors", "Errors", SUM),
            ("Function throttles", "Throttles", SUM),
            ("Function duration p99 (ms)", "Duration", P99),
            ("Function concurrent executions (max)", "ConcurrentExecutions", "Maximum"),
        )
        self.facade.monitor_custom(
            human_readable_name="Functions",
            alarm_friendly_name="Functions",
            metric_groups=[
                cmc.CustomMetricGroup(
                    title=title,
                    metrics=[
                        f.function.metric(name, period=PERIOD, statistic=statistic, label=f.name)
                        for f in functions
                    ],
                )
                for title, name, statistic in measures
            ],
        )
