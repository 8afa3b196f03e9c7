"""The anomaly detectors: each a pure function of one subject's facts (and, for trial abuse, the facts
of the customers behind a card), in event time.

Every finding has a stable id (the detector, the subject, and the charge, refund or UTC day it is about), so
a redelivered or duplicated fact never raises it twice. The conditions of trial abuse, card testing and
duplicate charges only grow with the facts (more facts can raise a finding, never take one back), so the
same facts raise the same findings in any order. Account takeover, the two spikes and amount outliers
compare with a history or a baseline, which a late fact can change, and a published finding is never taken
back. So they judge only with a minimum history or baseline, with statistics a few missing facts barely move
(medians, rates over many charges); whatever the order, a subject's last fact judges it on all its facts, so
every finding of the whole stream is raised; in event-time order (live traffic, a replay, an oldest-first
backfill) exactly those; far out of order, a near miss judged on part of its history can be raised as well.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import median

from stripe_middleware.signals.config import (
    AccountTakeover,
    AmountOutlier,
    CardTesting,
    DisputeSpike,
    DuplicateCharge,
    PaymentFailureSpike,
    SignalsConfig,
    TrialAbuse,
)
from stripe_middleware.signals.facts import (
    ACCOUNT,
    CARD,
    CHARGE,
    CUSTOMER,
    DISPUTE,
    INVOICE,
    PROFILE,
    REFUND,
    TRIAL,
    Fact,
    customer_subject,
    subject_kind,
)
from stripe_middleware.signals.ports import Anomaly, Reason

Lookup = Callable[[str], list[Fact]]  # a subject's facts
HOUR, DAY = 3_600, 86_400
MAD_TO_SIGMA = 1.4826  # the median absolute deviation of normal data, times this, is its standard deviation
MAX_HISTORY = 50  # amount outliers: the customer's latest charges a charge is compared with


def signal_id(*parts: str) -> str:
    return "sig_" + hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]


def _ordered(facts: Sequence[Fact]) -> list[Fact]:
    return sorted(facts, key=lambda f: (f.created, f.id))


def _succeeded_charges(facts: Sequence[Fact]) -> list[Fact]:
    return _ordered([f for f in facts if f.kind == CHARGE and not f.failed and f.amount is not None])


def _day(created: int) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d")


def _at(created: int) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _money(amount: float | None, currency: str | None) -> str:
    return f"{amount or 0:g} {(currency or '').upper()}".strip()


def trial_abuse(subject: str, facts: list[Fact], lookup: Lookup, rule: TrialAbuse) -> list[Anomaly]:
    """A card subject: the trials of the customers who used the card, in the densest window."""
    cards = {f.customer: f for f in _ordered(facts) if f.customer}  # the customer's latest use
    trials = _ordered(
        [t for f in cards.values() for t in lookup(customer_subject(f) or "") if t.kind == TRIAL]
    )
    window = rule.window_days * 86_400
    best: list[Fact] = []
    start = 0
    for end, trial in enumerate(trials):
        while trial.created - trials[start].created > window:
            start += 1
        inside = trials[start : end + 1]
        if len({t.customer for t in inside}) > len({t.customer for t in best}):
            best = inside
    customers = sorted({t.customer for t in best if t.customer})
    if len(customers) < rule.customers:
        return []
    first = facts[0]
    return [
        Anomaly(
            signal_id=signal_id("trial_abuse", subject),
            kind="trial_abuse",
            subject=subject,
            account=first.account,
            livemode=first.livemode,
            customer_id=None,  # many: they are in the evidence
            score=min(1.0, 0.5 + 0.25 * (len(customers) - rule.customers)),
            reasons=(
                Reason(
                    "customers_per_card",
                    len(customers),
                    rule.customers,
                    f"one card is behind the trials or first invoices of {len(customers)} customers within "
                    f"{rule.window_days} days (threshold {rule.customers})",
                ),
            ),
            evidence=tuple(best) + tuple(cards[c] for c in customers),
            model_version=rule.version("trial_abuse"),
        )
    ]


def card_testing(subject: str, facts: list[Fact], rule: CardTesting) -> list[Anomaly]:
    """An account subject: the densest window of small failed charges on many cards, one finding per UTC
    day the window ends in (a burst across midnight may be reported on both days)."""
    charges = _ordered(
        [f for f in facts if f.kind == CHARGE and f.failed and (f.amount or 0) <= rule.max_amount]
    )
    window = rule.window_minutes * 60
    days: dict[str, list[Fact]] = {}  # the day a window ends in -> its densest qualifying window
    start = 0
    for end, charge in enumerate(charges):
        while charge.created - charges[start].created > window:
            start += 1
        inside = charges[start : end + 1]
        day = datetime.fromtimestamp(charge.created, UTC).strftime("%Y-%m-%d")
        cards = {c.fingerprint for c in inside if c.fingerprint}
        if (
            len(inside) >= rule.failures
            and len(cards) >= rule.fingerprints
            and len(inside) > len(days.get(day, []))
        ):
            days[day] = inside
    found = []
    for day, best in days.items():
        cards = {c.fingerprint for c in best if c.fingerprint}
        customers = {c.customer for c in best}
        found.append(
            Anomaly(
                signal_id=signal_id("card_testing", subject, day),
                kind="card_testing",
                subject=subject,
                account=best[0].account,
                livemode=best[0].livemode,
                customer_id=customers.pop() if len(customers) == 1 else None,
                score=min(1.0, 0.5 + 0.5 * (len(best) - rule.failures) / rule.failures),
                reasons=(
                    Reason(
                        "failed_small_charges",
                        len(best),
                        rule.failures,
                        f"{len(best)} charges of at most {rule.max_amount} (minor units) failed within "
                        f"{rule.window_minutes} minutes (threshold {rule.failures})",
                    ),
                    Reason(
                        "distinct_cards",
                        len(cards),
                        rule.fingerprints,
                        f"on {len(cards)} different cards (threshold {rule.fingerprints})",
                    ),
                ),
                evidence=tuple(best),
                model_version=rule.version("card_testing"),
            )
        )
    return found


def _same_card(a: Fact, b: Fact) -> bool:
    """The same card, or a card not known for one of them (two cards: two payments meant, or testing)."""
    return a.fingerprint is None or b.fingerprint is None or a.fingerprint == b.fingerprint


def duplicate_charge(subject: str, facts: list[Fact], rule: DuplicateCharge) -> list[Anomaly]:
    """A customer subject: each succeeded charge with an earlier one of the same amount on the same card
    within the window."""
    window = rule.window_minutes * 60
    charges = _ordered([f for f in facts if f.kind == CHARGE and not f.failed and f.amount is not None])
    found = []
    for index, charge in enumerate(charges):
        earlier = [
            c
            for c in charges[:index]
            if (c.amount, c.currency) == (charge.amount, charge.currency)
            and charge.created - c.created <= window
            and _same_card(c, charge)
        ]
        if not earlier:
            continue
        previous = earlier[-1]
        gap = charge.created - previous.created
        found.append(
            Anomaly(
                signal_id=signal_id("duplicate_charge", subject, charge.object_id),
                kind="duplicate_charge",
                subject=subject,
                account=charge.account,
                livemode=charge.livemode,
                customer_id=charge.customer,
                score=1.0 - 0.5 * gap / window,
                reasons=(
                    Reason(
                        "seconds_between_charges",
                        gap,
                        window,
                        f"charged {charge.amount} {(charge.currency or '').upper()} twice, {gap} s apart "
                        f"(window {rule.window_minutes} minutes)",
                    ),
                ),
                evidence=(previous, charge),
                model_version=rule.version("duplicate_charge"),
            )
        )
    return found


# -- account takeover ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Usual:
    """What a customer used before a change: their succeeded charges, and the cards and card countries of
    those charges and of the cards they attached."""

    charges: list[Fact]
    fingerprints: frozenset[str]
    countries: frozenset[str]

    @classmethod
    def before(cls, facts: Sequence[Fact], since: int) -> _Usual:
        charges = [f for f in _succeeded_charges(facts) if f.created < since]
        cards = charges + [f for f in facts if f.kind == CARD and f.created < since]
        return cls(
            charges,
            frozenset(f.fingerprint for f in cards if f.fingerprint),
            frozenset(f.country for f in cards if f.country),
        )


def account_takeover(subject: str, facts: list[Fact], rule: AccountTakeover) -> list[Anomaly]:
    """A customer subject: each succeeded charge or refund within the window after a change of the email or
    default payment method (or a card attached) that has enough signs of someone else paying or being paid."""
    ordered = _ordered(facts)
    changes = [f for f in ordered if f.kind in (PROFILE, CARD)]
    payments = [f for f in ordered if f.kind in (CHARGE, REFUND) and not f.failed and f.amount is not None]
    charges = {f.object_id: f for f in ordered if f.kind == CHARGE}
    window = rule.window_hours * HOUR
    found = []
    for payment in payments:
        recent = [c for c in changes if 0 <= payment.created - c.created <= window]
        if not recent:
            continue
        usual = _Usual.before(ordered, recent[0].created)
        if len(usual.charges) < rule.min_history:
            continue  # a new customer has no usual to leave
        refunded = charges.get(payment.charge or "") if payment.kind == REFUND else None
        signs = _takeover_signs(payment, recent, usual, refunded, rule)
        if len(signs) < rule.min_signs:
            continue
        found.append(
            Anomaly(
                signal_id=signal_id("account_takeover", subject, payment.object_id),
                kind="account_takeover",
                subject=subject,
                account=payment.account,
                livemode=payment.livemode,
                customer_id=payment.customer,
                score=min(1.0, 0.5 + 0.25 * (len(signs) - rule.min_signs)),
                reasons=(
                    _change_reason(payment, recent, rule),
                    *signs,
                    Reason(
                        "signs",
                        len(signs),
                        rule.min_signs,
                        f"{len(signs)} signs of a takeover (threshold {rule.min_signs}), after "
                        f"{len(usual.charges)} usual charges (at least {rule.min_history} needed)",
                    ),
                ),
                evidence=(*recent, *([refunded] if refunded else []), payment),
                model_version=rule.version("account_takeover"),
            )
        )
    return found


def _change_reason(payment: Fact, changes: list[Fact], rule: AccountTakeover) -> Reason:
    what = sorted({part for c in changes for part in (c.change or "").split()})
    said = [f"the customer's {' and '.join(w.replace('_', ' ') for w in what)} changed"] if what else []
    if any(c.kind == CARD for c in changes):
        said.append("a card was attached")
    hours = (payment.created - changes[0].created) / HOUR
    paid = "charge" if payment.kind == CHARGE else "refund"
    changed = " and ".join(said)
    return Reason(
        "hours_since_change",
        round(hours, 1),
        rule.window_hours,
        f"{changed[:1].upper()}{changed[1:]} {hours:.1f} hours before this {paid} of "
        f"{_money(payment.amount, payment.currency)} (window {rule.window_hours} hours)",
    )


def _takeover_signs(
    payment: Fact, changes: list[Fact], usual: _Usual, refunded: Fact | None, rule: AccountTakeover
) -> list[Reason]:
    signs = []
    if any("email" in (c.change or "").split() for c in changes):
        signs.append(Reason("email_changed", "email", None, "the email changed before the payment"))
    if payment.kind == CHARGE:
        if payment.fingerprint and payment.fingerprint not in usual.fingerprints:
            signs.append(
                Reason(
                    "new_card",
                    len(usual.fingerprints),
                    None,
                    f"paid with a card the customer had not used before the change (they had used "
                    f"{len(usual.fingerprints)} other cards)",
                )
            )
        if payment.country and usual.countries and payment.country not in usual.countries:
            before = ", ".join(sorted(usual.countries))
            signs.append(
                Reason(
                    "new_card_country",
                    payment.country,
                    None,
                    f"the card is from {payment.country}; the customer's cards before were from {before}",
                )
            )
    elif refunded and refunded.fingerprint and refunded.fingerprint not in usual.fingerprints:
        signs.append(
            Reason(
                "refund_to_new_card",
                payment.amount or 0,
                None,
                f"refunded {_money(payment.amount, payment.currency)} of charge {refunded.object_id} to a "
                "card the customer had not used before the change",
            )
        )
    amounts = [c.amount or 0 for c in usual.charges if c.currency == payment.currency]
    middle = median(amounts) if amounts else 0
    if middle > 0 and (payment.amount or 0) >= rule.amount_ratio * middle:
        ratio = (payment.amount or 0) / middle
        signs.append(
            Reason(
                "amount_to_median",
                round(ratio, 1),
                rule.amount_ratio,
                f"{_money(payment.amount, payment.currency)} is {ratio:.1f} times the customer's median of "
                f"{_money(middle, payment.currency)} before the change (threshold {rule.amount_ratio:g})",
            )
        )
    return signs


# -- payment failure and dispute spikes ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Window:
    """A recent window of an account, which ends at one of its events (a failure, a dispute), and the
    baseline just before it."""

    end: int
    events: list[Fact]  # in the window: the failed charges, or the disputes
    charges: int  # in the window: the charges the events are a share of
    baseline_events: int
    baseline_charges: int

    @property
    def rate(self) -> float:
        return len(self.events) / self.charges if self.charges else 0.0

    @property
    def baseline_rate(self) -> float:
        """Never zero: a baseline without events counts as one, "at most 1 in N"."""
        return max(self.baseline_events, 1) / self.baseline_charges if self.baseline_charges else 1.0

    @property
    def lift(self) -> float:
        return self.rate / self.baseline_rate


def _windows(events: list[Fact], charges: list[Fact], recent: int, baseline: int) -> list[_Window]:
    """For each event at time t (both lists ordered): the window (t - recent, t] and its baseline
    (t - recent - baseline, t - recent]."""
    charge_times, event_times = [c.created for c in charges], [e.created for e in events]
    windows = []
    for event in events:
        end = event.created
        cuts = (end - recent - baseline, end - recent, end)
        c0, c1, c2 = (bisect_right(charge_times, t) for t in cuts)
        e0, e1, e2 = (bisect_right(event_times, t) for t in cuts)
        windows.append(_Window(end, events[e1:e2], c2 - c1, e1 - e0, c1 - c0))
    return windows


def _worst_per_day(windows: list[_Window]) -> dict[str, _Window]:
    """The window with the highest rate among those ending on each UTC day: one finding per day."""
    days: dict[str, _Window] = {}
    for window in windows:
        day = _day(window.end)
        best = days.get(day)
        if best is None or (window.rate, window.charges, window.end) > (best.rate, best.charges, best.end):
            days[day] = window
    return days


@dataclass(frozen=True)
class _RateSpike:
    """A rate spike detector: the share of an account's charges that one kind of event (a failure, a
    dispute) makes in a recent window, against the same share in a baseline just before it. What differs
    between the two detectors: the events and charges counted, the window, how many events a spike needs
    and how its reasons read (the rate's decimals, what happened to the baseline's charges)."""

    kind: str
    rule: PaymentFailureSpike | DisputeSpike
    recent: int  # the window, in seconds
    min_events: int
    digits: int  # the decimals of a rate in percent
    outcome: str  # what the events did to their charges: "failed", "were disputed"

    def anomalies(
        self,
        subject: str,
        events: list[Fact],
        charges: list[Fact],
        judged_from: int | None,
        reasons: Callable[[_Window], tuple[Reason, ...]],
    ) -> list[Anomaly]:
        """The worst spiking window of each UTC day, as a finding with the detector's `reasons`."""
        windows = _windows(events, charges, self.recent, self.rule.baseline_days * DAY)
        spiking = [w for w in windows if self._spiking(w) and _judged(w, judged_from)]
        return [self._anomaly(subject, day, w, reasons(w)) for day, w in _worst_per_day(spiking).items()]

    def _spiking(self, window: _Window) -> bool:
        """Enough events and charges in the window, charges in its baseline, its rate and its lift."""
        rule = self.rule
        return (
            len(window.events) >= self.min_events
            and window.charges >= rule.min_charges
            and window.baseline_charges >= rule.min_baseline_charges
            and 100 * window.rate >= rule.min_rate_percent
            and window.lift >= rule.ratio
        )

    def _anomaly(self, subject: str, day: str, window: _Window, reasons: tuple[Reason, ...]) -> Anomaly:
        first, ratio = window.events[0], self.rule.ratio
        return Anomaly(
            signal_id=signal_id(self.kind, subject, day),
            kind=self.kind,
            subject=subject,
            account=first.account,
            livemode=first.livemode,
            customer_id=None,  # an account's rate: the customers are in the evidence
            score=min(1.0, 0.5 + 0.5 * (window.lift - ratio) / ratio),
            reasons=reasons,
            evidence=tuple(window.events),
            model_version=self.rule.version(self.kind),
        )

    def percent(self, rate: float) -> str:
        return f"{100 * rate:.{self.digits}f}%"

    def rate_reason(self, feature: str, window: _Window, said: str) -> Reason:
        """The window's rate against the least one; `said` tells what was counted."""
        least = self.rule.min_rate_percent
        return Reason(feature, round(100 * window.rate, self.digits), least, f"{said} (threshold {least:g}%)")

    def baseline_reason(self, window: _Window) -> Reason:
        rule, before = self.rule, window.baseline_events or "none"
        return Reason(
            "times_baseline",
            round(window.lift, 1),
            rule.ratio,
            f"{window.lift:.1f} times the account's own rate: {before} of the {window.baseline_charges} "
            f"charges of the {rule.baseline_days} days before {self.outcome} "
            f"({self.percent(window.baseline_rate)} at most) (threshold {rule.ratio:g} times)",
        )


