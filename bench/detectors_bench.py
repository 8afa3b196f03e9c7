"""Anomaly detectors: precision and recall of each of the seven on a labeled stream.

Four weeks of three accounts' ordinary traffic (customers paying every few days, a few failures, card
renewals, email changes, usage-priced customers whose amounts swing, a family sharing a card, an account
that always fails more), built from the real Stripe fixtures, with attacks of every kind injected at known
objects. The stream goes through `signals.detect.detect` on the in-memory signal state as the bus would
deliver it: in event time, up to two minutes out of order, 5 % of it redelivered within the hour.

A finding is a true positive when it points at an injected attack its detector is meant to catch (a
card-testing burst is also a burst of failures): a finding about one payment by that payment, any other by
its evidence; an attack is found when a finding of its detector points at it. The same stream fully
shuffled shows what arrival order changes (`signals.detectors`: the rate and history detectors judge what
has arrived).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

START = 1_761_955_200  # 2025-11-01T00:00:00Z
DAY, HOUR, MINUTE = 86_400, 3_600, 60
DAYS = 28
# account, charges per day, share of ordinary charges that fail
ACCOUNTS = (("acct_benchA", 30, 0.03), ("acct_benchB", 12, 0.10), ("acct_benchC", 12, 0.03))
DETECTORS = (
    "account_takeover",
    "amount_outlier",
    "card_testing",
    "dispute_spike",
    "duplicate_charge",
    "payment_failure_spike",
    "trial_abuse",
)
PER_PAYMENT = {"account_takeover", "amount_outlier", "duplicate_charge"}  # a finding per charge or refund
Detail = tuple[str, dict[str, Any]]


@dataclass
class Attack:
    kind: str  # the detector meant to catch it
    objects: set[str]  # the Stripe objects it consists of
    also: frozenset[str] = frozenset()  # other detectors right to flag it


@dataclass
class Customer:
    id: str
    account: str
    fingerprint: str
    country: str
    base: int  # their usual amount, in cents
    swings: bool  # usage-priced: amounts vary widely
    charges: list[tuple[int, str, int]] = field(default_factory=list)  # (at, charge id, amount)


class _Bus:
    """A publisher that takes everything (the findings are read from `Detection.raised`)."""

    def publish(self, publications: Sequence[Any]) -> set[str]:
        return set()


class _Stream:
    """Stripe events as the processor publishes them, built from the fixtures, with deterministic ids."""

    def __init__(self) -> None:
        self.details: list[tuple[int, Detail]] = []  # (event time, detail)
        self.attacks: list[Attack] = []
        self._count = 0

    def add(
        self,
        event_type: str,
        at: int,
        account: str,
        *,
        previous: dict[str, Any] | None = None,
        dated: bool = True,
        **fields: Any,
    ) -> str:
        from events import stripe_event

        self._count += 1
        event = stripe_event(
            event_type,
            event_id=f"evt_bench{self._count:06d}",
            created=at,
            account=account,
            previous_attributes=previous,
            **fields,
        )
        obj = event["data"]["object"]
        if dated:  # the object is as old as the event (a customer.updated is not: the customer is older)
            obj["created"] = at
        detail = {
            "id": event["id"],
            "type": event_type,
            "created": at,
            "livemode": False,
            "account": account,
            "object": obj,
            "previous_attributes": previous,
        }
        self.details.append((at, (event_type, detail)))
        return str(obj["id"])

    def charge(
        self,
        charge_id: str,
        at: int,
        account: str,
        *,
        amount: int,
        customer: str | None,
        fingerprint: str | None,
        country: str = "US",
        failed: bool = False,
    ) -> str:
        from events import stripe_object

        card = {**stripe_object("charge")["payment_method_details"]["card"]}
        card |= {"fingerprint": fingerprint, "country": country}
        status = "failed" if failed else "succeeded"
        return self.add(
            f"charge.{status}",
            at,
            account,
            id=charge_id,
            status=status,
            amount=amount,
            currency="usd",
            customer=customer,
            payment_method_details={"type": "card", "card": card},
        )

    def card(
        self, pm_id: str, at: int, account: str, *, customer: str, fingerprint: str, country: str
    ) -> str:
        from events import stripe_object

        card = {**stripe_object("payment_method")["card"], "fingerprint": fingerprint, "country": country}
        return self.add("payment_method.attached", at, account, id=pm_id, customer=customer, card=card)


def run(seed: int = 7) -> dict[str, Any]:
    """Precision and recall per detector on the labeled stream, and what a full shuffle changes."""
    rng = random.Random(seed)
    stream = _Stream()
    customers = _ordinary_traffic(stream, rng)
    _inject_attacks(stream, customers, rng)
    arrivals = _as_delivered(stream.details, rng)
    began = time.perf_counter()
    found = _detect(arrivals)
    seconds = time.perf_counter() - began
    shuffled = _detect(rng.sample(arrivals, len(arrivals)))
    return {
        "seed": seed,
        "events": len(stream.details),
        "deliveries": len(arrivals),
        "attacks": len(stream.attacks),
        "detect_ms_per_delivery": round(1000 * seconds / len(arrivals), 3),
        "detectors": {kind: _score(kind, found, stream.attacks) for kind in DETECTORS},
        "shuffled": {
            "same_findings": set(shuffled) == set(found),
            "only_shuffled": sorted(a["kind"] for key, a in shuffled.items() if key not in found),
            "only_in_order": sorted(a["kind"] for key, a in found.items() if key not in shuffled),
        },
    }


# -- the stream ---------------------------------------------------------------------------------------------
def _ordinary_traffic(stream: _Stream, rng: random.Random) -> list[Customer]:
    customers: list[Customer] = []
    for account, per_day, failing in ACCOUNTS:
        for n in range(per_day * 7 // 2):  # each pays every 3 to 4 days
            customer = Customer(
                id=f"cus_{account[-1]}{n:03d}",
                account=account,
                fingerprint=f"fp_{account[-1]}{n:03d}",
                country=rng.choice(("US", "US", "US", "US", "GB", "DE", "CA")),
                base=rng.choice((900, 1500, 2000, 4900, 9900, 19900)),
                swings=rng.random() < 0.2,
            )
            customers.append(customer)
            _pays(stream, customer, rng, failing)
    return customers


def _pays(stream: _Stream, customer: Customer, rng: random.Random, failing: float) -> None:
    """A customer attaches a card, pays every 3 to 4 days; some renew their card, change their email."""
    at = START + rng.randrange(0, 4 * DAY)
    stream.card(
        f"pm_{customer.id}",
        at - HOUR,
        customer.account,
        customer=customer.id,
        fingerprint=customer.fingerprint,
        country=customer.country,
    )
    fingerprint, country = customer.fingerprint, customer.country
    renews, changes_email = rng.random() < 0.08, rng.random() < 0.05
    turn = START + rng.randrange(8 * DAY, 24 * DAY)
    for count in range(DAYS):
        if at >= START + DAYS * DAY:
            break
        if renews and at > turn:
            renews, fingerprint = False, f"{customer.fingerprint}r"
            country = country if rng.random() < 0.9 else "FR"  # an expat's new bank: a hard negative
            stream.card(
                f"pm_{customer.id}r",
                at - HOUR,
                customer.account,
                customer=customer.id,
                fingerprint=fingerprint,
                country=country,
            )
        if changes_email and at > turn:
            changes_email = False
            stream.add(
                "customer.updated",
                at - 2 * HOUR,
                customer.account,
                dated=False,
                previous={"email": "before@example.com"},
                id=customer.id,
            )
        swing = rng.lognormvariate(0, 0.35) if customer.swings else rng.uniform(0.9, 1.1)
        amount = int(customer.base * swing)
        failed = rng.random() < failing
        charge_id = f"ch_{customer.id}_{count}"
        stream.charge(
            charge_id,
            at,
            customer.account,
            amount=amount,
            customer=customer.id,
            fingerprint=fingerprint,
            country=country,
            failed=failed,
        )
        if not failed:
            customer.charges.append((at, charge_id, amount))
        at += rng.randrange(3 * DAY, 4 * DAY)


def _inject_attacks(stream: _Stream, customers: list[Customer], rng: random.Random) -> None:
    by_account = {a: [c for c in customers if c.account == a] for a, _, _ in ACCOUNTS}
    steady = [c for c in customers if not c.swings and len(c.charges) >= 6]
    victims = iter(rng.sample(steady, 16))
    a, b, c = (account for account, _, _ in ACCOUNTS)
    for n, account in enumerate((b, c)):
        _trial_abuse(stream, account, n, START + (6 + 8 * n) * DAY)
    _shared_family_card(stream, a, START + 5 * DAY)
    for n, (account, day) in enumerate(((a, 9), (c, 17))):
        _card_testing(stream, account, n, START + day * DAY + 7 * HOUR, rng)
    for n in range(3):
        _duplicate(stream, next(victims), n, rng)
    _retried_later(stream, next(victims))  # twenty minutes apart: no duplicate
    for n in range(4):
        _takeover(stream, next(victims), n, rng, email=n != 3)
    for n in range(4):
        _outlier(stream, next(victims), n, rng)
    _failure_spike(stream, a, 0, START + 20 * DAY + 8 * HOUR, rng)
    _failure_spike(stream, c, 1, START + 24 * DAY + 9 * HOUR, rng)
    _disputes(stream, b, by_account[b], START + 22 * DAY, 4, rng, attack=True)
    _disputes(stream, c, by_account[c], START + 19 * DAY, 3, rng, attack=True)
    _disputes(stream, a, by_account[a], START + 15 * DAY, 2, rng, attack=False)  # two in a week: ordinary


def _trial_abuse(stream: _Stream, account: str, n: int, at: int) -> None:
    objects = set()
    for k in range(3):
        customer, when = f"cus_trialabuse{n}{k}", at + k * 3 * DAY
        objects.add(
            stream.card(
                f"pm_trialabuse{n}{k}",
                when - MINUTE,
                account,
                customer=customer,
                fingerprint=f"fp_abuse{n}",
                country="US",
            )
        )
        objects.add(
            stream.add(
                "customer.subscription.created",
                when,
                account,
                id=f"sub_trialabuse{n}{k}",
                customer=customer,
                status="trialing",
                trial_start=when,
            )
        )
    stream.attacks.append(Attack("trial_abuse", objects))


def _shared_family_card(stream: _Stream, account: str, at: int) -> None:
    """Two customers, one card, two trials: under the threshold of three."""
    for k in range(2):
        customer = f"cus_family{k}"
        stream.card(
            f"pm_family{k}", at + k * DAY, account, customer=customer, fingerprint="fp_family", country="US"
        )
        stream.add(
            "customer.subscription.created",
            at + k * DAY + MINUTE,
            account,
            id=f"sub_family{k}",
            customer=customer,
            status="trialing",
            trial_start=at + k * DAY + MINUTE,
        )


def _card_testing(stream: _Stream, account: str, n: int, at: int, rng: random.Random) -> None:
    objects = {
        stream.charge(
            f"ch_cardtest{n}_{k}",
            at + k * 40,
            account,
            amount=rng.choice((100, 200, 300, 400)),
            customer=None,
            fingerprint=f"fp_cardtest{n}_{k}",
            failed=True,
        )
        for k in range(8)
    }
    stream.attacks.append(Attack("card_testing", objects, frozenset({"payment_failure_spike"})))


def _duplicate(stream: _Stream, customer: Customer, n: int, rng: random.Random) -> None:
    at = START + rng.randrange(10 * DAY, 26 * DAY)
    amount = customer.base
    objects = {
        stream.charge(
            f"ch_dup{n}_{k}",
            at + k * rng.randrange(30, 120),
            customer.account,
            amount=amount,
            customer=customer.id,
            fingerprint=customer.fingerprint,
            country=customer.country,
        )
        for k in range(2)
    }
    stream.attacks.append(Attack("duplicate_charge", objects))


def _retried_later(stream: _Stream, customer: Customer) -> None:
    at = START + 15 * DAY
    for k in range(2):
        stream.charge(
            f"ch_retry{k}",
            at + k * 20 * MINUTE,
            customer.account,
            amount=customer.base,
            customer=customer.id,
            fingerprint=customer.fingerprint,
            country=customer.country,
        )


def _takeover(stream: _Stream, customer: Customer, n: int, rng: random.Random, *, email: bool) -> None:
    """The email (or only the default card) changes, a foreign card is attached and pays within hours."""
    at = customer.charges[3][0] + rng.randrange(HOUR, DAY)  # after three usual charges
    previous: dict[str, Any] = {"invoice_settings": {"default_payment_method": f"pm_{customer.id}"}}
    if email:
        previous["email"] = "before@example.com"
    stream.add("customer.updated", at, customer.account, dated=False, previous=previous, id=customer.id)
    fingerprint, country = f"fp_thief{n}", rng.choice(("NG", "RU", "BR", "VN"))
    pm = stream.card(
        f"pm_thief{n}",
        at + MINUTE,
        customer.account,
        customer=customer.id,
        fingerprint=fingerprint,
        country=country,
    )
    charge = stream.charge(
        f"ch_thief{n}",
        at + rng.randrange(HOUR, 30 * HOUR),
        customer.account,
        amount=int(customer.base * rng.uniform(1.0, 1.5)),
        customer=customer.id,
        fingerprint=fingerprint,
        country=country,
    )
    stream.attacks.append(Attack("account_takeover", {pm, charge}))


def _outlier(stream: _Stream, customer: Customer, n: int, rng: random.Random) -> None:
    """Ten times the usual amount on the usual card, after six usual charges."""
    at = customer.charges[5][0] + rng.randrange(HOUR, DAY)
    charge = stream.charge(
        f"ch_outlier{n}",
        at,
        customer.account,
        amount=customer.base * rng.randrange(8, 15),
        customer=customer.id,
        fingerprint=customer.fingerprint,
        country=customer.country,
    )
    stream.attacks.append(Attack("amount_outlier", {charge}))


def _failure_spike(stream: _Stream, account: str, n: int, at: int, rng: random.Random) -> None:
    """A flash sale during an issuer's outage: 40 guest checkouts in 12 hours, most of them declined."""
    objects = set()
    for k in range(40):
        failed = rng.random() < 0.6
        charge = stream.charge(
            f"ch_outage{n}_{k}",
            at + k * 18 * MINUTE,
            account,
            amount=rng.choice((2500, 4900, 9900)),
            customer=None,
            fingerprint=f"fp_guest{n}_{k}",
            failed=failed,
        )
        if failed:
            objects.add(charge)
    stream.attacks.append(Attack("payment_failure_spike", objects))


