"""An in-memory `signals.ports.SignalState`: facts kept per subject, the signals already published, and the
one-off buyers' watches.

Like a key-value store, it hands back copies (a fact goes through `to_item`/`from_item`), keeps a fact
once per subject (the newest version of a fact id wins, as a conditional put would), writes a watch only
over the revision the writer read, keeps a churn-risk record only if it is not older than the one kept, and
`unavailable` names the operations (its method names) that raise StoreUnavailableError, as a DynamoDB outage
would.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.signals.facts import Fact
from stripe_middleware.signals.ports import WATCH_SHARDS, Anomaly, BuyerWatch


@dataclass
class InMemorySignalState:
    kept: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # subject -> fact id -> item
    published_ids: set[str] = field(default_factory=set)
    anomalies: dict[str, dict[str, Any]] = field(default_factory=dict)  # signal id -> published detail
    churn: dict[str, dict[str, Any]] = field(default_factory=dict)  # customer subject -> churn-risk detail
    watches: dict[str, BuyerWatch] = field(default_factory=dict)  # customer subject -> the buyer's watch
    unavailable: set[str] = field(default_factory=set)

    def _check(self, operation: str) -> None:
        if operation in self.unavailable:
            raise StoreUnavailableError(f"fake signal state: {operation} is unavailable")

    def add_facts(self, subject: str, facts: Sequence[Fact]) -> None:
        self._check("add_facts")
        kept = self.kept.setdefault(subject, {})
        for fact in facts:
            if fact.id not in kept or fact.newer_than(Fact.from_item(kept[fact.id])):
                kept[fact.id] = fact.to_item()

    def facts(self, subject: str, since: int | None = None) -> list[Fact]:
        self._check("facts")
        kept = [Fact.from_item(dict(item)) for item in self.kept.get(subject, {}).values()]
        return [f for f in kept if since is None or f.created >= since]

    def published(self, signal_ids: Iterable[str]) -> set[str]:
        self._check("published")
        return {signal_id for signal_id in signal_ids if signal_id in self.published_ids}

    def mark_published(self, anomalies: Sequence[Anomaly]) -> None:
        self._check("mark_published")
        self.published_ids.update(a.signal_id for a in anomalies)
        self.anomalies |= {a.signal_id: a.detail() for a in anomalies}

    def churn_risk(self, customer_subject: str) -> dict[str, Any] | None:
        self._check("churn_risk")
        return self.churn.get(customer_subject)

    def put_churn_risk(self, customer_subject: str, detail: dict[str, Any]) -> None:
        self._check("put_churn_risk")
        kept = self.churn.get(customer_subject)
        if kept is None or kept["as_of"] <= detail["as_of"]:  # the adapter's condition
            self.churn[customer_subject] = copy.deepcopy(detail)

    def buyer_watch(self, customer_subject: str) -> BuyerWatch | None:
        self._check("buyer_watch")
        return copy.deepcopy(self.watches.get(customer_subject))

    def buyer_watches(self, shard: int) -> Iterator[BuyerWatch]:
        self._check("buyer_watches")
        for subject, watch in sorted(self.watches.items()):
            if shard_of(subject) == shard:
                yield copy.deepcopy(watch)

    def put_buyer_watch(self, watch: BuyerWatch, *, expected_revision: int | None) -> bool:
        self._check("put_buyer_watch")
        kept = self.watches.get(watch.subject)
        if (kept.revision if kept else None) != expected_revision:
            return False
        self.watches[watch.subject] = copy.deepcopy(watch)
        return True

    def delete_buyer_watch(self, customer_subject: str) -> None:
        self._check("delete_buyer_watch")
        self.watches.pop(customer_subject, None)

    def clear_churn_risk(self, customer_subject: str) -> None:
        self._check("clear_churn_risk")
        self.churn.pop(customer_subject, None)

    def subjects(self) -> list[str]:
        """Every subject that has facts (for assertions)."""
        return sorted(self.kept)


def shard_of(subject: str) -> int:
    return int(hashlib.sha256(subject.encode()).hexdigest()[:8], 16) % WATCH_SHARDS