def payment_failure_spike(
    subject: str, facts: list[Fact], rule: PaymentFailureSpike, judged_from: int | None = None
) -> list[Anomaly]:
    """An account subject: the share of failed charges in a recent window against the days before it."""
    charges = _ordered([f for f in facts if f.kind == CHARGE])
    spike = _RateSpike(
        "payment_failure_spike", rule, rule.window_hours * HOUR, min_events=1, digits=1, outcome="failed"
    )

    def reasons(w: _Window) -> tuple[Reason, ...]:
        return (
            spike.rate_reason(
                "failure_rate_percent",
                w,
                f"{len(w.events)} of the {w.charges} charges in the {rule.window_hours} hours to "
                f"{_at(w.end)} failed: {spike.percent(w.rate)}",
            ),
            spike.baseline_reason(w),
            Reason(
                "charges_in_window",
                w.charges,
                rule.min_charges,
                f"{w.charges} charges in the window and {w.baseline_charges} in the baseline (at least "
                f"{rule.min_charges} and {rule.min_baseline_charges} needed)",
            ),
        )

    return spike.anomalies(subject, [c for c in charges if c.failed], charges, judged_from, reasons)


def dispute_spike(
    subject: str, facts: list[Fact], rule: DisputeSpike, judged_from: int | None = None
) -> list[Anomaly]:
    """An account subject: disputes opened per succeeded charge in a recent window against the days before."""
    disputes = _ordered([f for f in facts if f.kind == DISPUTE])
    spike = _RateSpike(
        "dispute_spike", rule, rule.window_days * DAY, rule.min_disputes, digits=2, outcome="were disputed"
    )

    def reasons(w: _Window) -> tuple[Reason, ...]:
        return (
            Reason(
                "disputes",
                len(w.events),
                rule.min_disputes,
                f"{len(w.events)} disputes opened in the {rule.window_days} days to {_at(w.end)} "
                f"(at least {rule.min_disputes} needed)",
            ),
            spike.rate_reason(
                "dispute_rate_percent",
                w,
                f"{spike.percent(w.rate)} of the {w.charges} succeeded charges of those days",
            ),
            spike.baseline_reason(w),
        )

    return spike.anomalies(subject, disputes, _succeeded_charges(facts), judged_from, reasons)


