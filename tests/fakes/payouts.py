"""Payouts as Stripe has them and the store as the middleware has it, built from the real fixtures
(events/stripe/fixtures3.json: payout, balance_transaction, charge, refund, dispute, transfer,
transfer_reversal, application_fee, fee_refund, customer), with every gap reconciliation must find.

`build_payout(n)` makes an automatic payout of `n` balance transactions in a realistic mix (mostly charges,
then refunds of earlier charges, a dispute, a Connect transfer and its reversal, an application fee and its
refund), each with fees, plus the payout's own transaction, and a store that holds everything behind them:
a clean payout. The `inject_*` methods open one gap each and record it in `gaps` (what a reconciliation
must find). The same world serves the unit tests (the in-memory ports below) and the integration tests
(`serve_on` a FakeStripe over HTTP; `load_store` into DynamoDB through the backfill's write).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from events import stripe_object
from stripe_middleware.backfill.ports import Page, SnapshotStore
from stripe_middleware.processing.models import StoredObject
from stripe_middleware.processing.normalize import normalize_snapshot
from stripe_middleware.reconciliation.models import ObjectKey, Reconciliation, StoreEntry
from stripe_middleware.reconciliation.ports import (
    MAX_BATCH,
    KeptRecord,
    Published,
    RecordConflictError,
    UnknownPayoutError,
)
from stripe_middleware.reconciliation.repair import SnapshotRepairer
from stripe_middleware.reconciliation.run import Reconciler, sweep
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.shared.metadata_schema import MetadataSchema, load_metadata_schema
from tests.fakes.ports import FakePublisher, FakeStore

DAY = 86_400
T0 = 1_764_000_000  # 2025-11-24T16:00:00Z: the payout's creation
SEED_RUN = "bf_seedseedseedseed"  # the backfill run the store's objects came from
# The mix of a payout's transactions, cycled: mostly charges, then one of each other kind.
MIX = ("charge",) * 14 + (
    "refund",
    "dispute",
    "transfer",
    "application_fee",
    "transfer_reversal",
    "fee_refund",
)
PATHS = {
    "charge": "/v1/charges",
    "refund": "/v1/refunds",
    "dispute": "/v1/disputes",
    "transfer": "/v1/transfers",
    "application_fee": "/v1/application_fees",
    "payout": "/v1/payouts",
    "customer": "/v1/customers",
    "balance_transaction": "/v1/balance_transactions",
}


@dataclass(frozen=True)
class Gap:
    kind: str
    object_type: str
    object_id: str


def stripe_path(obj: dict[str, Any]) -> str:
    """Where Stripe serves an object (a reversal and a fee refund under their parent)."""
    kind = obj["object"]
    if kind == "transfer_reversal":
        return f"/v1/transfers/{obj['transfer']}/reversals/{obj['id']}"
    if kind == "fee_refund":
        return f"/v1/application_fees/{obj['fee']}/refunds/{obj['id']}"
    return f"{PATHS[kind]}/{obj['id']}"


@dataclass
class PayoutWorld:
    payout: dict[str, Any]
    transactions: list[dict[str, Any]]  # the payout's, sources as ids, the payout's own last
    objects: dict[str, dict[str, Any]]  # Stripe's objects by id (sources, parents, customers, old charges)
    store: dict[ObjectKey, dict[str, Any]]  # what the store holds (copies of Stripe's, altered by gaps)
    account: str | None = None
    livemode: bool = False
    gaps: list[Gap] = field(default_factory=list)
    unpaid: list[dict[str, Any]] = field(default_factory=list)  # transactions in no payout (not_paid_out)

    @property
    def payout_id(self) -> str:
        return str(self.payout["id"])

    @property
    def tag(self) -> str:
        return self.payout_id.removeprefix("po_")

    # -- what Stripe answers ----------------------------------------------------------------------
    def listed(self, *, expand: bool = True) -> list[dict[str, Any]]:
        """`?payout=` as Stripe answers it: newest first, each source expanded (or left as an id)."""
        return [self.expanded(t) if expand else copy.deepcopy(t) for t in self.newest_first()]

    def newest_first(self) -> list[dict[str, Any]]:
        return sorted(self.transactions, key=lambda t: t["created"], reverse=True)

    def expanded(self, transaction: dict[str, Any]) -> dict[str, Any]:
        return {**copy.deepcopy(transaction), "source": copy.deepcopy(self.objects[transaction["source"]])}

    def source_ids(self, object_type: str) -> list[str]:
        """Ids of the payout's sources of a type, in the order they were made."""
        return [
            t["source"]
            for t in self.transactions
            if self.objects[t["source"]]["object"] == object_type and t["source"] != self.payout_id
        ]

    def customers(self) -> list[str]:
        return sorted(i for i, o in self.objects.items() if o["object"] == "customer")

    # -- the store -------------------------------------------------------------------------------------
    def load_store(self, store: SnapshotStore, schema: MetadataSchema) -> None:
        """Put the store's objects in `store` the way a backfill does (normalize, order-guarded write)."""
        for obj in self.store.values():
            stored = normalize_snapshot(
                obj, schema, account=self.account, livemode=self.livemode, run_id=SEED_RUN, as_of=T0 - DAY
            )
            store.upsert_snapshot(stored)

    def serve_on(self, fake: Any) -> None:
        """Serve this payout on a `stripe_server.FakeStripe`: objects by path, and the association."""
        for obj in [self.payout, *self.objects.values(), *self.transactions, *self.unpaid]:
            fake.objects[stripe_path(obj)] = copy.deepcopy(obj)
        fake.payout_transactions[self.payout_id] = [t["id"] for t in self.transactions]

    # -- gaps --------------------------------------------------------------------------------------------
    def _gap(self, kind: str, object_type: str, object_id: str) -> Gap:
        gap = Gap(kind, object_type, object_id)
        self.gaps.append(gap)
        return gap

    def inject_missing(self, object_type: str, index: int = 0) -> Gap:
        """The store lacks one of the payout's sources (a webhook never arrived)."""
        object_id = self.source_ids(object_type)[index]
        del self.store[(object_type, object_id)]
        return self._gap("missing_in_store", object_type, object_id)

    def inject_missing_parent(self) -> Gap:
        """The store lacks the transfer a reversal in the payout reverses (it is read with a GET)."""
        reversal = self.objects[self.source_ids("transfer_reversal")[0]]
        del self.store[("transfer", reversal["transfer"])]
        return self._gap("missing_in_store", "transfer", reversal["transfer"])

    def inject_missing_customer(self, index: int = 1) -> Gap:
        """The store lacks a customer behind the payout's charges (read with a GET, then its ids checked)."""
        customer = self.customers()[index]
        del self.store[("customer", customer)]
        return self._gap("missing_in_store", "customer", customer)

    def inject_amount_mismatch(self, object_type: str = "charge", index: int = 1) -> Gap:
        object_id = self.source_ids(object_type)[index]
        self.store[(object_type, object_id)]["amount"] += 1
        return self._gap("amount_mismatch", object_type, object_id)

    def inject_status_mismatch(self, object_type: str = "refund", status: str = "pending") -> Gap:
        object_id = self.source_ids(object_type)[0]
        self.store[(object_type, object_id)]["status"] = status
        return self._gap("status_mismatch", object_type, object_id)

    def inject_unbalanced(self, difference: int = 100) -> Gap:
        """The payout's amount is not what its transactions add up to (in Stripe and the store alike)."""
        for payout in (self.payout, self.objects[self.payout_id], self.store[("payout", self.payout_id)]):
            payout["amount"] += difference
        return self._gap("unbalanced_payout", "payout", self.payout_id)

    def inject_missing_erp_id(self, index: int = 0, key: str = "erp_id") -> Gap:
        """A customer behind the payout's charges has no ERP id (in Stripe, so in the store too)."""
        customer = self.customers()[index]
        for obj in (self.objects[customer], self.store[("customer", customer)]):
            obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k != key}
        return self._gap("missing_erp_id", "customer", customer)

    def inject_not_paid_out(self, *, available_days_before: int = 3) -> Gap:
        """A charge the store holds as succeeded, available days before the payout, in no payout."""
        n = len(self.unpaid)
        charge_id, txn_id = f"ch_{self.tag}unpaid{n}", f"txn_{self.tag}unpaid{n}"
        created = int(self.payout["created"]) - (available_days_before + 2) * DAY
        charge = _charge(charge_id, txn_id, 4200, "usd", self.customers()[0], created, self.livemode)
        self.objects[charge_id] = charge
        self.store[("charge", charge_id)] = copy.deepcopy(charge)
        available = int(self.payout["created"]) - available_days_before * DAY
        self.unpaid.append(_transaction(txn_id, charge_id, "charge", "charge", 4200, created, available))
        return self._gap("not_paid_out", "charge", charge_id)

    def inject_every_gap(self) -> list[Gap]:
        """One gap of each kind a single payout's check finds (`not_paid_out` needs a sweep), on distinct
        objects, so each must be found on its own."""
        return [
            self.inject_missing("charge", 0),
            self.inject_missing("refund", 0),
            self.inject_missing_parent(),
            self.inject_missing_customer(1),
            self.inject_amount_mismatch("charge", 1),
            self.inject_status_mismatch("dispute", "won"),
            self.inject_unbalanced(),
            self.inject_missing_erp_id(0),
        ]


