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


STAGES: dict[str, StageConfig] = {
    "dev": StageConfig(
        name="dev",
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=RemovalPolicy.DESTROY,
        webhook_rate_limit=50,
        webhook_burst_limit=100,
    ),
    "staging": StageConfig(
        name="staging",
        log_retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.DESTROY,
        webhook_rate_limit=200,
        webhook_burst_limit=400,
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
