"""Backfill Lambda, one step of the backfill state machine: read pages until the deadline, save cursors.

Input `{"options": {...}}` (see BackfillOptions.from_request); output adds `done` and per-type progress,
and the state machine calls it again until `done`. Invalid options or a key Stripe refuses fail the
execution with the reason; an outage fails the step, which the state machine retries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.dynamodb.cursors import DynamoCursorStore
from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.adapters.dynamodb.rate_limit import DynamoRateLimiter
from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.adapters.secrets import read_secret
from stripe_middleware.adapters.sqs.poison import SqsPoisonSink
from stripe_middleware.adapters.stripe.client import is_live_key, make_stripe_client
from stripe_middleware.adapters.stripe.reader import SdkStripeLister
from stripe_middleware.backfill.options import BackfillOptions
from stripe_middleware.backfill.ports import Cursor
from stripe_middleware.backfill.reading import StripeReader
from stripe_middleware.backfill.run import CLOCK_SKEW_MARGIN_SECONDS, Backfill, run_backfill
from stripe_middleware.backfill.settings import HistorySettings
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.metadata_schema import load_metadata_schema

logger = Logger()
metrics = Metrics()
DEADLINE_MARGIN_SECONDS = 60  # stop reading this long before Lambda's timeout, to save the cursor


@dataclass
class Dependencies:
    """Everything a backfill run needs but its identity; the local CLI builds the same from its target."""

    settings: HistorySettings
    lister: SdkStripeLister
    store: ObjectStore
    publisher: EventPublisher
    cursors: DynamoCursorStore
    poison: SqsPoisonSink
    limiter: DynamoRateLimiter
    livemode: bool

    def reader(self) -> StripeReader:
        rate_limit = load_gateway_config().rate_limit
        return StripeReader(
            self.lister, self.limiter, lambda path: rate_limit.read_limits(self.livemode, path)
        )

    def backfill(self, options: BackfillOptions, now: float) -> Backfill:
        as_of = self.cursors.start_run(options.run_id, int(now) - CLOCK_SKEW_MARGIN_SECONDS)
        return Backfill(
            reader=self.reader(),
            store=self.store,
            publisher=self.publisher,
            cursors=self.cursors,
            poison=self.poison,
            schema=load_metadata_schema(),
            livemode=self.livemode,
            run_id=options.run_id,
            as_of=as_of,
        )


def build(settings: HistorySettings, client: Any, api_key: str) -> Dependencies:
    """Adapters for `settings`; `client(service)` makes boto3 clients (Lambda's, or local mode's)."""
    dynamodb = client("dynamodb")
    stripe = make_stripe_client(
        api_key,
        api_version=settings.stripe_api_version,
        api_base=settings.stripe_api_base,
        max_network_retries=0,
    )  # retries go through the shared rate limit (run.py), never around it
    return Dependencies(
        settings=settings,
        lister=SdkStripeLister(stripe),
        store=ObjectStore(dynamodb, settings.table_name),
        publisher=EventPublisher(client("events"), settings.event_bus_name),
        cursors=DynamoCursorStore(dynamodb, settings.table_name),
        poison=SqsPoisonSink(client("sqs"), settings.dead_letter_queue_url),
        limiter=DynamoRateLimiter(dynamodb, settings.table_name),
        livemode=is_live_key(api_key),
    )


@cache
def dependencies() -> Dependencies:
    settings = HistorySettings.from_env()
    api_key = read_secret(aws.client("secretsmanager", aws.QUEUE_CONSUMER), settings.stripe_api_key_secret_id)
    return build(settings, lambda service: aws.client(service, aws.QUEUE_CONSUMER), api_key)


def progress(cursors: list[Cursor]) -> list[dict[str, Any]]:
    return [
        {
            "account": c.account,
            "type": c.resource,
            "done": c.done,
            "pages": c.pages,
            "objects": c.objects,
            "stored": c.stored,
            "poison": c.poison,
        }
        for c in cursors
    ]


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = dependencies()
    options = BackfillOptions.from_request(event.get("options") or {})
    logger.set_correlation_id(options.run_id)
    before = {(c.account, c.resource): c for c in deps.cursors.cursors(options.run_id)}
    backfill = deps.backfill(options, time.time())
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN_SECONDS
    cursors = run_backfill(options, backfill, deadline=deadline)
    for name, attribute in (
        (Metric.BACKFILL_PAGES, "pages"),
        (Metric.BACKFILL_OBJECTS, "objects"),
        (Metric.BACKFILL_STORED, "stored"),
        (Metric.BACKFILL_POISON, "poison"),
    ):
        delta = sum(
            getattr(c, attribute) - getattr(before.get((c.account, c.resource)), attribute, 0)
            for c in cursors
        )
        metrics.add_metric(name, MetricUnit.Count, delta)
    metrics.add_metric(Metric.STRIPE_RETRIES, MetricUnit.Count, backfill.reader.retries)
    done = all(c.done for c in cursors)  # run_backfill stops at the deadline on a cursor not done
    logger.info("backfill step", extra={"done": done, "progress": progress(cursors)})
    return {
        "options": options.to_request(),
        "run_id": options.run_id,
        "done": done,
        "progress": progress(cursors),
    }
