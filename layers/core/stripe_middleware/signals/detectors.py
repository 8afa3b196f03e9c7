"""The anomaly detectors: each a pure function of one subject's facts (and, for trial abuse, the facts
of the customers behind a card), in event time.

Every condition only grows with the facts (more facts can raise a finding, never take one back) and
every finding has a stable id, so the same facts raise the same findings in any order and any number of
deliveries: what is published depends on the stream, not on how it arrived.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from stripe_middleware.signals.config import CardTesting, DuplicateCharge, SignalsConfig, TrialAbuse
from stripe_middleware.signals.facts import (
    ACCOUNT,
    CARD,
    CHARGE,
    CUSTOMER,
    TRIAL,
    Fact,
    customer_subject,
    subject_kind,
)
from stripe_middleware.signals.ports import Anomaly, Reason

Lookup = Callable[[str], list[Fact]]  # a subject's facts


def signal_id(*parts: str) -> str:
    return "sig_" + hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]


def _ordered(facts: Sequence[Fact]) -> list[Fact]:
    return sorted(facts, key=lambda f: (f.created, f.id))


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


def duplicate_charge(subject: str, facts: list[Fact], rule: DuplicateCharge) -> list[Anomaly]:
    """A customer subject: each succeeded charge with an earlier one of the same amount within the window."""
    window = rule.window_minutes * 60
    charges = _ordered([f for f in facts if f.kind == CHARGE and not f.failed and f.amount is not None])
    found = []
    for index, charge in enumerate(charges):
        earlier = [
            c
            for c in charges[:index]
            if (c.amount, c.currency) == (charge.amount, charge.currency)
            and charge.created - c.created <= window
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


def evaluate(subject: str, lookup: Lookup, config: SignalsConfig) -> list[Anomaly]:
    """Every enabled detector that watches this kind of subject, on its facts."""
    facts, rules, kind = lookup(subject), config.detectors, subject_kind(subject)
    found: list[Anomaly] = []
    if kind == CARD and rules.trial_abuse.enabled:
        found += trial_abuse(subject, facts, lookup, rules.trial_abuse)
    if kind == ACCOUNT and rules.card_testing.enabled:
        found += card_testing(subject, facts, rules.card_testing)
    if kind == CUSTOMER and rules.duplicate_charge.enabled:
        found += duplicate_charge(subject, facts, rules.duplicate_charge)
    return found
