"""One published detail in, the anomalies it completes out: keep its facts, evaluate the subjects they
touch, publish each finding not published before (at least once, under a stable `signal_id`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.shared.publishing import Publication, Publisher
from stripe_middleware.signals.config import SignalsConfig
from stripe_middleware.signals.detectors import evaluate
from stripe_middleware.signals.facts import CUSTOMER, Fact, card_subject, facts_of, subject_kind, subjects
from stripe_middleware.signals.ports import Anomaly, SignalState


class SignalsNotPublishedError(UnavailableError):
    """EventBridge refused some anomalies; their facts are kept, so the redelivery publishes them."""

    code = "signals_not_published"


@dataclass
class Detection:
    facts: int = 0
    raised: list[Anomaly] = field(default_factory=list)  # published now, for the first time


def detect(
    detail_type: str,
    detail: dict[str, Any],
    *,
    state: SignalState,
    publisher: Publisher,
    config: SignalsConfig,
) -> Detection:
    facts = facts_of(detail_type, detail)
    touched: dict[str, list[Fact]] = {}
    for fact in facts:
        for subject in subjects(fact):
            touched.setdefault(subject, []).append(fact)
    for subject, kept in touched.items():
        state.add_facts(subject, kept)
    read = cache(state.facts)  # each subject read once per detail, however many detectors look at it
    for subject in [
        s for s in touched if subject_kind(s) == CUSTOMER
    ]:  # a trial reaches the customer's cards
        touched |= {s: [] for f in read(subject) if (s := card_subject(f))}
    found = {a.signal_id: a for s in sorted(touched) for a in evaluate(s, read, config)}
    if not found:
        return Detection(facts=len(facts))
    published = state.published(found)
    new = [a for key, a in found.items() if key not in published]
    failed = publisher.publish([Publication(a.signal_id, DetailType.SIGNAL_ANOMALY, a.detail()) for a in new])
    state.mark_published([a for a in new if a.signal_id not in failed])
    if failed:
        raise SignalsNotPublishedError(f"{len(failed)} anomalies were not published")
    return Detection(facts=len(facts), raised=new)