# -- building ---------------------------------------------------------------------------------------------
def _charge(
    charge_id: str, txn_id: str, amount: int, currency: str, customer: str, created: int, livemode: bool
) -> dict[str, Any]:
    return stripe_object(
        "charge",
        id=charge_id,
        amount=amount,
        amount_captured=amount,
        captured=True,
        currency=currency,
        customer=customer,
        balance_transaction=txn_id,
        created=created,
        status="succeeded",
        paid=True,
        livemode=livemode,
        metadata={},
        billing_details={**stripe_object("charge")["billing_details"], "name": None},
        receipt_url=None,
    )


def _transaction(
    txn_id: str,
    source: str,
    kind: str,
    category: str,
    amount: int,
    created: int,
    available_on: int,
    *,
    fee: int = 0,
    currency: str = "usd",
    exchange_rate: float | None = None,
) -> dict[str, Any]:
    fee_details = [
        {"amount": fee, "currency": currency, "description": "Stripe processing fees", "type": "stripe_fee"}
    ]
    return stripe_object(
        "balance_transaction",
        id=txn_id,
        amount=amount,
        fee=fee,
        fee_details=fee_details if fee else [],
        net=amount - fee,
        currency=currency,
        exchange_rate=exchange_rate,
        created=created,
        available_on=available_on,
        reporting_category=category,
        type=kind,
        source=source,
        status="available",
        description=None,
    )


