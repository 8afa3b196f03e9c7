"""Churn risk of subscription customers: features of a customer's facts in event time, a logistic model
kept as JSON (a documented prior until the tenant's own history trains one), scored in plain Python.

The features read only the facts kept under the customer (`signals.facts`): subscriptions, plan changes,
invoices, charges and cards. They are measured at an `as_of` time (the newest fact, so the same facts give
the same score whatever order they arrived in); windows count facts `created` within so many days before it.
A customer without a subscription fact is a one-off buyer: not this model's to score (`signals/buyers.py`).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from statistics import median
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.errors import ConfigurationError
from stripe_middleware.shared.settings import config_file
from stripe_middleware.signals.detectors import signal_id
from stripe_middleware.signals.facts import (
    CARD,
    CHARGE,
    DISPUTE,
    INVOICE,
    PLAN_CHANGE,
    REFUND,
    SUBSCRIPTION,
    Fact,
)
from stripe_middleware.signals.ports import level_of

CHURN_MODEL_ENV = "CHURN_MODEL_PATH"
KIND = "churn_risk"
DAY = 86_400
LIVE = frozenset({"trialing", "active", "past_due", "paused"})  # a subscription that can still churn
ENDED = frozenset({"canceled", "unpaid"})  # the subscription churned (what the model learns to predict)
MAX_REASONS = 3
MAX_EVIDENCE = 20  # the newest facts behind the reasons: the detail stays small
MIN_CONTRIBUTION = 0.05  # log-odds: smaller contributions are not worth a reason


def _times(count: float, noun: str) -> str:
    n = round(count)
    return f"{n or 'no'} {noun}{'' if n == 1 else 's'}"


def _days(count: float) -> str:
    n = round(count)
    return f"{n} day{'' if n == 1 else 's'}"


def _flag(yes: str, no: str) -> Callable[[float], str]:
    return lambda value: yes if value else no


def _trend(what: str) -> Callable[[float], str]:
    def text(value: float) -> str:
        if abs(value) < 0.005:
            return f"{what} is level with the ones before"
        return f"{what} is {abs(value):.0%} {'above' if value > 0 else 'below'} the ones before"

    return text


# Every feature the model may use, in the order reasons list them, with how a person reads its value.
FEATURES: dict[str, Callable[[float], str]] = {
    "failed_payments_30d": lambda v: f"{_times(v, 'payment')} failed in the last 30 days",
    "failed_payments_90d": lambda v: f"{_times(v, 'payment')} failed in the last 90 days",
    "days_since_last_payment": lambda v: f"{_days(v)} since the last successful payment",
    "card_expires_before_renewal": _flag(
        "the card on file expires before the next renewal", "the card on file is valid past the next renewal"
    ),
    "cancel_at_period_end": _flag(
        "the subscription is set to cancel at the end of its period", "no cancellation is scheduled"
    ),
    "paused": _flag("payment collection is paused", "payment collection is not paused"),
    "past_due": _flag("the subscription is past due", "the subscription is not past due"),
    "in_trial": _flag("the customer is still in a trial", "the customer is not in a trial"),
    "downgrades_90d": lambda v: f"{_times(v, 'downgrade')} in the last 90 days",
    "quantity_decreases_90d": lambda v: f"{_times(v, 'quantity decrease')} in the last 90 days",
    "price_increases_90d": lambda v: f"{_times(v, 'price increase')} per unit in the last 90 days",
    "refunds_90d": lambda v: f"{_times(v, 'refunded payment')} in the last 90 days",
    "disputes_365d": lambda v: f"{_times(v, 'disputed payment')} in the last year",
    "tenure_days": lambda v: f"a subscriber for {_days(v)}",
    "invoice_amount_trend": _trend("the latest invoice"),
    "usage_trend": _trend("the metered usage on the latest invoice"),
}
MAX_TENURE_DAYS = 1095  # longer tenures read as three years: the model stays linear where data is
MAX_DAYS_SINCE_PAYMENT = 365


class ChurnModelError(ConfigurationError):
    pass


# -- features ---------------------------------------------------------------------------------------------
@dataclass
class Measured:
    """A customer's feature values as of a time, the facts behind each, and its live subscriptions."""

    as_of: int
    values: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, list[Fact]] = field(default_factory=dict)
    live: list[Fact] = field(default_factory=list)

    def put(self, name: str, value: float, behind: Iterable[Fact | None] = ()) -> None:
        self.values[name] = float(value)
        self.evidence[name] = [f for f in behind if f is not None]


