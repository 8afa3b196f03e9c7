"""`stripe-middleware reconcile` against a running local mode and the fake Stripe, as a finance person runs
it: payouts built from the real fixtures with injected gaps of every kind are served over HTTP, their
objects put in local mode's store the way a backfill writes them, and the CLI's report names each gap,
repairs the objects missing from the store (readable through the read API afterwards) and says so again,
with nothing left to repair, on the next run; the records reach the local warehouse."""

from __future__ import annotations

import json
from typing import Any

from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.reconciliation.models import money
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from tests.e2e.conftest import LocalStack, eventually, get
from tests.e2e.test_history import Emulator, emulator  # noqa: F401 - the localstripe fixture
from tests.e2e.test_warehouse_local import query
from tests.fakes.payouts import DAY, T0, Gap, PayoutWorld, build_payout

SCHEMA = load_metadata_schema()
# Far from one another, so a sweep over one window never reaches the other test's payouts.
EVERY_GAP_AT = T0 - 400 * DAY
REPAIRED_AT = T0 - 200 * DAY


def serve(stack: LocalStack, *worlds: PayoutWorld) -> None:
    store = ObjectStore(stack.client("dynamodb"), stack.outputs["table_name"])
    for world in worlds:
        world.serve_on(stack.stripe)
        world.load_store(store, SCHEMA)


def reconcile(stack: LocalStack, *args: str) -> Any:
    env = {"STRIPE_API_KEY": "rk_test_e2e", "STRIPE_API_BASE": stack.stripe.url}
    return stack.cli("reconcile", *args, env=env)


def gap_line(report: str, gap: Gap) -> list[str]:
    """The first words of the report's line about `gap`: state, kind, object type, object id."""
    [line] = [
        line for line in report.splitlines() if gap.kind in line.split() and gap.object_id in line.split()
    ]
    return line.split()[:4]


def readable(stack: LocalStack, world: PayoutWorld, gap: Gap) -> bool:
    status, body = get(stack, f"/v1/objects/{gap.object_type}/{gap.object_id}")
    return status == 200 and body["object"] == world.objects[gap.object_id]


def repair_gets(stack: LocalStack, gaps: list[Gap]) -> int:
    """Stripe GETs of the objects behind `gaps` (a repair reads what was not listed with its payout)."""
    ids = {g.object_id for g in gaps}
    return sum(1 for r in stack.stripe.requests if r.method == "GET" and r.path.rsplit("/", 1)[-1] in ids)


def test_every_gap_is_named_the_missing_objects_repaired_and_a_second_run_shows_them_repaired(
    local_stack: LocalStack,
) -> None:
    earlier = build_payout(30, payout_id="po_1E2eEarlier", created=EVERY_GAP_AT - 7 * DAY)
    world = build_payout(120, payout_id="po_1E2eEveryGap", created=EVERY_GAP_AT)
    injected = [*world.inject_every_gap(), world.inject_not_paid_out()]
    assert {g.kind for g in injected} == {
        "unbalanced_payout",
        "missing_in_store",
        "amount_mismatch",
        "status_mismatch",
        "not_paid_out",
        "missing_erp_id",
    }
    missing = [g for g in injected if g.kind == "missing_in_store"]
    serve(local_stack, earlier, world)
    assert not any(readable(local_stack, world, g) for g in missing)
    window = ("--since", str(EVERY_GAP_AT - 30 * DAY), "--until", str(EVERY_GAP_AT + DAY))

    first = reconcile(local_stack, *window)
    assert first.returncode == 1, first.stdout + first.stderr  # open discrepancies remain
    report = first.stdout
    for gap in injected:
        state = "repaired" if gap.kind == "missing_in_store" else "OPEN"
        assert gap_line(report, gap) == [state, gap.kind, gap.object_type, gap.object_id], gap
    assert "Payout po_1E2eEarlier (platform account, test mode)" in report
    assert "  status        balanced" in report  # the clean payout: 0 false discrepancies
    assert f"  amount        {money(world.payout['amount'], 'usd')} (automatic, standard, paid)" in report
    assert "  status        discrepancies: 9 found, 4 repaired, 5 open" in report
    assert report.splitlines()[-1] == "2 payouts: 9 discrepancies (4 repaired), 5 open"
    assert all(readable(local_stack, world, g) for g in missing)  # stored, served by the read API
    gets = repair_gets(local_stack, missing)
    in_the_warehouse = (  # the records and discrepancies are warehouse rows too
        "select payout_id, status, discrepancies_found, repaired_when_found from payout_reconciliation "
        "where payout_id in ('po_1E2eEarlier', 'po_1E2eEveryGap') order by payout_id"
    )
    columns = ("payout_id", "status", "discrepancies_found", "repaired_when_found")
    expected = [
        dict(zip(columns, (earlier.payout_id, "balanced", "0", "0"), strict=True)),
        dict(zip(columns, (world.payout_id, "discrepancies", "9", "4"), strict=True)),
    ]
    eventually(lambda: query(local_stack, in_the_warehouse) == expected, timeout=120, interval=2)

    second = reconcile(local_stack, *window, "--json")
    assert second.returncode == 1, second.stderr
    answer = json.loads(second.stdout)
    record = next(r for r in answer["records"] if r["payout_id"] == world.payout_id)
    found = {Gap(d["kind"], d["object_type"], d["object_id"]): d["repaired"] for d in record["discrepancies"]}
    assert found == {g: g.kind == "missing_in_store" for g in injected}  # the same gaps, nothing else
    assert answer["counters"]["repaired"] == 0 and repair_gets(local_stack, missing) == gets


