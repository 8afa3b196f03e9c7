"""Reconcile one payout, or sweep every payout created in a period.

For a payout: read it (one GET, unless the caller has it), list its balance transactions with their
sources expanded (a page per 100), read what the store holds of them in BatchGetItems of 100 keys (a
second round for the customers behind refunds), check (check.py), repair every `missing_in_store` gap
through the backfill's path and check again, then merge with the payout's previous record (repaired gaps
stay in its history; `not_paid_out` gaps stay until a sweep judges them again), publish what the bus has
not seen (each discrepancy once, `completed` once per version of the record) and write the record.

A re-run of an unchanged payout writes and publishes nothing. Publication comes before the record: a crash
between them publishes again under the same ids (at least once); a refused publication is written as not
sent, and the run fails so that its retry sends the rest. A store outage fails the run before anything is
written: the record is one item, written last.

The sweep reconciles each payout of each account created in [since, until], then looks for `not_paid_out`
charges and refunds (check.unpaid) and writes each gap into the record of the payout that should have
paid it out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stripe_middleware.backfill.ports import Page
from stripe_middleware.reconciliation.check import (
    PAYOUT_MARGIN_SECONDS,
    SOURCE_RULES,
    RepairTarget,
    check_payout,
    needed_keys,
    pending_reason,
    repair_targets,
    settles,
    source_id,
    type_of_id,
    unpaid,
    unreconcilable_reason,
)
from stripe_middleware.reconciliation.models import (
    MISSING_IN_STORE,
    NOT_PAID_OUT,
    Discrepancy,
    ObjectKey,
    Reconciliation,
    StoreEntry,
)
from stripe_middleware.reconciliation.ports import (
    MAX_BATCH,
    KeptRecord,
    PayoutSource,
    Published,
    ReconciliationNotPublishedError,
    ReconciliationStore,
    Repairer,
    StoredObjects,
)
from stripe_middleware.reconciliation.repair import repair_run_id
from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.shared.metadata_schema import MetadataSchema
from stripe_middleware.shared.publishing import Publication, Publisher

MAX_REPAIR_ROUNDS = 3  # a refund's charge, then that charge's customer: each round reaches one step further
CANDIDATE_TYPES = ("charge", "refund")  # what `not_paid_out` looks for in the store


@dataclass
class Counters:
    """What a run spent, for the metrics and the bench."""

    stripe_calls: int = 0  # every Stripe request: list pages and single GETs
    transaction_pages: int = 0  # pages of `GET /v1/balance_transactions` (by payout or by created)
    store_reads: int = 0  # DynamoDB read requests: BatchGetItem (<= 100 keys) and Query pages
    store_keys: int = 0  # keys asked for in those BatchGetItems
    repaired: int = 0  # objects stored by repairs
    published: int = 0  # details the bus accepted

    def minus(self, earlier: Counters) -> Counters:
        return Counters(
            **{f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in dataclasses.fields(self)}
        )


@dataclass
class Reconciler:
    """The collaborators of a run (ports) and the mode of the key it runs with."""

    stripe: PayoutSource
    objects: StoredObjects
    records: ReconciliationStore
    repairer: Repairer
    publisher: Publisher
    schema: MetadataSchema
    livemode: bool
    counters: Counters = field(default_factory=Counters)  # cumulative over the reconciler's runs


@dataclass
class PayoutRun:
    payout_id: str
    account: str | None
    record: Reconciliation | None  # None: the payout cannot be reconciled yet (`pending`)
    pending: str | None = None
    written: bool = False  # the record was written (False: unchanged, or pending)
    published: list[str] = field(default_factory=list)  # discrepancy ids and "completed", sent by this run
    repaired: list[ObjectKey] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)


@dataclass
class SweepRun:
    since: int
    until: int
    runs: list[PayoutRun] = field(default_factory=list)
    not_paid_out: list[Discrepancy] = field(default_factory=list)
    not_judged: int = 0  # candidates whose payout could not be told yet (see check.unpaid)
    failed: dict[str, str] = field(default_factory=dict)  # payout id -> why its record was not finished
    counters: Counters = field(default_factory=Counters)


@dataclass
class _Examined:
    """A payout checked (and repaired), before its record is merged, published and written."""

    payout: dict[str, Any]
    account: str | None
    record: Reconciliation | None
    pending: str | None
    sources: frozenset[str]  # the ids of its transactions' sources: what it paid out
    repaired: list[ObjectKey]


def reconcile_payout(
    reconciler: Reconciler,
    payout_id: str,
    *,
    account: str | None = None,
    payout: dict[str, Any] | None = None,
) -> PayoutRun:
    """Reconcile one payout of `account` (None: the platform); `payout` saves the GET when the caller has
    Stripe's object (a `payout.paid` event's). UnknownPayoutError, StripeUnavailableError,
    StoreUnavailableError, ReconciliationNotPublishedError, RecordConflictError, RepairNotPublishedError."""
    before = dataclasses.replace(reconciler.counters)
    if payout is None:
        payout = reconciler.stripe.payout(payout_id, account=account)
        reconciler.counters.stripe_calls += 1
    run = _finish(reconciler, _examine(reconciler, payout, account), not_paid_out=None)
    run.counters = reconciler.counters.minus(before)
    return run


def sweep(
    reconciler: Reconciler, *, since: int, until: int, accounts: Sequence[str | None] = (None,)
) -> SweepRun:
    """Reconcile every payout created in [since, until] of each account (None: the platform), then find
    the charges and refunds of that period no payout paid out. A payout whose record could not be written
    or published is in `failed` (the others are done; run the sweep again); a failure to read Stripe or
    the store is raised. Rerunning a sweep costs its Stripe pages again, and writes and publishes only what
    changed."""
    before = dataclasses.replace(reconciler.counters)
    result = SweepRun(since=since, until=until)
    for account in accounts:
        payouts = list(_payouts(reconciler, account, since, until))
        examined = [_examine(reconciler, payout, account) for payout in payouts]
        paid_out = frozenset().union(*(e.sources for e in examined))
        found, judged, not_judged = _unpaid(reconciler, account, payouts, paid_out, since=since, until=until)
        result.not_paid_out += found
        result.not_judged += not_judged
        by_payout: dict[str, list[Discrepancy]] = {}
        for discrepancy in found:
            by_payout.setdefault(str(discrepancy.payout_id), []).append(discrepancy)
        for item in examined:
            payout_id = str(item.payout["id"])
            try:
                run = _finish(
                    reconciler,
                    item,
                    not_paid_out=by_payout.get(payout_id, []),
                    reconsidered=judged | paid_out,
                )
            except UnavailableError as error:
                result.failed[payout_id] = f"{error.code}: {error}"
                continue
            result.runs.append(run)
    result.counters = reconciler.counters.minus(before)
    return result


TRIGGERS = ("payout.paid", "payout.reconciliation_completed")


@dataclass(frozen=True)
class PayoutTrigger:
    """A payout to reconcile, from an event on the bus."""

    payout_id: str
    account: str | None
    livemode: bool
    payout: dict[str, Any] | None  # Stripe's object as the event carried it (None: truncated)


def triggered_payout(detail_type: str, detail: Mapping[str, Any]) -> PayoutTrigger | None:
    """The payout a published `payout.paid` / `payout.reconciliation_completed` detail asks to reconcile
    (None for any other detail). Pass `payout` to `reconcile_payout` to save its GET; a run with a key of
    the other mode (`livemode`) should leave it alone."""
    if detail_type not in TRIGGERS:
        return None
    obj = detail.get("object")
    normalized = detail.get("normalized")
    payout_id = obj.get("id") if isinstance(obj, dict) else None
    if payout_id is None and isinstance(normalized, Mapping):
        payout_id = normalized.get("object_id")
    if not isinstance(payout_id, str) or not payout_id.startswith("po_"):
        return None
    account = detail.get("account")
    return PayoutTrigger(
        payout_id=payout_id,
        account=account if isinstance(account, str) else None,
        livemode=detail.get("livemode") is True,
        payout=obj if isinstance(obj, dict) and obj.get("object") == "payout" else None,
    )


def sweep_period(days: int, *, now: float) -> tuple[int, int]:
    """(since, until) of a scheduled sweep: payouts created in the last `days` days. A daily sweep over
    more days than the longest payout delay sees each payout, and judges each charge, more than once (a run
    that changes nothing writes and publishes nothing)."""
    return int(now) - days * 24 * 3600, int(now)


# -- one payout ---------------------------------------------------------------------------------------
def _examine(reconciler: Reconciler, payout: dict[str, Any], account: str | None) -> _Examined:
    payout_id = str(payout["id"])
    if unreconcilable_reason(payout) is None and (reason := pending_reason(payout)) is not None:
        return _Examined(payout, account, None, reason, frozenset(), [])
    livemode = reconciler.livemode
    transactions = (
        []
        if unreconcilable_reason(payout)
        else _expanded(reconciler, account, _transactions(reconciler, payout_id, account))
    )
    known: dict[ObjectKey, StoreEntry | None] = {}
    run_id = repair_run_id(payout_id, account, livemode)
    repaired: list[ObjectKey] = []
    attempted: set[ObjectKey] = set()
    confirmed = _confirmed_repairs(reconciler, payout_id, account)
    rounds = 0
    while True:
        _look_up(reconciler, transactions, known, account)
        record = check_payout(
            payout,
            transactions,
            known,
            reconciler.schema,
            account=account,
            livemode=livemode,
            repaired=repaired,
            repair_run=run_id,
        )
        # An object an earlier attempt stored but whose record never said repaired: its publication may
        # have failed, so it is repaired again (the repairer publishes its own snapshot).
        unconfirmed = (
            {
                (str(d.object_type), str(d.object_id))
                for d in record.discrepancies
                if d.kind == MISSING_IN_STORE and d.repaired
            }
            - confirmed
            - set(repaired)
        )
        targets = [
            t for t in repair_targets(record, transactions, unconfirmed=unconfirmed) if t.key not in attempted
        ]
        if not targets or rounds == MAX_REPAIR_ROUNDS:
            break
        rounds += 1
        attempted |= {t.key for t in targets}
        stored = _repair(reconciler, targets, account=account, run_id=run_id)
        repaired += stored
        for key in stored:
            known.pop(key, None)  # read it back: the check sees what the store holds now
    sources = frozenset(s for t in transactions if (s := source_id(t)) is not None and s != payout_id)
    return _Examined(payout, account, record, None, sources, repaired)


def _confirmed_repairs(reconciler: Reconciler, payout_id: str, account: str | None) -> set[ObjectKey]:
    """The objects the payout's written record says were repaired (and so published)."""
    kept = reconciler.records.get(payout_id, account=account, livemode=reconciler.livemode)
    if kept is None:
        return set()
    return {
        (str(d.object_type), str(d.object_id))
        for d in kept.record.discrepancies
        if d.kind == MISSING_IN_STORE and d.repaired
    }