# -- amount outlier -----------------------------------------------------------------------------------------
def amount_outlier(subject: str, facts: list[Fact], rule: AmountOutlier) -> list[Anomaly]:
    """A customer subject: each succeeded charge far from the median of the customer's earlier charges in
    its currency, counted in spreads (the median absolute deviation, scaled to a standard deviation)."""
    charges = _succeeded_charges(facts)
    times = [c.created for c in charges]
    # What a subscription bills is set by its plan: a charge of a subscription invoice's amount (after an
    # upgrade, say) is no anomaly of the customer's.
    billed = {(f.amount, f.currency) for f in facts if f.kind == INVOICE and f.subscription}
    found = []
    for index, charge in enumerate(charges):
        if (charge.amount, charge.currency) in billed:
            continue
        start = bisect_right(times, charge.created - rule.lookback_days * DAY - 1)
        history = [c for c in charges[start:index] if c.currency == charge.currency][-MAX_HISTORY:]
        if len(history) < rule.min_history:
            continue
        usual = _Spread.of([c.amount or 0 for c in history], rule.min_spread_percent)
        z = abs((charge.amount or 0) - usual.median) / usual.spread
        if z < rule.robust_z:
            continue
        found.append(
            Anomaly(
                signal_id=signal_id("amount_outlier", subject, charge.object_id),
                kind="amount_outlier",
                subject=subject,
                account=charge.account,
                livemode=charge.livemode,
                customer_id=charge.customer,
                score=min(1.0, 0.5 + 0.5 * (z - rule.robust_z) / rule.robust_z),
                reasons=_outlier_reasons(charge, z, usual, len(history), rule),
                evidence=(*history, charge),
                model_version=rule.version("amount_outlier"),
            )
        )
    return found


