"""Simulated Stripe histories with labels: what the signals tests, the backtest, the benches and `send` share.

`simulate(customers=1000, months=12, seed=7, start=datetime(2025, 1, 1, tzinfo=UTC))` returns a `History`:
Stripe events in the exact shape Stripe delivers to a webhook endpoint and lists at `GET /v1/events`, sorted
by `created`, and `Labels` that say what really happened: which customers churned, when and why, and which
events belong to each injected attack.

Fidelity. Every `data.object` is a copy of the real example object of its resource in
`events/stripe/fixtures3.json` with ids, customer, amounts, times and statuses changed; its top-level keys
are exactly the fixture's, and nested values Stripe would send as null (a charge's `source`, a subscription's
`pending_update`) are null. Events carry `previous_attributes` where Stripe sends them (`*.updated`,
`payment_method.automatically_updated`), a `request` id and idempotency key when a person or an API call
caused them and nulls when Stripe's billing engine did (renewals, retries, trial reminders), the pinned
`STRIPE_API_VERSION`, and `account` when the history belongs to a connected account.

The model (per customer, in calendar time from `start` for `months` months):
- Subscription customers (80 %) on Starter, Pro or Business (per seat), monthly or annual (a year costs ten
  months). 40 % start with a 7-30 day trial (`customer.subscription.created` trialing, a $0 first invoice,
  `trial_will_end` three days before its end, then `customer.subscription.updated` trialing -> active).
  Renewals: the period rollover (`customer.subscription.updated`), `invoice.created`, an hour later
  `invoice.finalized`, `payment_intent.created`, `charge.succeeded`, `payment_intent.succeeded`,
  `invoice_payment.paid`, `invoice.paid`, `invoice.payment_succeeded`. Failed payments decline with a card
  decline code (`charge.failed`, `payment_intent.payment_failed`, `invoice.payment_failed`, the subscription
  past_due, the customer delinquent) and are retried after 3, 8 and 14 days. Cards carry exp_month/exp_year;
  one that expires before a renewal is replaced (a new card, or Stripe's card updater) unless the customer
  is churning because of it. Upgrades, downgrades and seat changes (`customer.subscription.updated` with the
  old items in `previous_attributes`), pauses (`pause_collection`, renewals voided), cancellations undone,
  refunds and disputes happen at rates that grow with a hidden per-customer risk, so they predict churn
  without giving it away.
- One-off buyers (20 %): `payment_intent.created`, `charge.succeeded`, `payment_intent.succeeded` and no
  subscription, buying at a personal rate until they silently drop out (the BG/NBD story: after each
  purchase they leave with a personal probability).
- Churn (`churn_rate` is the monthly hazard of an average subscriber) by one of these mechanisms, each with
  its precursors: `failed_payments` (every retry declines, Stripe cancels the subscription),
  `expired_card` (the card on file expires before the renewal, every retry declines with expired_card),
  `downgrade_then_cancel` (a downgrade or fewer seats in the period before, then cancel_at_period_end),
  `cancel_at_period_end`, `no_signal` (canceled at once, nothing before it), `trial_not_converted`, and for
  one-off buyers `dropout`.
- Attacks (counts per kind in `attacks`; by default one of each per 12,000 customer-months, at least one):
  `trial_abuse` (one card fingerprint behind the trials of 4-8 new customers within three weeks),
  `card_testing` (15-40 charges of $0.50-$3 on as many cards within minutes, most declined, on one account
  and at most one customer), `duplicate_charge` (a customer charged the same amount twice within four
  minutes), `account_takeover` (the email changes, a new card from another country is attached and made
  default, then an unusually large charge on it), `amount_outlier` (a charge 8-25 times the customer's
  median after at least five), `payment_failure_spike` (an issuer outage: most payments of the account fail
  for a few hours to days, and are retried), `dispute_spike` (many charges of the last two months disputed
  as fraudulent within two days).

Labels (`History.labels`, `write_labels`): per customer its segment (`subscription`, `one_off`, `attacker`),
`churned`, `churned_at` (Unix seconds: the `customer.subscription.deleted` event's `created`; for a one-off
buyer the purchase after which they left) and `mechanism`; per attack its kind, account (None = the
platform), customers, card fingerprints, time span and the ids of the events that make it up. Labels only
claim what is in the history: a cancellation that would fall after its end is not a churn.

Deterministic: everything derives from `seed`, each customer and each attack from its own random stream and
id namespace, so the same arguments give byte-identical files, and customer n's history depends only on the
seed, n, `start` and `months` (and on the spikes or attacks that touch it), not on how many customers or
which other attacks are simulated. 1,000 customers over 12 months (about 40,000 events) take a few seconds.

Events share no mutable parts with each other or with the fixtures, so a test may edit one freely.
"""

from __future__ import annotations

import argparse
import calendar
import gzip
import hashlib
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, cast

from events import stripe_object
from stripe_middleware.ingest.signature import compute_signature
from stripe_middleware.shared.contract import STRIPE_API_VERSION

MINUTE, HOUR, DAY = 60, 3_600, 86_400
ATTACK_KINDS = (
    "trial_abuse",
    "card_testing",
    "duplicate_charge",
    "account_takeover",
    "amount_outlier",
    "payment_failure_spike",
    "dispute_spike",
)
MECHANISMS = (
    "failed_payments",
    "expired_card",
    "downgrade_then_cancel",
    "cancel_at_period_end",
    "no_signal",
    "trial_not_converted",
    "dropout",
)
SUBSCRIPTION, ONE_OFF, ATTACKER = "subscription", "one_off", "attacker"  # customer segments
DEFAULT_CHURN_RATE = 0.03  # monthly hazard of an average subscriber
ONE_OFF_SHARE = 0.2
TRIAL_SHARE = 0.4
CUSTOMER_MONTHS_PER_ATTACK = 12_000
RETRY_DAYS = (0, 3, 8, 14)  # payment attempts of an invoice, days after its finalization
STRIPE_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
}

# Which mechanism ends a subscription that churns after its trial (weights).
_MECHANISM_WEIGHTS = {
    "failed_payments": 0.22,
    "expired_card": 0.10,
    "downgrade_then_cancel": 0.15,
    "cancel_at_period_end": 0.38,
    "no_signal": 0.15,
}
_TIERS = (("Starter", 1_900), ("Pro", 4_900), ("Business", 9_900))  # per seat and month, in cents
_COUNTRIES = (("US", 55), ("GB", 10), ("DE", 8), ("CA", 7), ("FR", 6), ("AU", 5), ("NL", 4), ("BR", 3))
_OTHER_COUNTRIES = ("MX", "IN", "ES", "IT", "PL", "JP", "SG", "ZA", "AR", "TR", "RO", "PH", "NG", "ID")
_BRANDS = (("visa", 55), ("mastercard", 30), ("amex", 10), ("discover", 5))
_FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kara", "Liam")
_LAST = ("Novak", "Okafor", "Patel", "Quinn", "Rossi", "Silva", "Tanaka", "Ueda", "Varga", "Weber", "Young")
_FEEDBACK = ("too_expensive", "missing_features", "switched_service", "unused", "low_quality", "other")


@dataclass(frozen=True)
class _Decline:
    failure_code: str
    reason: str  # the outcome's reason (Stripe's decline code)
    message: str
    outcome_type: str = "issuer_declined"
    network_status: str = "declined_by_network"

    @property
    def seller_message(self) -> str:
        if self.outcome_type == "blocked":
            return "Stripe blocked this payment as too risky."
        return f"The bank returned the decline code `{self.reason}`."


_DECLINES = {
    d.reason: d
    for d in (
        _Decline("card_declined", "insufficient_funds", "Your card has insufficient funds."),
        _Decline("card_declined", "generic_decline", "Your card was declined."),
        _Decline("card_declined", "do_not_honor", "Your card was declined."),
        _Decline("card_declined", "try_again_later", "Your card was declined."),  # issuer unavailable
        _Decline("expired_card", "expired_card", "Your card has expired."),
        _Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
        _Decline(
            "card_declined", "highest_risk_level", "Your card was declined.", "blocked", "not_sent_to_network"
        ),
    )
}


# -- labels and the history -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CustomerLabel:
    customer_id: str
    segment: str  # subscription | one_off | attacker
    signed_up_at: int
    churned: bool
    churned_at: int | None
    mechanism: str | None  # one of MECHANISMS when churned (an attacker's: its attack kind)
    subscription_id: str | None = None
    plan: str | None = None  # the plan it was on last, e.g. "pro_month"


@dataclass(frozen=True)
class AttackLabel:
    attack_id: str
    kind: str  # one of ATTACK_KINDS
    account: str | None  # None: the platform account
    customers: tuple[str, ...]  # the customers it involves (none for account-wide spikes)
    fingerprints: tuple[str, ...]  # the card fingerprints it involves
    started_at: int
    ended_at: int
    event_ids: tuple[str, ...]  # the events that make it up, in time order


