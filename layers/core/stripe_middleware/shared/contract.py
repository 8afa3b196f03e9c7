"""The stable names users, dashboards, alarms and tests rely on, each written once.

Every detail-type the middleware publishes (besides Stripe's own event types), every metric name, the
bus source and the pinned Stripe API version. DynamoDB key prefixes live with the table layout, in
`adapters/dynamodb/table.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

SERVICE = "stripe-middleware"
SOURCE = "stripe-middleware"  # `source` of everything published on the bus
METRICS_NAMESPACE = "StripeMiddleware"
# One Stripe API version for every function that talks to Stripe (refetches, commands, backfill, catch-up).
STRIPE_API_VERSION = "2026-10-28.endive"


class DetailType(StrEnum):
    """Middleware detail-types; Stripe events are published under their own type (e.g. `invoice.paid`)."""

    METADATA_VIOLATION = "stripe-middleware.metadata.violation"
    COMMAND = "stripe-middleware.command"  # producers put commands on the bus with this type
    COMMAND_SUCCEEDED = "stripe-middleware.command.succeeded"
    COMMAND_FAILED = "stripe-middleware.command.failed"
    OBJECT_BACKFILLED = "stripe-middleware.object.backfilled"  # an object read by a backfill run
    CATCHUP_GAP = "stripe-middleware.catchup.gap"  # catch-up fell behind the Events API's 30 days
    SIGNAL_ANOMALY = "stripe-middleware.signal.anomaly"  # a detector found a fraud or anomaly pattern
    SIGNAL_CHURN_RISK = "stripe-middleware.signal.churn_risk"  # a customer's churn-risk level changed
    RECONCILIATION_COMPLETED = "stripe-middleware.reconciliation.completed"  # a payout's record (changed)
    RECONCILIATION_DISCREPANCY = "stripe-middleware.reconciliation.discrepancy"  # a gap found in a payout
    DUNNING_STEP = "stripe-middleware.dunning.step"  # a step of the failed-payment workflow ran (outreach)


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
    STRIPE_RATE_LIMITED = "StripeRateLimited"  # commands Stripe answered 429 (queued, no attempt used)
    # history (backfill, catch-up)
    BACKFILL_PAGES = "BackfillPages"
    BACKFILL_OBJECTS = "BackfillObjects"  # read from Stripe
    BACKFILL_STORED = "BackfillStored"  # new or changed in the store
    BACKFILL_POISON = "BackfillPoison"  # objects that could not be normalized (sent to the DLQ)
    STRIPE_RETRIES = "StripeRetries"  # 429 / 5xx / network answers retried
    CATCHUP_EVENTS_LISTED = "CatchupEventsListed"
    CATCHUP_EVENTS_RECOVERED = "CatchupEventsRecovered"  # not processed before: webhooks missed them
    CATCHUP_GAP = "CatchupGap"
    # signals (dimension: kind for SignalsRaised)
    SIGNAL_EVENTS_RECEIVED = "SignalEventsReceived"
    SIGNAL_FACTS = "SignalFacts"  # facts learned (kept under each subject they touch)
    SIGNALS_RAISED = "SignalsRaised"  # anomalies found for the first time, churn-risk level changes
    SIGNAL_FAILURES = "SignalFailures"  # messages left for SQS to redeliver (then the DLQ)
    STRIPE_TO_SIGNAL_LATENCY = "StripeToSignalLatency"  # from the event's `created` to its evaluation
    # churn model retraining (dimension: outcome approved | rejected | skipped)
    CHURN_MODEL_RETRAININGS = "ChurnModelRetrainings"
    CHURN_MODEL_TRAINING_EVENTS = "ChurnModelTrainingEvents"  # archived events read
    CHURN_MODEL_SKIPPED_LINES = "ChurnModelSkippedLines"  # archive lines or files that were not events
    CHURN_MODEL_UNUSABLE = "ChurnModelUnusable"  # the signals Lambda could not read the approved model
    # reconciliation
    PAYOUTS_RECONCILED = "PayoutsReconciled"  # by status (balanced, discrepancies, repaired, unreconcilable)
    RECONCILIATION_DISCREPANCIES = "ReconciliationDiscrepancies"  # open and repaired, by kind
    RECONCILIATION_REPAIRED = "ReconciliationRepaired"  # objects fetched from Stripe and stored
    RECONCILIATION_NOT_JUDGED = "ReconciliationNotJudged"  # charges/refunds whose payout cannot be told yet
    RECONCILIATION_FAILURES = "ReconciliationFailures"  # payouts left for a retry (SQS, or the next sweep)
    RECONCILIATION_STRIPE_CALLS = "ReconciliationStripeCalls"
    # one-off buyers' daily re-score
    BUYERS_RESCORED = "BuyersRescored"  # watched buyers read and scored again
    BUYER_RISK_CHANGES = "BuyerRiskChanges"  # churn-risk level changes published by the re-score
    BUYER_RESCORE_FAILURES = "BuyerRescoreFailures"  # buyers (or shards) left for the next run
    # dunning (dimension: stage step | final | stopped for DunningSteps; operation for DunningCommands)
    DUNNING_STARTED = "DunningStarted"  # workflows started (a repeated invoice.payment_failed starts none)
    DUNNING_START_FAILURES = "DunningStartFailures"  # messages left for SQS to redeliver (then the DLQ)
    DUNNING_STEPS = "DunningSteps"
    DUNNING_COMMANDS = "DunningCommands"  # retries and final actions sent to the command gateway


# The dimensions a metric is emitted with besides `service` (= f"{SERVICE}-{function}"). A CloudWatch alarm
# matches a metric only on its full dimension set, so alarms and dashboards name exactly these; a test checks
# them against what the handlers emit. Metrics not listed here carry `service` alone.
METRIC_DIMENSIONS: Mapping[Metric, tuple[str, ...]] = MappingProxyType(
    {
        Metric.WEBHOOK_RECEIVED: ("route",),
        Metric.WEBHOOK_ENQUEUED: ("route",),
        Metric.WEBHOOK_REJECTED: ("reason",),
        Metric.SIGNALS_RAISED: ("kind",),
        Metric.CHURN_MODEL_RETRAININGS: ("outcome",),
        Metric.CHURN_MODEL_TRAINING_EVENTS: ("outcome",),
        Metric.CHURN_MODEL_SKIPPED_LINES: ("outcome",),
        Metric.DUNNING_STEPS: ("stage",),
        Metric.DUNNING_COMMANDS: ("operation",),
        Metric.PAYOUTS_RECONCILED: ("status",),
        Metric.RECONCILIATION_DISCREPANCIES: ("kind",),
    }
)


def mode_label(livemode: bool) -> str:
    """`live` or `test`: how keys, limits and logs name Stripe's two modes."""
    return "live" if livemode else "test"
