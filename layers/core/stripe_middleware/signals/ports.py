"""What detection needs: facts kept per subject, a record of the anomalies already published, each customer's
churn-risk record, and the one-off buyers' watches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
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


WATCH_SHARDS = 16  # the buyers' watch list is read in this many queries (`BuyerWatches.buyer_watches`)


@dataclass(frozen=True)
class BuyerWatch:
    """What is kept per one-off buyer so that a daily re-score can score them as of the day, without reading
    their facts: the purchases as times, the assessment last claimed (`level`, `as_of`) and, while a level
    change is claimed but not known to be on the bus, its detail (`pending`), which whoever reads the watch
    next (the redelivered charge, the next re-score) publishes. Written only under `revision`: a writer that
    read an older revision is refused, so a charge arriving during a re-score wins."""

    subject: str  # the customer subject (`test/platform/customer/cus_...`)
    customer_id: str
    account: str | None
    livemode: bool
    first_purchase: int  # Unix seconds, event time
    last_purchase: int  # the start of the last purchase
    repeat_purchases: int
    charges: int  # successful charges (several may make one purchase)
    spend: tuple[tuple[str, int, int], ...]  # (currency, charges, total in the minor unit)
    basis: tuple[int, int, int]  # newest charge version, charge facts, sum of versions: grows with the facts
    digest: str  # which charge facts, in which states
    evidence: tuple[tuple[str, str], ...]  # (event id, charge id) of the newest charges
    as_of: int  # when the level was last assessed: event time, or the re-score's day
    level: str
    score: float
    model_version: str
    pending: dict[str, Any] | None = None  # the churn-risk detail of a claimed change, until it is published
    revision: int = 0  # how many times the watch was written: the condition of the next write

    @property
    def published_level(self) -> str | None:
        """The level subscribers last heard for sure (None: nothing yet)."""
        return self.pending.get("previous_level") if self.pending else self.level


class ChurnRecords(Protocol):
    def churn_risk(self, customer_subject: str) -> dict[str, Any] | None:
        """The churn-risk detail last published for this customer, if any."""
        ...

    def put_churn_risk(self, customer_subject: str, detail: dict[str, Any]) -> None:
        """Record the churn-risk detail just published for this customer (what the read API serves); never
        over a record of a later `as_of`."""
        ...


class BuyerWatches(ChurnRecords, Protocol):
    def buyer_watch(self, customer_subject: str) -> BuyerWatch | None:
        """The buyer's watch, read strongly consistent (None: not a watched buyer)."""
        ...

    def buyer_watches(self, shard: int) -> Iterator[BuyerWatch]:
        """Every watch of one shard (0 .. WATCH_SHARDS - 1), in no particular order."""
        ...

    def put_buyer_watch(self, watch: BuyerWatch, *, expected_revision: int | None) -> bool:
        """Write the watch if the stored one has `expected_revision` (None: there is none); False when it
        was refused (another writer came first)."""
        ...

    def delete_buyer_watch(self, customer_subject: str) -> None:
        """Stop watching the customer (they subscribed: the subscription model scores them now)."""
        ...


class SignalState(BuyerWatches, Protocol):
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

    def clear_churn_risk(self, customer_subject: str) -> None:
        """Forget the customer's churn risk: no subscription of theirs is live any more."""
        ...
