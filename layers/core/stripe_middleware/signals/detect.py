"""One published detail in, the anomalies it completes out: keep its facts, evaluate the subjects they
touch, publish each finding not published before (at least once, under a stable `signal_id`) with the
commands its detector's actions send through the gateway; and score the churn risk of each subscription
customer it touches, and of each one-off buyer it brings a charge of, published when its level changes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.shared.publishing import Publication, Publisher
from stripe_middleware.signals.buyer_risk import BuyerRisk, is_buyer_assessment, publish_buyer_risks
from stripe_middleware.signals.buyers import BuyerModel
from stripe_middleware.signals.churn import ChurnModel, ChurnRisk, assess, is_subscriber
from stripe_middleware.signals.config import SignalsConfig
from stripe_middleware.signals.detectors import evaluate
from stripe_middleware.signals.facts import (
    ACCOUNT,
    CHARGE,
    CUSTOMER,
    Fact,
    card_subject,
    facts_of,
    subject_kind,
    subjects,
)
from stripe_middleware.signals.ports import Anomaly, SignalState


class SignalsNotPublishedError(UnavailableError):
    """EventBridge refused some signals (or their commands); their facts are kept, so the redelivery
    publishes them."""

    code = "signals_not_published"


@dataclass
class Detection:
    facts: int = 0
    raised: list[Anomaly] = field(default_factory=list)  # published now, for the first time
    churn_risks: list[ChurnRisk] = field(default_factory=list)  # churn-risk level changes published now
    buyer_risks: list[BuyerRisk] = field(default_factory=list)  # the same, of one-off buyers


def detect(
    detail_type: str,
    detail: dict[str, Any],
    *,
    state: SignalState,
    publisher: Publisher,
    config: SignalsConfig,
    model: ChurnModel,
    buyer_model: BuyerModel | None = None,
) -> Detection:
    """`buyer_model`: the one-off buyers' model (`signals/buyers.py`); without it they are not scored."""
    facts = facts_of(detail_type, detail)
    touched: dict[str, list[Fact]] = {}
    for fact in facts:
        for subject in subjects(fact):
            touched.setdefault(subject, []).append(fact)
    for subject, kept in touched.items():
        state.add_facts(subject, kept)
    oldest = min((f.created for f in facts), default=0)
    since = oldest - config.account_lookback_seconds()

    @cache  # each subject read once per detail, however many detectors look at it
    def read(subject: str) -> list[Fact]:
        return state.facts(subject, since=since if subject_kind(subject) == ACCOUNT else None)

    customers = [s for s in touched if subject_kind(s) == CUSTOMER]
    for subject in customers:  # a trial reaches the customer's cards
        touched |= {s: [] for f in read(subject) if (s := card_subject(f))}
    found = {a.signal_id: a for s in sorted(touched) for a in evaluate(s, read, config, oldest)}
    raised, failed = _publish_anomalies(found, state, publisher, config)
    changed = _churn_changes(customers, read, state, model)
    churn_risks, churn_failed = _publish_churn_risks(changed, state, publisher)
    buyer_risks: list[BuyerRisk] = []
    if buyer_model is not None:  # customers with a charge in this detail
        buyers = [s for s in customers if any(f.kind == CHARGE for f in touched[s])]
        buyer_risks, buyers_failed = publish_buyer_risks(buyers, read, state, publisher, buyer_model)
        churn_failed += buyers_failed
    if failed or churn_failed:
        raise SignalsNotPublishedError(
            f"{failed} anomalies (or their commands) and {churn_failed} churn risks were not published"
        )
    return Detection(facts=len(facts), raised=raised, churn_risks=churn_risks, buyer_risks=buyer_risks)


def _publish_anomalies(
    found: dict[str, Anomaly], state: SignalState, publisher: Publisher, config: SignalsConfig
) -> tuple[list[Anomaly], int]:
    """The findings published now for the first time, and how many the bus refused (a finding or one of
    its commands). Commands go in the same batch, and a finding is recorded as published only once its
    commands are on the bus too: the redelivery sends again what was refused, and the gateway runs a
    command it has seen (the same idempotency key) only once."""
    if not found:  # nothing found: nothing to ask of the state or the bus
        return [], 0
    published = state.published(found)
    new = [a for key, a in found.items() if key not in published]
    commands = {a.signal_id: _commands(a, config) for a in new}
    failed = publisher.publish(
        [Publication(a.signal_id, DetailType.SIGNAL_ANOMALY, a.detail()) for a in new]
        + [command for sent in commands.values() for command in sent]
    )
    raised = [
        a
        for a in new
        if a.signal_id not in failed and not any(c.key in failed for c in commands[a.signal_id])
    ]
    state.mark_published(raised)
    return raised, len(new) - len(raised)


def _commands(anomaly: Anomaly, config: SignalsConfig) -> list[Publication]:
    """The commands a finding's detector sends (actions, off by default): a `stripe-middleware.command`
    detail in the gateway's `CommandRequest` shape, which the gateway checks against its allowlist, metadata
    schema and rate limit like any producer's. Its idempotency key is the signal id: one refund per finding,
    however often it is sent. Signals never call Stripe themselves."""
    charge = anomaly.newest_charge
    if anomaly.kind != "duplicate_charge" or not config.detectors.duplicate_charge.refund or charge is None:
        return []
    command: dict[str, Any] = {
        "operation": "refunds.create",
        "params": {"charge": charge, "reason": "duplicate", "metadata": {"signal_id": anomaly.signal_id}},
        "idempotency_key": anomaly.signal_id,
    }
    if anomaly.account:
        command["stripe_account"] = anomaly.account
    return [Publication(f"{anomaly.signal_id}/refunds.create", DetailType.COMMAND, command)]


def _churn_changes(
    customers: Sequence[str], read: Callable[[str], list[Fact]], state: SignalState, model: ChurnModel
) -> list[ChurnRisk]:
    """The churn risk of each subscription customer whose level differs from the one published last (or was
    published by the one-off buyers' model, before the customer subscribed)."""
    changed = []
    for subject in sorted(customers):
        facts = read(subject)
        if not is_subscriber(facts):
            continue  # a one-off buyer: not the subscription model's to score (see signals/buyer_risk.py)
        risk, last = assess(subject, facts, model), state.churn_risk(subject)
        was_buyer = last is not None and is_buyer_assessment(last)
        if was_buyer:  # the buyer subscribed: no longer re-scored as a one-off buyer
            state.delete_buyer_watch(subject)
        if risk is None:  # no live subscription: the customer churned (or has not started); no risk to keep
            if last is not None:
                state.clear_churn_risk(subject)
            continue
        if last is not None and (
            (last.get("level") == risk.level and not was_buyer)
            or str(last.get("as_of")) > (iso(risk.as_of) or "")
        ):  # the same level, or a later assessment was published already (a concurrent delivery)
            continue
        changed.append(replace(risk, previous_level=last.get("level") if last else None))
    return changed


def _publish_churn_risks(
    changed: list[ChurnRisk], state: SignalState, publisher: Publisher
) -> tuple[list[ChurnRisk], int]:
    """A level is recorded only once published: a refused one is published again by the redelivery."""
    if not changed:
        return [], 0
    failed = publisher.publish(
        [Publication(r.signal_id, DetailType.SIGNAL_CHURN_RISK, r.detail()) for r in changed]
    )
    published = [r for r in changed if r.signal_id not in failed]
    for risk in published:
        state.put_churn_risk(risk.subject, risk.detail())
    return published, len(failed)