def _repair(
    reconciler: Reconciler, targets: Sequence[RepairTarget], *, account: str | None, run_id: str
) -> list[ObjectKey]:
    """Store what the targets name: the listed object, or Stripe's answer to one GET (none: left open)."""
    objects = []
    for target in targets:
        obj = target.obj
        if obj is None:
            obj = reconciler.stripe.retrieve(target.path, account=account)
            reconciler.counters.stripe_calls += 1
        if obj is not None:
            objects.append(obj)
    if not objects:
        return []
    stored = reconciler.repairer.repair(objects, account=account, livemode=reconciler.livemode, run_id=run_id)
    reconciler.counters.repaired += len(stored)
    return stored


def _transactions(reconciler: Reconciler, payout_id: str, account: str | None) -> list[dict[str, Any]]:
    def page(starting_after: str | None) -> Page:
        return reconciler.stripe.transactions_page(payout_id, account=account, starting_after=starting_after)

    return list(_pages(reconciler, page, transactions=True))


def _pages(
    reconciler: Reconciler, page: Callable[[str | None], Page], *, transactions: bool = False
) -> Iterator[dict[str, Any]]:
    starting_after = None
    while True:
        listed = page(starting_after)
        reconciler.counters.stripe_calls += 1
        reconciler.counters.transaction_pages += transactions
        objects = [o for o in listed.objects if isinstance(o, dict) and isinstance(o.get("id"), str)]
        yield from objects
        if not listed.has_more or not objects:
            return
        starting_after = objects[-1]["id"]


