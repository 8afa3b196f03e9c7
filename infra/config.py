"""Per-stage settings as typed values: stage differences are data passed to constructs, never `if`s."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    name: str
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy
    webhook_rate_limit: int  # API Gateway steady-state requests/s for the whole API
    webhook_burst_limit: int
    signature_tolerance_seconds: int = 300
    max_receive_count: int = 5  # deliveries to the processor before a message goes to the DLQ
    dlq_retention_days: int = 14
    deletion_protection: bool = False
    archive_retention_days: int = 30  # EventBridge archive of published events, for replay
    # Alarm thresholds (infra/constructs/monitoring.py; README → Operations → Alarms says what to do).
    alarm_invalid_signatures: int = 5  # `invalid_signature` rejections in 5 minutes: a secret roll gone wrong
    alarm_http_api_5xx: int = 5  # 5xx answers of the HTTP API in 5 minutes
    alarm_stored_latency_p99_seconds: int = 60  # Stripe → stored p99, three 5-minute periods in a row
    alarm_gateway_failure_percent: int = 25  # failed / finished commands in 15 minutes ...
    alarm_gateway_min_commands: int = 5  # ... once at least this many finished
    alarm_events_age_seconds: int = 300  # oldest message in the events queue
    alarm_work_queue_age_seconds: int = 900  # other work queues: oldest message, beyond one redelivery


STAGES: dict[str, StageConfig] = {
    "dev": StageConfig(
        name="dev",
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=RemovalPolicy.DESTROY,
        webhook_rate_limit=50,
        webhook_burst_limit=100,
        # Developers send bad signatures and break things on purpose: alarm on trends, not on every test.
        alarm_invalid_signatures=20,
        alarm_http_api_5xx=20,
        alarm_stored_latency_p99_seconds=300,
        alarm_gateway_failure_percent=50,
    ),
    "staging": StageConfig(
        name="staging",
        log_retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.DESTROY,
        webhook_rate_limit=200,
        webhook_burst_limit=400,
        alarm_invalid_signatures=10,
        alarm_http_api_5xx=10,
        alarm_stored_latency_p99_seconds=120,
    ),
    "prod": StageConfig(
        name="prod",
        log_retention=logs.RetentionDays.ONE_YEAR,
        removal_policy=RemovalPolicy.RETAIN,
        webhook_rate_limit=1000,
        webhook_burst_limit=2000,
        deletion_protection=True,
        archive_retention_days=365,
    ),
}


def stage_config(name: str) -> StageConfig:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(
            f"unknown stage {name!r}; use one of {', '.join(STAGES)} (cdk synth -c stage=dev)"
        ) from None
