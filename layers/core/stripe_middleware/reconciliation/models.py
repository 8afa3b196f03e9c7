"""What a reconciliation finds, as the store keeps it and the bus carries it: one record per payout (its
totals per reporting category, its discrepancies) and each discrepancy under a stable id.

Amounts are integers in the currency's minor unit, as Stripe gives them; times are ISO 8601 in records
and details. `to_record()`/`from_record()` round-trip through JSON (the record store keeps that JSON).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stripe_middleware.shared.clock import epoch, iso

# Record statuses.
BALANCED = "balanced"  # the transactions add up to the payout and everything behind them is in the store
DISCREPANCIES = "discrepancies"  # at least one gap is open
REPAIRED = "repaired"  # every gap found was an object missing from the store, now stored
UNRECONCILABLE = "unreconcilable_by_stripe"  # manual or instant: Stripe ties no transactions to it
STATUSES = (BALANCED, DISCREPANCIES, REPAIRED, UNRECONCILABLE)

# Discrepancy kinds.
UNBALANCED_PAYOUT = "unbalanced_payout"
MISSING_IN_STORE = "missing_in_store"
AMOUNT_MISMATCH = "amount_mismatch"
STATUS_MISMATCH = "status_mismatch"
NOT_PAID_OUT = "not_paid_out"
MISSING_ERP_ID = "missing_erp_id"
KINDS = (UNBALANCED_PAYOUT, MISSING_IN_STORE, AMOUNT_MISMATCH, STATUS_MISMATCH, NOT_PAID_OUT, MISSING_ERP_ID)

MAX_RECORDED_DISCREPANCIES = 1000  # kept in full in a record (all are counted and published)
MAX_DETAIL_IDS = 50  # discrepancy ids named in a `completed` detail (all are counted)
MAX_ITEMS = 100  # items named by one discrepancy (all are counted in `item_count`)

ObjectKey = tuple[str, str]  # (object type, object id) as the store keys objects


@dataclass(frozen=True)
class StoreEntry:
    """What reconciliation reads of one stored object: its normalized attributes, never the body."""

    object_type: str
    object_id: str
    amount: int | None = None
    currency: str | None = None
    status: str | None = None
    customer_id: str | None = None
    created: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    stored_by: str | None = None  # the event id (or backfill run id) whose state the store holds

    @property
    def key(self) -> ObjectKey:
        return self.object_type, self.object_id

    def facts(self) -> dict[str, Any]:
        """What a discrepancy shows of the store's side."""
        return {"amount": self.amount, "currency": self.currency, "status": self.status}


