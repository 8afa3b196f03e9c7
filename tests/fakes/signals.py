"""An in-memory `signals.ports.SignalState`: facts kept per subject, and the signals already published.

Like a key-value store, it hands back copies (a fact goes through `to_item`/`from_item`), keeps a fact
once per subject (the newest version of a fact id wins, as a conditional put would), and `unavailable`
names the operations (its method names) that raise StoreUnavailableError, as a DynamoDB outage would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.signals.facts import Fact
from stripe_middleware.signals.ports import Anomaly


@dataclass
class InMemorySignalState:
    kept: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # subject -> fact id -> item
    published_ids: set[str] = field(default_factory=set)
    anomalies: dict[str, dict[str, Any]] = field(default_factory=dict)  # signal id -> published detail
    churn: dict[str, dict[str, Any]] = field(default_factory=dict)  # customer subject -> churn-risk detail
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
        self.churn[customer_subject] = detail

    def clear_churn_risk(self, customer_subject: str) -> None:
        self._check("clear_churn_risk")
        self.churn.pop(customer_subject, None)

    def subjects(self) -> list[str]:
        """Every subject that has facts (for assertions)."""
        return sorted(self.kept)
