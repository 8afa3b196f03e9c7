"""The reconciliation itself, pure: a payout, its balance transactions (sources expanded) and what the store
holds in, the payout explained and every gap named out.

1. **unbalanced_payout**: per currency, the net of the payout's transactions equals the payout's amount (0
   in any other currency). `?payout=` also lists the payout's own transaction (type `payout`, source the
   payout; and `payout_failure`/`payout_cancel` for a payout that failed or was canceled): every
   transaction whose source is the payout itself is left out of the sums.
2. **missing_in_store / amount_mismatch / status_mismatch**: each source object (charge, refund, dispute,
   transfer, application fee, payout, top-up; a transfer reversal's transfer, an application-fee refund's
   fee) is in the store, with Stripe's amount and currency and Stripe's current status. The comparison is
   between the stored object and Stripe's own object (the expanded `source`), in the object's currency:
   never against the transaction's amount, which is in the settlement currency after conversion (a charge
   of 100.00 EUR settled as 108.50 USD is checked as 100.00 EUR against the stored charge; the USD side is
   what check 1 adds up).
3. **not_paid_out** (`unpaid`, over a sweep): a charge or refund the store holds as succeeded, in none of
   the swept payouts, although its balance transaction became available (`available_on`) at least a day
   before an automatic payout was created in its currency: the first such payout should have paid it out.
   Judged only when that payout is automatic and reconciled by Stripe (a manual or instant payout may have
   taken the funds), so schedule details (delay days, weekly anchors, holidays) never matter: Stripe's own
   `available_on` and the payouts it actually made are the schedule.
4. **missing_erp_id**: the keys the metadata schema requires (config/metadata_schema.yaml, `required`) on
   the customer, and the invoice where one is named, behind each charge, refund and dispute: one gap per
   customer or invoice, naming the payout's items behind it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stripe_middleware.processing.normalize import expandable_id
from stripe_middleware.reconciliation.models import (
    AMOUNT_MISMATCH,
    MAX_ITEMS,
    MISSING_ERP_ID,
    MISSING_IN_STORE,
    NOT_PAID_OUT,
    STATUS_MISMATCH,
    UNBALANCED_PAYOUT,
    CategoryTotal,
    Discrepancy,
    ObjectKey,
    PayoutFacts,
    Reconciliation,
    StoreEntry,
    money,
)
from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.metadata_schema import MetadataSchema

DAY = 24 * 3600
# A transaction available this long before an automatic payout was created should be in it: Stripe's
# `available_on` is a day boundary and a payout is created some time that day.
PAYOUT_MARGIN_SECONDS = DAY


@dataclass(frozen=True)
class SourceRule:
    """How the store keeps a transaction's source object."""

    stored_type: str  # the object type the store keeps it under
    path: str  # Stripe's path of that object (a repair reads `{path}/{id}`)
    parent: str | None = None  # the store keeps the object this field names instead (its parent)

    @property
    def compares(self) -> bool:
        """A parent is only looked for: its amount is not the transaction's."""
        return self.parent is None


SOURCE_RULES = {
    "charge": SourceRule("charge", "/v1/charges"),  # a Connect `py_` payment is a charge too
    "refund": SourceRule("refund", "/v1/refunds"),
    "dispute": SourceRule("dispute", "/v1/disputes"),
    "transfer": SourceRule("transfer", "/v1/transfers"),
    "transfer_reversal": SourceRule("transfer", "/v1/transfers", parent="transfer"),
    "application_fee": SourceRule("application_fee", "/v1/application_fees"),
    "fee_refund": SourceRule("application_fee", "/v1/application_fees", parent="fee"),
    "payout": SourceRule("payout", "/v1/payouts"),
    "topup": SourceRule("topup", "/v1/topups"),
}
HOLDER_PATHS = {"customer": "/v1/customers", "invoice": "/v1/invoices", "charge": "/v1/charges"}
# A source left as an id (not expanded) is recognized by its prefix, longest first.
ID_PREFIXES = (
    ("pyr_", "refund"),
    ("trr_", "transfer_reversal"),
    ("fee_", "application_fee"),
    ("ch_", "charge"),
    ("py_", "charge"),
    ("re_", "refund"),
    ("dp_", "dispute"),
    ("du_", "dispute"),
    ("tr_", "transfer"),
    ("fr_", "fee_refund"),
    ("po_", "payout"),
    ("tu_", "topup"),
)
CUSTOMER_BEARING = ("charge", "refund", "dispute")  # the items whose customer and invoice are checked
UNSETTLED_PAYOUT_STATUSES = ("failed", "canceled")  # their funds went back to the balance


