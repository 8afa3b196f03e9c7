"""One-off buyers' churn risk on the bus: `stripe-middleware.signal.churn_risk` for customers who pay without
a subscription, scored by the buyer model (`signals/buyers.py`), published only when the level changes.

Two paths write a buyer's risk, both through the buyer's watch (`ports.BuyerWatch`):
- a charge (`publish_buyer_risks`, run by `detect`): the buyer's charge facts scored as of the newest
  charge's event time, so a replay, a duplicate or a shuffled stream ends at the same watch and level;
- the daily re-score (`rescore_buyers`): a buyer's risk grows while nothing happens, so each watched buyer is
  scored again as of the day from the purchases their watch keeps (no fact is read).

A level change is first claimed in the watch (a write conditional on the revision read, so of a charge and a
re-score racing for one buyer only one claims, and a refused re-score steps aside), then published, then
recorded where the read API finds it (the churn-risk record subscription customers use), then marked done.
A claim whose publication failed stays pending in the watch, and whoever reads the watch next (the
redelivered charge, the next re-score) publishes the same detail under the same id. Time only raises the
risk, so a watch at `high` is not re-scored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.shared.publishing import Publication, Publisher
from stripe_middleware.signals.buyers import (
    FAMILIES,
    BuyerModel,
    PurchaseSummary,
    log_odds_left,
    purchase_summary,
    score_history,
)
from stripe_middleware.signals.churn import KIND, is_subscriber
from stripe_middleware.signals.detectors import signal_id
from stripe_middleware.signals.facts import CHARGE, Fact
from stripe_middleware.signals.ports import WATCH_SHARDS, BuyerWatch, BuyerWatches, level_of

HIGH = "high"  # the top level: time cannot raise it further
MAX_WATCH_EVIDENCE = 10  # the newest charges a watch (and a re-scored detail) names
MAX_CLAIMS = 3  # tries to claim a watch other writers keep changing, before SQS redelivers the charge
MIN_CONTRIBUTION = 0.05  # log-odds: smaller parts are not worth words


class BuyerWatchContendedError(UnavailableError):
    """Other writers kept changing the buyer's watch: the redelivery assesses the charge again."""

    code = "buyer_watch_contended"


def is_buyer_assessment(detail: dict[str, Any]) -> bool:
    """Whether a churn-risk detail was scored by a buyer model (`mbgnbd-prior@...`), not a subscription's."""
    family = str(detail.get("model_version", "")).split("@", 1)[0].removesuffix("-prior")
    return family in FAMILIES


@dataclass(frozen=True)
class BuyerRisk:
    """A buyer's churn-risk level change, published now."""

    signal_id: str
    subject: str
    detail: dict[str, Any]

    kind = KIND

    @property
    def level(self) -> str:
        return str(self.detail["level"])


@dataclass
class Rescore:
    """What one re-score did: watches read, level changes published (with pending ones published again),
    failures (left pending or unread, for the next run) and whether every shard was read."""

    rescored: int = 0
    changes: list[BuyerRisk] = field(default_factory=list)
    failures: int = 0
    shards: list[int] = field(default_factory=list)  # the shards read to the end
    complete: bool = True


# -- a buyer's charges --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuyerCharges:
    """What a buyer's charge facts say: their purchases, and which facts (in which states) said it."""

    purchases: PurchaseSummary
    basis: tuple[int, int, int]  # newest version, how many charges, the sum of their versions
    digest: str
    evidence: tuple[tuple[str, str], ...]
    customer_id: str
    account: str | None
    livemode: bool

    @property
    def newest(self) -> int:
        """Event time of the newest charge state: when the charges are assessed."""
        return self.basis[0]


def buyer_charges(facts: Iterable[Fact]) -> BuyerCharges | None:
    """The customer's charges (failed ones too: they date the assessment) as purchases; None without a
    successful one."""
    newest: dict[str, Fact] = {}
    for fact in facts:
        kept = newest.get(fact.id)
        if fact.kind == CHARGE and fact.customer and (kept is None or fact.newer_than(kept)):
            newest[fact.id] = fact
    charges = sorted(newest.values(), key=lambda f: (f.created, f.id))
    if not charges:
        return None
    latest = max(f.version for f in charges)
    purchases = purchase_summary(charges, latest)
    if purchases is None:
        return None
    states = "\n".join(sorted(f"{f.id}@{f.version}/{f.evidence}" for f in charges))
    last = charges[-1]
    return BuyerCharges(
        purchases=purchases,
        basis=(latest, len(charges), sum(f.version for f in charges)),
        digest=hashlib.sha256(states.encode()).hexdigest()[:16],
        evidence=tuple((f.evidence, f.object_id) for f in charges[-MAX_WATCH_EVIDENCE:]),
        customer_id=str(last.customer),
        account=last.account,
        livemode=last.livemode,
    )


