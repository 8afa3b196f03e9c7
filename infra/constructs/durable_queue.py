"""An SQS queue with its DLQ: encrypted, TLS-only, redrive after `max_receive_count` deliveries."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig

SQS_MAX_MESSAGE_BYTES = 1_048_576


def dead_letter_queue(scope: Construct, construct_id: str, stage: StageConfig) -> sqs.Queue:
    """Where messages that could not be processed wait: encrypted, TLS-only, kept `dlq_retention_days`."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(stage.dlq_retention_days),
        max_message_size_bytes=SQS_MAX_MESSAGE_BYTES,
        removal_policy=stage.removal_policy,
    )


class DurableQueue(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        visibility_timeout: Duration,
        max_receive_count: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.visibility_timeout = visibility_timeout  # a failed message comes back after this long
        self.dead_letter_queue = dead_letter_queue(self, "DeadLetterQueue", stage)
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            retention_period=Duration.days(4),
            max_message_size_bytes=SQS_MAX_MESSAGE_BYTES,
            removal_policy=stage.removal_policy,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=max_receive_count or stage.max_receive_count
            ),
        )
