"""boto3 clients with explicit timeouts and retries, the same way in every function."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

# Fail fast inside API Gateway's 30 s on the request paths; an SQS consumer can afford to wait longer.
REQUEST_PATH = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
# Throttling is retried by the SDK first (adaptive), then by SQS redelivery of the failed message.
QUEUE_CONSUMER = Config(connect_timeout=2, read_timeout=10, retries={"mode": "adaptive", "max_attempts": 6})


def is_conditional_check_failure(error: Exception) -> bool:
    """A DynamoDB condition was not met: an expected outcome (duplicate, stale, full), not an outage."""
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    return bool(code == "ConditionalCheckFailedException")


def client(service: str, config: Config = REQUEST_PATH) -> Any:
    return boto3.client(service, config=config)