def is_subscriber(facts: Sequence[Fact]) -> bool:
    """Whether the subscription model scores this customer (else it is a one-off buyer)."""
    return any(f.kind == SUBSCRIPTION for f in facts)


def features(facts: Sequence[Fact], as_of: int) -> dict[str, float]:
    """The churn features of one customer's facts as of `as_of` (Unix seconds, event time)."""
    return measure(facts, as_of).values


def measure(facts: Sequence[Fact], as_of: int) -> Measured:
    kinds: dict[str, list[Fact]] = {}
    for fact in sorted((f for f in facts if f.created <= as_of), key=lambda f: (f.created, f.id)):
        kinds.setdefault(fact.kind, []).append(fact)
    subscriptions, invoices = kinds.get(SUBSCRIPTION, []), kinds.get(INVOICE, [])
    charges, changes = kinds.get(CHARGE, []), kinds.get(PLAN_CHANGE, [])
    live = [s for s in subscriptions if s.status in LIVE]
    measured = Measured(as_of=as_of, live=live)

    def within(facts: Iterable[Fact], days: int) -> list[Fact]:
        return [f for f in facts if as_of - f.created < days * DAY]

    for days in (30, 90):  # a failed attempt is a failed charge and an invoice's attempt: count one of them
        failed_charges = within((c for c in charges if c.failed), days)
        failed_invoices = [i for i in within(invoices, days) if _failed_attempts(i)]
        attempts = sum(_failed_attempts(i) for i in failed_invoices)
        if len(failed_charges) >= attempts:
            measured.put(f"failed_payments_{days}d", len(failed_charges), failed_charges)
        else:
            measured.put(f"failed_payments_{days}d", attempts, failed_invoices)
    paid = [c for c in charges if not c.failed] + [i for i in invoices if _paid(i)]
    last = max(paid, key=lambda f: (f.created, f.id), default=None)
    start = min((s.created for s in subscriptions), default=as_of)
    since = (as_of - (last.created if last else start)) / DAY
    measured.put("days_since_last_payment", min(since, MAX_DAYS_SINCE_PAYMENT), [last])
    card, renewal = _default_card(live, kinds.get(CARD, []), charges), _next_renewal(live)
    expires = _card_expiry(card)
    measured.put("card_expires_before_renewal", bool(expires and renewal and expires <= renewal), [card])
    for name, behind in (
        ("cancel_at_period_end", [s for s in live if s.cancel_at_period_end]),
        ("paused", [s for s in live if s.paused]),
        ("past_due", [s for s in live if s.status == "past_due"]),
        ("in_trial", [s for s in live if s.status == "trialing"]),
    ):
        measured.put(name, bool(behind), behind)
    recent = within(changes, 90)
    downgrades = [c for c in recent if _less(c.amount, c.previous_amount)]
    measured.put("downgrades_90d", len(downgrades), downgrades)
    fewer = [c for c in recent if _less(c.quantity, c.previous_quantity)]
    measured.put("quantity_decreases_90d", len(fewer), fewer)
    dearer = [c for c in recent if _unit_price_rose(c)]
    measured.put("price_increases_90d", len(dearer), dearer)
    refunds = _per_charge(
        within((r for r in kinds.get(REFUND, []) if not r.failed), 90),
        within((c for c in charges if c.refunded), 90),
    )
    measured.put("refunds_90d", len(refunds), refunds)
    disputes = _per_charge(
        within(kinds.get(DISPUTE, []), 365), within((c for c in charges if c.disputed), 365)
    )
    measured.put("disputes_365d", len(disputes), disputes)
    first = min(subscriptions, key=lambda s: (s.created, s.id), default=None)
    measured.put("tenure_days", min((as_of - start) / DAY, MAX_TENURE_DAYS), [first])
    billed = [i for i in invoices if i.subscription and i.status in ("open", "paid", "uncollectible")]
    amounts = [(i, float(i.amount)) for i in billed if i.amount]
    measured.put("invoice_amount_trend", *_trend_of(amounts))
    metered = {item for s in subscriptions for item in (s.metered_items or "").split()}
    usage = [(i, float(used)) for i in billed if (used := _usage(i, metered)) is not None]
    measured.put("usage_trend", *_trend_of(usage))
    return measured