# -- reading Stripe's objects -------------------------------------------------------------------------
def source_of(transaction: Mapping[str, Any]) -> dict[str, Any] | None:
    """The transaction's expanded source object (None when Stripe left it as an id, or there is none)."""
    source = transaction.get("source")
    return source if isinstance(source, dict) and isinstance(source.get("id"), str) else None


def source_id(transaction: Mapping[str, Any]) -> str | None:
    return expandable_id(transaction.get("source"))


def type_of_id(object_id: str) -> str | None:
    """The object type a Stripe id names, by its prefix (None when unknown)."""
    return next((kind for prefix, kind in ID_PREFIXES if object_id.startswith(prefix)), None)


def stored_key(source: Mapping[str, Any]) -> ObjectKey | None:
    """The store's key of what the store keeps for this source (None: the store keeps no such type)."""
    rule = SOURCE_RULES.get(str(source.get("object")))
    if rule is None:
        return None
    object_id = expandable_id(source.get(rule.parent)) if rule.parent else source.get("id")
    return (rule.stored_type, object_id) if isinstance(object_id, str) and object_id else None


def unreconcilable_reason(payout: Mapping[str, Any]) -> str | None:
    """Why Stripe cannot say which transactions a payout pays out (None: it can)."""
    if payout.get("method") == "instant":
        return (
            "an instant payout: Stripe does not tie balance transactions to instant payouts; reconcile it "
            "against your balance history (the Balance report)"
        )
    if payout.get("automatic") is not True:
        return (
            "a manual payout: you chose its timing and amount, so Stripe cannot say which transactions it "
            "pays out; reconcile it against your balance history (the Balance report)"
        )
    return None


def pending_reason(payout: Mapping[str, Any]) -> str | None:
    """Why an automatic payout cannot be reconciled yet (None: it can)."""
    status = payout.get("reconciliation_status")
    if status == "completed":
        return None
    return (
        f"Stripe has not finished tying transactions to this payout (reconciliation_status {status}); "
        "it is reconciled when payout.reconciliation_completed arrives"
    )


def settles(payout: Mapping[str, Any]) -> bool:
    """An automatic payout Stripe has reconciled and that kept its funds: what `not_paid_out` judges by."""
    return (
        unreconcilable_reason(payout) is None
        and pending_reason(payout) is None
        and payout.get("status") not in UNSETTLED_PAYOUT_STATUSES
    )


# -- what to read from the store ------------------------------------------------------------------------
def required_keys(schema: MetadataSchema, object_type: str) -> tuple[str, ...]:
    rule = schema.objects.get(object_type)
    return rule.required if rule is not None else ()


def needed_keys(
    transactions: Sequence[Mapping[str, Any]],
    known: Mapping[ObjectKey, StoreEntry | None],
    schema: MetadataSchema,
) -> set[ObjectKey]:
    """The store keys the check needs that are not `known` yet (looked up, found or not). Call again with
    what the store answered until it returns nothing: a refund's customer is known once its charge is."""
    sources = _sources(transactions)
    keys = {key for source in sources.values() if (key := stored_key(source))}
    for source in sources.values():
        if source.get("object") not in CUSTOMER_BEARING:
            continue
        for holder in _holders(source, sources, known, schema):
            keys.add(holder)
        charge = _charge_behind(source)
        if charge and _wants_customer(schema) and not expandable_id(source.get("customer")):
            keys.add(("charge", charge))
    return {key for key in keys if key not in known}


def _wants_customer(schema: MetadataSchema) -> bool:
    return bool(required_keys(schema, "customer"))


def _charge_behind(source: Mapping[str, Any]) -> str | None:
    return expandable_id(source.get("charge")) if source.get("object") in ("refund", "dispute") else None


def _holders(
    source: Mapping[str, Any],
    sources: Mapping[str, Mapping[str, Any]],
    known: Mapping[ObjectKey, StoreEntry | None],
    schema: MetadataSchema,
) -> list[ObjectKey]:
    """The customer and invoice behind a charge, refund or dispute whose required ids must be checked."""
    holders: list[ObjectKey] = []
    customer = expandable_id(source.get("customer"))
    charge_id = _charge_behind(source)
    charge = sources.get(charge_id) if charge_id else source
    if customer is None and charge_id:
        entry = known.get(("charge", charge_id))
        customer = (entry.customer_id if entry else None) or (
            expandable_id(charge.get("customer")) if charge else None
        )
    if customer and required_keys(schema, "customer"):
        holders.append(("customer", customer))
    invoice = expandable_id(charge.get("invoice")) if charge else None  # API versions before 2025-03-31
    if invoice and required_keys(schema, "invoice"):
        holders.append(("invoice", invoice))
    return holders