@dataclass(frozen=True)
class _Spread:
    median: float
    deviation: float  # the median absolute deviation from the median
    spread: float  # the deviation as a standard deviation, at least a share of the median (and 1)

    @classmethod
    def of(cls, amounts: list[int], min_percent: float) -> _Spread:
        middle = median(amounts)
        deviation = median(abs(a - middle) for a in amounts)
        return cls(middle, deviation, max(MAD_TO_SIGMA * deviation, middle * min_percent / 100, 1.0))


def _outlier_reasons(
    charge: Fact, z: float, usual: _Spread, history: int, rule: AmountOutlier
) -> tuple[Reason, ...]:
    amount, currency = charge.amount or 0, charge.currency
    side = "above" if amount > usual.median else "below"
    times = f" ({amount / usual.median:.1f} times it)" if usual.median else ""
    return (
        Reason(
            "robust_z",
            round(z, 1),
            rule.robust_z,
            f"charged {_money(amount, currency)}, {z:.1f} spreads {side} the customer's median of "
            f"{_money(usual.median, currency)}{times} (threshold {rule.robust_z:g} spreads)",
        ),
        Reason(
            "history",
            history,
            rule.min_history,
            f"compared with their {history} earlier charges in {(currency or '').upper()} within "
            f"{rule.lookback_days} days (at least {rule.min_history} needed); a spread is "
            f"{usual.spread:.0f}: "
            f"the median absolute deviation ({usual.deviation:g}) times {MAD_TO_SIGMA}, at least "
            f"{rule.min_spread_percent:g}% of the median",
        ),
    )