def build_payout(
    n: int,
    *,
    payout_id: str = "po_1TestPayout",
    account: str | None = None,
    livemode: bool = False,
    created: int = T0,
    currency: str = "usd",
    foreign_every: int = 0,
    customers: int | None = None,
    automatic: bool = True,
    method: str = "standard",
) -> PayoutWorld:
    """An automatic payout (by default) of `n` transactions in `currency`, every `foreign_every`-th charge
    presented in EUR and settled in `currency` at 1.085, and a store holding everything behind them."""
    tag = payout_id.removeprefix("po_")
    available = created - DAY
    world = PayoutWorld(payout={}, transactions=[], objects={}, store={}, account=account, livemode=livemode)
    pool = [f"cus_{tag}{j:03d}" for j in range(customers or max(2, n // 10))]
    for j, customer_id in enumerate(pool):
        metadata = {"erp_id": f"NS-{100000 + j}", "crm_account_id": f"001A{j:011d}"}
        world.objects[customer_id] = stripe_object(
            "customer",
            id=customer_id,
            metadata=metadata,
            livemode=livemode,
            email=None,
            name=None,
            discount=None,
        )
    for i in range(n):
        kind = MIX[i % len(MIX)]
        at = created - 3 * DAY + i
        txn_id = f"txn_{tag}{i:05d}"
        customer = pool[i % len(pool)]
        if kind == "charge":
            amount = 1000 + (i * 37) % 9000
            foreign = bool(foreign_every) and i % foreign_every == 0
            charge_id = f"ch_{tag}{i:05d}"
            charge = _charge(
                charge_id, txn_id, amount, "eur" if foreign else currency, customer, at, livemode
            )
            settled = round(amount * 1.085) if foreign else amount
            fee = settled * 29 // 1000 + 30
            source, transaction = (
                charge,
                _transaction(
                    txn_id,
                    charge_id,
                    "charge",
                    "charge",
                    settled,
                    at,
                    available,
                    fee=fee,
                    currency=currency,
                    exchange_rate=1.085 if foreign else None,
                ),
            )
        elif kind in ("refund", "dispute"):
            old_charge = f"ch_{tag}old{i:05d}"
            world.objects[old_charge] = _charge(
                old_charge, f"txn_{tag}old{i:05d}", 3000, currency, customer, at - 20 * DAY, livemode
            )
            if kind == "refund":
                source = stripe_object(
                    "refund",
                    id=f"re_{tag}{i:05d}",
                    amount=500,
                    currency=currency,
                    charge=old_charge,
                    balance_transaction=txn_id,
                    created=at,
                    status="succeeded",
                    customer=None,
                )
                transaction = _transaction(
                    txn_id, source["id"], "refund", "refund", -500, at, available, currency=currency
                )
            else:
                source = stripe_object(
                    "dispute",
                    id=f"dp_{tag}{i:05d}",
                    amount=3000,
                    currency=currency,
                    charge=old_charge,
                    balance_transactions=[],
                    created=at,
                    status="needs_response",
                    livemode=livemode,
                )
                transaction = _transaction(
                    txn_id,
                    source["id"],
                    "adjustment",
                    "dispute",
                    -3000,
                    at,
                    available,
                    fee=1500,
                    currency=currency,
                )
        elif kind == "transfer":
            source = stripe_object(
                "transfer",
                id=f"tr_{tag}{i:05d}",
                amount=700,
                currency=currency,
                balance_transaction=txn_id,
                created=at,
                livemode=livemode,
                destination="acct_1Destination0001",
            )
            transaction = _transaction(
                txn_id, source["id"], "transfer", "transfer", -700, at, available, currency=currency
            )
        elif kind == "application_fee":
            source = stripe_object(
                "application_fee",
                id=f"fee_{tag}{i:05d}",
                amount=300,
                currency=currency,
                balance_transaction=txn_id,
                created=at,
                livemode=livemode,
                charge=f"ch_{tag}connect{i:05d}",
            )
            transaction = _transaction(
                txn_id,
                source["id"],
                "application_fee",
                "platform_earning",
                300,
                at,
                available,
                currency=currency,
            )
        elif kind == "transfer_reversal":
            parent = stripe_object(
                "transfer",
                id=f"tr_{tag}parent{i:05d}",
                amount=900,
                currency=currency,
                created=at - 10 * DAY,
                livemode=livemode,
                destination="acct_1Destination0001",
                amount_reversed=200,
                reversed=False,
            )
            world.objects[parent["id"]] = parent
            source = stripe_object(
                "transfer_reversal",
                id=f"trr_{tag}{i:05d}",
                amount=200,
                currency=currency,
                transfer=parent["id"],
                balance_transaction=txn_id,
                created=at,
            )
            transaction = _transaction(
                txn_id,
                source["id"],
                "transfer_refund",
                "transfer_reversal",
                200,
                at,
                available,
                currency=currency,
            )
        else:  # fee_refund
            parent = stripe_object(
                "application_fee",
                id=f"fee_{tag}parent{i:05d}",
                amount=400,
                currency=currency,
                created=at - 10 * DAY,
                livemode=livemode,
                amount_refunded=100,
                refunded=False,
            )
            world.objects[parent["id"]] = parent
            source = stripe_object(
                "fee_refund",
                id=f"fr_{tag}{i:05d}",
                amount=100,
                currency=currency,
                fee=parent["id"],
                balance_transaction=txn_id,
                created=at,
            )
            transaction = _transaction(
                txn_id,
                source["id"],
                "application_fee_refund",
                "platform_earning_refund",
                -100,
                at,
                available,
                currency=currency,
            )
        world.objects[source["id"]] = source
        world.transactions.append(transaction)
    total = sum(t["net"] for t in world.transactions)
    own_txn = f"txn_{tag}payout"
    world.payout = stripe_object(
        "payout",
        id=payout_id,
        amount=total,
        currency=currency,
        created=created,
        arrival_date=created + 2 * DAY,
        automatic=automatic,
        method=method,
        status="paid",
        reconciliation_status="completed" if automatic and method == "standard" else "not_applicable",
        balance_transaction=own_txn,
        livemode=livemode,
    )
    world.objects[payout_id] = copy.deepcopy(world.payout)
    world.transactions.append(
        _transaction(own_txn, payout_id, "payout", "payout", -total, created, created, currency=currency)
    )
    kept = {o["object"] for o in world.objects.values()} - {"transfer_reversal", "fee_refund"}
    world.store = {
        (o["object"], o["id"]): copy.deepcopy(o) for o in world.objects.values() if o["object"] in kept
    }
    return world


# -- in-memory ports ------------------------------------------------------------------------------------
@dataclass
class FakePayoutSource:
    """`reconciliation.ports.PayoutSource` over worlds (per account). `fail_next` raises its errors on the
    next calls; `expand=False` leaves sources as ids (Stripe expands them when asked: the fallback)."""

    worlds: list[PayoutWorld] = field(default_factory=list)
    calls: list[tuple[str, str | None, str]] = field(default_factory=list)  # (method, account, what)
    fail_next: list[Exception] = field(default_factory=list)
    page_size: int = 100
    expand: bool = True

    def _call(self, method: str, account: str | None, what: str) -> None:
        self.calls.append((method, account, what))
        if self.fail_next:
            raise self.fail_next.pop(0)

    def _mine(self, account: str | None) -> list[PayoutWorld]:
        return [w for w in self.worlds if w.account == account]

    def _page(self, ordered: list[dict[str, Any]], starting_after: str | None) -> Page:
        if starting_after is not None:
            ordered = ordered[[o["id"] for o in ordered].index(starting_after) + 1 :]
        return Page(objects=ordered[: self.page_size], has_more=len(ordered) > self.page_size)

    def payout(self, payout_id: str, *, account: str | None) -> dict[str, Any]:
        self._call("payout", account, payout_id)
        for world in self._mine(account):
            if world.payout_id == payout_id:
                return copy.deepcopy(world.payout)
        raise UnknownPayoutError(f"no payout {payout_id}")

    def transactions_page(self, payout_id: str, *, account: str | None, starting_after: str | None) -> Page:
        self._call("transactions_page", account, payout_id)
        world = next(w for w in self._mine(account) if w.payout_id == payout_id)
        page = self._page(world.newest_first(), starting_after)  # copies only what it answers
        listed = [world.expanded(t) if self.expand else copy.deepcopy(t) for t in page.objects]
        return Page(objects=listed, has_more=page.has_more)

    def payouts_page(
        self, *, account: str | None, created_gte: int, created_lte: int, starting_after: str | None
    ) -> Page:
        self._call("payouts_page", account, f"{created_gte}..{created_lte}")
        payouts = [copy.deepcopy(w.payout) for w in self._mine(account)]
        payouts = [p for p in payouts if created_gte <= p["created"] <= created_lte]
        return self._page(
            sorted(payouts, key=lambda p: (p["created"], p["id"]), reverse=True), starting_after
        )

    def created_transactions_page(
        self, *, account: str | None, created_gte: int, created_lte: int, starting_after: str | None
    ) -> Page:
        self._call("created_transactions_page", account, f"{created_gte}..{created_lte}")
        every = [copy.deepcopy(t) for w in self._mine(account) for t in [*w.transactions, *w.unpaid]]
        every = [t for t in every if created_gte <= t["created"] <= created_lte]
        return self._page(sorted(every, key=lambda t: (t["created"], t["id"]), reverse=True), starting_after)

    def retrieve(self, path: str, *, account: str | None) -> dict[str, Any] | None:
        self._call("retrieve", account, path)
        object_id = path.rstrip("/").rsplit("/", 1)[-1]
        for world in self._mine(account):
            if object_id in world.objects and stripe_path(world.objects[object_id]) == path:
                return copy.deepcopy(world.objects[object_id])
        return None


def entry_of(stored: StoredObject) -> StoreEntry:
    """What the DynamoDB adapter reads of a stored object."""

    def seconds(value: str | None) -> int | None:
        from datetime import datetime

        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()) if value else None

    return StoreEntry(
        object_type=stored.object_type,
        object_id=stored.object_id,
        amount=stored.amount,
        currency=stored.currency,
        status=stored.status,
        customer_id=stored.customer_id,
        created=seconds(stored.created),
        metadata=dict(stored.metadata),
        stored_by=stored.event_id,
    )


@dataclass
class FakeStoredObjects:
    """`reconciliation.ports.StoredObjects` over a FakeStore (the one the repairs write to).

    `unavailable` raises StoreUnavailableError on every read, as a throttled table does after the SDK's
    retries; `batches` records the size of every BatchGetItem."""

    store: FakeStore
    unavailable: bool = False
    batches: list[int] = field(default_factory=list)
    queries: int = 0

    def entries(self, keys: Sequence[ObjectKey], *, account: str | None, livemode: bool) -> list[StoreEntry]:
        assert len(keys) <= MAX_BATCH, f"{len(keys)} keys in one BatchGetItem"
        if self.unavailable:
            raise StoreUnavailableError("fake store: BatchGetItem throttled")
        self.batches.append(len(keys))
        found = [self.store.snapshot(t, i, account=account, livemode=livemode) for t, i in keys]
        return [entry_of(s) for s in found if s is not None]

    def succeeded_page(
        self,
        object_type: str,
        month: str,
        *,
        account: str | None,
        livemode: bool,
        created_gte: str,
        created_lte: str,
        start: Any | None,
    ) -> tuple[list[StoreEntry], Any | None]:
        if self.unavailable:
            raise StoreUnavailableError("fake store: Query throttled")
        self.queries += 1
        found = [
            entry_of(s)
            for (kind, _, scope_account, mode), s in self.store.objects.items()
            if (kind, scope_account, mode) == (object_type, account, livemode)
            and s.status == "succeeded"
            and (s.created or "")[:7] == month
            and created_gte <= (s.created or "") <= created_lte
        ]
        return sorted(found, key=lambda e: e.object_id), None


@dataclass
class InMemoryRecords:
    """`reconciliation.ports.ReconciliationStore` keeping JSON (as the DynamoDB item does), with the
    revision check; `unavailable` fails every call, `fail_puts` fails that many next writes."""

    kept: dict[tuple[str, str | None, bool], str] = field(default_factory=dict)
    writes: int = 0
    unavailable: bool = False
    fail_puts: int = 0

    def get(self, payout_id: str, *, account: str | None, livemode: bool) -> KeptRecord | None:
        if self.unavailable:
            raise StoreUnavailableError("fake records: GetItem throttled")
        text = self.kept.get((payout_id, account, livemode))
        if text is None:
            return None
        document = json.loads(text)
        return KeptRecord(
            record=Reconciliation.from_record(document["record"]),
            published=Published(frozenset(document["published"]), document["completed"]),
            revision=document["revision"],
        )

    def put(self, record: Reconciliation, published: Published, *, revision: int) -> None:
        if self.unavailable or self.fail_puts:
            self.fail_puts = max(0, self.fail_puts - 1)
            raise StoreUnavailableError("fake records: PutItem throttled")
        key = (record.payout_id, record.account, record.livemode)
        current = json.loads(self.kept[key])["revision"] if key in self.kept else 0
        if current != revision - 1:
            raise RecordConflictError(f"revision {current} kept, {revision} written")
        self.writes += 1
        self.kept[key] = json.dumps(
            {
                "record": record.to_record(),
                "published": sorted(published.discrepancies),
                "completed": published.completed,
                "revision": revision,
            }
        )

    def record(self, payout_id: str, *, account: str | None = None, livemode: bool = False) -> dict[str, Any]:
        kept = self.get(payout_id, account=account, livemode=livemode)
        assert kept is not None, f"no record of {payout_id}"
        return kept.record.to_record()


def found_gaps(records: Iterable[dict[str, Any]]) -> set[Gap]:
    """The gaps reconciliation records name (as the `Gap`s a world injects)."""
    return {
        Gap(d["kind"], d["object_type"], d["object_id"])
        for record in records
        for d in record["discrepancies"]
    }


def published_reconciliation(
    *, account: str | None = None, livemode: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """What a sweep on in-memory ports publishes for two payouts, the later with a gap of every kind:
    (detail-type, detail) of each `discrepancy` and `completed`, for the contract tests (schemas, rows)."""
    schema = load_metadata_schema()
    earlier = build_payout(
        20, payout_id="po_1Earlier", created=T0 - 7 * DAY, account=account, livemode=livemode
    )
    later = build_payout(40, payout_id="po_1Later", created=T0, account=account, livemode=livemode)
    later.inject_every_gap()
    later.inject_not_paid_out(available_days_before=3)
    store, publisher = FakeStore(), FakePublisher()
    for world in (earlier, later):
        world.load_store(store, schema)
    reconciler = Reconciler(
        stripe=FakePayoutSource([earlier, later]),
        objects=FakeStoredObjects(store),
        records=InMemoryRecords(),
        repairer=SnapshotRepairer(store, publisher, schema, clock=lambda: T0 + 10 * DAY),
        publisher=publisher,
        schema=schema,
        livemode=livemode,
    )
    sweep(reconciler, since=T0 - 30 * DAY, until=T0 + DAY, accounts=(account,))
    kinds = (DetailType.RECONCILIATION_DISCREPANCY, DetailType.RECONCILIATION_COMPLETED)
    return [(p.detail_type, p.detail) for p in publisher.published if p.detail_type in kinds]