def _trend_of(series: list[tuple[Fact, float]]) -> tuple[float, list[Fact]]:
    """The latest value against the median of the three before (one proration is no trend), -1..3, and
    the invoices behind it; 0 without two values."""
    if len(series) < 2:
        return 0.0, []
    before = median(value for _, value in series[-4:-1])
    latest = series[-1][1]
    change = latest / before - 1 if before else (3.0 if latest else 0.0)
    return max(-1.0, min(3.0, change)), [fact for fact, _ in series[-4:]]


def _usage(invoice: Fact, metered: set[str]) -> int | None:
    """The quantity the invoice billed of the customer's metered items; None when it billed none of them."""
    pairs = [pair.split("=", 1) for pair in (invoice.item_quantities or "").split()]
    used = [int(count) for item, count in pairs if item in metered]
    return sum(used) if used else None


def _per_charge(events: list[Fact], charges: list[Fact]) -> list[Fact]:
    """Refunds (or disputes), one per charge: the refund's own fact (dated when it happened) when the customer
    has it, else the charge that says it was refunded (dated by the charge)."""
    by_charge = {e.charge or e.object_id: e for e in events}
    return list(by_charge.values()) + [c for c in charges if c.object_id not in by_charge]


def _failed_attempts(invoice: Fact) -> int:
    """Attempts that failed: all of them while the invoice is unpaid, all but the last once it is paid."""
    attempts = invoice.attempts or 0
    if invoice.status in ("draft", "void") or not attempts:
        return 0
    return attempts - 1 if invoice.status == "paid" else attempts


def _paid(invoice: Fact) -> bool:
    return invoice.status == "paid" and bool(invoice.amount)


def _less(after: int | None, before: int | None) -> bool:
    return after is not None and before is not None and after < before


def _unit_price_rose(change: Fact) -> bool:
    after, before = change.amount, change.previous_amount
    quantity, previous = change.quantity, change.previous_quantity
    if after is None or before is None or not quantity or not previous:
        return False
    return after * previous > before * quantity  # after / quantity > before / previous


def _default_card(live: list[Fact], cards: list[Fact], charges: list[Fact]) -> Fact | None:
    """The subscription's default payment method when its card is known, else the newest card the
    customer attached or paid with."""
    chosen = {s.payment_method for s in live if s.payment_method}
    expiring = [c for c in cards if c.exp_month and c.exp_year]
    named = [c for c in expiring if c.object_id in chosen]
    candidates = named or expiring + [c for c in charges if not c.failed and c.exp_month and c.exp_year]
    return max(candidates, key=lambda f: (f.created, f.id), default=None)


def _next_renewal(live: list[Fact]) -> int | None:
    return min((s.period_end for s in live if s.period_end), default=None)


def _card_expiry(card: Fact | None) -> int | None:
    """The first second after the card's expiry month (a card works through its expiry month), UTC."""
    if card is None or not card.exp_month or not card.exp_year or not 1 <= card.exp_month <= 12:
        return None
    year, month = divmod(card.exp_year * 12 + card.exp_month, 12)  # the month after, 0-based
    return calendar.timegm((year, month + 1, 1, 0, 0, 0))


