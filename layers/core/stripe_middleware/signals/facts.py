"""What a published Stripe event or backfilled object says that a detector can use: its facts.

A fact is keyed by the Stripe object and its role (`charge:ch_...`), never by the event, so the several
events of one object (`charge.failed`, then `charge.updated`) and a backfill of it are one fact; its
`version` (the event's `created`, or the backfill's `as_of`) says which state of the object is newest, and
the state keeps that one whatever the order they arrived in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from stripe_middleware.shared.contract import DetailType, mode_label

CHARGE, CARD, TRIAL = "charge", "card", "trial"  # fact kinds
SUBSCRIPTION, INVOICE, PLAN_CHANGE = "subscription", "invoice", "plan_change"  # the churn model's fact kinds
PROFILE, REFUND, DISPUTE = "profile", "refund", "dispute"  # what account takeover and the spikes also read
CUSTOMER, ACCOUNT = "customer", "account"  # subject kinds (with CARD)
LATEST = 4_102_444_800  # 2100-01-01: a later `created` is not seconds (milliseconds, a bug upstream)


@dataclass(frozen=True)
class Fact:
    id: str  # "<kind>:<object id>"
    kind: str  # charge | card | trial
    object_id: str
    created: int  # event time: the object's `created` (Unix seconds)
    livemode: bool
    account: str | None
    customer: str | None
    evidence: str  # the Stripe event id (or backfill run id) it was learned from
    version: int  # when Stripe's object was in this state: the event's `created` or the backfill's as_of
    amount: int | None = None  # charges, in the currency's minor unit
    currency: str | None = None
    failed: bool = False  # charges: Stripe declined or failed it
    fingerprint: str | None = None  # the card's fingerprint (charges, cards)
    country: str | None = None  # the card's country
    # What churn risk reads (signals/churn.py); every field has a default, so older stored facts still load.
    status: str | None = None  # subscriptions and invoices: Stripe's status
    quantity: int | None = None  # subscriptions and plan changes: the items' total quantity (after)
    previous_amount: int | None = None  # plan changes: the monthly amount before (`amount` is after)
    previous_quantity: int | None = None  # plan changes: the quantity before
    cancel_at_period_end: bool = False  # subscriptions: set to end with the current period
    paused: bool = False  # subscriptions: collection paused (`pause_collection`) or status paused
    period_end: int | None = None  # subscriptions: the end of the current period (the next renewal)
    payment_method: str | None = None  # subscriptions: the default payment method
    subscription: str | None = None  # invoices: the subscription billed
    attempts: int | None = None  # invoices: payment attempts so far (`attempt_count`)
    refunded: int | None = None  # charges: the amount refunded
    disputed: bool = False  # charges: the customer disputed it
    exp_month: int | None = None  # cards and charges: the card's expiry
    exp_year: int | None = None
    # What account takeover reads: a change of the profile (never the e-mail address itself), what a refund
    # or a dispute is about.
    change: str | None = None  # profile changes: "email", "default_payment_method" or both, space-separated
    charge: str | None = None  # refunds and disputes: the charge refunded or disputed
    # What the usage trend reads: the subscription items billed by usage (metered prices), and what an
    # invoice billed of each subscription item, as flat text a store keeps like any other field.
    metered_items: str | None = None  # subscriptions: their metered items' ids, space-separated
    item_quantities: str | None = None  # invoices: "si_1=30 si_2=1", the quantity per subscription item

    def to_item(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Fact:
        """An item as stored; a store that leaves out the None values (DynamoDB's adapter) still loads."""
        return cls(**{"account": None, "customer": None, **item})

    def newer_than(self, other: Fact) -> bool:
        """Which state of one object to keep: the later version; the evidence id breaks a tie."""
        return (self.version, self.evidence) > (other.version, other.evidence)


def scope_of(account: str | None, livemode: bool) -> str:
    """Test and live data, and the platform and each connected account, never mix."""
    return f"{mode_label(livemode)}/{account or 'platform'}"


def scope(fact: Fact) -> str:
    return scope_of(fact.account, fact.livemode)


def customer_subject_of(customer_id: str, *, account: str | None, livemode: bool) -> str:
    """A customer's subject without a fact at hand (a churn-risk record's key)."""
    return f"{scope_of(account, livemode)}/{CUSTOMER}/{customer_id}"


def customer_subject(fact: Fact) -> str | None:
    if not fact.customer:
        return None
    return customer_subject_of(fact.customer, account=fact.account, livemode=fact.livemode)


def card_subject(fact: Fact) -> str | None:
    return f"{scope(fact)}/{CARD}/{fact.fingerprint}" if fact.fingerprint else None


def account_subject(fact: Fact) -> str:
    return f"{scope(fact)}/{ACCOUNT}"


def subject_kind(subject: str) -> str:
    """`customer`, `card` or `account`: what a subject is about (`<mode>/<account>/<kind>[/<id>]`)."""
    return subject.split("/")[2]


def subjects(fact: Fact) -> list[str]:
    """Where a fact is kept: its customer's and its card's facts, and the account's charges and disputes."""
    found = [customer_subject(fact), card_subject(fact)]
    if fact.kind in (CHARGE, DISPUTE):
        found.append(account_subject(fact))
    return [s for s in found if s]


def facts_of(detail_type: str, detail: dict[str, Any]) -> list[Fact]:
    """The facts of one published detail: a Stripe event (detail-type = its type) or a backfilled object.

    Anything else, or an object without what a fact needs (no `created`, a truncated object), gives none."""
    if detail_type == DetailType.OBJECT_BACKFILLED:
        evidence, version = detail.get("run_id"), _seconds(detail.get("as_of"))
    else:
        evidence, version = detail.get("id"), _timestamp(detail.get("created"))
    obj = detail.get("object")
    if not isinstance(obj, dict) or not isinstance(evidence, str) or version is None:
        return []
    created, object_id = _timestamp(obj.get("created")), obj.get("id")
    if created is None or not isinstance(object_id, str):
        return []
    base: dict[str, Any] = {
        "object_id": object_id,
        "created": created,
        "livemode": bool(detail.get("livemode", obj.get("livemode", False))),
        "account": detail.get("account"),
        "customer": _id(obj.get("customer")),
        "evidence": evidence,
        "version": version,
    }
    fact = _fact(obj, base) or _profile_change(obj, base, detail.get("previous_attributes"))
    return ([fact] if fact else []) + _churn_facts(obj, base, detail.get("previous_attributes"))


def _fact(obj: dict[str, Any], base: dict[str, Any]) -> Fact | None:
    object_id = base["object_id"]
    match obj.get("object"):
        case "charge" if obj.get("status") in ("succeeded", "failed"):
            card = (obj.get("payment_method_details") or {}).get("card") or {}
            return Fact(
                id=f"{CHARGE}:{object_id}",
                kind=CHARGE,
                amount=obj.get("amount"),
                currency=obj.get("currency"),
                failed=obj["status"] == "failed",
                fingerprint=card.get("fingerprint"),
                country=card.get("country"),
                refunded=_count(obj.get("amount_refunded")) or None,
                disputed=obj.get("disputed") is True,
                exp_month=_count(card.get("exp_month")),
                exp_year=_count(card.get("exp_year")),
                **base,
            )
        case "payment_method" if base["customer"] and (obj.get("card") or {}).get("fingerprint"):
            card = obj["card"]
            return Fact(
                id=f"{CARD}:{object_id}",
                kind=CARD,
                fingerprint=card["fingerprint"],
                country=card.get("country"),
                exp_month=_count(card.get("exp_month")),
                exp_year=_count(card.get("exp_year")),
                **base,
            )
        case "subscription" if base["customer"] and (trial_start := _timestamp(obj.get("trial_start"))):
            return Fact(id=f"{TRIAL}:{object_id}", kind=TRIAL, **base | {"created": trial_start})
        case "invoice" if base["customer"] and obj.get("billing_reason") == "subscription_create":
            # A first invoice counts like a trial: a new customer's first use of a card.
            return Fact(id=f"{TRIAL}:{object_id}", kind=TRIAL, **base)
        case "refund" | "dispute" as kind:
            return Fact(
                id=f"{kind}:{object_id}",
                kind=kind,
                amount=_count(obj.get("amount")),
                currency=obj.get("currency") if isinstance(obj.get("currency"), str) else None,
                failed=obj.get("status") in ("failed", "canceled"),  # refunds only: a dispute never is
                charge=_id(obj.get("charge")),
                **base,
            )
    return None


def _profile_change(obj: dict[str, Any], base: dict[str, Any], previous: Any) -> Fact | None:
    """A change of a customer's email or default payment method, as `customer.updated` tells it
    (`previous_attributes`): an event of the customer, not a state of it, so keyed and dated by the event."""
    if obj.get("object") != "customer" or not isinstance(previous, dict):
        return None
    settings = previous.get("invoice_settings")
    changes = ["email"] if "email" in previous else []
    if "default_source" in previous or (isinstance(settings, dict) and "default_payment_method" in settings):
        changes.insert(0, "default_payment_method")
    if not changes:
        return None
    customer = base["object_id"]
    return Fact(
        id=f"{PROFILE}:{customer}@{base['evidence']}",
        kind=PROFILE,
        change=" ".join(changes),
        **base | {"customer": customer, "created": base["version"]},
    )


# -- what churn risk reads: subscriptions, their plan changes, invoices ------------------------------------
PER_MONTH = {"day": 365.25 / 12, "week": 365.25 / 12 / 7, "month": 1.0, "year": 1 / 12}  # billing periods


def _churn_facts(obj: dict[str, Any], base: dict[str, Any], previous: Any) -> list[Fact]:
    if not base["customer"]:
        return []
    match obj.get("object"):
        case "subscription":
            return _subscription_facts(obj, base, previous if isinstance(previous, dict) else {})
        case "invoice":
            return [_invoice_fact(obj, base)]
    return []


def _subscription_facts(obj: dict[str, Any], base: dict[str, Any], previous: dict[str, Any]) -> list[Fact]:
    """The subscription's newest state and, when the event says what its items were before
    (`previous_attributes`), the plan change: one fact per event, dated by it."""
    items = _items(obj)
    amount, quantity = _monthly(items)
    status = obj.get("status") if isinstance(obj.get("status"), str) else None
    ends = [end for item in items if (end := _timestamp(item.get("current_period_end")))]
    period_end = _timestamp(obj.get("current_period_end")) or min(ends, default=None)  # items: API 2025-03+
    cancel_at = _timestamp(obj.get("cancel_at"))
    currency = obj.get("currency") if isinstance(obj.get("currency"), str) else None
    facts = [
        Fact(
            id=f"{SUBSCRIPTION}:{base['object_id']}",
            kind=SUBSCRIPTION,
            amount=amount,
            currency=currency,
            status=status,
            quantity=quantity,
            cancel_at_period_end=obj.get("cancel_at_period_end") is True
            or (cancel_at is not None and period_end is not None and cancel_at <= period_end),
            paused=isinstance(obj.get("pause_collection"), dict) or status == "paused",
            period_end=period_end,
            payment_method=_id(obj.get("default_payment_method")) or _id(obj.get("default_source")),
            metered_items=_metered_items(items),
            **base,
        )
    ]
    before: list[dict[str, Any]] | None = None
    if "items" in previous:
        before = _items(previous)
    elif "quantity" in previous and len(items) == 1:  # single-item subscriptions of older API versions
        before = [{**items[0], "quantity": previous["quantity"]}]
    if before is not None and (changed := _monthly(before)) != (amount, quantity):
        facts.append(
            Fact(
                id=f"{PLAN_CHANGE}:{base['object_id']}@{base['evidence']}",
                kind=PLAN_CHANGE,
                amount=amount,
                previous_amount=changed[0],
                quantity=quantity,
                previous_quantity=changed[1],
                currency=currency,
                **base | {"created": base["version"]},
            )
        )
    return facts


def _items(obj: dict[str, Any]) -> list[dict[str, Any]]:
    items = obj.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _metered(item: dict[str, Any]) -> bool:
    """Whether a subscription item is billed by usage (its price's, or a legacy plan's, usage type)."""
    price = _dict(item.get("price")) or _dict(item.get("plan"))
    return (_dict(price.get("recurring")) or price).get("usage_type") == "metered"


def _metered_items(items: list[dict[str, Any]]) -> str | None:
    """The ids of a subscription's metered items, space-separated; None without any."""
    return " ".join(sorted(item["id"] for item in items if _metered(item) and _id(item.get("id")))) or None


def _item_quantities(invoice: dict[str, Any]) -> str | None:
    """What the invoice billed of each subscription item (its lines' quantities), as `si_1=30 si_2=1`."""
    lines = _dict(invoice.get("lines")).get("data")
    quantities: dict[str, int] = {}
    for line in (_dict(entry) for entry in lines) if isinstance(lines, list) else ():
        details = _dict(_dict(line.get("parent")).get("subscription_item_details"))
        item = _id(details.get("subscription_item")) or _id(line.get("subscription_item"))  # older versions
        count = _count(line.get("quantity"))
        if item and count is not None:
            quantities[item] = quantities.get(item, 0) + count
    return " ".join(f"{item}={count}" for item, count in sorted(quantities.items())) or None


def _monthly(items: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    """(amount per month in the currency's minor unit, total quantity) of a subscription's licensed items;
    None for what no item tells (metered or tiered prices)."""
    amount: float | None = None
    quantity: int | None = None
    for item in items:
        price = _dict(item.get("price")) or _dict(item.get("plan"))
        recurring = _dict(price.get("recurring")) or price
        count = _count(item.get("quantity"))
        if _metered(item) or count is None:
            continue
        quantity = (quantity or 0) + count
        unit = _count(price.get("unit_amount"))
        if unit is None:
            unit = _count(price.get("amount"))  # a legacy plan
        per_month = PER_MONTH.get(str(recurring.get("interval")))
        interval_count = _count(recurring.get("interval_count")) or 1
        if unit is not None and per_month is not None:
            amount = (amount or 0.0) + unit * count * per_month / interval_count
    return (round(amount) if amount is not None else None), quantity


def _invoice_fact(obj: dict[str, Any], base: dict[str, Any]) -> Fact:
    status = obj.get("status") if isinstance(obj.get("status"), str) else None
    attempts = _count(obj.get("attempt_count"))
    details = _dict(_dict(obj.get("parent")).get("subscription_details"))
    return Fact(
        id=f"{INVOICE}:{base['object_id']}",
        kind=INVOICE,
        amount=_count(obj.get("amount_due")),
        currency=obj.get("currency") if isinstance(obj.get("currency"), str) else None,
        status=status,
        attempts=attempts,
        failed=bool(attempts) and status in ("open", "uncollectible"),  # attempted, still unpaid
        subscription=_id(obj.get("subscription")) or _id(details.get("subscription")),
        item_quantities=_item_quantities(obj),
        **base,
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int | None:
    """A non-negative integer Stripe sends (an amount, a quantity), or None for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _id(value: Any) -> str | None:
    """An id field Stripe may send expanded (an object) or as a plain id."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _timestamp(value: Any) -> int | None:
    """Unix seconds Stripe sends, or None for anything else (a string, a bool, milliseconds)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < LATEST:
        return value
    return None


def _seconds(value: Any) -> int | None:
    """An ISO 8601 time (`as_of` of a backfilled object) as Unix seconds."""
    try:
        return _timestamp(int(datetime.fromisoformat(value).timestamp()))
    except (TypeError, ValueError):
        return None