def _sources(transactions: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Expanded sources by id, in the order their transactions were listed."""
    found: dict[str, dict[str, Any]] = {}
    for transaction in transactions:
        source = source_of(transaction)
        if source is not None:
            found.setdefault(source["id"], source)
    return found


# -- the check ----------------------------------------------------------------------------------------
def check_payout(
    payout: Mapping[str, Any],
    transactions: Sequence[Mapping[str, Any]],
    known: Mapping[ObjectKey, StoreEntry | None],
    schema: MetadataSchema,
    *,
    account: str | None,
    livemode: bool,
    repaired: Collection[ObjectKey] = (),
    repair_run: str | None = None,
) -> Reconciliation:
    """The payout's reconciliation from Stripe's transactions and the store's `known` objects (None:
    looked up, not there). Objects the run stored after an earlier check found them missing (`repaired`,
    or stored under the payout's `repair_run` id by an earlier run that did not finish) are reported as
    repaired `missing_in_store` gaps."""
    payout_id = str(payout["id"])
    facts = PayoutFacts.of(payout)
    reason = unreconcilable_reason(payout)
    if reason is not None:
        return Reconciliation(
            payout_id=payout_id, account=account, livemode=livemode, payout=facts, reason=reason
        )
    stored_by_repair = {
        k for k, e in known.items() if e is not None and repair_run and e.stored_by == repair_run
    }
    context = _Context(payout_id, account, livemode, facts.created, frozenset(repaired) | stored_by_repair)
    items = [t for t in transactions if source_id(t) != payout_id]
    totals, net = _totals(items)
    found = [*_unbalanced(facts, net, context), *_sources_in_store(transactions, known, context)]
    found += _missing_ids(transactions, known, schema, context)
    unchecked: dict[str, int] = {}
    for transaction in transactions:
        source = source_of(transaction)
        if source is None or stored_key(source) is None:
            kind = str(source.get("object")) if source else type_of_id(source_id(transaction) or "")
            unchecked[kind or "none"] = unchecked.get(kind or "none", 0) + 1
    record = Reconciliation(
        payout_id=payout_id,
        account=account,
        livemode=livemode,
        payout=facts,
        transactions=len(items),
        totals=totals,
        net=net,
        unchecked=unchecked,
    )
    return record.with_discrepancies(tuple(found))


@dataclass(frozen=True)
class _Context:
    payout_id: str
    account: str | None
    livemode: bool
    as_of: int
    repaired: frozenset[ObjectKey]

    def discrepancy(self, kind: str, message: str, **fields: Any) -> Discrepancy:
        return Discrepancy(
            kind=kind,
            payout_id=self.payout_id,
            account=self.account,
            livemode=self.livemode,
            message=message,
            as_of=self.as_of,
            **fields,
        )


def _totals(items: Sequence[Mapping[str, Any]]) -> tuple[tuple[CategoryTotal, ...], dict[str, int]]:
    """Count, gross, fees and net per (reporting category, currency), and the net per currency."""
    sums: dict[tuple[str, str], list[int]] = {}
    net: dict[str, int] = {}
    for transaction in items:
        category = str(transaction.get("reporting_category") or transaction.get("type") or "unknown")
        currency = str(transaction.get("currency") or "")
        amount, fee, value = (_integer(transaction, k) for k in ("amount", "fee", "net"))
        total = sums.setdefault((category, currency), [0, 0, 0, 0])
        total[0] += 1
        total[1] += amount
        total[2] += fee
        total[3] += value
        net[currency] = net.get(currency, 0) + value
    totals = tuple(
        CategoryTotal(category, currency, count, amount, fee, value)
        for (category, currency), (count, amount, fee, value) in sorted(sums.items())
    )
    return totals, net


def _integer(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _unbalanced(facts: PayoutFacts, net: Mapping[str, int], context: _Context) -> list[Discrepancy]:
    found = []
    for currency in sorted({facts.currency, *net}):
        expected = facts.amount if currency == facts.currency else 0
        got = net.get(currency, 0)
        if got == expected:
            continue
        message = (
            f"payout {context.payout_id} is {money(expected, currency)} but its transactions add up to "
            f"{money(got, currency)} ({money(got - expected, currency)} difference)"
        )
        found.append(
            context.discrepancy(
                UNBALANCED_PAYOUT,
                message,
                object_type="payout",
                object_id=context.payout_id,
                currency=currency,
                stripe={"payout_amount": expected, "transactions_net": got, "difference": got - expected},
            )
        )
    return found


def _sources_in_store(
    transactions: Sequence[Mapping[str, Any]],
    known: Mapping[ObjectKey, StoreEntry | None],
    context: _Context,
) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    seen: set[ObjectKey] = set()
    for transaction in transactions:
        source = source_of(transaction)
        key = stored_key(source) if source else None
        if source is None or key is None or key in seen:
            continue
        seen.add(key)
        rule = SOURCE_RULES[str(source["object"])]
        fields: dict[str, Any] = {
            "object_type": key[0],
            "object_id": key[1],
            "balance_transaction": transaction.get("id"),
            "reporting_category": transaction.get("reporting_category"),
        }
        if not rule.compares:
            fields |= {"items": (source["id"],), "item_count": 1}
        stripe = _facts(source) if rule.compares else {}
        entry = known.get(key)
        if entry is None or key in context.repaired:
            what = f"{key[0]} {key[1]}" + (
                "" if rule.compares else f" (behind {source['object']} {source['id']})"
            )
            repaired = entry is not None
            message = f"{what} is not in the store" + (": fetched from Stripe and stored" if repaired else "")
            found.append(
                context.discrepancy(
                    MISSING_IN_STORE, message, stripe=stripe, store=None, repaired=repaired, **fields
                )
            )
        if entry is None or not rule.compares:
            continue
        if (entry.amount, entry.currency) != (stripe["amount"], stripe["currency"]):
            message = (
                f"{key[0]} {key[1]} is {money(stripe['amount'], stripe['currency'])} in Stripe but "
                f"{money(entry.amount, entry.currency)} in the store"
            )
            found.append(
                context.discrepancy(AMOUNT_MISMATCH, message, stripe=stripe, store=entry.facts(), **fields)
            )
        if stripe["status"] is not None and entry.status != stripe["status"]:
            message = f"{key[0]} {key[1]} is {stripe['status']} in Stripe but {entry.status} in the store"
            found.append(
                context.discrepancy(STATUS_MISMATCH, message, stripe=stripe, store=entry.facts(), **fields)
            )
    return found


def _facts(source: Mapping[str, Any]) -> dict[str, Any]:
    status = source.get("status")
    amount = source.get("amount")
    return {
        "amount": amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
        "currency": source.get("currency"),
        "status": status if isinstance(status, str) else None,
    }


def _missing_ids(
    transactions: Sequence[Mapping[str, Any]],
    known: Mapping[ObjectKey, StoreEntry | None],
    schema: MetadataSchema,
    context: _Context,
) -> list[Discrepancy]:
    """missing_erp_id per customer or invoice (with the items behind it); missing_in_store for a customer,
    invoice or charge the check needed and the store does not hold."""
    sources = _sources(transactions)
    items: dict[ObjectKey, list[str]] = {}  # holder -> the payout's items behind it
    behind: dict[ObjectKey, list[str]] = {}  # a charge behind refunds/disputes -> those
    for source in sources.values():
        if source.get("object") not in CUSTOMER_BEARING:
            continue
        for holder in _holders(source, sources, known, schema):
            items.setdefault(holder, []).append(source["id"])
        charge = _charge_behind(source)
        if charge and ("charge", charge) in known and charge not in sources:
            behind.setdefault(("charge", charge), []).append(source["id"])
    found: list[Discrepancy] = []
    for key, ids in sorted(behind.items()):
        if known.get(key) is None or key in context.repaired:
            found.append(_holder_missing(key, ids, known, context))
    for key, ids in sorted(items.items()):
        entry = known.get(key)
        if entry is None or key in context.repaired:
            found.append(_holder_missing(key, ids, known, context))
        if entry is None:
            continue
        required = required_keys(schema, key[0])
        invalid = {v.key for v in schema.check(key[0], entry.metadata) if v.key in required}
        missing = tuple(k for k in required if k in invalid)
        if not missing:
            continue
        message = (
            f"{key[0]} {key[1]} lacks {', '.join(missing)} (required by the metadata schema): "
            f"{len(ids)} item(s) of payout {context.payout_id} cannot be posted to the ledger"
        )
        found.append(
            context.discrepancy(
                MISSING_ERP_ID,
                message,
                object_type=key[0],
                object_id=key[1],
                store={"metadata": {k: entry.metadata.get(k) for k in required}},
                missing_keys=missing,
                **_items(ids),
            )
        )
    return found


def _holder_missing(
    key: ObjectKey, ids: Sequence[str], known: Mapping[ObjectKey, StoreEntry | None], context: _Context
) -> Discrepancy:
    repaired = known.get(key) is not None
    message = f"{key[0]} {key[1]} (behind {', '.join(sorted(set(ids))[:3])}) is not in the store" + (
        ": fetched from Stripe and stored" if repaired else ""
    )
    return context.discrepancy(
        MISSING_IN_STORE,
        message,
        object_type=key[0],
        object_id=key[1],
        store=None,
        repaired=repaired,
        **_items(ids),
    )


def _items(ids: Sequence[str]) -> dict[str, Any]:
    unique = sorted(set(ids))
    return {"items": tuple(unique[:MAX_ITEMS]), "item_count": len(unique)}


# -- repairs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RepairTarget:
    """An object to put in the store: Stripe's object as listed (expanded), or the path to read it from."""

    key: ObjectKey
    obj: dict[str, Any] | None
    path: str


def repair_targets(
    record: Reconciliation,
    transactions: Sequence[Mapping[str, Any]],
    *,
    unconfirmed: Collection[ObjectKey] = (),
) -> list[RepairTarget]:
    """What to fetch and store for each open `missing_in_store` gap: the expanded source when that is the
    object the store keeps (no extra call), else a GET of it (a reversal's transfer, a customer...). Gaps
    already repaired are targets again when `unconfirmed` names them: stored by an earlier attempt of the
    repair whose publication was never confirmed (the repairer publishes its own snapshot again)."""
    listed = {
        key: source
        for source in _sources(transactions).values()
        if (key := stored_key(source)) and SOURCE_RULES[str(source["object"])].compares
    }
    paths = {r.stored_type: r.path for r in SOURCE_RULES.values()} | HOLDER_PATHS
    targets = []
    for discrepancy in record.discrepancies:
        key = (str(discrepancy.object_type), str(discrepancy.object_id))
        if discrepancy.kind != MISSING_IN_STORE or (discrepancy.repaired and key not in unconfirmed):
            continue
        targets.append(RepairTarget(key, listed.get(key), f"{paths[key[0]]}/{key[1]}"))
    return targets


# -- not paid out (sweep) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Unpaid:
    discrepancies: tuple[Discrepancy, ...]
    not_judged: int  # candidates whose payout could not be told (no transaction yet, manual or instant)


def unpaid(
    payouts: Sequence[Mapping[str, Any]],
    paid_out: Collection[str],
    candidates: Sequence[StoreEntry],
    transactions: Mapping[str, Mapping[str, Any]],
    *,
    account: str | None,
    livemode: bool,
) -> Unpaid:
    """`not_paid_out` gaps of one account: each candidate (a charge or refund the store holds as succeeded)
    whose id is in no swept payout (`paid_out`: the sources of every reconciled payout's transactions),
    although its balance transaction (`transactions`, by source id) was available PAYOUT_MARGIN_SECONDS
    before the first payout in its currency created after that (`payouts`: every payout of the sweep, any
    kind). The gap belongs to that payout, judged only when it `settles`."""
    ordered = sorted(payouts, key=lambda p: (int(p.get("created") or 0), str(p.get("id"))))
    found: list[Discrepancy] = []
    not_judged = 0
    for candidate in candidates:
        if candidate.object_id in paid_out:
            continue
        transaction = transactions.get(candidate.object_id)
        available = transaction.get("available_on") if transaction else None
        if transaction is None or not isinstance(available, int):
            not_judged += 1
            continue
        currency = transaction.get("currency")
        due = available + PAYOUT_MARGIN_SECONDS
        expected = next(
            (p for p in ordered if p.get("currency") == currency and int(p.get("created") or 0) >= due), None
        )
        if expected is None or not settles(expected):
            not_judged += 1
            continue
        payout_id = str(expected["id"])
        stripe = {
            "amount": transaction.get("amount"),
            "net": transaction.get("net"),
            "currency": currency,
            "available_on": iso(available),
            "status": transaction.get("status"),
        }
        message = (
            f"{candidate.object_type} {candidate.object_id} ({money(candidate.amount, candidate.currency)}, "
            f"succeeded in the store) was available on {iso(available)} but is in no payout: "
            f"payout {payout_id} should have paid it out"
        )
        found.append(
            Discrepancy(
                kind=NOT_PAID_OUT,
                payout_id=payout_id,
                account=account,
                livemode=livemode,
                object_type=candidate.object_type,
                object_id=candidate.object_id,
                balance_transaction=transaction.get("id"),
                reporting_category=transaction.get("reporting_category"),
                stripe=stripe,
                store=candidate.facts(),
                message=message,
                as_of=int(expected.get("created") or 0),
            )
        )
    return Unpaid(tuple(found), not_judged)