# -- assessments --------------------------------------------------------------------------------------------
def _purchases(watch: BuyerWatch) -> PurchaseSummary:
    return PurchaseSummary(
        watch.first_purchase, watch.last_purchase, watch.repeat_purchases, watch.charges, watch.spend
    )


def _assessed(
    watch: BuyerWatch, as_of: int, previous: BuyerWatch | None, published: str | None, model: BuyerModel
) -> BuyerWatch:
    """`watch` (its purchases) assessed as of `as_of`, with the detail to publish pending when its level
    differs from the one published, or from a pending level that may have gone out (a claim that outlived a
    crash after its publication)."""
    history = _purchases(watch).at(as_of)
    score = score_history(history, model)
    risk = round(score.churn_risk, 3)
    level = level_of(risk)
    assessed = replace(
        watch,
        as_of=as_of,
        level=level,
        score=risk,
        model_version=model.version,
        pending=None,
        revision=previous.revision + 1 if previous else 1,
    )
    if level != published:
        before = published
    elif previous is not None and previous.pending is not None and previous.level != level:
        before = previous.level  # back at the published level, but the pending one may have gone out
    else:
        return assessed
    parts = log_odds_left(history.rfm, model)
    reasons = score.reasons
    recency, purchases = reasons[0], reasons[1]
    spend = [r for r in reasons if r.feature.startswith("average_charge_")][:1]
    words = [
        _reason(recency.feature, recency.value, parts.recency if parts else 0.0, recency.text),
        _reason(purchases.feature, purchases.value, parts.purchases if parts else 0.0, purchases.text),
        *(_reason(r.feature, r.value, 0.0, f"{r.text}: not part of the score") for r in spend),
    ]
    features: dict[str, float] = {
        "days_since_last_purchase": round(history.days_since_last, 3),
        "purchases": history.purchases,
        "probability_active": round(score.probability_active, 3),
        f"expected_purchases_{score.horizon_days}d": round(score.expected_purchases, 3),
    }
    detail = {
        "signal_id": signal_id(
            KIND, watch.subject, model.version, watch.digest, str(as_of), str(before), level
        ),
        "kind": KIND,
        "customer_id": watch.customer_id,
        "account": watch.account,
        "livemode": watch.livemode,
        "score": risk,
        "level": level,
        "previous_level": before,
        "reasons": words,
        "evidence": {
            "event_ids": sorted({event for event, _ in watch.evidence}),
            "object_ids": sorted({charge for _, charge in watch.evidence}),
        },
        "as_of": iso(as_of),
        "model_version": model.version,
        "features": features,
    }
    return replace(assessed, pending=detail)


def _reason(feature: str, value: float | int | str, contribution: float, text: str) -> dict[str, Any]:
    share = round(contribution, 3)
    if abs(share) >= MIN_CONTRIBUTION:
        verb = "raises" if share > 0 else "lowers"
        text += f": {verb} the risk a lot" if abs(share) >= 1 else f": {verb} the risk"
        text += "" if abs(share) >= 0.3 else " slightly"
    return {"feature": feature, "value": value, "contribution": share, "text": text}


def assess_charges(
    subject: str,
    charges: BuyerCharges,
    watch: BuyerWatch | None,
    recorded_level: str | None,
    model: BuyerModel,
) -> BuyerWatch:
    """The watch a charge claims: the new purchases, assessed as of the newest charge; or, when the buyer was
    re-scored since (a later `as_of`), a second after that, so the assessment of the newer purchases is the
    later one. `recorded_level`: the level of the customer's churn-risk record when there is no watch yet."""
    as_of = charges.newest if watch is None or watch.as_of <= charges.newest else watch.as_of + 1
    fresh = BuyerWatch(
        subject=subject,
        customer_id=charges.customer_id,
        account=charges.account,
        livemode=charges.livemode,
        first_purchase=charges.purchases.first,
        last_purchase=charges.purchases.last,
        repeat_purchases=charges.purchases.repeat_purchases,
        charges=charges.purchases.charges,
        spend=charges.purchases.spend,
        basis=charges.basis,
        digest=charges.digest,
        evidence=charges.evidence,
        as_of=as_of,
        level="",
        score=0.0,
        model_version=model.version,
    )
    published = watch.published_level if watch else recorded_level
    return _assessed(fresh, as_of, watch, published, model)


def rescored(watch: BuyerWatch, now: int, model: BuyerModel) -> BuyerWatch | None:
    """The watch as of `now` when its level changed since it was assessed (None: nothing to claim)."""
    if watch.level == HIGH or now <= watch.as_of:
        return None
    assessed = _assessed(watch, now, watch, watch.published_level, model)
    return assessed if assessed.level != watch.level else None