def _expanded(
    reconciler: Reconciler, account: str | None, transactions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each transaction with its source object: one GET for a source Stripe left as an id (it expands
    them all when asked; a GET only where it did not), none for a type the store does not keep."""
    result = []
    for transaction in transactions:
        source = transaction.get("source")
        rule = SOURCE_RULES.get(type_of_id(source) or "") if isinstance(source, str) else None
        if isinstance(source, str) and rule is not None and rule.compares:
            obj = reconciler.stripe.retrieve(f"{rule.path}/{source}", account=account)
            reconciler.counters.stripe_calls += 1
            if obj is not None:
                result.append({**transaction, "source": obj})
                continue
        result.append(transaction)
    return result


def _look_up(
    reconciler: Reconciler,
    transactions: Sequence[dict[str, Any]],
    known: dict[ObjectKey, StoreEntry | None],
    account: str | None,
) -> None:
    """Read every key the check needs, MAX_BATCH per request, until it needs no more."""
    while keys := sorted(needed_keys(transactions, known, reconciler.schema)):
        for start in range(0, len(keys), MAX_BATCH):
            chunk = keys[start : start + MAX_BATCH]
            found = reconciler.objects.entries(chunk, account=account, livemode=reconciler.livemode)
            reconciler.counters.store_reads += 1
            reconciler.counters.store_keys += len(chunk)
            entries = {entry.key: entry for entry in found}
            known.update({key: entries.get(key) for key in chunk})


# -- the record -----------------------------------------------------------------------------------------
def _finish(
    reconciler: Reconciler,
    examined: _Examined,
    *,
    not_paid_out: Sequence[Discrepancy] | None,
    reconsidered: Collection[str] = (),
) -> PayoutRun:
    """Merge with the kept record, publish what the bus has not seen, write the record if it changed.
    `not_paid_out` (a sweep's) replaces the kept ones of the objects the sweep `reconsidered`."""
    payout_id, account = str(examined.payout["id"]), examined.account
    run = PayoutRun(payout_id, account, examined.record, examined.pending, repaired=examined.repaired)
    if examined.record is None:
        return run
    kept = reconciler.records.get(payout_id, account=account, livemode=reconciler.livemode)
    record = _merged(examined.record, kept, not_paid_out, reconsidered)
    run.record = record
    published = kept.published if kept is not None else Published()
    current = {d.discrepancy_id for d in record.discrepancies}
    new = [d for d in record.discrepancies if d.discrepancy_id not in published.discrepancies]
    fingerprint = record.fingerprint()
    unchanged = kept is not None and kept.record.fingerprint() == fingerprint
    if unchanged and not new and published.completed == fingerprint:
        return run
    completed_key = f"completed/{payout_id}"
    revision = (kept.revision if kept else 0) + 1
    publications = [
        Publication(d.discrepancy_id, DetailType.RECONCILIATION_DISCREPANCY, d.detail()) for d in new
    ]
    if published.completed != fingerprint:
        completed = record.detail(revision)
        publications.append(Publication(completed_key, DetailType.RECONCILIATION_COMPLETED, completed))
    failed = reconciler.publisher.publish(publications) if publications else set()
    sent = [p.key for p in publications if p.key not in failed]
    reconciler.counters.published += len(sent)
    now_published = Published(
        discrepancies=frozenset(
            (published.discrepancies & current) | {k for k in sent if k != completed_key}
        ),
        completed=fingerprint if completed_key in sent else published.completed,
    )
    reconciler.records.put(record, now_published, revision=revision)
    run.written, run.published = True, ["completed" if k == completed_key else k for k in sent]
    if failed:
        raise ReconciliationNotPublishedError(
            f"payout {payout_id}: {len(failed)} of {len(publications)} details were not published"
        )
    return run


def _merged(
    record: Reconciliation,
    kept: KeptRecord | None,
    not_paid_out: Sequence[Discrepancy] | None,
    reconsidered: Collection[str],
) -> Reconciliation:
    """The checked record plus the kept history: repaired gaps stay repaired, `not_paid_out` gaps stay
    until a sweep judges their object again (then its finding replaces them)."""
    carried: list[Discrepancy] = []
    if kept is not None:
        for old in kept.record.discrepancies:
            if old.kind == NOT_PAID_OUT:
                if not_paid_out is None or old.object_id not in reconsidered:
                    carried.append(old)
            elif old.repaired:
                carried.append(old)
    return record.with_discrepancies((*carried, *(not_paid_out or ()), *record.discrepancies))


# -- the sweep ----------------------------------------------------------------------------------------
def _payouts(reconciler: Reconciler, account: str | None, since: int, until: int) -> Iterator[dict[str, Any]]:
    def page(starting_after: str | None) -> Page:
        return reconciler.stripe.payouts_page(
            account=account, created_gte=since, created_lte=until, starting_after=starting_after
        )

    yield from _pages(reconciler, page)


def _unpaid(
    reconciler: Reconciler,
    account: str | None,
    payouts: Sequence[dict[str, Any]],
    paid_out: frozenset[str],
    *,
    since: int,
    until: int,
) -> tuple[list[Discrepancy], frozenset[str], int]:
    """`not_paid_out` gaps, the candidates judged (found paid out or not), and how many could not be."""
    settled = [int(p.get("created") or 0) for p in payouts if settles(p)]
    if not settled:
        return [], frozenset(), 0
    newest = max(settled)
    cutoff = newest - PAYOUT_MARGIN_SECONDS  # created later, a transaction cannot be due by any of them
    unsettled = [c for c in _candidates(reconciler, account, since, until) if c.object_id not in paid_out]
    candidates = [c for c in unsettled if (c.created or 0) <= cutoff]
    too_recent = len(unsettled) - len(candidates)
    if not candidates:
        return [], frozenset(), too_recent
    oldest = min(c.created or since for c in candidates)

    def page(starting_after: str | None) -> Page:
        return reconciler.stripe.created_transactions_page(
            account=account, created_gte=oldest, created_lte=newest, starting_after=starting_after
        )

    wanted = {c.object_id for c in candidates}
    transactions = {
        sid: t for t in _pages(reconciler, page, transactions=True) if (sid := source_id(t)) in wanted
    }
    found = unpaid(payouts, paid_out, candidates, transactions, account=account, livemode=reconciler.livemode)
    return list(found.discrepancies), frozenset(wanted), found.not_judged + too_recent


def _candidates(reconciler: Reconciler, account: str | None, since: int, until: int) -> list[StoreEntry]:
    """The store's succeeded charges and refunds created in [since, until] (a Query page per request)."""
    if until < since:
        return []
    low, high = iso(since) or "", iso(until) or ""
    found: list[StoreEntry] = []
    for object_type in CANDIDATE_TYPES:
        for month in _months(since, until):
            start: Any | None = None
            while True:
                entries, start = reconciler.objects.succeeded_page(
                    object_type,
                    month,
                    account=account,
                    livemode=reconciler.livemode,
                    created_gte=low,
                    created_lte=high,
                    start=start,
                )
                reconciler.counters.store_reads += 1
                found += entries
                if start is None:
                    break
    return found


def _months(since: int, until: int) -> list[str]:
    """`YYYY-MM` of every month from `since` to `until`."""
    first, last = (datetime.fromtimestamp(t, UTC) for t in (since, until))
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return months