def _disputes(
    stream: _Stream,
    account: str,
    customers: list[Customer],
    at: int,
    count: int,
    rng: random.Random,
    *,
    attack: bool,
) -> None:
    """`count` disputes opened within five days on charges of the weeks before."""
    paid = [(c, charge) for c in customers for t, charge, _ in c.charges if t < at]
    objects = set()
    for k, (_customer, charge) in enumerate(rng.sample(paid, count)):
        objects.add(
            stream.add(
                "charge.dispute.created",
                at + k * rng.randrange(HOUR, DAY),
                account,
                id=f"dp_{account[-1]}{k}",
                charge=charge,
            )
        )
    if attack:
        stream.attacks.append(Attack("dispute_spike", objects))


def _as_delivered(details: list[tuple[int, Detail]], rng: random.Random) -> list[Detail]:
    """In event time, up to two minutes out of order; 5 % redelivered within the hour."""
    timed = [(at + rng.uniform(0, 120), n, d) for n, (at, d) in enumerate(details)]
    timed += [(at + rng.uniform(0, HOUR), -1, d) for at, n, d in timed if rng.random() < 0.05]
    return [d for _, _, d in sorted(timed, key=lambda t: (t[0], t[1]))]


# -- detection and scores ---------------------------------------------------------------------------------
def _detect(arrivals: list[Detail]) -> dict[str, Any]:
    """Every finding published (signal id -> kind and the newest object behind it)."""
    from stripe_middleware.signals.churn import load_churn_model
    from stripe_middleware.signals.config import load_signals_config
    from stripe_middleware.signals.detect import detect
    from stripe_middleware_dev import REPO_ROOT
    from tests.fakes.signals import InMemorySignalState

    config = load_signals_config(REPO_ROOT / "config" / "signals.yaml")
    model = load_churn_model(REPO_ROOT / "config" / "churn_model.json")
    state, bus = InMemorySignalState(), _Bus()
    found: dict[str, Any] = {}
    for detail_type, detail in arrivals:
        for anomaly in detect(
            detail_type, detail, state=state, publisher=bus, config=config, model=model
        ).raised:
            newest = max(anomaly.evidence, key=lambda f: (f.created, f.object_id))
            evidence = {f.object_id for f in anomaly.evidence}
            found[anomaly.signal_id] = {
                "kind": anomaly.kind,
                "newest": newest.object_id,
                "evidence": evidence,
            }
    return found


def _score(kind: str, found: dict[str, Any], attacks: list[Attack]) -> dict[str, Any]:
    findings = [f for f in found.values() if f["kind"] == kind]
    meant = [a for a in attacks if kind == a.kind or kind in a.also]
    true = [f for f in findings if any(_points_at(f, a) for a in meant)]
    own = [a for a in attacks if a.kind == kind]
    caught = [a for a in own if any(_points_at(f, a) for f in findings)]
    return {
        "attacks": len(own),
        "found": len(caught),
        "recall": round(len(caught) / len(own), 3) if own else None,
        "findings": len(findings),
        "true_positives": len(true),
        "precision": round(len(true) / len(findings), 3) if findings else None,
    }


def _points_at(finding: dict[str, Any], attack: Attack) -> bool:
    """A finding about one payment (a takeover, an outlier, a duplicate) points at the attack that payment
    is part of (its history is evidence too, and is no attack); any other at every attack in its evidence."""
    if finding["kind"] in PER_PAYMENT:
        return bool(finding["newest"] in attack.objects)
    return bool(finding["evidence"] & attack.objects)
