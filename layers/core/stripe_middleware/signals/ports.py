"""What detection needs: facts kept per subject, and a record of the anomalies already published."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stripe_middleware.shared.clock import iso
from stripe_middleware.signals.facts import CHARGE, Fact

LEVELS = ((0.75, "high"), (0.5, "medium"), (0.0, "low"))
MAX_EVIDENCE = 50  # ids in a published detail, the newest first kept


def level_of(score: float) -> str:
    return next(name for floor, name in LEVELS if score >= floor)


@dataclass(frozen=True)
class Reason:
    """One feature behind a signal, with its value and the threshold it crossed, in words."""

    feature: str
    value: float | int | str
    threshold: float | int | None
    text: str


@dataclass(frozen=True)
class Anomaly:
    signal_id: str  # stable: the same finding has the same id, whatever the order events arrived in
    kind: str  # the detector
    subject: str
    account: str | None
    livemode: bool
    customer_id: str | None
    score: float  # 0..1
    reasons: tuple[Reason, ...]
    evidence: tuple[Fact, ...]
    model_version: str

    @property
    def level(self) -> str:
        return level_of(self.score)

    @property
    def as_of(self) -> int:
        """Event time: the newest fact behind the finding."""
        return max(f.created for f in self.evidence)

    @property
    def newest_charge(self) -> str | None:
        """The id of the newest charge behind the finding (a duplicate charge: the later of the two)."""
        charges = [f for f in self.evidence if f.kind == CHARGE]
        return max(charges, key=lambda f: (f.created, f.id)).object_id if charges else None

    def evidence_ids(self) -> dict[str, Any]:
        """The events and objects behind the finding: the newest MAX_EVIDENCE facts' (a burst of thousands of
        charges would not fit EventBridge's 256 KB), and how many facts there were in all."""
        newest = sorted(self.evidence, key=lambda f: (f.created, f.id))[-MAX_EVIDENCE:]
        return {
            "event_ids": sorted({f.evidence for f in newest}),
            "object_ids": sorted({f.object_id for f in newest}),
            "facts": len(self.evidence),
        }

    def detail(self) -> dict[str, Any]:
        """The published detail of `stripe-middleware.signal.anomaly`."""
        return {
            "signal_id": self.signal_id,
            "kind": self.kind,
            "customer_id": self.customer_id,
            "account": self.account,
            "livemode": self.livemode,
            "score": round(self.score, 3),
            "level": self.level,
            "reasons": [vars(r) for r in self.reasons],
            "evidence": self.evidence_ids(),
            "as_of": iso(self.as_of),
            "model_version": self.model_version,
        }


class SignalState(Protocol):
    def add_facts(self, subject: str, facts: Sequence[Fact]) -> None:
        """Keep facts under a subject, one per fact id: the newest version (`Fact.newer_than`), so the
        result does not depend on the order they arrive in (StoreUnavailableError)."""
        ...

    def facts(self, subject: str, since: int | None = None) -> list[Fact]:
        """The facts kept under a subject (those of objects created at or after `since`), in no
        particular order."""
        ...

    def published(self, signal_ids: Iterable[str]) -> set[str]:
        """Which of these signals were published before."""
        ...

    def mark_published(self, anomalies: Sequence[Anomaly]) -> None:
        """Record these anomalies as published, with their detail (what the read API serves)."""
        ...

    def churn_risk(self, customer_subject: str) -> dict[str, Any] | None:
        """The churn-risk detail last published for this customer, if any."""
        ...

    def put_churn_risk(self, customer_subject: str, detail: dict[str, Any]) -> None:
        """Record the churn-risk detail just published for this customer (what the read API serves)."""
        ...

    def clear_churn_risk(self, customer_subject: str) -> None:
        """Forget the customer's churn risk: no subscription of theirs is live any more."""
        ...
