"""Reconciliation: the pure check on payouts built from the real fixtures, and a run on in-memory ports.

Every gap kind injected is found, and nothing else: 0 false discrepancies on a clean payout, with foreign
currencies, on connected accounts; manual and instant payouts are reported as unreconcilable by Stripe;
`missing_in_store` is repaired through the backfill's write and the payout re-checked; a re-run writes and
publishes nothing; a refused publication or a store outage fails cleanly.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from events import stripe_event, stripe_object
from stripe_middleware.backfill.ports import Page, StripeUnavailableError
from stripe_middleware.processing.models import StoredObject
from stripe_middleware.processing.normalize import normalize_snapshot
from stripe_middleware.processing.ports import UpsertResult
from stripe_middleware.reconciliation.check import (
    PAYOUT_MARGIN_SECONDS,
    check_payout,
    needed_keys,
    unpaid,
)
from stripe_middleware.reconciliation.models import (
    MISSING_IN_STORE,
    Discrepancy,
    ObjectKey,
    Reconciliation,
    StoreEntry,
    money,
)
from stripe_middleware.reconciliation.ports import (
    ReconciliationNotPublishedError,
    RecordConflictError,
    RepairNotPublishedError,
    UnknownPayoutError,
)
from stripe_middleware.reconciliation.reading import StripePayouts
from stripe_middleware.reconciliation.repair import SnapshotRepairer, repair_run_id
from stripe_middleware.reconciliation.run import (
    Reconciler,
    reconcile_payout,
    sweep,
    sweep_period,
    triggered_payout,
)
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from tests.fakes.payouts import (
    DAY,
    SEED_RUN,
    T0,
    FakePayoutSource,
    FakeStoredObjects,
    Gap,
    InMemoryRecords,
    PayoutWorld,
    build_payout,
    entry_of,
    found_gaps,
)
from tests.fakes.ports import FakePublisher, FakeStore

SCHEMA = load_metadata_schema()
CONNECTED = "acct_1Connected000001"


# -- the pure check ---------------------------------------------------------------------------------------
def known_of(world: PayoutWorld) -> dict[ObjectKey, StoreEntry | None]:
    """What the store answers for every key the check asks, as the run looks them up."""
    entries = {
        key: entry_of(
            normalize_snapshot(
                obj, SCHEMA, account=world.account, livemode=world.livemode, run_id=SEED_RUN, as_of=T0
            )
        )
        for key, obj in world.store.items()
    }
    known: dict[ObjectKey, StoreEntry | None] = {}
    transactions = world.listed()
    while keys := needed_keys(transactions, known, SCHEMA):
        known |= {key: entries.get(key) for key in keys}
    return known


def check(world: PayoutWorld, **kwargs: Any) -> Reconciliation:
    return check_payout(
        world.payout,
        world.listed(),
        known_of(world),
        SCHEMA,
        account=world.account,
        livemode=world.livemode,
        **kwargs,
    )


def gaps_of(record: Reconciliation) -> set[Gap]:
    return found_gaps([record.to_record()])


def test_a_clean_payout_balances_with_no_discrepancy_and_totals_per_reporting_category() -> None:
    world = build_payout(200)
    record = check(world)
    assert record.status == "balanced" and record.discrepancies == ()
    assert record.transactions == 200  # the payout's own transaction is not one of them
    assert record.net == {"usd": world.payout["amount"]}
    by_category = {t.reporting_category: t for t in record.totals}
    assert set(by_category) == {
        "charge",
        "refund",
        "dispute",
        "transfer",
        "platform_earning",
        "transfer_reversal",
        "platform_earning_refund",
    }
    assert sum(t.count for t in record.totals) == 200
    assert by_category["charge"].count == 140 and by_category["refund"].count == 10
    charges = [t for t in world.transactions if t["reporting_category"] == "charge"]
    assert by_category["charge"].amount == sum(t["amount"] for t in charges)
    assert by_category["charge"].fee == sum(t["fee"] for t in charges) > 0
    assert by_category["dispute"].net == 10 * (-3000 - 1500)
    assert sum(t.net for t in record.totals) == world.payout["amount"]
    assert record.unchecked == {}


def test_every_gap_of_a_payout_is_found_and_nothing_else() -> None:
    world = build_payout(40)
    injected = set(world.inject_every_gap())
    record = check(world)
    assert gaps_of(record) == injected
    assert record.status == "discrepancies"
    kinds = record.counts()
    assert kinds == {
        "amount_mismatch": 1,
        "missing_erp_id": 1,
        "missing_in_store": 4,
        "status_mismatch": 1,
        "unbalanced_payout": 1,
    }


def test_each_discrepancy_says_what_both_sides_hold() -> None:
    world = build_payout(20)
    mismatch = world.inject_amount_mismatch("charge", 1)
    status = world.inject_status_mismatch("refund", "pending")
    erp = world.inject_missing_erp_id(0)
    unbalanced = world.inject_unbalanced(250)
    record = check(world)
    found = {(d.kind, d.object_id): d for d in record.discrepancies}
    charge = found[("amount_mismatch", mismatch.object_id)]
    stripe_amount = world.objects[mismatch.object_id]["amount"]
    assert charge.stripe == {"amount": stripe_amount, "currency": "usd", "status": "succeeded"}
    assert charge.store == {"amount": stripe_amount + 1, "currency": "usd", "status": "succeeded"}
    assert charge.balance_transaction == f"txn_{world.tag}00001" and charge.reporting_category == "charge"
    assert money(stripe_amount, "usd") in charge.message and "in the store" in charge.message
    refund = found[("status_mismatch", status.object_id)]
    assert (refund.stripe["status"], refund.store and refund.store["status"]) == ("succeeded", "pending")
    customer = found[("missing_erp_id", erp.object_id)]
    assert customer.missing_keys == ("erp_id",) and customer.object_type == "customer"
    behind = {
        t["source"] for t in world.transactions if world.objects[t["source"]].get("customer") == erp.object_id
    }
    refunds_behind = {  # a refund's customer is its charge's
        t["source"]
        for t in world.transactions
        if world.objects[t["source"]].get("charge") in world.objects
        and world.objects[world.objects[t["source"]]["charge"]].get("customer") == erp.object_id
        and world.objects[t["source"]]["object"] in ("refund", "dispute")
    }
    assert set(customer.items) == behind | refunds_behind
    payout = found[("unbalanced_payout", unbalanced.object_id)]
    assert payout.currency == "usd" and payout.stripe["difference"] == -250


def test_a_foreign_currency_charge_is_compared_in_its_own_currency_and_the_payout_in_the_settlement_one() -> (
    None
):
    world = build_payout(60, foreign_every=3)
    foreign = [t for t in world.transactions if t.get("exchange_rate")]
    assert foreign and all(world.objects[t["source"]]["currency"] == "eur" for t in foreign)
    record = check(world)
    assert record.discrepancies == () and record.net == {"usd": world.payout["amount"]}
    assert {t.currency for t in record.totals} == {"usd"}


def test_a_payout_in_another_settlement_currency_balances_in_it() -> None:
    world = build_payout(40, currency="eur")
    record = check(world)
    assert record.status == "balanced" and record.net == {"eur": world.payout["amount"]}


def test_a_transaction_settled_in_a_currency_the_payout_is_not_in_unbalances_both_currencies() -> None:
    world = build_payout(20)
    settled = world.transactions[0]  # a charge Stripe settled in GBP, paid out in a USD payout
    settled["currency"] = "gbp"
    record = check(world)
    unbalanced = {d.currency: d for d in record.discrepancies if d.kind == "unbalanced_payout"}
    assert set(unbalanced) == {"gbp", "usd"} and len(record.discrepancies) == 2
    net = settled["net"]
    assert unbalanced["gbp"].stripe == {"payout_amount": 0, "transactions_net": net, "difference": net}
    assert unbalanced["usd"].stripe["difference"] == -net
    assert record.net["gbp"] == net


@pytest.mark.parametrize(
    ("automatic", "method", "words"),
    [
        (False, "standard", "a manual payout"),
        (True, "instant", "an instant payout"),
        (False, "instant", "instant"),
    ],
)
def test_manual_and_instant_payouts_are_unreconcilable_by_stripe_without_discrepancies(
    automatic: bool, method: str, words: str
) -> None:
    world = build_payout(20, automatic=automatic, method=method)
    world.inject_missing("charge")  # would be a gap in an automatic payout: here nobody can tell
    record = check(world)
    assert record.status == "unreconcilable_by_stripe"
    assert record.reason is not None and words in record.reason and "Balance report" in record.reason
    assert record.discrepancies == () and record.totals == ()


def test_the_customer_behind_a_refund_is_found_through_its_charge() -> None:
    world = build_payout(20, customers=20)  # the refund (position 14) is the only item of customer 14
    refund = world.objects[world.source_ids("refund")[0]]
    customer = world.objects[refund["charge"]]["customer"]
    for obj in (world.objects[customer], world.store[("customer", customer)]):
        obj["metadata"] = {"crm_account_id": obj["metadata"]["crm_account_id"]}
    record = check(world)
    [gap] = record.discrepancies
    assert (gap.kind, gap.object_id, gap.items) == ("missing_erp_id", customer, (refund["id"],))


def test_an_invalid_required_id_counts_as_missing_but_optional_keys_do_not_matter() -> None:
    world = build_payout(20)
    customer = world.customers()[0]
    world.store[("customer", customer)]["metadata"] |= {
        "crm_account_id": "not-a-salesforce-id",
        "campaign": "tv",
    }
    [gap] = check(world).discrepancies
    assert (gap.kind, gap.missing_keys) == ("missing_erp_id", ("crm_account_id",))


def test_the_store_keeps_a_reversal_under_its_transfer_and_a_fee_refund_under_its_fee() -> None:
    world = build_payout(20)
    reversal = world.objects[world.source_ids("transfer_reversal")[0]]
    fee_refund = world.objects[world.source_ids("fee_refund")[0]]
    assert ("transfer_reversal", reversal["id"]) not in world.store  # never stored on its own
    assert check(world).discrepancies == ()
    del world.store[("application_fee", fee_refund["fee"])]
    [gap] = check(world).discrepancies
    assert (gap.kind, gap.object_type, gap.object_id, gap.items) == (
        MISSING_IN_STORE,
        "application_fee",
        fee_refund["fee"],
        (fee_refund["id"],),
    )


def test_sources_the_store_does_not_keep_are_counted_as_unchecked() -> None:
    world = build_payout(20)
    reserve = copy.deepcopy(world.transactions[0]) | {
        "id": "txn_reserve",
        "source": "rt_reserve1",
        "reporting_category": "risk_reserved_funds",
        "amount": 0,
        "fee": 0,
        "net": 0,
    }
    world.transactions.insert(0, reserve)
    world.objects["rt_reserve1"] = {"id": "rt_reserve1", "object": "reserve_transaction", "amount": 0}
    record = check(world)
    assert record.discrepancies == () and record.unchecked == {"reserve_transaction": 1}


def test_discrepancy_ids_depend_on_what_the_gap_is_about_never_on_the_run() -> None:
    first, second = build_payout(20), build_payout(20)
    for world in (first, second):
        world.inject_every_gap()
    ids = [{d.discrepancy_id for d in check(w).discrepancies} for w in (first, second)]
    assert ids[0] == ids[1] and len(ids[0]) == 8
    elsewhere = build_payout(20, account=CONNECTED)
    elsewhere.inject_every_gap()
    assert not ids[0] & {d.discrepancy_id for d in check(elsewhere).discrepancies}  # scopes never share one


def test_a_record_round_trips_through_json() -> None:
    world = build_payout(40, foreign_every=5)
    world.inject_every_gap()
    record = check(world, repaired={("charge", world.source_ids("charge")[0])})
    again = Reconciliation.from_record(copy.deepcopy(record.to_record()))
    assert again.to_record() == record.to_record() and again.fingerprint() == record.fingerprint()
    assert Discrepancy.from_record(record.discrepancies[0].to_record()) == record.discrepancies[0]


# -- a run on in-memory ports ---------------------------------------------------------------------------
@dataclass
class Harness:
    stripe: FakePayoutSource
    store: FakeStore = field(default_factory=FakeStore)
    records: InMemoryRecords = field(default_factory=InMemoryRecords)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    livemode: bool = False

    def __post_init__(self) -> None:
        self.objects = FakeStoredObjects(self.store)
        for world in self.stripe.worlds:
            world.load_store(self.store, SCHEMA)
        self.reconciler = Reconciler(
            stripe=self.stripe,
            objects=self.objects,
            records=self.records,
            repairer=SnapshotRepairer(self.store, self.publisher, SCHEMA, clock=lambda: T0 + 10 * DAY),
            publisher=self.publisher,
            schema=SCHEMA,
            livemode=self.livemode,
        )

    def discrepancies(self) -> list[dict[str, Any]]:
        return self.publisher.details(DetailType.RECONCILIATION_DISCREPANCY)

    def completed(self) -> list[dict[str, Any]]:
        return self.publisher.details(DetailType.RECONCILIATION_COMPLETED)


def harness(*worlds: PayoutWorld, expand: bool = True) -> Harness:
    return Harness(FakePayoutSource(list(worlds), expand=expand))


def test_a_run_repairs_every_missing_object_and_reports_the_payout_repaired() -> None:
    world = build_payout(40)
    missing = [
        world.inject_missing("charge", 0),
        world.inject_missing("refund", 0),
        world.inject_missing("dispute", 0),
        world.inject_missing_parent(),
        world.inject_missing_customer(1),
    ]
    h = harness(world)
    run = reconcile_payout(h.reconciler, world.payout_id)
    record = h.records.record(world.payout_id)
    assert record["status"] == "repaired" and run.record is not None and run.record.status == "repaired"
    assert found_gaps([record]) == set(missing)
    assert all(
        d["repaired"] and "fetched from Stripe and stored" in d["message"] for d in record["discrepancies"]
    )
    for gap in missing:  # in the store as Stripe has it, written like a backfill's snapshot
        stored = h.store.snapshot(gap.object_type, gap.object_id)
        assert stored is not None and stored.object == world.objects[gap.object_id]
        assert stored.order_key.endswith(repair_run_id(world.payout_id, None, False))
    backfilled = h.publisher.details(DetailType.OBJECT_BACKFILLED)
    assert {(d["object_type"], d["object_id"]) for d in backfilled} == {
        (g.object_type, g.object_id) for g in missing
    }
    gets = [what for method, _, what in h.stripe.calls if method == "retrieve"]
    assert sorted(gets) == sorted(  # the expanded sources cost no call; the transfer and customer a GET each
        [f"/v1/transfers/{missing[3].object_id}", f"/v1/customers/{missing[4].object_id}"]
    )
    assert sorted(run.repaired) == sorted((g.object_type, g.object_id) for g in missing)
    assert {d["discrepancy_id"] for d in h.discrepancies()} == {
        d["discrepancy_id"] for d in record["discrepancies"]
    }
    [completed] = h.completed()
    assert completed["status"] == "repaired" and completed["repaired"] == 5


def test_a_repair_never_overwrites_a_newer_webhook_state(monkeypatch: pytest.MonkeyPatch) -> None:
    world = build_payout(20)
    gap = world.inject_missing("refund", 0)
    h = harness(world)
    newer = copy.deepcopy(world.objects[gap.object_id]) | {"status": "failed"}
    webhook = normalize_snapshot(
        newer, SCHEMA, account=None, livemode=False, run_id="bf_webhookwebhook1", as_of=T0 + 20 * DAY
    )
    repair_write = h.store.upsert_snapshot

    def webhook_first(snapshot: StoredObject) -> UpsertResult:  # refund.updated lands before the repair
        monkeypatch.setattr(h.store, "upsert_snapshot", repair_write)
        repair_write(webhook)
        return repair_write(snapshot)

    monkeypatch.setattr(h.store, "upsert_snapshot", webhook_first)
    reconcile_payout(h.reconciler, world.payout_id)
    kept = h.store.snapshot("refund", gap.object_id)
    assert kept is not None and kept.object["status"] == "failed"  # the webhook's state, not the repair's
    record = h.records.record(world.payout_id)
    kinds = {(d["kind"], d["repaired"]) for d in record["discrepancies"]}
    assert kinds == {("missing_in_store", True), ("status_mismatch", False)}  # re-checked on what is stored
    assert h.publisher.details(DetailType.OBJECT_BACKFILLED) == []  # the repair wrote nothing


def test_a_rerun_writes_and_publishes_nothing_and_keeps_the_repaired_history() -> None:
    world = build_payout(40)
    world.inject_every_gap()
    h = harness(world)
    reconcile_payout(h.reconciler, world.payout_id)
    first = h.records.record(world.payout_id)
    published, writes = len(h.publisher.published), h.records.writes
    again = reconcile_payout(h.reconciler, world.payout_id)
    assert h.records.record(world.payout_id) == first
    assert (len(h.publisher.published), h.records.writes) == (published, writes)
    assert not again.written and again.published == [] and again.repaired == []
    assert {d["kind"] for d in first["discrepancies"] if d["repaired"]} == {"missing_in_store"}
    assert len(h.discrepancies()) == 8 and len({d["discrepancy_id"] for d in h.discrepancies()}) == 8


def test_a_gap_fixed_later_leaves_the_record_and_a_new_completed_is_published() -> None:
    world = build_payout(20)
    gap = world.inject_status_mismatch("refund", "pending")
    h = harness(world)
    reconcile_payout(h.reconciler, world.payout_id)
    assert h.records.record(world.payout_id)["status"] == "discrepancies"
    world.store[("refund", gap.object_id)]["status"] = "succeeded"
    world.load_store(h.store, SCHEMA)  # the missed refund.updated arrives (a newer state)
    refund = h.store.snapshot("refund", gap.object_id)
    assert refund is not None
    h.store.objects[("refund", gap.object_id, None, False)] = refund.model_copy(
        update={"status": "succeeded", "order_key": "9" * 12}
    )
    reconcile_payout(h.reconciler, world.payout_id)
    assert h.records.record(world.payout_id)["status"] == "balanced"
    # each change is a new revision: a subscriber (or the warehouse) keeps the greatest, whatever the order
    assert [(c["status"], c["revision"]) for c in h.completed()] == [("discrepancies", 1), ("balanced", 2)]
    assert len(h.discrepancies()) == 1


def test_a_refused_publication_is_sent_by_the_next_run_and_the_others_are_not_sent_again() -> None:
    world = build_payout(20)
    world.inject_every_gap()
    h = harness(world)
    refused = check(world).discrepancies[0].discrepancy_id
    h.publisher.fail_keys = {refused}
    with pytest.raises(ReconciliationNotPublishedError):
        reconcile_payout(h.reconciler, world.payout_id)
    assert h.records.writes == 1  # written: which details went out
    first = [d["discrepancy_id"] for d in h.discrepancies()]
    assert refused not in first and len(first) == 7 and len(h.completed()) == 1
    h.publisher.fail_keys = set()
    run = reconcile_payout(h.reconciler, world.payout_id)
    assert run.published == [refused]
    assert sorted(d["discrepancy_id"] for d in h.discrepancies()) == sorted([*first, refused])
    assert len(h.completed()) == 1


def test_a_store_outage_fails_the_run_before_anything_is_written_or_published() -> None:
    world = build_payout(20)
    world.inject_every_gap()
    h = harness(world)
    h.objects.unavailable = True
    with pytest.raises(StoreUnavailableError):
        reconcile_payout(h.reconciler, world.payout_id)
    assert h.publisher.published == [] and h.records.kept == {}
    h.objects.unavailable = False
    h.records.fail_puts = 1  # the record's write is throttled: the details went out, the record did not
    with pytest.raises(StoreUnavailableError):
        reconcile_payout(h.reconciler, world.payout_id)
    assert h.records.kept == {}
    sent = len(h.discrepancies())
    reconcile_payout(h.reconciler, world.payout_id)  # at least once: the same ids again, then recorded
    assert h.records.record(world.payout_id)["status"] == "discrepancies"
    assert {d["discrepancy_id"] for d in h.discrepancies()[sent:]} == {
        d["discrepancy_id"] for d in h.discrepancies()[:sent]
    }


def test_two_runs_writing_one_record_conflict_instead_of_overwriting(monkeypatch: pytest.MonkeyPatch) -> None:
    world = build_payout(20)
    world.inject_amount_mismatch()
    h = harness(world)
    reconcile_payout(h.reconciler, world.payout_id)
    with monkeypatch.context() as patch:
        patch.setattr(h.records, "get", lambda *a, **k: None)  # this run read before the other one wrote
        with pytest.raises(RecordConflictError):
            reconcile_payout(h.reconciler, world.payout_id)
    assert reconcile_payout(h.reconciler, world.payout_id).record is not None


def test_a_run_reads_the_store_in_batches_of_at_most_100_and_counts_what_it_spent() -> None:
    world = build_payout(1000, customers=50)
    h = harness(world)
    run = reconcile_payout(h.reconciler, world.payout_id)
    assert run.record is not None and run.record.status == "balanced"
    assert max(h.objects.batches) == 100
    sources = 1000  # one object a transaction (a reversal's transfer, a fee refund's fee: each its own)
    looked_up = sum(h.objects.batches)
    assert (
        looked_up == sources + 1 + 50 + 100
    )  # the payout, the customers, the refunds' and disputes' charges
    assert run.counters.store_reads == len(h.objects.batches) == math.ceil(looked_up / 100)
    assert run.counters.store_keys == looked_up
    assert run.counters.transaction_pages == 11  # 1001 transactions with its own, 100 a page
    assert run.counters.stripe_calls == 12  # and the payout


def test_sources_stripe_left_as_ids_are_read_one_by_one() -> None:
    world = build_payout(20)
    h = harness(world, expand=False)
    record = reconcile_payout(h.reconciler, world.payout_id).record
    assert record is not None and record.status == "balanced" and record.discrepancies == ()
    gets = [what for method, _, what in h.stripe.calls if method == "retrieve"]
    assert len(gets) == 19  # every source but a reversal and a fee refund (their paths need their parent)
    assert record.unchecked == {"fee_refund": 1, "transfer_reversal": 1}


def test_connected_accounts_are_read_and_recorded_apart() -> None:
    platform, connected = build_payout(20), build_payout(20, account=CONNECTED)
    connected.inject_missing("charge", 0)
    h = harness(platform, connected)
    reconcile_payout(h.reconciler, platform.payout_id)
    reconcile_payout(h.reconciler, connected.payout_id, account=CONNECTED)
    assert h.records.record(platform.payout_id)["status"] == "balanced"
    mine = h.records.record(connected.payout_id, account=CONNECTED)
    assert mine["status"] == "repaired" and mine["account"] == CONNECTED
    assert {account for _, account, _ in h.stripe.calls if account} == {CONNECTED}
    [detail] = h.discrepancies()
    assert detail["account"] == CONNECTED
    stored = h.store.snapshot("charge", connected.source_ids("charge")[0], account=CONNECTED)
    assert stored is not None and h.store.snapshot("charge", connected.source_ids("charge")[0]) is not None


def test_an_unknown_payout_and_stripe_failures_are_raised() -> None:
    world = build_payout(20)
    h = harness(world)
    with pytest.raises(UnknownPayoutError):
        reconcile_payout(h.reconciler, "po_1Unknown")
    h.stripe.fail_next = [StripeUnavailableError("Stripe kept failing")]
    with pytest.raises(StripeUnavailableError):
        reconcile_payout(h.reconciler, world.payout_id)
    assert h.records.kept == {}


def test_a_payout_stripe_has_not_reconciled_yet_gets_no_record() -> None:
    world = build_payout(20)
    world.payout["reconciliation_status"] = "in_progress"
    h = harness(world)
    run = reconcile_payout(h.reconciler, world.payout_id)
    assert run.record is None and run.pending is not None and "payout.reconciliation_completed" in run.pending
    assert h.records.kept == {} and h.publisher.published == []
    assert [m for m, _, _ in h.stripe.calls] == ["payout"]


def test_an_unreconcilable_payout_is_recorded_and_published_once_without_listing_it() -> None:
    world = build_payout(20, automatic=False)
    h = harness(world)
    reconcile_payout(h.reconciler, world.payout_id)
    reconcile_payout(h.reconciler, world.payout_id)
    assert h.records.record(world.payout_id)["status"] == "unreconcilable_by_stripe"
    assert [m for m, _, _ in h.stripe.calls] == ["payout", "payout"]
    [completed] = h.completed()
    assert completed["reason"].startswith("a manual payout") and h.discrepancies() == []


def test_the_published_details_carry_the_record_and_each_gap() -> None:
    world = build_payout(20)
    world.inject_amount_mismatch()
    h = harness(world)
    reconcile_payout(h.reconciler, world.payout_id)
    [completed], [discrepancy] = h.completed(), h.discrepancies()
    assert set(completed) == {
        "payout_id", "account", "livemode", "status", "reason", "as_of", "payout", "transactions", "totals",
        "net", "unchecked", "discrepancy_counts", "discrepancy_ids", "repaired", "revision",
    }  # fmt: skip
    assert (
        completed["as_of"] == "2025-11-24T16:00:00Z"
        and completed["payout"]["arrival_date"] == "2025-11-26T16:00:00Z"
    )
    assert completed["discrepancy_ids"] == [discrepancy["discrepancy_id"]]
    assert discrepancy["discrepancy_id"].startswith("rd_") and len(discrepancy["discrepancy_id"]) == 27
    assert set(discrepancy) == {
        "discrepancy_id", "kind", "payout_id", "account", "livemode", "object_type", "object_id",
        "balance_transaction", "reporting_category", "currency", "stripe", "store", "missing_keys", "items",
        "item_count", "repaired", "message", "as_of",
    }  # fmt: skip
    assert [p.key for p in h.publisher.published if p.detail_type == DetailType.RECONCILIATION_COMPLETED] == [
        f"completed/{world.payout_id}"
    ]


# -- not paid out (the sweep) -------------------------------------------------------------------------------
def two_payouts() -> tuple[PayoutWorld, PayoutWorld]:
    earlier = build_payout(20, payout_id="po_1Earlier", created=T0 - 7 * DAY)
    later = build_payout(20, payout_id="po_1Later", created=T0)
    return earlier, later


def test_a_charge_in_no_payout_is_not_paid_out_in_the_first_payout_that_should_have_paid_it() -> None:
    earlier, later = two_payouts()
    gap = later.inject_not_paid_out(available_days_before=3)  # available between the two payouts
    h = harness(earlier, later)
    result = sweep(h.reconciler, since=T0 - 30 * DAY, until=T0 + DAY)
    [found] = result.not_paid_out
    assert (found.kind, found.object_id, found.payout_id) == ("not_paid_out", gap.object_id, later.payout_id)
    assert found.stripe["available_on"] == "2025-11-21T16:00:00Z" and found.store == {
        "amount": 4200,
        "currency": "usd",
        "status": "succeeded",
    }
    assert h.records.record(later.payout_id)["status"] == "discrepancies"
    assert h.records.record(earlier.payout_id)["status"] == "balanced"
    assert {r.payout_id for r in result.runs} == {earlier.payout_id, later.payout_id} and result.failed == {}
    [detail] = h.discrepancies()
    assert detail["kind"] == "not_paid_out" and detail["payout_id"] == later.payout_id


def test_what_became_available_after_the_last_payout_or_before_a_manual_one_is_not_judged() -> None:
    earlier, later = two_payouts()
    later.inject_not_paid_out(available_days_before=0)  # due after the last payout: not yet
    h = harness(earlier, later)
    result = sweep(h.reconciler, since=T0 - 30 * DAY, until=T0 + DAY)
    assert result.not_paid_out == []
    first = build_payout(20, payout_id="po_1First", created=T0 - 7 * DAY)
    manual = build_payout(20, payout_id="po_1Manual", created=T0, automatic=False)
    manual.inject_not_paid_out(available_days_before=3)  # the manual payout may have taken it
    h = harness(first, manual)
    result = sweep(h.reconciler, since=T0 - 8 * DAY, until=T0 + DAY)
    assert result.not_paid_out == []
    assert result.not_judged == 14 + 1 + 1  # the manual payout's charges and refund, and the unpaid charge


def test_a_per_payout_run_keeps_the_sweeps_finding_and_a_later_sweep_withdraws_it_once_paid() -> None:
    earlier, later = two_payouts()
    gap = later.inject_not_paid_out()
    h = harness(earlier, later)
    sweep(h.reconciler, since=T0 - 30 * DAY, until=T0 + DAY)
    reconcile_payout(h.reconciler, later.payout_id)  # a payout.paid redelivered: the finding stays
    assert [d["kind"] for d in h.records.record(later.payout_id)["discrepancies"]] == ["not_paid_out"]
    again = sweep(h.reconciler, since=T0 - 30 * DAY, until=T0 + DAY)
    assert not any(r.written for r in again.runs) and len(h.discrepancies()) == 1
    # Stripe turns out to have paid it in the later payout after all: the next sweep withdraws the finding
    later.transactions.insert(0, later.unpaid.pop())
    later.objects[later.payout_id]["amount"] += 4200 - 152
    sweep(h.reconciler, since=T0 - 30 * DAY, until=T0 + DAY)
    kinds = {d["kind"] for d in h.records.record(later.payout_id)["discrepancies"]}
    assert "not_paid_out" not in kinds and gap.object_id not in str(h.records.record(later.payout_id))


def test_unpaid_judges_by_available_on_and_the_first_settled_payout_in_that_currency() -> None:
    payouts = [
        {"id": "po_a", "created": 1000 * DAY, "currency": "usd", "automatic": True, "method": "standard",
         "status": "paid", "reconciliation_status": "completed"},
        {"id": "po_b", "created": 1000 * DAY, "currency": "eur", "automatic": True, "method": "standard",
         "status": "failed", "reconciliation_status": "completed"},
    ]  # fmt: skip
    candidates = [
        StoreEntry("charge", "ch_due", 100, "usd", "succeeded", created=990 * DAY),
        StoreEntry("charge", "ch_late", 100, "usd", "succeeded", created=999 * DAY),
        StoreEntry("charge", "ch_eur", 100, "eur", "succeeded", created=990 * DAY),
        StoreEntry("charge", "ch_paid", 100, "usd", "succeeded", created=990 * DAY),
        StoreEntry("refund", "re_none", 100, "usd", "succeeded", created=990 * DAY),
    ]
    transactions = {
        "ch_due": {"id": "txn_1", "available_on": 1000 * DAY - PAYOUT_MARGIN_SECONDS, "currency": "usd"},
        "ch_late": {"id": "txn_2", "available_on": 1000 * DAY - PAYOUT_MARGIN_SECONDS + 1, "currency": "usd"},
        "ch_eur": {"id": "txn_3", "available_on": 990 * DAY, "currency": "eur"},  # its payout failed
        "ch_paid": {"id": "txn_4", "available_on": 990 * DAY, "currency": "usd"},
    }
    result = unpaid(payouts, {"ch_paid"}, candidates, transactions, account=None, livemode=False)
    assert [d.object_id for d in result.discrepancies] == ["ch_due"] and result.not_judged == 3


# -- the Stripe side ------------------------------------------------------------------------------------
@dataclass
class RecordingLister:
    pages: dict[str, Page]
    calls: list[tuple[str, dict[str, Any], str | None, str | None]] = field(default_factory=list)

    def list_page(
        self, path: str, params: dict[str, Any], *, starting_after: str | None, stripe_account: str | None
    ) -> Page:
        self.calls.append((path, params, starting_after, stripe_account))
        return self.pages.get(path, Page(objects=[], has_more=False))


def test_the_stripe_side_asks_for_expanded_sources_by_payout_and_reads_single_objects() -> None:
    from stripe_middleware.backfill.reading import StripeReader
    from tests.fakes.ports import FakeRateLimiter

    world = build_payout(3)
    lister = RecordingLister({f"/v1/payouts/{world.payout_id}": Page([world.payout], False)})
    limiter = FakeRateLimiter()
    payouts = StripePayouts(StripeReader(lister, limiter, lambda path: [(path, 100)]))
    assert payouts.payout(world.payout_id, account=CONNECTED)["id"] == world.payout_id
    payouts.transactions_page(world.payout_id, account=CONNECTED, starting_after="txn_1")
    assert lister.calls[-1] == (
        "/v1/balance_transactions",
        {"payout": world.payout_id, "limit": 100, "expand": ["data.source"]},
        "txn_1",
        CONNECTED,
    )
    with pytest.raises(UnknownPayoutError):
        payouts.payout("po_1Nothing", account=None)
    assert [r[0][0] for r in limiter.requests] == [
        "/v1/payouts/{id}",
        "/v1/balance_transactions",
        "/v1/payouts/{id}",
    ]


def test_money_in_words_knows_zero_and_three_decimal_currencies() -> None:
    assert money(123456, "usd") == "1,234.56 USD"
    assert money(-500, "jpy") == "-500 JPY"
    assert money(1234, "kwd") == "1.234 KWD"
    assert money(-5, "eur") == "-0.05 EUR"


def test_a_gap_names_at_most_100_items_and_counts_them_all() -> None:
    world = build_payout(400, customers=2)
    customer = world.inject_missing_erp_id(0).object_id
    [gap] = check(world).discrepancies
    behind = {
        s["id"]
        for s in (world.objects[t["source"]] for t in world.transactions)
        if s.get("customer") == customer
        or (s["object"] in ("refund", "dispute") and world.objects[s["charge"]]["customer"] == customer)
    }
    assert gap.item_count == len(behind) > 100
    assert len(gap.items) == 100 and set(gap.items) <= behind and list(gap.items) == sorted(gap.items)


def test_payout_events_on_the_bus_name_the_payout_to_reconcile() -> None:
    payout = stripe_event("payout.paid", account=CONNECTED)
    detail = {"id": payout["id"], "account": CONNECTED, "livemode": False, "object": payout["data"]["object"]}
    trigger = triggered_payout("payout.paid", detail)
    assert trigger is not None and (trigger.payout_id, trigger.account, trigger.livemode) == (
        payout["data"]["object"]["id"],
        CONNECTED,
        False,
    )
    assert trigger.payout == payout["data"]["object"]
    truncated = detail | {"object": None, "normalized": {"object_id": trigger.payout_id}}
    later = triggered_payout("payout.reconciliation_completed", truncated)
    assert later is not None and later.payout is None and later.payout_id == trigger.payout_id
    assert triggered_payout("payout.created", detail) is None
    assert triggered_payout("charge.succeeded", {"object": stripe_object("charge")}) is None
    assert sweep_period(3, now=T0) == (T0 - 3 * DAY, T0)


def test_a_repair_whose_publication_failed_is_published_by_the_retry() -> None:
    """The object is stored, its `object.backfilled` refused, the run fails; the retry finds it stored by
    the repair but never confirmed by a written record, and publishes it before calling it repaired."""
    world = build_payout(20)
    gap = world.inject_missing("charge", 0)
    h = harness(world)
    h.publisher.fail_keys = {f"charge/{gap.object_id}"}
    with pytest.raises(RepairNotPublishedError):
        reconcile_payout(h.reconciler, world.payout_id)
    h.publisher.fail_keys = set()  # the bus is back; SQS redelivers the payout
    reconcile_payout(h.reconciler, world.payout_id)
    record = h.records.record(world.payout_id)
    assert [(d["kind"], d["object_id"], d["repaired"]) for d in record["discrepancies"]] == [
        ("missing_in_store", gap.object_id, True)
    ]
    assert [d["object_id"] for d in h.publisher.details(DetailType.OBJECT_BACKFILLED)] == [gap.object_id]
    reconcile_payout(h.reconciler, world.payout_id)  # confirmed by the record now: not published again
    assert len(h.publisher.details(DetailType.OBJECT_BACKFILLED)) == 1


@pytest.mark.parametrize("delay_days", [2, 7, 14])
def test_the_daily_sweep_judges_every_charge_whatever_the_payout_delay(delay_days: int) -> None:
    """A charge is judged only once a payout due after it exists (available_on + a day): the scheduled
    sweep's window reaches past the longest payout delay, so a charge no payout paid out is found."""
    from functions.reconcile.handler import SWEEP_DAYS

    start = 1_767_225_600  # 2026-01-01T00:00Z
    charges = [
        StoreEntry("charge", f"ch_day{c}", 1000, "usd", "succeeded", created=start + c * DAY + 3600)
        for c in range(10)
    ]
    transactions = {
        c.object_id: {"id": f"txn_{c.object_id}", "available_on": int(c.created or 0) + delay_days * DAY}
        | {"currency": "usd", "amount": 1000, "net": 970}
        for c in charges
    }
    found: set[str] = set()
    for today in range(40):  # forty daily sweeps
        since, until = sweep_period(SWEEP_DAYS, now=start + today * DAY)
        payouts = [  # a reconciled automatic payout every day at 06:00, none paying these charges
            {"id": f"po_{d}", "created": start + d * DAY + 6 * 3600, "currency": "usd", "automatic": True}
            | {"reconciliation_status": "completed", "status": "paid", "method": "standard"}
            for d in range(today + 1)
            if since <= start + d * DAY + 6 * 3600 <= until
        ]
        candidates = [c for c in charges if since <= int(c.created or 0) <= until]
        result = unpaid(payouts, frozenset(), candidates, transactions, account=None, livemode=False)
        found |= {str(d.object_id) for d in result.discrepancies}
    assert found == {c.object_id for c in charges}
