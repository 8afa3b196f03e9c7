"""The small variant of `make soak`'s reconciliation run, so it cannot rot: a payout of 300 balance
transactions whose objects reach the store through the real processor, a tenth of the events dropped on
the way; reconciliation finds every dropped object, repairs it, and names nothing else."""

from __future__ import annotations

from bench import reconciliation_soak
from tests.fakes.payouts import build_payout


def test_every_object_whose_event_was_dropped_is_found_missing_and_repaired_and_nothing_else() -> None:
    report = reconciliation_soak.run(transactions=300, seed=11, drop_share=0.1)
    assert report["checks"] and all(report["checks"].values()), report
    dropped = report["dropped_before_processor"]
    assert dropped == round(report["objects_behind_payout"] * 0.1) > 30
    assert report["events_sent"] == report["objects_behind_payout"] - dropped
    assert report["found_missing_in_store"] == report["repaired"] == dropped
    assert report["false_discrepancies"] == 0 and report["status"] == "repaired"
    assert len(report["dropped_by_type"]) >= 4  # charges, refunds, disputes, customers ... not one kind
    # objects listed with the payout are repaired from its pages; the others cost one GET each
    assert 0 < report["repair_gets"] < dropped
    assert report["second_run_repaired"] == 0 and report["second_run_written"] is False


def test_the_objects_behind_a_payout_are_its_sources_their_parents_charges_and_customers() -> None:
    world = build_payout(20)
    behind = reconciliation_soak.behind_payout(world)
    kinds = {kind for kind, _ in behind}
    assert kinds == {"payout", "charge", "refund", "dispute", "transfer", "application_fee", "customer"}
    reversal = next(world.objects[i] for i in world.source_ids("transfer_reversal"))
    fee_refund = next(world.objects[i] for i in world.source_ids("fee_refund"))
    refund = world.objects[world.source_ids("refund")[0]]
    assert {("transfer", reversal["transfer"]), ("application_fee", fee_refund["fee"])} <= set(behind)
    assert ("charge", refund["charge"]) in behind  # the charge a refund refunds, not in the payout itself
    charged = {world.objects[i]["customer"] for i in world.source_ids("charge")}
    assert {i for kind, i in behind if kind == "customer"} == charged | {
        world.objects[refund["charge"]]["customer"]
    } | {world.objects[world.objects[i]["charge"]]["customer"] for i in world.source_ids("dispute")}
    assert set(behind) <= set(world.store)
