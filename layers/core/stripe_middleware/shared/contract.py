"""The stable names users, dashboards, alarms and tests rely on, each written once.

Every detail-type the middleware publishes (besides Stripe's own event types), every metric name, the
bus source and the pinned Stripe API version. DynamoDB key prefixes live with the table layout, in
`adapters/dynamodb/table.py`.
"""

from __future__ import annotations

from enum import StrEnum

SERVICE = "stripe-middleware"
SOURCE = "stripe-middleware"  # `source` of everything published on the bus
METRICS_NAMESPACE = "StripeMiddleware"
# One Stripe API version for every function that talks to Stripe (refetches, command gateway).
STRIPE_API_VERSION = "2026-10-28.endive"


class DetailType(StrEnum):
    """Middleware detail-types; Stripe events are published under their own type (e.g. `invoice.paid`)."""

    METADATA_VIOLATION = "stripe-middleware.metadata.violation"
    COMMAND = "stripe-middleware.command"  # producers put commands on the bus with this type
    COMMAND_SUCCEEDED = "stripe-middleware.command.succeeded"
    COMMAND_FAILED = "stripe-middleware.command.failed"


class Metric(StrEnum):
    # ingest (dimensions: route; reason for rejections)
    WEBHOOK_RECEIVED = "WebhookReceived"
    WEBHOOK_REJECTED = "WebhookRejected"
    WEBHOOK_NOT_DURABLE = "WebhookNotDurable"
    WEBHOOK_ENQUEUED = "WebhookEnqueued"
    STRIPE_TO_ENQUEUED_LATENCY = "StripeToEnqueuedLatency"
    # processor
    EVENTS_RECEIVED = "EventsReceived"
    EVENTS_PROCESSED = "EventsProcessed"
    DUPLICATES = "Duplicates"
    STALE_EVENTS = "StaleEvents"
    EVENTS_PUBLISHED = "EventsPublished"
    METADATA_VIOLATIONS = "MetadataViolations"
    PROCESSING_FAILURES = "ProcessingFailures"
    STRIPE_TO_STORED_LATENCY = "StripeToStoredLatency"
    # read API
    READ_REQUESTS = "ReadRequests"
    # commands API and command gateway
    COMMANDS_SUBMITTED = "CommandsSubmitted"
    COMMANDS_REJECTED = "CommandsRejected"
    COMMAND_STATUS_READS = "CommandStatusReads"
    COMMANDS_QUEUED = "CommandsQueued"
    COMMANDS_SUCCEEDED = "CommandsSucceeded"
    COMMANDS_FAILED = "CommandsFailed"
    GATEWAY_UNAVAILABLE = "GatewayUnavailable"


def mode_label(livemode: bool) -> str:
    """`live` or `test`: how keys, limits and logs name Stripe's two modes."""
    return "live" if livemode else "test"
