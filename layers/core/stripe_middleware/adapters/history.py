"""The history context wired to AWS and Stripe: one place builds the adapters the backfill and catch-up
functions need, and the local CLI builds the same from its target (local mode or a deployed stage)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.dynamodb.cursors import DynamoCatchupCursorStore, DynamoCursorStore
from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.adapters.dynamodb.rate_limit import DynamoRateLimiter
from stripe_middleware.adapters.dynamodb.reconciliation import DynamoReconciliationStore, DynamoStoredObjects
from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.adapters.secrets import read_secret
from stripe_middleware.adapters.sqs.events import SqsEventQueue
from stripe_middleware.adapters.sqs.poison import SqsPoisonSink
from stripe_middleware.adapters.stripe.client import is_live_key, is_stripe_key, make_stripe_client
from stripe_middleware.adapters.stripe.reader import SdkStripeLister
from stripe_middleware.backfill.catchup import Catchup
from stripe_middleware.backfill.options import BackfillOptions
from stripe_middleware.backfill.reading import StripeReader
from stripe_middleware.backfill.run import CLOCK_SKEW_MARGIN_SECONDS, Backfill
from stripe_middleware.backfill.settings import HistorySettings
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.reconciliation.reading import StripePayouts
from stripe_middleware.reconciliation.repair import SnapshotRepairer
from stripe_middleware.reconciliation.run import Reconciler
from stripe_middleware.shared.errors import ConfigurationError
from stripe_middleware.shared.metadata_schema import load_metadata_schema


class KeyNotConfiguredError(ConfigurationError):
    """The read key secret still holds the placeholder the deploy generated."""


@dataclass
class History:
    """Everything a backfill, catch-up or reconciliation run needs but its identity."""

    lister: SdkStripeLister
    store: ObjectStore
    publisher: EventPublisher
    cursors: DynamoCursorStore
    catchup_cursors: DynamoCatchupCursorStore
    poison: SqsPoisonSink
    events_queue: SqsEventQueue
    limiter: DynamoRateLimiter
    livemode: bool

    def reader(self) -> StripeReader:
        rate_limit = load_gateway_config().rate_limit
        return StripeReader(
            self.lister, self.limiter, lambda path: rate_limit.read_limits(self.livemode, path)
        )

    def reconciler(self, dynamodb: Any, table_name: str) -> Reconciler:
        """Reconciliation reads Stripe under the same shared rate limit (single GETs included) and repairs
        the store the way a backfill writes it."""
        schema = load_metadata_schema()
        return Reconciler(
            stripe=StripePayouts(self.reader()),
            objects=DynamoStoredObjects(dynamodb, table_name),
            records=DynamoReconciliationStore(dynamodb, table_name),
            repairer=SnapshotRepairer(self.store, self.publisher, schema),
            publisher=self.publisher,
            schema=schema,
            livemode=self.livemode,
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

    def catchup(self) -> Catchup:
        return Catchup(
            reader=self.reader(),
            seen=self.store,
            queue=self.events_queue,
            cursors=self.catchup_cursors,
            publisher=self.publisher,
            livemode=self.livemode,
        )


def build(settings: HistorySettings, client: Callable[[str], Any], api_key: str) -> History:
    """Adapters for `settings`; `client(service)` makes boto3 clients (Lambda's, or local mode's)."""
    if not is_stripe_key(api_key):
        raise KeyNotConfiguredError(
            "the StripeReadOnlyKey secret holds no Stripe key yet: put a restricted key (rk_...) with read "
            "access in it (README, Deploy)"
        )
    dynamodb = client("dynamodb")
    stripe = make_stripe_client(
        api_key,
        api_version=settings.stripe_api_version,
        api_base=settings.stripe_api_base,
        max_network_retries=0,
    )  # retries go through the shared rate limit (reading.py), never around it
    return History(
        lister=SdkStripeLister(stripe),
        store=ObjectStore(dynamodb, settings.table_name),
        publisher=EventPublisher(client("events"), settings.event_bus_name),
        cursors=DynamoCursorStore(dynamodb, settings.table_name),
        catchup_cursors=DynamoCatchupCursorStore(dynamodb, settings.table_name),
        poison=SqsPoisonSink(client("sqs"), settings.dead_letter_queue_url),
        events_queue=SqsEventQueue(client("sqs"), settings.events_queue_url),
        limiter=DynamoRateLimiter(dynamodb, settings.table_name),
        livemode=is_live_key(api_key),
    )


def from_lambda_env() -> History:
    """The adapters of a history function on Lambda: settings from its environment, the key from its
    secret, boto3 clients with the queue consumers' retries."""
    settings = HistorySettings.from_env()
    api_key = read_secret(aws.client("secretsmanager", aws.QUEUE_CONSUMER), settings.stripe_api_key_secret_id)
    return build(settings, lambda service: aws.client(service, aws.QUEUE_CONSUMER), api_key)