# -- the model --------------------------------------------------------------------------------------------
def content_version(
    *,
    prior: bool,
    features: Sequence[str],
    coefficients: Mapping[str, float],
    intercept: float,
    means: Mapping[str, float],
    scales: Mapping[str, float],
) -> str:
    """`churn@<hash>` (or `churn_prior@<hash>`) of what scores: a signal names the exact model behind it."""
    content = json.dumps(
        [list(features), dict(coefficients), intercept, dict(means), dict(scales)], sort_keys=True
    )
    return f"churn{'_prior' if prior else ''}@{hashlib.sha256(content.encode()).hexdigest()[:8]}"


class ChurnModel(BaseModel):
    """A logistic model: score = 1 / (1 + e^-(intercept + Σ coefficient * (value - mean) / scale)).

    `prior` marks hand-set coefficients (config/churn_model.json) until the tenant's history trains one
    (`signals/training.py`); `version` is `content_version` of it, checked when it is loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    version: str = Field(pattern=r"^churn(_prior)?@[0-9a-f]{8}$")
    prior: bool
    trained_at: str | None = None  # ISO 8601; None for the prior
    horizon_days: int = Field(default=60, ge=1, le=365)  # the score is the chance of ending within it
    comment: dict[str, str] = {}  # what each feature and coefficient means, for people
    features: tuple[str, ...] = Field(min_length=1)
    coefficients: dict[str, float]
    intercept: float
    means: dict[str, float]
    scales: dict[str, float]
    metrics: dict[str, Any] | None = None  # how it did on held-out data when it was trained

    @model_validator(mode="after")
    def _consistent(self) -> ChurnModel:
        unknown = sorted(set(self.features) - set(FEATURES))
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {list(FEATURES)}")
        if len(set(self.features)) != len(self.features):
            raise ValueError("features are listed twice")
        for part in ("coefficients", "means", "scales"):
            keys = set(getattr(self, part))
            if keys != set(self.features):
                missing, extra = sorted(set(self.features) - keys), sorted(keys - set(self.features))
                raise ValueError(f"{part} must name exactly the features (missing {missing}, extra {extra})")
        if not_positive := sorted(name for name, scale in self.scales.items() if scale <= 0):
            raise ValueError(f"scales must be positive: {not_positive}")
        expected = content_version(**self._content())
        if self.version != expected:
            raise ValueError(
                f"version {self.version} does not match the model's content: it is {expected} (a hash of "
                "prior, features, coefficients, intercept, means and scales, so a signal names its model)"
            )
        return self

    def _content(self) -> dict[str, Any]:
        return self.model_dump(include={"prior", "features", "coefficients", "intercept", "means", "scales"})

    @classmethod
    def build(
        cls,
        *,
        prior: bool,
        features: Sequence[str],
        coefficients: Mapping[str, float],
        intercept: float,
        means: Mapping[str, float],
        scales: Mapping[str, float],
        **rest: Any,
    ) -> ChurnModel:
        """A model with its version computed from its content."""
        content: dict[str, Any] = {
            "prior": prior,
            "features": tuple(features),
            "coefficients": dict(coefficients),
            "intercept": intercept,
            "means": dict(means),
            "scales": dict(scales),
        }
        return cls(version=content_version(**content), **content, **rest)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def contributions(self, values: Mapping[str, float]) -> dict[str, float]:
        """Each feature's share of the log-odds, against a customer at the means."""
        return {
            name: self.coefficients[name] * (values[name] - self.means[name]) / self.scales[name]
            for name in self.features
        }

    def predict(self, values: Mapping[str, float]) -> float:
        return _sigmoid(self.intercept + sum(self.contributions(values).values()))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


@cache
def load_churn_model(path: Path | None = None) -> ChurnModel:
    """The model signals score with: CHURN_MODEL_PATH, else the copy the layer ships next to the library."""
    path = path or config_file(CHURN_MODEL_ENV, "churn_model.json")
    try:
        return ChurnModel.model_validate_json(path.read_text())
    except (OSError, ValidationError) as error:
        raise ChurnModelError(f"churn model {path} is invalid:\n{error}") from error


# -- the signal -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contribution:
    """One feature behind a churn risk: its value, its share of the log-odds, and both in words."""

    feature: str
    value: float
    contribution: float
    text: str


