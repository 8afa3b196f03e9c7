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

    def to_item(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Fact:
        return cls(**item)

    def newer_than(self, other: Fact) -> bool:
        """Which state of one object to keep: the later version; the evidence id breaks a tie."""
        return (self.version, self.evidence) > (other.version, other.evidence)


def scope(fact: Fact) -> str:
    """Test and live data, and the platform and each connected account, never mix."""
    return f"{mode_label(fact.livemode)}/{fact.account or 'platform'}"


def customer_subject(fact: Fact) -> str | None:
    return f"{scope(fact)}/{CUSTOMER}/{fact.customer}" if fact.customer else None


def card_subject(fact: Fact) -> str | None:
    return f"{scope(fact)}/{CARD}/{fact.fingerprint}" if fact.fingerprint else None


def account_subject(fact: Fact) -> str:
    return f"{scope(fact)}/{ACCOUNT}"


def subject_kind(subject: str) -> str:
    """`customer`, `card` or `account`: what a subject is about (`<mode>/<account>/<kind>[/<id>]`)."""
    return subject.split("/")[2]


def subjects(fact: Fact) -> list[str]:
    """Where a fact is kept: its customer's and its card's facts, and the account's charges."""
    found = [customer_subject(fact), card_subject(fact)]
    if fact.kind == CHARGE:
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
    fact = _fact(obj, base)
    return [fact] if fact else []


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
                **base,
            )
        case "payment_method" if base["customer"] and (obj.get("card") or {}).get("fingerprint"):
            card = obj["card"]
            return Fact(
                id=f"{CARD}:{object_id}",
                kind=CARD,
                fingerprint=card["fingerprint"],
                country=card.get("country"),
                **base,
            )
        case "subscription" if base["customer"] and (trial_start := _timestamp(obj.get("trial_start"))):
            return Fact(id=f"{TRIAL}:{object_id}", kind=TRIAL, **base | {"created": trial_start})
        case "invoice" if base["customer"] and obj.get("billing_reason") == "subscription_create":
            # A first invoice counts like a trial: a new customer's first use of a card.
            return Fact(id=f"{TRIAL}:{object_id}", kind=TRIAL, **base)
    return None


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
