"""`dunning.ports.BillingState` on the store table: the invoice and subscription as the processor keeps
them (newest version under the order guard), and the churn-risk level the signals function recorded."""

from __future__ import annotations

from typing import Any

from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.adapters.dynamodb.signals import SignalStore
from stripe_middleware.adapters.dynamodb.table import PARTITION_KEY, churn_key, object_partition
from stripe_middleware.signals.facts import customer_subject_of

# The partitions the dunning step reads (its IAM policy's leading keys): invoices and subscriptions (Query),
# and the customers' churn-risk records (GetItem).
DUNNING_READ_PARTITIONS = (object_partition("invoice", "*"), object_partition("subscription", "*"))
DUNNING_CHURN_PARTITIONS = (churn_key("*")[PARTITION_KEY],)


class StoreBillingState:
    def __init__(self, client: Any, table_name: str) -> None:
        self._objects = ObjectStore(client, table_name)
        self._signals = SignalStore(client, table_name)

    def _object(
        self, object_type: str, object_id: str, account: str | None, livemode: bool
    ) -> dict[str, Any] | None:
        found = self._objects.get_object(object_type, object_id, account=account, livemode=livemode)
        obj = found[0].get("object") if found else None
        return obj if isinstance(obj, dict) else None

    def invoice(self, invoice_id: str, *, account: str | None, livemode: bool) -> dict[str, Any] | None:
        return self._object("invoice", invoice_id, account, livemode)

    def subscription(
        self, subscription_id: str, *, account: str | None, livemode: bool
    ) -> dict[str, Any] | None:
        return self._object("subscription", subscription_id, account, livemode)

    def churn_risk_level(self, customer_id: str, *, account: str | None, livemode: bool) -> str | None:
        subject = customer_subject_of(customer_id, account=account, livemode=livemode)
        record = self._signals.churn_risk(subject)
        level = record.get("level") if record else None
        return level if isinstance(level, str) else None