def explain(model: ChurnModel, values: Mapping[str, float]) -> tuple[Contribution, ...]:
    """What raises the risk most, then (when fewer than three do) what lowers it most."""
    shares = model.contributions(values)
    raising = sorted((n for n in shares if shares[n] >= MIN_CONTRIBUTION), key=lambda n: -shares[n])
    lowering = sorted((n for n in shares if shares[n] <= -MIN_CONTRIBUTION), key=lambda n: shares[n])
    chosen = (raising + lowering)[:MAX_REASONS] or [max(shares, key=lambda n: abs(shares[n]))]
    return tuple(
        Contribution(
            feature=name,
            value=round(values[name], 3),
            contribution=round(shares[name], 3),
            text=f"{FEATURES[name](values[name])}: {_effect(shares[name])}",
        )
        for name in chosen
    )


def _effect(share: float) -> str:
    size = abs(share)
    if size < MIN_CONTRIBUTION:
        return "barely changes the risk"
    verb = "raises" if share > 0 else "lowers"
    if size >= 1:
        return f"{verb} the risk a lot"
    return f"{verb} the risk" if size >= 0.3 else f"{verb} it slightly"


@dataclass(frozen=True)
class ChurnRisk:
    signal_id: str  # stable: the same facts (in the same states) and model give the same id
    subject: str
    account: str | None
    livemode: bool
    customer_id: str | None
    score: float  # 0..1, rounded to 3 decimals (the level is of the published score)
    reasons: tuple[Contribution, ...]
    evidence: tuple[Fact, ...]
    as_of: int  # event time: the newest fact of the customer
    model_version: str
    features: dict[str, float]
    previous_level: str | None = None  # the level published before, None the first time

    kind = KIND

    @property
    def level(self) -> str:
        return level_of(self.score)

    def detail(self) -> dict[str, Any]:
        """The published detail of `stripe-middleware.signal.churn_risk`."""
        return {
            "signal_id": self.signal_id,
            "kind": KIND,
            "customer_id": self.customer_id,
            "account": self.account,
            "livemode": self.livemode,
            "score": self.score,
            "level": self.level,
            "previous_level": self.previous_level,
            "reasons": [vars(r) for r in self.reasons],
            "evidence": {
                "event_ids": sorted({f.evidence for f in self.evidence}),
                "object_ids": sorted({f.object_id for f in self.evidence}),
            },
            "as_of": iso(self.as_of),
            "model_version": self.model_version,
            "features": {name: round(value, 3) for name, value in self.features.items()},
        }


def _digest(facts: Sequence[Fact]) -> str:
    """Which facts, in which state: a late, older fact can change the score without changing `as_of`."""
    states = sorted(f"{f.id}@{f.version}/{f.evidence}" for f in facts)
    return hashlib.sha256("\n".join(states).encode()).hexdigest()


def assess(subject: str, facts: Sequence[Fact], model: ChurnModel) -> ChurnRisk | None:
    """A subscription customer's churn risk as of its newest fact; None while no subscription is live
    (none yet, or all ended: the churn happened, and its Stripe event says so)."""
    if not facts:
        return None
    as_of = max(f.version for f in facts)
    measured = measure(facts, as_of)
    if not measured.live:
        return None
    reasons = explain(model, measured.values)
    behind = {f.id: f for r in reasons for f in measured.evidence[r.feature]}
    behind |= {s.id: s for s in measured.live}
    evidence = sorted(behind.values(), key=lambda f: (f.created, f.id))[-MAX_EVIDENCE:]
    first = measured.live[0]
    return ChurnRisk(
        signal_id=signal_id(KIND, subject, model.version, _digest(facts)),
        subject=subject,
        account=first.account,
        livemode=first.livemode,
        customer_id=first.customer,
        score=round(model.predict(measured.values), 3),
        reasons=reasons,
        evidence=tuple(evidence),
        as_of=as_of,
        model_version=model.version,
        features={name: measured.values[name] for name in FEATURES},
    )