@dataclass(frozen=True)
class Labels:
    seed: int
    start: int
    end: int  # events are created in [start, end)
    customers: dict[str, CustomerLabel]
    attacks: tuple[AttackLabel, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "start": self.start,
            "end": self.end,
            "customers": {cid: asdict(label) for cid, label in self.customers.items()},
            "attacks": [asdict(attack) for attack in self.attacks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Labels:
        attacks = tuple(
            AttackLabel(
                **{
                    **a,
                    "customers": tuple(a["customers"]),
                    "fingerprints": tuple(a["fingerprints"]),
                    "event_ids": tuple(a["event_ids"]),
                }
            )
            for a in data["attacks"]
        )
        customers = {cid: CustomerLabel(**c) for cid, c in data["customers"].items()}
        return cls(data["seed"], data["start"], data["end"], customers, attacks)


@dataclass(frozen=True)
class History:
    events: list[dict[str, Any]]  # sorted by `created` (ties in the order Stripe would send them)
    labels: Labels


# -- public functions -------------------------------------------------------------------------------------
def default_attacks(customers: int, months: int) -> dict[str, int]:
    """Attacks are rare: one of each kind per 12,000 customer-months, at least one of each."""
    count = max(1, round(customers * months / CUSTOMER_MONTHS_PER_ATTACK))
    return dict.fromkeys(ATTACK_KINDS, count)


def simulate(
    customers: int,
    months: int,
    seed: int,
    start: datetime,
    *,
    churn_rate: float = DEFAULT_CHURN_RATE,
    attacks: Mapping[str, int] | None = None,
    account: str | None = None,
    livemode: bool = False,
) -> History:
    """A labeled Stripe history of `customers` customers over `months` calendar months from `start`.

    `attacks`: how many of each kind (see ATTACK_KINDS) to inject; None = `default_attacks`, {} = none.
    `account`: the connected account the events belong to (None: the platform). A naive `start` is UTC.
    """
    if customers < 0 or months < 1:
        raise ValueError("customers must be >= 0 and months >= 1")
    if not 0 <= churn_rate < 1:
        raise ValueError("churn_rate is a monthly probability: 0 <= churn_rate < 1")
    counts = default_attacks(customers, months) if attacks is None else dict(attacks)
    unknown = sorted(set(counts) - set(ATTACK_KINDS))
    if unknown or any(n < 0 for n in counts.values()):
        raise ValueError(
            f"attacks: unknown kinds {unknown} or negative counts; kinds: {', '.join(ATTACK_KINDS)}"
        )
    begin = int((start if start.tzinfo else start.replace(tzinfo=UTC)).timestamp())
    sim = _Simulation(
        seed, begin, _add_months(begin, months), churn_rate=churn_rate, account=account, livemode=livemode
    )
    sim.open_catalog()
    sim.plan_failure_spikes(counts.get("payment_failure_spike", 0), customers)
    for index in range(customers):
        sim.add_customer(index)
    for kind in ATTACK_KINDS:
        for n in range(counts.get(kind, 0)):
            sim.inject(kind, n)
    return sim.history()


def write_jsonl(history: History | Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write the events one per line (gzip when `path` ends in .gz, byte-identical run to run); the count."""
    events = history.events if isinstance(history, History) else history
    count = 0
    with _open(Path(path), "wb") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The events of a JSONL file (gzip when `path` ends in .gz), in file order."""
    with _open(Path(path), "rb") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def write_labels(history: History, path: str | Path) -> None:
    Path(path).write_text(json.dumps(history.labels.to_json(), indent=1) + "\n")


def read_labels(path: str | Path) -> Labels:
    return Labels.from_json(json.loads(Path(path).read_text()))


def signed_delivery(
    event: Mapping[str, Any], secret: str, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of one webhook delivery as Stripe makes it: the event as indented JSON, signed with
    `secret` at `timestamp` (default now: the verifier accepts 300 s, so sign each just before sending)."""
    body = json.dumps(event, indent=2).encode()
    signed_at = int(time.time()) if timestamp is None else timestamp
    signature = f"t={signed_at},v1={compute_signature(body, secret, signed_at)}"
    return body, {**STRIPE_HEADERS, "Stripe-Signature": signature}


def signed_deliveries(
    events: Iterable[Mapping[str, Any]], secret: str, *, timestamp: int | None = None
) -> list[tuple[bytes, dict[str, str]]]:
    """`signed_delivery` of each event, in order, all signed at `timestamp` (default now)."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    return [signed_delivery(event, secret, timestamp=signed_at) for event in events]


def parse_attacks(text: str) -> dict[str, int]:
    """`--attacks card_testing=3,trial_abuse=2` (kinds left out: none), `none`, or `default` (None)."""
    if text.strip() == "none":
        return {}
    counts: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, count = part.partition("=")
        if kind not in ATTACK_KINDS or not count.isdigit():
            raise ValueError(f"{part!r}: expected KIND=COUNT with KIND one of {', '.join(ATTACK_KINDS)}")
        counts[kind] = int(count)
    return counts


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("simulate", help="write a labeled, simulated Stripe history (JSONL)")
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--start",
        type=lambda s: datetime.fromisoformat(s).replace(tzinfo=UTC),
        default=datetime(2025, 1, 1, tzinfo=UTC),
        help="first day, UTC (default 2025-01-01)",
    )
    parser.add_argument("--churn-rate", type=float, default=DEFAULT_CHURN_RATE, help="monthly hazard")
    parser.add_argument(
        "--attacks", type=parse_attacks, default=None, help="KIND=COUNT,... or none (default: rare)"
    )
    parser.add_argument("--account", help="connected account the events belong to (default: the platform)")
    parser.add_argument("--out", type=Path, required=True, help="FILE.jsonl or FILE.jsonl.gz")
    parser.add_argument("--labels", type=Path, help="FILE.json for the labels")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    history = simulate(
        args.customers,
        args.months,
        args.seed,
        args.start,
        churn_rate=args.churn_rate,
        attacks=args.attacks,
        account=args.account,
    )
    count = write_jsonl(history, args.out)
    if args.labels:
        write_labels(history, args.labels)
    labels = history.labels
    churned = sum(c.churned for c in labels.customers.values() if c.segment != ATTACKER)
    print(
        f"wrote {count} events of {args.customers} customers ({churned} churned) and "
        f"{len(labels.attacks)} attacks to {args.out} in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    return 0


# -- ids, time, randomness --------------------------------------------------------------------------------
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(data: bytes) -> str:
    return "".join(_BASE62[byte % 62] for byte in data)  # the slight bias does not matter here


class _Ids:
    """Stripe-looking ids, stable per (seed, namespace, prefix, n): one namespace per customer or attack."""

    def __init__(self, seed: int, namespace: str) -> None:
        self._root = f"{seed}/{namespace}/"
        self._counts: dict[str, int] = {}

    def new(self, prefix: str, length: int = 24) -> str:
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        text = _base62(hashlib.blake2b(f"{self._root}{prefix}/{n}".encode(), digest_size=length).digest())
        return f"{prefix}_{text}" if prefix else text

    def uuid(self) -> str:
        n = self._counts.get("uuid", 0)
        self._counts["uuid"] = n + 1
        digest = hashlib.blake2b(f"{self._root}uuid/{n}".encode(), digest_size=16).hexdigest()
        return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


def _add_months(ts: int, months: int, day: int | None = None) -> int:
    """`ts` moved by calendar months, on `day` of the month (default its own), clamped to the month's end."""
    moment = datetime.fromtimestamp(ts, UTC)
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    last = calendar.monthrange(year, month + 1)[1]
    return int(moment.replace(year=year, month=month + 1, day=min(day or moment.day, last)).timestamp())


def _month_end(year: int, month: int) -> int:
    """The first second after the last day of (year, month): when a card of that expiry stops working."""
    return int(datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC).timestamp())


def _weighted(rng: random.Random, choices: Iterable[tuple[str, float]]) -> str:
    names, weights = zip(*choices, strict=True)
    return str(rng.choices(names, weights)[0])


def _between(rng: random.Random, low: float, high: float) -> int:
    return int(low + rng.random() * max(0.0, high - low))


# -- objects: copies of the real fixtures -----------------------------------------------------------------
def _copy(value: Any) -> Any:
    """A deep copy of JSON data (several times faster than copy.deepcopy)."""
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


@cache
def _template(resource: str, *path: str | int) -> dict[str, Any]:
    """The real example object of `resource` in the fixtures (or its part at `path`); never modified."""
    value: Any = stripe_object(resource)
    for step in path:
        value = value[step]
    return dict(value)


def _object(resource: str, /, *path: str | int, **fields: Any) -> dict[str, Any]:
    """A new copy of the real example object of `resource` (or of its part at `path`) with `fields` set.

    The keys stay the fixture's, in its order: a field the fixture does not have is a mistake here."""
    template = _template(resource, *path)
    if unknown := fields.keys() - template.keys():
        raise KeyError(f"{resource} has no {sorted(unknown)} in the fixtures")
    return {key: fields[key] if key in fields else _copy(value) for key, value in template.items()}


@dataclass(frozen=True)
class _Plan:
    key: str  # e.g. "pro_month"
    tier: int  # 0 Starter, 1 Pro, 2 Business
    name: str
    interval: str  # month | year
    unit_amount: int  # per seat and interval, in cents
    product: str
    price: str
    created: int

    @property
    def months(self) -> int:
        return 12 if self.interval == "year" else 1


@dataclass
class _Card:
    pm: str
    fingerprint: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    country: str
    funding: str
    created: int

    @property
    def expires_at(self) -> int:
        return _month_end(self.exp_year, self.exp_month)


@dataclass
class _Buyer:
    """One Stripe customer and what the simulation remembers of it."""

    id: str
    segment: str
    email: str
    name: str
    country: str
    created: int
    ids: _Ids
    rng: random.Random
    metadata: dict[str, str]
    invoice_prefix: str
    cards: list[tuple[int, _Card]] = field(default_factory=list)  # (default since, card)
    charges: list[_ChargeRecord] = field(default_factory=list)  # succeeded
    delinquent: bool = False
    invoices: int = 0
    active_until: int = 0  # when it stopped being a customer (churned), else the history's end

    @property
    def card(self) -> _Card | None:
        return self.cards[-1][1] if self.cards else None

    def card_at(self, at: int) -> _Card | None:
        found = None
        for since, card in self.cards:
            if since <= at:
                found = card
        return found


@dataclass
class _ChargeRecord:
    id: str
    intent: str
    customer: _Buyer | None
    amount: int
    created: int
    card: _Card
    description: str
    balance_transaction: str
    refunded: int = 0
    disputed: bool = False


@dataclass
class _Subscription:
    id: str
    customer: _Buyer
    created: int
    plan: _Plan
    quantity: int
    item: str
    status: str
    period_start: int
    period_end: int
    trial_start: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    cancellation_reason: str | None = None
    feedback: str | None = None
    latest_invoice: str | None = None
    pause_resumes_at: int | None = None
    missing_payment_method: str = "create_invoice"


@dataclass
class _Invoice:
    id: str
    line: str
    customer: _Buyer
    subscription: _Subscription | None
    billing_reason: str
    created: int
    plan: _Plan
    quantity: int
    period: tuple[int, int]
    amount: int
    status: str = "draft"
    number: str | None = None
    attempt_count: int = 0
    next_payment_attempt: int | None = None
    finalized_at: int | None = None
    paid_at: int | None = None
    voided_at: int | None = None


@dataclass
class _Intent:
    id: str
    customer: _Buyer | None
    amount: int
    created: int
    description: str
    status: str = "requires_payment_method"
    payment_method: str | None = None
    latest_charge: str | None = None
    error: dict[str, Any] | None = None


def _price_object(plan: _Plan, livemode: bool) -> dict[str, Any]:
    price = _object(
        "price",
        id=plan.price,
        created=plan.created,
        livemode=livemode,
        lookup_key=plan.key,
        nickname=f"{plan.name} {plan.interval}ly",
        product=plan.product,
        transform_quantity=None,
        unit_amount=plan.unit_amount,
        unit_amount_decimal=str(plan.unit_amount),
    )
    price["recurring"].update(interval=plan.interval, interval_count=1)
    return price


def _plan_object(plan: _Plan, livemode: bool) -> dict[str, Any]:
    legacy = _object(
        "plan",
        id=plan.price,
        amount=plan.unit_amount,
        amount_decimal=str(plan.unit_amount),
        created=plan.created,
        interval=plan.interval,
        livemode=livemode,
        nickname=f"{plan.name} {plan.interval}ly",
        product=plan.product,
        transform_usage=None,
    )
    return legacy


def _product_object(plan: _Plan, livemode: bool) -> dict[str, Any]:
    product = _object(
        "product",
        id=plan.product,
        created=plan.created,
        default_price=plan.price,
        description=f"{plan.name} plan, per seat",
        livemode=livemode,
        name=plan.name,
        package_dimensions=None,
        type="service",
        unit_label="seat",
        updated=plan.created,
    )
    return product


def _items_object(sub: _Subscription, livemode: bool) -> dict[str, Any]:
    item = _object(
        "subscription",
        "items",
        "data",
        0,
        id=sub.item,
        created=sub.created,
        price=_price_object(sub.plan, livemode),
        plan=_plan_object(sub.plan, livemode),
        quantity=sub.quantity,
        subscription=sub.id,
        current_period_start=sub.period_start,
        current_period_end=sub.period_end,
        billing_thresholds=None,
    )
    return {
        "data": [item],
        "has_more": False,
        "object": "list",
        "url": f"/v1/subscription_items?subscription={sub.id}",
    }


def _subscription_object(sub: _Subscription, livemode: bool) -> dict[str, Any]:
    obj = _object(
        "subscription",
        id=sub.id,
        customer=sub.customer.id,
        created=sub.created,
        start_date=sub.created,
        billing_cycle_anchor=sub.trial_end or sub.created,
        billing_cycle_anchor_config=None,
        cancel_at=sub.cancel_at,
        canceled_at=sub.canceled_at,
        cancel_at_period_end=sub.cancel_at_period_end,
        cancellation_details={"comment": None, "feedback": sub.feedback, "reason": sub.cancellation_reason},
        ended_at=sub.ended_at,
        items=_items_object(sub, livemode),
        latest_invoice=sub.latest_invoice,
        livemode=livemode,
        metadata={"crm_account_id": sub.customer.metadata["crm_account_id"]}
        if "crm_account_id" in sub.customer.metadata
        else {},
        next_pending_invoice_item_invoice=None,
        pause_collection={"behavior": "void", "resumes_at": sub.pause_resumes_at}
        if sub.pause_resumes_at
        else None,
        pending_invoice_item_interval=None,
        pending_update=None,
        status=sub.status,
        transfer_data=None,
        trial_start=sub.trial_start,
        trial_end=sub.trial_end,
        trial_settings={"end_behavior": {"missing_payment_method": sub.missing_payment_method}},
        billing_schedules=[],
        billing_thresholds=None,
        managed_payments={"enabled": False},
    )
    return obj


def _customer_object(
    buyer: _Buyer, livemode: bool, *, email: str | None = None, default_pm: str | None = None
) -> dict[str, Any]:
    card = buyer.card
    obj = _object(
        "customer",
        id=buyer.id,
        created=buyer.created,
        email=email or buyer.email,
        name=buyer.name,
        delinquent=buyer.delinquent,
        discount=None,
        invoice_prefix=buyer.invoice_prefix,
        livemode=livemode,
        metadata=dict(buyer.metadata),
        next_invoice_sequence=buyer.invoices + 1,
        preferred_locales=["en"],
        shipping=None,
    )
    obj["address"]["country"] = buyer.country
    obj["invoice_settings"]["default_payment_method"] = default_pm or (card.pm if card else None)
    return obj


def _card_details(card: _Card) -> dict[str, Any]:
    return {
        "brand": card.brand,
        "country": card.country,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "fingerprint": card.fingerprint,
        "funding": card.funding,
        "last4": card.last4,
    }


def _payment_method_object(card: _Card, buyer: _Buyer | None, livemode: bool) -> dict[str, Any]:
    obj = _object(
        "payment_method",
        id=card.pm,
        created=card.created,
        customer=buyer.id if buyer else None,
        livemode=livemode,
        metadata={},
        allow_redisplay="always" if buyer else "unspecified",
    )
    obj["billing_details"].update(
        email=buyer.email if buyer else None,
        name=buyer.name if buyer else None,
        phone=None,
        address={
            "city": None,
            "country": card.country,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
    )
    obj["card"].update(_card_details(card), display_brand=card.brand, generated_from=None, wallet=None)
    obj["card"]["networks"] = {"available": [card.brand], "preferred": None}
    return obj


def _outcome(decline: _Decline | None) -> dict[str, Any]:
    if decline is None:
        return {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "advice_code": "try_again_later" if decline.reason == "try_again_later" else "do_not_try_again",
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": decline.network_status,
        "reason": decline.reason,
        "seller_message": decline.seller_message,
        "type": decline.outcome_type,
    }


def _charge_object(charge: _ChargeRecord, decline: _Decline | None, livemode: bool) -> dict[str, Any]:
    buyer, card, paid = charge.customer, charge.card, decline is None
    obj = _object(
        "charge",
        id=charge.id,
        amount=charge.amount,
        amount_captured=charge.amount if paid else 0,
        amount_refunded=charge.refunded,
        balance_transaction=charge.balance_transaction if paid else None,
        calculated_statement_descriptor="SIMULATED SAAS",
        captured=paid,
        created=charge.created,
        customer=buyer.id if buyer else None,
        description=charge.description,
        disputed=charge.disputed,
        failure_code=decline.failure_code if decline else None,
        failure_message=decline.message if decline else None,
        livemode=livemode,
        outcome=_outcome(decline),
        paid=paid,
        payment_intent=charge.intent,
        payment_method=card.pm,
        receipt_email=buyer.email if buyer else None,
        receipt_url=f"https://pay.stripe.com/receipts/payment/{charge.id}" if paid else None,
        refunded=paid and charge.refunded >= charge.amount,
        refunds={"data": [], "has_more": False, "object": "list", "url": f"/v1/charges/{charge.id}/refunds"},
        source=None,
        status="succeeded" if paid else "failed",
        transfer_data=None,
    )
    obj["billing_details"].update(
        email=buyer.email if buyer else None,
        name=buyer.name if buyer else None,
        address={**obj["billing_details"]["address"], "country": card.country},
    )
    details = obj["payment_method_details"]["card"]
    details.update(
        _card_details(card),
        amount_authorized=charge.amount if paid else None,
        network=card.brand,
        three_d_secure=None,
        wallet=None,
    )
    details["checks"]["cvc_check"] = "fail" if decline and decline.reason == "incorrect_cvc" else "pass"
    details["overcapture"]["maximum_amount_capturable"] = charge.amount
    return obj


def _intent_object(intent: _Intent, livemode: bool) -> dict[str, Any]:
    obj = _object(
        "payment_intent",
        id=intent.id,
        amount=intent.amount,
        amount_received=intent.amount if intent.status == "succeeded" else 0,
        canceled_at=None,
        client_secret=f"{intent.id}_secret_{intent.id[3:]}",
        created=intent.created,
        customer=intent.customer.id if intent.customer else None,
        description=intent.description,
        last_payment_error=dict(intent.error) if intent.error else None,
        latest_charge=intent.latest_charge,
        livemode=livemode,
        metadata={},
        next_action=None,
        payment_method=intent.payment_method,
        payment_method_configuration_details=None,
        processing=None,
        status=intent.status,
        transfer_data=None,
        shipping=None,
        managed_payments={"enabled": False},
    )
    return obj


def _invoice_object(invoice: _Invoice, livemode: bool) -> dict[str, Any]:
    buyer, sub, amount = invoice.customer, invoice.subscription, invoice.amount
    paid = invoice.status == "paid"
    price = f"${invoice.plan.unit_amount / 100:,.2f} / {invoice.plan.interval}"
    description = f"{invoice.quantity} × {invoice.plan.name} (at {price})"  # noqa: RUF001 - as Stripe writes it
    line = _object(
        "invoice",
        "lines",
        "data",
        0,
        id=invoice.line,
        amount=amount,
        description=description,
        invoice=invoice.id,
        livemode=livemode,
        period={"start": invoice.period[0], "end": invoice.period[1]},
        quantity=invoice.quantity,
        subscription=sub.id if sub else None,
        parent={
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub.id if sub else None,
                "subscription_item": sub.item if sub else None,
            },
            "type": "subscription_item_details",
        },
        pricing={
            "price_details": {"price": invoice.plan.price, "product": invoice.plan.product},
            "type": "price_details",
            "unit_amount_decimal": str(invoice.plan.unit_amount),
        },
        subtotal=amount,
        pretax_credit_amounts=[],
        taxes=[],
    )
    finalized = invoice.finalized_at is not None
    billed = (invoice.created, invoice.created)  # a renewal's: the period that just ended, as Stripe does
    if invoice.billing_reason == "subscription_cycle":
        billed = (_add_months(invoice.period[0], -invoice.plan.months), invoice.period[0])
    obj = _object(
        "invoice",
        id=invoice.id,
        account_name="Simulated SaaS Inc.",
        amount_due=amount,
        amount_paid=amount if paid else 0,
        amount_remaining=0 if paid or invoice.status == "void" else amount,
        amount_overpaid=0,
        attempt_count=invoice.attempt_count,
        attempted=invoice.attempt_count > 0 or paid,
        auto_advance=invoice.status in ("draft", "open"),
        billing_reason=invoice.billing_reason,
        created=invoice.created,
        customer=buyer.id,
        customer_address={**_template("invoice")["customer_address"], "country": buyer.country},
        customer_email=buyer.email,
        customer_name=buyer.name,
        customer_shipping=None,
        due_date=None,
        effective_at=invoice.finalized_at,
        from_invoice=None,
        hosted_invoice_url=f"https://invoice.stripe.com/i/{invoice.id}" if finalized else None,
        invoice_pdf=f"https://pay.stripe.com/invoice/{invoice.id}/pdf" if finalized else None,
        last_finalization_error=None,
        lines={
            "data": [line],
            "has_more": False,
            "object": "list",
            "url": f"/v1/invoices/{invoice.id}/lines",
        },
        livemode=livemode,
        next_payment_attempt=invoice.next_payment_attempt,
        number=invoice.number,
        parent={
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": sub.id if sub else None},
            "type": "subscription_details",
        },
        period_start=billed[0],
        period_end=billed[1],
        shipping_cost=None,
        shipping_details=None,
        status=invoice.status,
        status_transitions={
            "finalized_at": invoice.finalized_at,
            "marked_uncollectible_at": None,
            "paid_at": invoice.paid_at,
            "voided_at": invoice.voided_at,
        },
        subscription=sub.id if sub else None,
        subtotal=amount,
        subtotal_excluding_tax=amount,
        total=amount,
        total_excluding_tax=amount,
        total_pretax_credit_amounts=[],
        total_taxes=[],
        webhooks_delivered_at=invoice.finalized_at,
    )
    return obj


def _invoice_payment_object(invoice: _Invoice, intent: _Intent, livemode: bool) -> dict[str, Any]:
    obj = _object(
        "invoice_payment",
        id=f"inpay_{intent.id[3:]}",
        amount_paid=intent.amount,
        amount_requested=intent.amount,
        created=intent.created,
        currency="usd",
        invoice=invoice.id,
        livemode=livemode,
        payment={"payment_intent": intent.id, "type": "payment_intent"},
        status="paid",
        status_transitions={"canceled_at": None, "paid_at": invoice.paid_at},
    )
    return obj


def _refund_object(refund: str, charge: _ChargeRecord, amount: int, at: int, txn: str) -> dict[str, Any]:
    obj = _object(
        "refund",
        id=refund,
        amount=amount,
        balance_transaction=txn,
        charge=charge.id,
        created=at,
        customer=charge.customer.id if charge.customer else None,
        payment_intent=charge.intent,
        payment_method=charge.card.pm,
        reason="requested_by_customer",
    )
    return obj


_DISPUTE_CODES = {"fraudulent": "10.4", "product_not_received": "13.1", "subscription_canceled": "13.2"}


def _dispute_object(
    dispute: str, charge: _ChargeRecord, at: int, *, reason: str, status: str, livemode: bool
) -> dict[str, Any]:
    obj = _object(
        "dispute",
        id=dispute,
        amount=charge.amount,
        charge=charge.id,
        created=at,
        is_charge_refundable=False,
        livemode=livemode,
        payment_intent=charge.intent,
        reason=reason,
        status=status,
        enhanced_eligibility_types=[],
    )
    obj["evidence_details"].update(due_by=at + 9 * DAY, has_evidence=False, past_due=False)
    obj["payment_method_details"]["card"].update(
        brand=charge.card.brand,
        case_type="chargeback",
        network=charge.card.brand,
        network_reason_code=_DISPUTE_CODES.get(reason, "13.7"),
    )
    return obj


# -- the simulation ---------------------------------------------------------------------------------------
@dataclass
class _Spike:
    """An issuer outage on the account: most payments attempted within [start, end) fail once."""

    attack_id: str
    start: int
    end: int
    event_ids: list[str] = field(default_factory=list)
    customers: set[str] = field(default_factory=set)


class _Simulation:
    def __init__(
        self, seed: int, start: int, end: int, *, churn_rate: float, account: str | None, livemode: bool
    ) -> None:
        self.seed, self.start, self.end, self.churn_rate = seed, start, end, churn_rate
        self.account, self.livemode = account, livemode
        self._events: list[tuple[int, int, dict[str, Any]]] = []
        self.buyers: list[_Buyer] = []
        self.plans: list[_Plan] = []
        self.spikes: list[_Spike] = []
        self.customer_labels: dict[str, CustomerLabel] = {}
        self.attack_labels: list[AttackLabel] = []
        self.orphans = _Ids(seed, "orphans")  # ids of what belongs to no customer

    # -- plumbing -----------------------------------------------------------------------------------------
    def rng(self, *namespace: object) -> random.Random:
        return random.Random("/".join(map(str, (self.seed, *namespace))))  # noqa: S311 - test data

    def emit(
        self,
        ids: _Ids,
        event_type: str,
        obj: dict[str, Any],
        at: int,
        *,
        previous: dict[str, Any] | None = None,
        requested: bool = False,
    ) -> str | None:
        """Record one event (dropped when at or after the history's end); its id, or None when dropped.

        `requested`: a person or an API call caused it (Stripe fills `request`); else the billing engine."""
        if at >= self.end:
            return None
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        event: dict[str, Any] = {"id": ids.new("evt"), "object": "event"}
        if self.account:
            event["account"] = self.account
        event |= {
            "api_version": STRIPE_API_VERSION,
            "created": at,
            "data": data,
            "livemode": self.livemode,
            "pending_webhooks": 1,
            "request": {"id": ids.new("req", 14), "idempotency_key": ids.uuid()}
            if requested
            else {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        self._events.append((at, len(self._events), event))
        return str(event["id"])

    def history(self) -> History:
        self._events.sort(key=lambda e: (e[0], e[1]))
        events = [e for _, _, e in self._events]
        for spike in self.spikes:
            if spike.event_ids:
                self.attack_labels.append(
                    AttackLabel(
                        spike.attack_id,
                        "payment_failure_spike",
                        self.account,
                        tuple(sorted(spike.customers)),
                        (),
                        spike.start,
                        spike.end,
                        tuple(spike.event_ids),
                    )
                )
        order = {e["id"]: n for n, e in enumerate(events)}
        attacks = sorted(
            (
                replace(a, event_ids=tuple(sorted(a.event_ids, key=order.__getitem__)))
                for a in self.attack_labels
            ),
            key=lambda a: (ATTACK_KINDS.index(a.kind), a.attack_id),
        )
        labels = Labels(self.seed, self.start, self.end, dict(self.customer_labels), tuple(attacks))
        return History(events, labels)

    # -- the catalog, customers, cards ---------------------------------------------------------------------
    def open_catalog(self) -> None:
        ids = _Ids(self.seed, "catalog")
        at = self.start
        for tier, (name, monthly) in enumerate(_TIERS):
            product, key = ids.new("prod", 14), name.lower()
            month = _Plan(f"{key}_month", tier, name, "month", monthly, product, ids.new("price"), at)
            year = _Plan(f"{key}_year", tier, name, "year", monthly * 10, product, ids.new("price"), at)
            self.plans += [month, year]
            self.emit(ids, "product.created", _product_object(month, self.livemode), at, requested=True)
            for plan in (month, year):
                self.emit(ids, "price.created", _price_object(plan, self.livemode), at + 1, requested=True)

    def plan(self, tier: int, interval: str) -> _Plan:
        return next(p for p in self.plans if p.tier == tier and p.interval == interval)

    def new_buyer(self, namespace: str, index: int, segment: str, at: int) -> _Buyer:
        rng, ids = self.rng(namespace, index), _Ids(self.seed, f"{namespace}/{index}")
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        country = _weighted(rng, _COUNTRIES)
        domain = rng.choice(("example.com", "example.org", "example.net"))
        tag = ids.new("", 5).lower() if segment == ATTACKER else index  # attackers' addresses never repeat
        metadata = {"erp_id": f"NS-{100_000 + index}", "crm_account_id": "001" + ids.new("", 12)}
        if segment == ATTACKER or rng.random() < 0.03:  # some customers are missing the ERP link
            metadata = {}
        buyer = _Buyer(
            id=ids.new("cus", 14),
            segment=segment,
            email=f"{first.lower()}.{last.lower()}{tag}@{domain}",
            name=f"{first} {last}",
            country=country,
            created=at,
            ids=ids,
            rng=rng,
            metadata=metadata,
            invoice_prefix=ids.new("", 8).upper(),
            active_until=self.end,
        )
        self.buyers.append(buyer)
        self.emit(ids, "customer.created", _customer_object(buyer, self.livemode), at, requested=True)
        return buyer

    def new_card(
        self,
        buyer: _Buyer | None,
        ids: _Ids,
        rng: random.Random,
        at: int,
        *,
        expires_at: int | None = None,
        country: str | None = None,
    ) -> _Card:
        """A card; `expires_at`: a moment in the month after its last valid month (default 1-5 years on)."""
        if expires_at is None:
            expires_at = _add_months(at, rng.randint(1, 60))
        last = datetime.fromtimestamp(_add_months(expires_at, -1, 1), UTC)
        return _Card(
            pm=ids.new("pm"),
            fingerprint=ids.new("", 16),
            brand=_weighted(rng, _BRANDS),
            last4=f"{rng.randint(0, 9999):04d}",
            exp_month=last.month,
            exp_year=last.year,
            country=country or (buyer.country if buyer else _weighted(rng, _COUNTRIES)),
            funding=_weighted(rng, (("credit", 70), ("debit", 28), ("prepaid", 2))),
            created=at,
        )

    def attach(self, buyer: _Buyer, card: _Card, at: int, *, default: bool = True) -> list[str | None]:
        """payment_method.attached, then (default) customer.updated making it the default."""
        pm = _payment_method_object(card, buyer, self.livemode)
        found = [self.emit(buyer.ids, "payment_method.attached", pm, at, requested=True)]
        if default:
            old = buyer.card
            buyer.cards.append((at + 1, card))
            previous = {"invoice_settings": {"default_payment_method": old.pm if old else None}}
            found.append(
                self.emit(
                    buyer.ids,
                    "customer.updated",
                    _customer_object(buyer, self.livemode),
                    at + 1,
                    previous=previous,
                    requested=True,
                )
            )
        return found

    def set_delinquent(self, buyer: _Buyer, delinquent: bool, at: int) -> None:
        if buyer.delinquent != delinquent:
            buyer.delinquent = delinquent
            obj = _customer_object(buyer, self.livemode)
            self.emit(buyer.ids, "customer.updated", obj, at, previous={"delinquent": not delinquent})

    # -- payments -----------------------------------------------------------------------------------------
    def spike_at(self, at: int) -> _Spike | None:
        return next((s for s in self.spikes if s.start <= at < s.end), None)

    def attempt(
        self,
        buyer: _Buyer | None,
        ids: _Ids,
        intent: _Intent,
        card: _Card,
        at: int,
        *,
        decline: _Decline | None,
        requested: bool,
    ) -> tuple[_ChargeRecord, list[str | None]]:
        """Charge `intent` to `card`: charge.succeeded|failed, payment_intent.succeeded|payment_failed."""
        charge = _ChargeRecord(
            ids.new("ch"), intent.id, buyer, intent.amount, at, card, intent.description, ids.new("txn")
        )
        intent.payment_method, intent.latest_charge = card.pm, charge.id
        if decline is None:
            intent.status, intent.error = "succeeded", None
            if buyer:
                buyer.charges.append(charge)
        else:
            intent.status = "requires_payment_method"
            intent.error = {
                "type": "card_error",
                "code": decline.failure_code,
                "decline_code": decline.reason if decline.failure_code == "card_declined" else None,
                "message": decline.message,
                "charge": charge.id,
            }
        status = "succeeded" if decline is None else "failed"
        found = [
            self.emit(
                ids,
                f"charge.{status}",
                _charge_object(charge, decline, self.livemode),
                at,
                requested=requested,
            ),
            self.emit(
                ids,
                "payment_intent.succeeded" if decline is None else "payment_intent.payment_failed",
                _intent_object(intent, self.livemode),
                at,
                requested=requested,
            ),
        ]
        return charge, found

    def purchase(
        self,
        buyer: _Buyer | None,
        ids: _Ids,
        rng: random.Random,
        at: int,
        amount: int,
        *,
        card: _Card,
        description: str,
        declines: Iterable[_Decline] = (),
    ) -> tuple[_ChargeRecord, list[str | None]]:
        """A one-off payment: payment_intent.created, then attempts (a few minutes apart) until one succeeds.

        Within a failure spike the first attempt fails with try_again_later, and the buyer tries again."""
        intent = _Intent(ids.new("pi"), buyer, amount, at, description)
        created = _intent_object(intent, self.livemode)
        found = [self.emit(ids, "payment_intent.created", created, at, requested=True)]
        planned = list(declines)
        spike = self.spike_at(at)
        if spike and buyer and buyer.segment != ATTACKER and not planned and rng.random() < 0.7:
            planned = [_DECLINES["try_again_later"]]
        attempt_at = at + rng.randint(1, 4)
        charge: _ChargeRecord | None = None
        for decline in [*planned, None]:
            charge, emitted = self.attempt(
                buyer, ids, intent, card, attempt_at, decline=decline, requested=True
            )
            found += emitted
            if spike and decline is not None and decline.reason == "try_again_later" and buyer:
                spike.event_ids += [e for e in emitted if e]
                spike.customers.add(buyer.id)
            attempt_at += rng.randint(2 * MINUTE, 40 * MINUTE)
        assert charge is not None  # the last attempt succeeds
        return charge, found

    def refund(self, charge: _ChargeRecord, at: int, amount: int) -> list[str | None]:
        ids = charge.customer.ids if charge.customer else self.orphans
        charge.refunded += amount
        refund = _refund_object(ids.new("re"), charge, amount, at, ids.new("txn"))
        return [
            self.emit(
                ids, "charge.refunded", _charge_object(charge, None, self.livemode), at, requested=True
            ),
            self.emit(ids, "refund.created", refund, at, requested=True),
        ]

    def dispute(self, charge: _ChargeRecord, at: int, reason: str, rng: random.Random) -> str | None:
        """charge.dispute.created and .funds_withdrawn; .closed (won or lost) weeks later."""
        ids = charge.customer.ids if charge.customer else self.orphans
        charge.disputed = True
        dispute = ids.new("dp")
        created = self.emit(
            ids,
            "charge.dispute.created",
            _dispute_object(
                dispute, charge, at, reason=reason, status="needs_response", livemode=self.livemode
            ),
            at,
        )
        withdrawn = _dispute_object(
            dispute, charge, at, reason=reason, status="needs_response", livemode=self.livemode
        )
        self.emit(ids, "charge.dispute.funds_withdrawn", withdrawn, at + 1)
        status = "lost" if reason == "fraudulent" or rng.random() < 0.6 else "won"
        closed_at = at + rng.randint(20, 60) * DAY
        closed = _dispute_object(dispute, charge, at, reason=reason, status=status, livemode=self.livemode)
        self.emit(ids, "charge.dispute.closed", closed, closed_at)
        return created

    # -- customers ----------------------------------------------------------------------------------------
    def add_customer(self, index: int) -> None:
        rng = self.rng("arrival", index)
        arrival = _between(rng, self.start + HOUR, self.end - 14 * DAY)
        if rng.random() < ONE_OFF_SHARE:
            self._one_off(index, arrival)
        else:
            _Subscriber.from_population(self, index, arrival).run()

    def _one_off(self, index: int, arrival: int) -> None:
        buyer = self.new_buyer("customer", index, ONE_OFF, arrival)
        rng, ids = buyer.rng, buyer.ids
        per_month = rng.gammavariate(0.9, 0.45)  # purchases per 30 days while active
        leave = rng.betavariate(1.2, 3.5)  # probability of leaving after each purchase
        typical = rng.lognormvariate(math.log(4_000), 0.6)
        card = self.new_card(buyer, ids, rng, arrival)
        at = arrival + rng.randint(MINUTE, 20 * MINUTE)
        self.attach(buyer, card, at)
        churned_at: int | None = None
        while at < self.end:
            card = buyer.card_at(at) or card
            if card.expires_at <= at:  # a new card at checkout
                card = self.new_card(buyer, ids, rng, at)
                self.attach(buyer, card, at)
                at += MINUTE
            amount = max(500, int(round(typical * rng.lognormvariate(0, 0.25), -2)) - 1)
            declines = [_DECLINES[rng.choice(("insufficient_funds", "generic_decline"))]]
            charge, _ = self.purchase(
                buyer,
                ids,
                rng,
                at,
                amount,
                card=card,
                description="One-off purchase",
                declines=declines if rng.random() < 0.04 else (),
            )
            if rng.random() < 0.03:
                self.refund(charge, charge.created + rng.randint(1, 14) * DAY, charge.amount)
            if rng.random() < leave:
                if charge.created < self.end:
                    churned_at = buyer.active_until = charge.created
                break
            at += int(rng.expovariate(max(per_month, 0.02) / (30 * DAY)))
        self.customer_labels[buyer.id] = CustomerLabel(
            buyer.id, ONE_OFF, arrival, churned_at is not None, churned_at, "dropout" if churned_at else None
        )

    # -- attacks ------------------------------------------------------------------------------------------
    def plan_failure_spikes(self, count: int, customers: int) -> None:
        """Decided before the customers, whose payments inside a spike fail once (most of them)."""
        renewals_per_day = max(customers * 0.8 * 0.5 / 30, 0.1)
        hours = min(max(20 * 24 / renewals_per_day, 6), 7 * 24)  # long enough for ~20 payments
        for n in range(count):
            rng = self.rng("attack", "payment_failure_spike", n)
            begin = _between(
                rng, self.start + 0.4 * (self.end - self.start), self.end - 3 * DAY - hours * HOUR
            )
            self.spikes.append(_Spike(f"atk_payment_failure_spike_{n}", begin, begin + int(hours * HOUR)))

    def inject(self, kind: str, n: int) -> None:
        if kind == "payment_failure_spike":
            return  # planned before the customers: see plan_failure_spikes
        rng = self.rng("attack", kind, n)
        attack: Callable[[int, random.Random], AttackLabel | None] = getattr(self, f"_{kind}")
        label = attack(n, rng)
        if label is not None and label.event_ids:  # none when nothing qualified or all fell after the end
            self.attack_labels.append(label)

    def _attack_window(self, rng: random.Random) -> int:
        return _between(rng, self.start + 0.25 * (self.end - self.start), self.end - 2 * DAY)

    def _legit(self, min_charges: int, margin: int) -> list[tuple[_Buyer, int]]:
        """Customers with at least `min_charges` payments and `margin` seconds of life after them."""
        found = []
        for buyer in self.buyers:
            if buyer.segment == ATTACKER or len(buyer.charges) < min_charges:
                continue
            after = buyer.charges[min_charges - 1].created + HOUR
            if min(buyer.active_until, self.end) - margin > after:
                found.append((buyer, after))
        return found

    def _trial_abuse(self, n: int, rng: random.Random) -> AttackLabel:
        at = self._attack_window(rng)
        ids = _Ids(self.seed, f"attack/trial_abuse/{n}")
        shared = self.new_card(None, ids, rng, at)
        event_ids: list[str | None] = []
        customers, first, last = [], at, at
        for j in range(rng.randint(4, 8)):
            card = _Card(**{**asdict(shared), "pm": ids.new("pm")})
            subscriber = _Subscriber(
                self,
                self.new_buyer(f"attack/trial_abuse/{n}", j, ATTACKER, at),
                plan=self.plan(0, "month"),
                quantity=1,
                trial_days=14,
                card=card,
                risk=1.0,
                churn=(0, "trial_abuse"),
            )
            event_ids += subscriber.run()
            customers.append(subscriber.buyer.id)
            last, at = at, at + rng.randint(2 * HOUR, 3 * DAY)
        return AttackLabel(
            f"atk_trial_abuse_{n}",
            "trial_abuse",
            self.account,
            tuple(customers),
            (shared.fingerprint,),
            first,
            last,
            tuple(e for e in event_ids if e),
        )

    def _card_testing(self, n: int, rng: random.Random) -> AttackLabel:
        at = self._attack_window(rng)
        ids = _Ids(self.seed, f"attack/card_testing/{n}")
        buyer = self.new_buyer(f"attack/card_testing/{n}", 0, ATTACKER, at) if n % 2 == 0 else None
        if buyer:
            self.customer_labels[buyer.id] = CustomerLabel(buyer.id, ATTACKER, at, False, None, None)
        attempts = rng.randint(15, 40)
        span = rng.randint(3 * MINUTE, 9 * MINUTE)
        event_ids: list[str | None] = []
        fingerprints = []
        t = at + MINUTE
        for _ in range(attempts):
            card = self.new_card(None, ids, rng, t, country=rng.choice(_OTHER_COUNTRIES))
            card.funding = rng.choice(("prepaid", "debit", "credit"))
            fingerprints.append(card.fingerprint)
            decline = None
            if rng.random() < 0.85:
                decline = _DECLINES[
                    rng.choice(
                        (
                            "generic_decline",
                            "insufficient_funds",
                            "incorrect_cvc",
                            "expired_card",
                            "do_not_honor",
                            "highest_risk_level",
                        )
                    )
                ]
            amount = rng.choice((50, 75, 100, 100, 150, 200, 300))
            intent = _Intent(ids.new("pi"), buyer, amount, t, "Donation")
            event_ids.append(
                self.emit(ids, "payment_intent.created", _intent_object(intent, self.livemode), t)
            )
            _, emitted = self.attempt(buyer, ids, intent, card, t + 1, decline=decline, requested=True)
            event_ids += emitted
            t += span // attempts + rng.randint(0, 5)
        return AttackLabel(
            f"atk_card_testing_{n}",
            "card_testing",
            self.account,
            (buyer.id,) if buyer else (),
            tuple(fingerprints),
            at + MINUTE,
            t,
            tuple(e for e in event_ids if e),
        )

    def _duplicate_charge(self, n: int, rng: random.Random) -> AttackLabel | None:
        candidates = self._legit(1, DAY)
        if not candidates:
            return None
        buyer, after = rng.choice(candidates)
        at = _between(rng, max(after, self.start), min(buyer.active_until, self.end) - DAY)
        card = buyer.card_at(at)
        amount = rng.choice(buyer.charges).amount
        assert card is not None  # it has paid before
        ids = _Ids(self.seed, f"attack/duplicate_charge/{n}")
        _, found = self.purchase(buyer, ids, rng, at, amount, card=card, description="Order")
        second_at = at + rng.randint(20, 240)
        second, more = self.purchase(buyer, ids, rng, second_at, amount, card=card, description="Order")
        if rng.random() < 0.6:
            self.refund(second, second_at + rng.randint(1, 3) * DAY, amount)
        return AttackLabel(
            f"atk_duplicate_charge_{n}",
            "duplicate_charge",
            self.account,
            (buyer.id,),
            (card.fingerprint,),
            at,
            second_at + 10,
            tuple(e for e in found + more if e),
        )

    def _account_takeover(self, n: int, rng: random.Random) -> AttackLabel | None:
        candidates = self._legit(3, 2 * DAY)
        if not candidates:
            return None
        buyer, after = rng.choice(candidates)
        at = _between(rng, max(after, self.start), min(buyer.active_until, self.end) - 2 * DAY)
        ids = _Ids(self.seed, f"attack/account_takeover/{n}")
        own_card = buyer.card_at(at)
        assert own_card is not None
        stolen = f"{buyer.email.split('@')[0]}.{ids.new('', 5).lower()}@example.net"
        email_changed = self.emit(
            ids,
            "customer.updated",
            _customer_object(buyer, self.livemode, email=stolen, default_pm=own_card.pm),
            at,
            previous={"email": buyer.email},
            requested=True,
        )
        t = at + rng.randint(5 * MINUTE, HOUR)
        country = rng.choice([c for c in _OTHER_COUNTRIES if c != buyer.country])
        card = self.new_card(buyer, ids, rng, t, country=country)
        attached = self.emit(
            ids,
            "payment_method.attached",
            _payment_method_object(card, buyer, self.livemode),
            t,
            requested=True,
        )
        made_default = self.emit(
            ids,
            "customer.updated",
            _customer_object(buyer, self.livemode, email=stolen, default_pm=card.pm),
            t + rng.randint(5, 60),
            previous={"invoice_settings": {"default_payment_method": own_card.pm}},
            requested=True,
        )
        amounts = [c.amount for c in buyer.charges if c.created < at]
        amount = int(round(max(statistics.median(amounts) * rng.uniform(6, 20), 20_000), -2))
        t += rng.randint(20 * MINUTE, 6 * HOUR)
        charge, paid = self.purchase(buyer, ids, rng, t, amount, card=card, description="Order")
        buyer.charges.remove(charge)  # not the customer's own payment
        restored_at = t + rng.randint(2 * HOUR, 24 * HOUR)
        self.emit(
            ids,
            "customer.updated",
            _customer_object(buyer, self.livemode, default_pm=own_card.pm),
            restored_at,
            previous={"email": stolen, "invoice_settings": {"default_payment_method": card.pm}},
            requested=True,
        )
        detached = _payment_method_object(card, None, self.livemode)
        self.emit(ids, "payment_method.detached", detached, restored_at + 5, requested=True)
        if rng.random() < 0.7:
            self.dispute(charge, t + rng.randint(3, 20) * DAY, "fraudulent", rng)
        return AttackLabel(
            f"atk_account_takeover_{n}",
            "account_takeover",
            self.account,
            (buyer.id,),
            (card.fingerprint,),
            at,
            t + 10,
            tuple(e for e in [email_changed, attached, made_default, *paid] if e),
        )

    def _amount_outlier(self, n: int, rng: random.Random) -> AttackLabel | None:
        candidates = self._legit(5, DAY)
        if not candidates:
            return None
        buyer, after = rng.choice(candidates)
        at = _between(rng, max(after, self.start), min(buyer.active_until, self.end) - DAY)
        card = buyer.card_at(at)
        assert card is not None
        amounts = [c.amount for c in buyer.charges if c.created < at]
        amount = int(round(statistics.median(amounts) * rng.uniform(8, 25), -2))
        ids = _Ids(self.seed, f"attack/amount_outlier/{n}")
        _, found = self.purchase(buyer, ids, rng, at, amount, card=card, description="Order")
        return AttackLabel(
            f"atk_amount_outlier_{n}",
            "amount_outlier",
            self.account,
            (buyer.id,),
            (card.fingerprint,),
            at,
            at + 10,
            tuple(e for e in found if e),
        )

    def _dispute_spike(self, n: int, rng: random.Random) -> AttackLabel | None:
        at = _between(rng, self.start + 0.4 * (self.end - self.start), self.end - 3 * DAY)
        charges = sorted(
            (
                c
                for b in self.buyers
                if b.segment != ATTACKER
                for c in b.charges
                if at - 60 * DAY <= c.created < at and not c.disputed and not c.refunded
            ),
            key=lambda c: c.id,
        )
        legit = sum(b.segment != ATTACKER for b in self.buyers)
        chosen = rng.sample(charges, min(len(charges), max(6, round(legit * 0.015))))
        if not chosen:
            return None
        window = 2 * DAY
        found = [self.dispute(c, at + rng.randint(0, window), "fraudulent", rng) for c in chosen]
        return AttackLabel(
            f"atk_dispute_spike_{n}",
            "dispute_spike",
            self.account,
            tuple(sorted({c.customer.id for c in chosen if c.customer})),
            tuple(sorted({c.card.fingerprint for c in chosen})),
            at,
            at + window,
            tuple(e for e in found if e),
        )


class _Subscriber:
    """One subscription customer's life: signup, trial, renewals, changes, and maybe churn."""

    def __init__(
        self,
        sim: _Simulation,
        buyer: _Buyer,
        *,
        plan: _Plan,
        quantity: int,
        trial_days: int,
        card: _Card | None,
        risk: float,
        churn: tuple[int, str] | None,
    ) -> None:
        self.sim, self.buyer, self.rng, self.ids = sim, buyer, buyer.rng, buyer.ids
        self.plan, self.quantity, self.card = plan, quantity, card
        self.trial_days, self.risk = trial_days, risk  # risk: the hidden churn propensity, mean 1
        self.churn = churn  # (the boundary it does not renew at, mechanism); boundary 0 is the trial's end
        self.busy_until = 0  # retries of the latest renewal run until then
        self.evidence: list[str | None] = []  # ids of the events an attack label cites
        self.sub: _Subscription | None = None
        self._times: tuple[int, int] | None = None
        self._boundaries: dict[int, int] = {}

    @classmethod
    def from_population(cls, sim: _Simulation, index: int, arrival: int) -> _Subscriber:
        buyer = sim.new_buyer("customer", index, SUBSCRIPTION, arrival)
        rng = buyer.rng
        tier = int(_weighted(rng, (("0", 50), ("1", 35), ("2", 15))))
        plan = sim.plan(tier, "year" if rng.random() < 0.2 else "month")
        quantity = 1 if tier < 2 else min(1 + int(rng.expovariate(1 / 4)), 40)
        trial_days = rng.choice((7, 14, 14, 30)) if rng.random() < TRIAL_SHARE else 0
        risk = rng.lognormvariate(0, 0.7) / math.exp(0.7**2 / 2)  # mean 1
        card_first = not trial_days or rng.random() < 0.7
        subscriber = cls(
            sim, buyer, plan=plan, quantity=quantity, trial_days=trial_days, card=None, risk=risk, churn=None
        )
        subscriber.churn = subscriber._draw_churn(card_first)
        if card_first:
            subscriber.card = subscriber._first_card()
        return subscriber

    # -- the plan of a life -------------------------------------------------------------------------------
    def _signup_times(self) -> tuple[int, int]:
        """(card attached, subscription created), drawn once and kept: the boundaries depend on them."""
        if self._times is None:
            card_at = self.buyer.created + self.rng.randint(20, 300)
            self._times = (card_at, card_at + self.rng.randint(2, 30))
        return self._times

    def boundary(self, k: int) -> int:
        """The end of paid period k (k >= 1), where it renews; boundary 0 is the first paid period's start.

        Periods keep the interval the subscription started with (plan changes keep the interval)."""
        if k not in self._boundaries:
            anchor = self._signup_times()[1] + self.trial_days * DAY
            self._boundaries[k] = _add_months(anchor, k * self.plan.months) if k else anchor
        return self._boundaries[k]

    def _draw_churn(self, card_first: bool) -> tuple[int, str] | None:
        rng = self.rng
        if self.trial_days:
            not_converting = (0.12 if card_first else 0.45) * min(self.risk, 3)
            if rng.random() < not_converting:
                return 0, "trial_not_converted"
        hazard = min(self.sim.churn_rate * self.risk, 0.9)
        if self.plan.interval == "year":
            hazard = 1 - (1 - hazard * 0.5) ** 12
        weights = dict(_MECHANISM_WEIGHTS)
        if self.plan.tier == 0 and self.quantity == 1:  # nothing to downgrade to
            weights.pop("downgrade_then_cancel")
        k = 1
        while self.boundary(k - 1) < self.sim.end:
            if rng.random() < hazard:
                return k, _weighted(rng, weights.items())
            k += 1
        return None

    def _first_card(self) -> _Card:
        card_at = self._signup_times()[0]
        if self.churn and self.churn[1] == "expired_card":  # valid at every renewal but the churning one
            return self.sim.new_card(
                self.buyer, self.ids, self.rng, card_at, expires_at=self.boundary(self.churn[0])
            )
        return self.sim.new_card(self.buyer, self.ids, self.rng, card_at)

    # -- events -------------------------------------------------------------------------------------------
    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        at: int,
        *,
        previous: dict[str, Any] | None = None,
        requested: bool = False,
    ) -> str | None:
        return self.sim.emit(self.ids, event_type, obj, at, previous=previous, requested=requested)

    def sub_updated(self, at: int, previous: dict[str, Any], *, requested: bool = False) -> str | None:
        assert self.sub is not None
        obj = _subscription_object(self.sub, self.sim.livemode)
        return self.emit("customer.subscription.updated", obj, at, previous=previous, requested=requested)

    def items_now(self) -> dict[str, Any]:
        assert self.sub is not None
        return _items_object(self.sub, self.sim.livemode)

    def run(self) -> list[str | None]:
        """Generate the whole life; the ids of the signup events an attack label cites."""
        buyer, sim = self.buyer, self.sim
        card_at, sub_at = self._signup_times()
        if self.card:
            self.evidence += sim.attach(buyer, self.card, card_at)
        trial_end = sub_at + self.trial_days * DAY if self.trial_days else None
        self.sub = sub = _Subscription(
            id=self.ids.new("sub"),
            customer=buyer,
            created=sub_at,
            plan=self.plan,
            quantity=self.quantity,
            item=self.ids.new("si", 14),
            status="trialing" if trial_end else "active",
            period_start=sub_at,
            period_end=trial_end or self.boundary(1),
            trial_start=sub_at if trial_end else None,
            trial_end=trial_end,
            missing_payment_method="create_invoice" if self.card else "cancel",
        )
        invoice = self.new_invoice(sub_at, "subscription_create")
        sub.latest_invoice = invoice.id
        created = _subscription_object(sub, sim.livemode)
        self.evidence.append(self.emit("customer.subscription.created", created, sub_at, requested=True))
        self.evidence.append(self.emit("invoice.created", _invoice_object(invoice, sim.livemode), sub_at))
        self.busy_until = self.collect(invoice, sub_at, first=True)
        if trial_end and not self.trial():
            return self.evidence
        k = 1
        while not self.ended:
            self.period_actions(k)
            if self.ended or self.boundary(k) >= sim.end:
                break
            if sub.cancel_at_period_end:
                self.delete(self.boundary(k), "cancellation_requested")
                break
            self.renew(k)
            k += 1
        self.label()
        return self.evidence

    @property
    def ended(self) -> bool:
        return self.sub is not None and self.sub.status == "canceled"

    def label(self) -> None:
        sub, buyer = self.sub, self.buyer
        assert sub is not None
        churned = sub.ended_at is not None and sub.ended_at < self.sim.end
        mechanism = self.churn[1] if churned and self.churn else None
        assert mechanism or not churned, "a subscription ended without a churn plan"
        self.sim.customer_labels[buyer.id] = CustomerLabel(
            buyer.id,
            buyer.segment,
            buyer.created,
            churned,
            sub.ended_at if churned else None,
            mechanism,
            sub.id,
            self.plan.key,
        )

    def trial(self) -> bool:
        """The trial: reminder, card, then conversion (True) or cancellation at its end (False)."""
        sub, sim, rng = self.sub, self.sim, self.rng
        assert sub is not None and sub.trial_end is not None
        end = sub.trial_end
        if self.trial_days > 3:
            reminder = _subscription_object(sub, sim.livemode)
            self.emit("customer.subscription.trial_will_end", reminder, end - 3 * DAY)
        converting = not (self.churn and self.churn[0] == 0)
        if converting and not self.card:
            at = _between(rng, sub.created + HOUR, end - HOUR)
            self.card = self._card_for(at)
            sim.attach(self.buyer, self.card, at)
        if not converting:
            abuse = self.churn == (0, "trial_abuse")
            if self.card and (abuse or rng.random() < 0.5):  # cancels before the trial ends
                self.delete(end - rng.randint(HOUR, 2 * DAY), "cancellation_requested", requested=True)
            else:
                self.delete(end, "cancellation_requested" if self.card else None)
            self.label()
            return False
        self.renew(0)
        return True

    def _card_for(self, at: int) -> _Card:
        if self.churn and self.churn[1] == "expired_card":
            return self.sim.new_card(
                self.buyer, self.ids, self.rng, at, expires_at=self.boundary(self.churn[0])
            )
        return self.sim.new_card(self.buyer, self.ids, self.rng, at)

    def new_invoice(self, at: int, reason: str) -> _Invoice:
        sub = self.sub
        assert sub is not None
        self.buyer.invoices += 1
        invoice = _Invoice(
            id=self.ids.new("in"),
            line=self.ids.new("il"),
            customer=self.buyer,
            subscription=sub,
            billing_reason=reason,
            created=at,
            plan=sub.plan,
            quantity=sub.quantity,
            period=(sub.period_start, sub.period_end),
            amount=0 if sub.status == "trialing" else sub.plan.unit_amount * sub.quantity,
        )
        return invoice

    def collect(self, invoice: _Invoice, at: int, *, first: bool = False) -> int:
        """Finalize and pay `invoice` (retrying declines); when it resolved. May cancel the subscription."""
        sub, sim, rng, buyer = self.sub, self.sim, self.rng, self.buyer
        assert sub is not None
        live = sim.livemode
        finalize_at = at if first else at + HOUR + rng.randint(0, 10 * MINUTE)
        invoice.status, invoice.finalized_at = "open", finalize_at
        invoice.number = f"{buyer.invoice_prefix}-{buyer.invoices:04d}"
        self.emit("invoice.finalized", _invoice_object(invoice, live), finalize_at, requested=first)
        if invoice.amount == 0:  # a trial's first invoice
            invoice.status, invoice.paid_at = "paid", finalize_at
            self.emit("invoice.paid", _invoice_object(invoice, live), finalize_at)
            self.emit("invoice.payment_succeeded", _invoice_object(invoice, live), finalize_at)
            return finalize_at
        declines, cancels = self.declines(finalize_at, invoice, first=first)
        intent = _Intent(
            self.ids.new("pi"),
            buyer,
            invoice.amount,
            finalize_at,
            "Subscription creation" if first else "Subscription update",
        )
        self.emit("payment_intent.created", _intent_object(intent, live), finalize_at, requested=first)
        attempts = [*declines] if cancels else [*declines, None]
        t = finalize_at
        for n, decline in enumerate(attempts):
            t = finalize_at + RETRY_DAYS[n] * DAY + (rng.randint(-3 * HOUR, 3 * HOUR) if n else 0)
            card = buyer.card
            assert card is not None
            _, found = sim.attempt(buyer, self.ids, intent, card, t, decline=decline, requested=first)
            spike = sim.spike_at(t)
            if decline is not None:
                invoice.attempt_count += 1
                last = n + 1 >= len(attempts) or n + 1 >= len(RETRY_DAYS)
                invoice.next_payment_attempt = None if last else finalize_at + RETRY_DAYS[n + 1] * DAY
                failed = self.emit("invoice.payment_failed", _invoice_object(invoice, live), t)
                if spike and decline.reason == "try_again_later":
                    spike.event_ids += [e for e in [*found, failed] if e]
                    spike.customers.add(buyer.id)
                if sub.status == "active":
                    sub.status = "past_due"
                    self.sub_updated(t, {"status": "active"})
                sim.set_delinquent(buyer, True, t)
                continue
            invoice.status, invoice.paid_at, invoice.next_payment_attempt = "paid", t, None
            invoice.attempt_count += 1
            self.emit("invoice_payment.paid", _invoice_payment_object(invoice, intent, live), t)
            self.emit("invoice.paid", _invoice_object(invoice, live), t)
            self.emit("invoice.payment_succeeded", _invoice_object(invoice, live), t)
            if sub.status == "past_due":
                sub.status = "active"
                self.sub_updated(t, {"status": "past_due"})
            sim.set_delinquent(buyer, False, t)
            return t
        self.delete(t + 2, "payment_failed")
        return t

    def declines(self, at: int, invoice: _Invoice, *, first: bool) -> tuple[list[_Decline], bool]:
        """The declines before the payment succeeds, and whether it never does (the subscription ends)."""
        rng, card = self.rng, self.buyer.card
        assert card is not None
        k = self.period_of(invoice)
        if self.churn and self.churn[0] == k and self.churn[1] in ("failed_payments", "expired_card"):
            if card.expires_at <= at:
                return [_DECLINES["expired_card"]] * len(RETRY_DAYS), True
            reason = rng.choice(("insufficient_funds", "generic_decline", "do_not_honor"))
            return [_DECLINES[reason]] * len(RETRY_DAYS), True
        if first:
            return [], False
        if self.sim.spike_at(at) and rng.random() < 0.75:
            return [_DECLINES["try_again_later"]], False
        if rng.random() < min(0.025 * self.risk, 0.3):  # fails, then a retry succeeds
            reason = _weighted(rng, (("insufficient_funds", 6), ("generic_decline", 3), ("do_not_honor", 1)))
            return [_DECLINES[reason]] * rng.randint(1, 3), False
        return [], False

    def period_of(self, invoice: _Invoice) -> int:
        """The boundary an invoice renews at (0: the trial's end; -1: the first invoice)."""
        if invoice.billing_reason == "subscription_create":
            return -1
        k = 0
        while self.boundary(k) < invoice.created:
            k += 1
        return k

    def renew(self, k: int) -> None:
        """At boundary k: the next period starts (or the trial converts) and its invoice is collected."""
        sub, sim = self.sub, self.sim
        assert sub is not None
        at = self.boundary(k)
        old_items, old_invoice, old_status = self.items_now(), sub.latest_invoice, sub.status
        sub.period_start, sub.period_end = at, self.boundary(k + 1)
        paused = sub.pause_resumes_at is not None and at < sub.pause_resumes_at
        invoice = self.new_invoice(at, "subscription_cycle")
        sub.latest_invoice = invoice.id
        previous: dict[str, Any] = {"items": old_items, "latest_invoice": old_invoice}
        if old_status == "trialing":
            sub.status = "active"
            previous["status"] = "trialing"
        self.sub_updated(at, previous)
        self.emit("invoice.created", _invoice_object(invoice, sim.livemode), at)
        if paused:  # pause_collection behavior "void"
            invoice.status, invoice.voided_at = "void", at + HOUR
            self.emit("invoice.voided", _invoice_object(invoice, sim.livemode), at + HOUR)
            self.busy_until = at + HOUR
            return
        self.busy_until = self.collect(invoice, at)

    def delete(self, at: int, reason: str | None, *, requested: bool = False) -> None:
        sub = self.sub
        assert sub is not None
        sub.status, sub.ended_at = "canceled", at
        sub.canceled_at = sub.canceled_at or at
        sub.cancellation_reason = reason
        if reason == "cancellation_requested" and sub.feedback is None:
            sub.feedback = self.rng.choice((*_FEEDBACK, None))
        deleted = self.emit(
            "customer.subscription.deleted",
            _subscription_object(sub, self.sim.livemode),
            at,
            requested=requested,
        )
        if deleted:
            self.buyer.active_until = at

    # -- what happens within a period ---------------------------------------------------------------------
    def period_actions(self, k: int) -> None:
        """Paid period k, from boundary k-1 to boundary k: changes the customer makes, in time order."""
        sub, rng = self.sub, self.rng
        assert sub is not None
        start, end = self.boundary(k - 1), self.boundary(k)
        low, high = max(start, self.busy_until) + HOUR, min(end, self.sim.end) - HOUR
        roomy = low < high
        if not roomy:  # retries filled the period, or the history ends: only what must happen, if it can
            low, high = max(start, self.busy_until) + 1, end - MINUTE
        actions: list[tuple[int, str]] = []
        mechanism = self.churn[1] if self.churn else None
        churning_now = self.churn is not None and self.churn[0] == k
        if churning_now and mechanism == "no_signal":
            actions.append((_between(rng, low, high), "delete"))
        if churning_now and mechanism in ("cancel_at_period_end", "downgrade_then_cancel"):
            actions.append((_between(rng, (low + high) / 2, high), "cancel"))
        if (
            mechanism == "downgrade_then_cancel"
            and self.churn
            and (self.churn[0] == k + 1 or (self.churn[0] == 1 and churning_now))
        ):
            actions.append((_between(rng, low, (low + high) / 2), "downgrade"))
        card = self.buyer.card
        if card and card.expires_at <= end and not (churning_now and mechanism == "expired_card"):
            soon = _between(rng, max(low, card.expires_at - 25 * DAY), min(high, card.expires_at - HOUR))
            actions.append((max(low, min(soon, high)), "new_card"))
        if sub.pause_resumes_at and start <= sub.pause_resumes_at < end:
            actions.append((sub.pause_resumes_at, "resume"))
        quiet = self.churn is not None and self.churn[0] <= k + 3
        risk = min(self.risk, 4.0) if roomy else 0.0
        for action, p in (
            ("upgrade", 0.025 / max(risk, 0.5) if roomy else 0.0),
            ("downgrade", 0.0 if mechanism == "downgrade_then_cancel" else 0.012 * risk),
            ("seats_up", 0.06 if roomy and self.plan.tier == 2 else 0.0),
            ("seats_down", 0.03 * risk if self.plan.tier == 2 else 0.0),
            ("pause", 0.0 if quiet or self.plan.interval == "year" else 0.006 * risk),
            ("cancel_undone", 0.0 if churning_now else 0.01 * risk),
            ("refund", 0.008 * risk),
            ("dispute", 0.0015 * risk),
        ):
            if rng.random() < p:
                actions.append((_between(rng, low, high), action))
        for at, action in sorted(actions):
            if self.ended:
                return
            getattr(self, f"_{action}")(at, end)

    def _delete(self, at: int, end: int) -> None:
        self.delete(at, "cancellation_requested", requested=True)

    def _cancel(self, at: int, end: int) -> None:
        sub = self.sub
        assert sub is not None
        previous = {
            "cancel_at": sub.cancel_at,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"feedback": None, "reason": None},
        }
        sub.cancel_at_period_end, sub.cancel_at, sub.canceled_at = True, end, at
        sub.cancellation_reason = "cancellation_requested"
        sub.feedback = self.rng.choice(("too_expensive", "unused", "switched_service", None))
        self.sub_updated(at, previous, requested=True)

    def _cancel_undone(self, at: int, end: int) -> None:
        sub = self.sub
        assert sub is not None
        if sub.cancel_at_period_end:
            return
        self._cancel(at, end)
        undo_at = min(at + self.rng.randint(HOUR, 7 * DAY), end - 2 * MINUTE)
        previous = {
            "cancel_at": sub.cancel_at,
            "cancel_at_period_end": True,
            "canceled_at": sub.canceled_at,
            "cancellation_details": {"feedback": sub.feedback, "reason": sub.cancellation_reason},
        }
        sub.cancel_at_period_end, sub.cancel_at, sub.canceled_at = False, None, None
        sub.cancellation_reason = sub.feedback = None
        self.sub_updated(undo_at, previous, requested=True)

    def _change(self, at: int, *, plan: _Plan | None = None, quantity: int | None = None) -> None:
        sub = self.sub
        assert sub is not None
        old_items = self.items_now()
        sub.plan = self.plan = plan or sub.plan
        sub.quantity = self.quantity = quantity or sub.quantity
        self.sub_updated(at, {"items": old_items}, requested=True)

    def _upgrade(self, at: int, end: int) -> None:
        if self.plan.tier < 2:
            self._change(at, plan=self.sim.plan(self.plan.tier + 1, self.plan.interval))
        else:
            self._seats_up(at, end)

    def _downgrade(self, at: int, end: int) -> None:
        if self.quantity > 1 and (self.plan.tier == 0 or self.rng.random() < 0.5):
            self._seats_down(at, end)
        elif self.plan.tier > 0:
            self._change(at, plan=self.sim.plan(self.plan.tier - 1, self.plan.interval))

    def _seats_up(self, at: int, end: int) -> None:
        self._change(at, quantity=self.quantity + self.rng.randint(1, 3))

    def _seats_down(self, at: int, end: int) -> None:
        if self.quantity > 1:
            self._change(at, quantity=max(1, self.quantity - self.rng.randint(1, 3)))

    def _pause(self, at: int, end: int) -> None:
        sub = self.sub
        assert sub is not None
        if sub.pause_resumes_at or sub.cancel_at_period_end:
            return
        sub.pause_resumes_at = end + self.rng.randint(2, 10) * DAY
        self.sub_updated(at, {"pause_collection": None}, requested=True)

    def _resume(self, at: int, end: int) -> None:
        sub = self.sub
        assert sub is not None
        previous = {"pause_collection": {"behavior": "void", "resumes_at": sub.pause_resumes_at}}
        sub.pause_resumes_at = None
        self.sub_updated(at, previous)

    def _new_card(self, at: int, end: int) -> None:
        """The card on file expires before the renewal: Stripe's updater or the customer replaces it."""
        buyer, sim, rng = self.buyer, self.sim, self.rng
        old = buyer.card
        assert old is not None
        if rng.random() < 0.4:
            previous = {"card": {"exp_month": old.exp_month, "exp_year": old.exp_year}}
            renewed = _add_months(old.expires_at, 12 * rng.randint(2, 4))
            last = datetime.fromtimestamp(_add_months(renewed, -1, 1), UTC)
            old.exp_month, old.exp_year = last.month, last.year
            updated = _payment_method_object(old, buyer, sim.livemode)
            self.emit("payment_method.automatically_updated", updated, at, previous=previous)
            return
        card = self._card_for(at)
        sim.attach(buyer, card, at)
        self.emit(
            "payment_method.detached", _payment_method_object(old, None, sim.livemode), at + 2, requested=True
        )

    def _last_charge(self, at: int, min_age: int) -> _ChargeRecord | None:
        found = [
            c for c in self.buyer.charges if c.created <= at - min_age and not c.refunded and not c.disputed
        ]
        return found[-1] if found and at - found[-1].created < 45 * DAY else None

    def _refund(self, at: int, end: int) -> None:
        charge = self._last_charge(at, HOUR)
        if charge:
            amount = charge.amount if self.rng.random() < 0.5 else charge.amount // 2
            self.sim.refund(charge, at, amount)

    def _dispute(self, at: int, end: int) -> None:
        charge = self._last_charge(at, 2 * DAY)
        if charge:
            reason = self.rng.choice(
                ("subscription_canceled", "product_not_received", "fraudulent", "general")
            )
            self.sim.dispute(charge, at, reason, self.rng)


@contextmanager
def _open(path: Path, mode: str) -> Iterator[BinaryIO]:
    """A binary file, gzip-compressed when it ends in .gz (no name or time in the header: same bytes)."""
    with path.open(mode) as raw:
        if path.suffix != ".gz":
            yield cast(BinaryIO, raw)
            return
        with gzip.GzipFile(filename="", mode=mode, fileobj=raw, mtime=0) as zipped:
            yield cast(BinaryIO, zipped)