@dataclass(frozen=True)
class CategoryTotal:
    """The transactions of one reporting category in one currency: how many, gross, fees and net."""

    reporting_category: str
    currency: str
    count: int
    amount: int
    fee: int
    net: int

    def to_record(self) -> dict[str, Any]:
        return {
            "reporting_category": self.reporting_category,
            "currency": self.currency,
            "count": self.count,
            "amount": self.amount,
            "fee": self.fee,
            "net": self.net,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CategoryTotal:
        return cls(
            **{k: record[k] for k in ("reporting_category", "currency", "count", "amount", "fee", "net")}
        )


@dataclass(frozen=True)
class Discrepancy:
    """One gap between Stripe and the store, found in (or, for `not_paid_out`, expected in) a payout.

    `object_type`/`object_id` name the object it is about: the transaction's source object, the object the
    store keeps for it (a transfer reversal's transfer), or for `missing_erp_id` the customer or invoice that
    lacks the ids (`items` are the payout's objects behind it). `stripe` and `store` show both sides
    (`store` None: the store does not hold it). The id depends only on what the gap is about, never on when
    it was found, so a re-run finds the same id and it is published once.
    """

    kind: str
    payout_id: str | None
    account: str | None
    livemode: bool
    object_type: str | None = None
    object_id: str | None = None
    balance_transaction: str | None = None
    reporting_category: str | None = None
    currency: str | None = None  # unbalanced_payout: the currency that does not add up
    stripe: Mapping[str, Any] = field(default_factory=dict)
    store: Mapping[str, Any] | None = None
    missing_keys: tuple[str, ...] = ()
    items: tuple[str, ...] = ()  # the first MAX_ITEMS, sorted
    item_count: int = 0  # how many items there are in all
    repaired: bool = False
    message: str = ""
    as_of: int | None = None  # the payout's `created` (event time)

    @property
    def discrepancy_id(self) -> str:
        identity = [
            self.kind,
            self.account or "",
            "live" if self.livemode else "test",
            self.payout_id or "",
            self.object_type or "",
            self.object_id or "",
            self.currency or "",
            *self.missing_keys,
        ]
        return "rd_" + hashlib.sha256("\x1f".join(identity).encode()).hexdigest()[:24]

    def to_record(self) -> dict[str, Any]:
        """The discrepancy as records keep it (and its `detail`)."""
        return {
            "discrepancy_id": self.discrepancy_id,
            "kind": self.kind,
            "payout_id": self.payout_id,
            "account": self.account,
            "livemode": self.livemode,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "balance_transaction": self.balance_transaction,
            "reporting_category": self.reporting_category,
            "currency": self.currency,
            "stripe": dict(self.stripe),
            "store": dict(self.store) if self.store is not None else None,
            "missing_keys": list(self.missing_keys),
            "items": list(self.items),
            "item_count": self.item_count,
            "repaired": self.repaired,
            "message": self.message,
            "as_of": iso(self.as_of),
        }

    def detail(self) -> dict[str, Any]:
        """`detail` of `stripe-middleware.reconciliation.discrepancy`."""
        return self.to_record()

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Discrepancy:
        store = record.get("store")
        return cls(
            kind=record["kind"],
            payout_id=record.get("payout_id"),
            account=record.get("account"),
            livemode=bool(record["livemode"]),
            object_type=record.get("object_type"),
            object_id=record.get("object_id"),
            balance_transaction=record.get("balance_transaction"),
            reporting_category=record.get("reporting_category"),
            currency=record.get("currency"),
            stripe=dict(record.get("stripe") or {}),
            store=dict(store) if store is not None else None,
            missing_keys=tuple(record.get("missing_keys") or ()),
            items=tuple(record.get("items") or ()),
            item_count=int(record.get("item_count") or 0),
            repaired=bool(record.get("repaired")),
            message=record.get("message") or "",
            as_of=epoch(record.get("as_of")),
        )


@dataclass(frozen=True)
class PayoutFacts:
    """The payout as Stripe describes it (what a reader of the record needs of it)."""

    amount: int
    currency: str
    created: int
    arrival_date: int | None
    automatic: bool
    method: str | None
    status: str | None
    type: str | None
    reconciliation_status: str | None

    @classmethod
    def of(cls, payout: Mapping[str, Any]) -> PayoutFacts:
        def text(name: str) -> str | None:
            value = payout.get(name)
            return value if isinstance(value, str) else None

        arrival = payout.get("arrival_date")
        return cls(
            amount=int(payout.get("amount") or 0),
            currency=str(payout.get("currency") or ""),
            created=int(payout.get("created") or 0),
            arrival_date=arrival if isinstance(arrival, int) else None,
            automatic=payout.get("automatic") is True,
            method=text("method"),
            status=text("status"),
            type=text("type"),
            reconciliation_status=text("reconciliation_status"),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "amount": self.amount,
            "currency": self.currency,
            "created": iso(self.created),
            "arrival_date": iso(self.arrival_date),
            "automatic": self.automatic,
            "method": self.method,
            "status": self.status,
            "type": self.type,
            "reconciliation_status": self.reconciliation_status,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PayoutFacts:
        return cls(
            amount=record["amount"],
            currency=record["currency"],
            created=epoch(record["created"]) or 0,
            arrival_date=epoch(record.get("arrival_date")),
            automatic=bool(record["automatic"]),
            method=record.get("method"),
            status=record.get("status"),
            type=record.get("type"),
            reconciliation_status=record.get("reconciliation_status"),
        )


@dataclass(frozen=True)
class Reconciliation:
    """A payout explained: its transactions per reporting category and currency, and every gap found."""

    payout_id: str
    account: str | None
    livemode: bool
    payout: PayoutFacts
    reason: str | None = None  # why Stripe cannot tie transactions to it (unreconcilable_by_stripe)
    transactions: int = 0  # balance transactions paid out in it (its own excluded)
    totals: tuple[CategoryTotal, ...] = ()
    net: Mapping[str, int] = field(default_factory=dict)  # currency -> the transactions' net
    unchecked: Mapping[str, int] = field(default_factory=dict)  # source type -> transactions not in the store
    discrepancies: tuple[Discrepancy, ...] = ()
    discrepancy_counts: Mapping[str, int] | None = None  # None: counted from `discrepancies`

    @property
    def status(self) -> str:
        if self.reason is not None:
            return UNRECONCILABLE
        if any(not d.repaired for d in self.discrepancies):
            return DISCREPANCIES
        return REPAIRED if self.discrepancies else BALANCED

    @property
    def as_of(self) -> int:
        """Event time: when Stripe created the payout."""
        return self.payout.created

    def counts(self) -> dict[str, int]:
        if self.discrepancy_counts is not None:
            return dict(self.discrepancy_counts)
        counts: dict[str, int] = {}
        for discrepancy in self.discrepancies:
            counts[discrepancy.kind] = counts.get(discrepancy.kind, 0) + 1
        return dict(sorted(counts.items()))

    def with_discrepancies(self, discrepancies: tuple[Discrepancy, ...]) -> Reconciliation:
        """The same record with these discrepancies (one per id, in a stable order)."""
        unique = {d.discrepancy_id: d for d in discrepancies}
        ordered = tuple(sorted(unique.values(), key=_discrepancy_order))
        return replace(self, discrepancies=ordered, discrepancy_counts=None)

    def to_record(self) -> dict[str, Any]:
        """The record the store keeps and the read API serves. A payout with more discrepancies than
        MAX_RECORDED_DISCREPANCIES keeps the first ones (`discrepancies_truncated`); all are counted."""
        kept = self.discrepancies[:MAX_RECORDED_DISCREPANCIES]
        return {
            "payout_id": self.payout_id,
            "account": self.account,
            "livemode": self.livemode,
            "status": self.status,
            "reason": self.reason,
            "as_of": iso(self.as_of),
            "payout": self.payout.to_record(),
            "transactions": self.transactions,
            "totals": [t.to_record() for t in self.totals],
            "net": dict(sorted(self.net.items())),
            "unchecked": dict(sorted(self.unchecked.items())),
            "discrepancy_counts": self.counts(),
            "discrepancies": [d.to_record() for d in kept],
            "discrepancies_truncated": len(kept) < len(self.discrepancies),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Reconciliation:
        discrepancies = tuple(Discrepancy.from_record(d) for d in record.get("discrepancies") or ())
        truncated = bool(record.get("discrepancies_truncated"))
        return cls(
            payout_id=record["payout_id"],
            account=record.get("account"),
            livemode=bool(record["livemode"]),
            payout=PayoutFacts.from_record(record["payout"]),
            reason=record.get("reason"),
            transactions=int(record.get("transactions") or 0),
            totals=tuple(CategoryTotal.from_record(t) for t in record.get("totals") or ()),
            net=dict(record.get("net") or {}),
            unchecked=dict(record.get("unchecked") or {}),
            discrepancies=discrepancies,
            discrepancy_counts=dict(record["discrepancy_counts"]) if truncated else None,
        )

    def fingerprint(self) -> str:
        """Changes exactly when the record does: a `completed` detail is published once per fingerprint."""
        text = json.dumps(self.to_record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def detail(self, revision: int) -> dict[str, Any]:
        """`detail` of `stripe-middleware.reconciliation.completed`: the record without the discrepancies
        themselves (each is published on its own), naming the first MAX_DETAIL_IDS of them. `revision`
        grows with each change of the payout's record: bus delivery is unordered, so a subscriber (and the
        warehouse) keeps the detail with the greatest."""
        record = self.to_record()
        record["revision"] = revision
        del record["discrepancies"], record["discrepancies_truncated"]
        record["discrepancy_ids"] = [d.discrepancy_id for d in self.discrepancies[:MAX_DETAIL_IDS]]
        record["repaired"] = sum(1 for d in self.discrepancies if d.repaired)
        return record


def _discrepancy_order(discrepancy: Discrepancy) -> tuple[bool, int, str, str]:
    """Open gaps first (a truncated record keeps them), then by kind and object."""
    kind = KINDS.index(discrepancy.kind)
    return discrepancy.repaired, kind, discrepancy.object_id or "", discrepancy.discrepancy_id


# -- money in words ---------------------------------------------------------------------------------------
_ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())  # noqa: SIM905
_THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())  # noqa: SIM905


def money(amount: int | None, currency: str | None) -> str:
    """`123456, "usd"` -> `1,234.56 USD`; `-500, "jpy"` -> `-500 JPY` (Stripe's minor units in words)."""
    if amount is None:
        return "no amount"
    code = (currency or "").lower()
    digits = 0 if code in _ZERO_DECIMAL else 3 if code in _THREE_DECIMAL else 2
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**digits)
    text = f"{whole:,}" + (f".{part:0{digits}d}" if digits else "")
    return f"{sign}{text} {code.upper()}".rstrip()