# -- publishing ---------------------------------------------------------------------------------------------
def _publish_pending(
    watch: BuyerWatch, watches: BuyerWatches, publisher: Publisher
) -> tuple[BuyerRisk | None, BuyerWatch | None]:
    """Publish the claimed change, record it, mark it done. Returns the change (None: the bus refused it,
    it stays pending) and the watch as marked (None: another writer claimed it meanwhile, and its claim
    says what to publish next)."""
    detail = watch.pending
    if detail is None:
        return None, watch
    risk = BuyerRisk(str(detail["signal_id"]), watch.subject, detail)
    if publisher.publish([Publication(risk.signal_id, DetailType.SIGNAL_CHURN_RISK, detail)]):
        return None, None
    watches.put_churn_risk(watch.subject, detail)
    marked = replace(watch, pending=None, revision=watch.revision + 1)
    return risk, marked if watches.put_buyer_watch(marked, expected_revision=watch.revision) else None


def publish_buyer_risks(
    subjects: Sequence[str],
    read: Callable[[str], list[Fact]],
    watches: BuyerWatches,
    publisher: Publisher,
    model: BuyerModel,
) -> tuple[list[BuyerRisk], int]:
    """Assess each of these customers (who just had a charge) that has no subscription as a one-off buyer;
    publish the level changes. Returns what was published and how many the bus refused (pending in their
    watch, published by the redelivery)."""
    published: list[BuyerRisk] = []
    failed = 0
    for subject in sorted(subjects):
        facts = read(subject)
        charges = None if is_subscriber(facts) else buyer_charges(facts)
        if charges is None:
            continue
        claimed = _claim_charges(subject, charges, watches, model)
        if claimed is None or claimed.pending is None:
            continue
        risk, _ = _publish_pending(claimed, watches, publisher)
        if risk is None:
            failed += 1
        else:
            published.append(risk)
    return published, failed


def _claim_charges(
    subject: str, charges: BuyerCharges, watches: BuyerWatches, model: BuyerModel
) -> BuyerWatch | None:
    """The watch after these charges: claimed now, or as found when it already holds them (with the change
    still pending, if it is); None when it holds newer charges."""
    for _ in range(MAX_CLAIMS):
        watch = watches.buyer_watch(subject)
        if watch is not None and watch.basis >= charges.basis:
            return watch if watch.basis == charges.basis else None  # a duplicate, or a stale delivery
        recorded = None
        if watch is None and (record := watches.churn_risk(subject)) is not None:
            recorded = record.get("level")
        claim = assess_charges(subject, charges, watch, recorded, model)
        if watches.put_buyer_watch(claim, expected_revision=watch.revision if watch else None):
            return claim
    raise BuyerWatchContendedError(f"the watch of {subject} kept changing; the redelivery assesses it again")


def rescore_buyers(
    watches: BuyerWatches,
    publisher: Publisher,
    model: BuyerModel,
    now: int,
    *,
    out_of_time: Callable[[], bool] = lambda: False,
) -> Rescore:
    """Every watched buyer scored again as of `now`; level changes (and changes still pending) published.

    The shards are read from a different one each day, so a run that runs out of time (`out_of_time`,
    checked between buyers) leaves different buyers for the next day's run. A buyer whose write fails is
    counted and left for the next run; a charge that claimed the watch meanwhile wins."""
    outcome = Rescore()
    first = (now // 86_400) % WATCH_SHARDS
    for shard in [(first + n) % WATCH_SHARDS for n in range(WATCH_SHARDS)]:
        try:
            for watch in watches.buyer_watches(shard):
                if out_of_time():
                    outcome.complete = False
                    return outcome
                outcome.rescored += 1
                try:
                    changes, failures = _rescore(
                        watch, watches=watches, publisher=publisher, model=model, now=now
                    )
                except UnavailableError:
                    changes, failures = [], 1
                outcome.changes += changes
                outcome.failures += failures
        except UnavailableError:  # the shard could not be read (to the end): the next run reads it
            outcome.failures += 1
            outcome.complete = False
            continue
        outcome.shards.append(shard)
    return outcome


def _rescore(
    watch: BuyerWatch, *, watches: BuyerWatches, publisher: Publisher, model: BuyerModel, now: int
) -> tuple[list[BuyerRisk], int]:
    """One watched buyer as of `now`: the changes published, and the failures (left for the next run)."""
    published: list[BuyerRisk] = []
    if watch.pending is not None:  # claimed earlier, its publication failed: publish the same detail
        risk, marked = _publish_pending(watch, watches, publisher)
        if risk is None:
            return published, 1
        published.append(risk)
        if marked is None:
            return published, 0
        watch = marked
    claim = rescored(watch, now, model)
    if claim is None or not watches.put_buyer_watch(claim, expected_revision=watch.revision):
        return published, 0  # no change; or a charge came first, and its assessment stands
    risk, _ = _publish_pending(claim, watches, publisher)
    return (published, 1) if risk is None else ([*published, risk], 0)
