"""The dunning context wired to AWS: one place builds what the step function needs, for the Lambda and for
the local clock of `stripe-middleware dunning` alike."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.dynamodb.dunning import StoreBillingState
from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.adapters.stepfunctions import StepFunctionsScheduler
from stripe_middleware.shared.settings import required


@dataclass(frozen=True)
class DunningAdapters:
    billing: StoreBillingState
    publisher: EventPublisher


def build(table_name: str, event_bus_name: str, client: Callable[[str], Any]) -> DunningAdapters:
    """`client(service)` makes boto3 clients (Lambda's, or local mode's)."""
    return DunningAdapters(
        billing=StoreBillingState(client("dynamodb"), table_name),
        publisher=EventPublisher(client("events"), event_bus_name),
    )


def step_from_lambda_env() -> DunningAdapters:
    return build(
        required(os.environ, "TABLE_NAME"),
        required(os.environ, "EVENT_BUS_NAME"),
        lambda service: aws.client(service, aws.QUEUE_CONSUMER),
    )


def scheduler_from_lambda_env() -> StepFunctionsScheduler:
    return StepFunctionsScheduler(
        aws.client("stepfunctions", aws.QUEUE_CONSUMER), required(os.environ, "STATE_MACHINE_ARN")
    )