def _judged(window: _Window, judged_from: int | None) -> bool:
    """Only windows that end at or after the new facts are judged: an account is read from its lookback
    before them on, so an earlier window's baseline may be cut short (and look like a spike)."""
    return judged_from is None or window.end >= judged_from


def evaluate(
    subject: str, lookup: Lookup, config: SignalsConfig, judged_from: int | None = None
) -> list[Anomaly]:
    """Every enabled detector that watches this kind of subject, on its facts (rate windows ending at or after
    `judged_from`, the oldest new fact, when the account was read from a lookback on)."""
    facts, rules, kind = lookup(subject), config.detectors, subject_kind(subject)
    found: list[Anomaly] = []
    if kind == CARD and rules.trial_abuse.enabled:
        found += trial_abuse(subject, facts, lookup, rules.trial_abuse)
    if kind == ACCOUNT:
        if rules.card_testing.enabled:
            found += card_testing(subject, facts, rules.card_testing)
        if rules.payment_failure_spike.enabled:
            found += payment_failure_spike(subject, facts, rules.payment_failure_spike, judged_from)
        if rules.dispute_spike.enabled:
            found += dispute_spike(subject, facts, rules.dispute_spike, judged_from)
    if kind == CUSTOMER:
        if rules.duplicate_charge.enabled:
            found += duplicate_charge(subject, facts, rules.duplicate_charge)
        if rules.account_takeover.enabled:
            found += account_takeover(subject, facts, rules.account_takeover)
        if rules.amount_outlier.enabled:
            found += amount_outlier(subject, facts, rules.amount_outlier)
    return found