def test_a_payout_missing_objects_is_repaired_and_balances_and_a_second_run_finds_nothing_to_do(
    local_stack: LocalStack,
) -> None:
    world = build_payout(60, payout_id="po_1E2eRepaired", created=REPAIRED_AT)
    missing = [
        world.inject_missing("charge", 0),
        world.inject_missing("refund", 0),
        world.inject_missing("dispute", 0),
        world.inject_missing_parent(),
        world.inject_missing_customer(1),
    ]
    serve(local_stack, world)

    for run, stored in ((1, "stored 5 missing objects."), (2, "stored 0 missing objects.")):
        result = reconcile(local_stack, "--payout", world.payout_id)
        assert result.returncode == 0, (run, result.stdout + result.stderr)
        report = result.stdout
        for gap in missing:
            assert gap_line(report, gap) == ["repaired", gap.kind, gap.object_type, gap.object_id]
        assert "  status        repaired: 5 found, 5 repaired, 0 open" in report
        assert report.splitlines()[-2].endswith(stored)
        assert report.splitlines()[-1] == "1 payout: 5 discrepancies (5 repaired)"
        assert all(readable(local_stack, world, g) for g in missing)
    total = next(line for line in report.splitlines() if line.split()[:2] == ["total", "USD"])
    paid = next(line for line in report.splitlines() if line.split()[:2] == ["paid", "out"])
    assert total.split()[-1] == paid.split()[-1]  # the transactions add up to the payout


def test_an_unknown_payout_is_bad_input(local_stack: LocalStack) -> None:
    result = reconcile(local_stack, "--payout", "po_1E2eNowhere")
    assert result.returncode == 2
    assert "Stripe has no payout po_1E2eNowhere" in result.stderr


def test_the_localstripe_emulators_payouts_are_reported_unreconcilable_by_stripe_without_gaps(
    local_stack: LocalStack,
    emulator: Emulator,  # noqa: F811 - the fixture imported above
) -> None:
    v1 = emulator.client.v1
    standard = v1.payouts.create(params={"amount": 12_345, "currency": "eur"})
    instant = v1.payouts.create(params={"amount": 500, "currency": "eur", "method": "instant"})
    for payout, why in ((standard, "a manual payout"), (instant, "an instant payout")):
        result = local_stack.cli("reconcile", "--payout", payout.id, env=emulator.env)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"Payout {payout.id} (platform account, test mode)"
        assert lines[1] == "  status        unreconcilable_by_stripe"
        assert lines[4].startswith(f"  why           {why}")
        assert "Discrepancies" not in result.stdout
        assert lines[-1] == "1 payout: nothing to judge; 1 unreconcilable by Stripe"
    assert (
        "123.45 EUR (manual, standard, pending)"
        in local_stack.cli("reconcile", "--payout", standard.id, env=emulator.env).stdout
    )
