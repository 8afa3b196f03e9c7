"""`stripe-middleware reconcile`: the report a finance person reads, its exit code, the request the
arguments make, and the deployed path's answer, on payouts built from the real fixtures and reconciled on
in-memory ports (tests/fakes/payouts.py)."""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stripe_middleware.backfill.ports import BackfillFailedError, StripeUnavailableError
from stripe_middleware.reconciliation.models import money
from stripe_middleware.reconciliation.ports import UnknownPayoutError
from stripe_middleware.reconciliation.repair import SnapshotRepairer
from stripe_middleware.reconciliation.run import Reconciler
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware_dev import cli, reconcile, targets
from tests.fakes.payouts import (
    DAY,
    T0,
    FakePayoutSource,
    FakeStoredObjects,
    InMemoryRecords,
    PayoutWorld,
    build_payout,
)
from tests.fakes.ports import FakePublisher, FakeStore

SCHEMA = load_metadata_schema()
SINCE, UNTIL = T0 - 30 * DAY, T0 + DAY


def reconciler_of(*worlds: PayoutWorld) -> Reconciler:
    store = FakeStore()
    for world in worlds:
        world.load_store(store, SCHEMA)
    publisher = FakePublisher()
    return Reconciler(
        stripe=FakePayoutSource(list(worlds)),
        objects=FakeStoredObjects(store),
        records=InMemoryRecords(),
        repairer=SnapshotRepairer(store, publisher, SCHEMA, clock=lambda: T0 + 10 * DAY),
        publisher=publisher,
        schema=SCHEMA,
        livemode=False,
    )


def line_of(report: str, *words: str) -> str:
    """The one report line holding every word."""
    [line] = [line for line in report.splitlines() if all(w in line.split() for w in words)]
    return line


def cells(line: str) -> list[str]:
    return line.split()


# -- the report -----------------------------------------------------------------------------------------
def test_a_clean_payout_reports_its_facts_and_totals_per_reporting_category_and_balances() -> None:
    world = build_payout(40)
    answer = reconcile.reconcile(reconciler_of(world), {"payout_id": world.payout_id, "account": None})
    report = reconcile.format_report(answer)
    [record] = answer["records"]
    payout = world.payout
    assert f"Payout {world.payout_id} (platform account, test mode)" in report
    assert line_of(report, "status") == "  status        balanced"
    assert money(payout["amount"], "usd") in line_of(report, "amount")
    assert "automatic, standard, paid" in line_of(report, "amount")
    assert line_of(report, "arrival") == "  arrival date  2025-11-26 (created 2025-11-24)"
    for total in record["totals"]:  # each category: count, gross, fees and net in major units
        row = cells(line_of(report, total["reporting_category"], "USD"))
        assert row[1:] == [
            "USD",
            str(total["count"]),
            *(money(total[k], "usd").removesuffix(" USD") for k in ("amount", "fee", "net")),
        ]
    charges = [t for t in world.transactions if t["reporting_category"] == "charge"]
    assert cells(line_of(report, "charge", "USD"))[2] == str(len(charges)) == "28"
    total = cells(line_of(report, "total", "USD"))
    paid_out = cells(line_of(report, "paid", "out"))
    assert total[2] == "40" and total[-1] == paid_out[-1] == money(payout["amount"], "usd").removesuffix(
        " USD"
    )
    assert "Discrepancies" not in report
    assert report.splitlines()[-1] == "1 payout: balanced"
    assert reconcile.exit_code(answer) == 0


def test_every_gap_is_named_with_its_ids_amounts_and_whether_it_was_repaired() -> None:
    world = build_payout(60, foreign_every=7)
    injected = world.inject_every_gap()
    answer = reconcile.reconcile(reconciler_of(world), {"payout_id": world.payout_id, "account": None})
    report = reconcile.format_report(answer)
    for gap in injected:
        state = "repaired" if gap.kind == "missing_in_store" else "OPEN"
        assert line_of(report, gap.kind, gap.object_id).split()[:4] == [
            state,
            gap.kind,
            gap.object_type,
            gap.object_id,
        ]
    mismatch = next(g for g in injected if g.kind == "amount_mismatch")
    stripe_amount = world.objects[mismatch.object_id]["amount"]
    assert (
        f"Stripe: {money(stripe_amount, 'usd')} succeeded; store: {money(stripe_amount + 1, 'usd')} succeeded"
        in report
    )
    charge = next(g for g in injected if g.kind == "missing_in_store" and g.object_type == "charge")
    assert line_of(report, charge.object_id, "(txn_1TestPayout00000,").endswith("charge)")
    assert "Stripe: 10.00 EUR succeeded; store: not there" in report  # in the charge's own currency
    amount = world.payout["amount"]
    unbalanced = f"payout {money(amount, 'usd')}, transactions net {money(amount - 100, 'usd')}, difference"
    assert line_of(report, "payout", "net").strip() == f"{unbalanced} -1.00 USD"
    assert "items: ch_1TestPayout00000, ch_1TestPayout00006, ch_1TestPayout00012 and 5 more" in report
    assert line_of(report, "status").endswith("discrepancies: 8 found, 4 repaired, 4 open")
    assert report.splitlines()[-1] == "1 payout: 8 discrepancies (4 repaired), 4 open"
    assert reconcile.exit_code(answer) == 1


def test_a_payout_whose_gaps_were_all_repaired_exits_0_and_a_second_run_says_so_again() -> None:
    world = build_payout(40)
    world.inject_missing("charge", 0)
    world.inject_missing_parent()
    reconciler = reconciler_of(world)
    first = reconcile.reconcile(reconciler, {"payout_id": world.payout_id, "account": None})
    second = reconcile.reconcile(reconciler, {"payout_id": world.payout_id, "account": None})
    for answer, stored in ((first, "stored 2 missing objects."), (second, "stored 0 missing objects.")):
        report = reconcile.format_report(answer)
        assert line_of(report, "status").endswith("repaired: 2 found, 2 repaired, 0 open")
        assert report.splitlines()[-2].endswith(stored)
        assert report.splitlines()[-1] == "1 payout: 2 discrepancies (2 repaired)"
        assert reconcile.exit_code(answer) == 0


def test_a_sweep_reports_each_payout_the_not_paid_out_charge_and_what_stripe_cannot_tie() -> None:
    clean = build_payout(20, payout_id="po_1Clean", created=T0 - 7 * DAY)
    gaps = build_payout(40, payout_id="po_1Unpaid")
    unpaid = gaps.inject_not_paid_out()
    manual = build_payout(20, payout_id="po_1Manual", created=T0 + 3600, automatic=False)
    pending = build_payout(20, payout_id="po_1Pending", created=T0 + 7200)
    pending.payout["reconciliation_status"] = "in_progress"
    answer = reconcile.reconcile(
        reconciler_of(clean, gaps, manual, pending), {"since": SINCE, "until": UNTIL, "accounts": [None]}
    )
    report = reconcile.format_report(answer)
    assert [r["payout_id"] for r in answer["records"]] == ["po_1Manual", "po_1Unpaid", "po_1Clean"]
    assert line_of(report, "OPEN", "not_paid_out").split()[:4] == [
        "OPEN",
        "not_paid_out",
        "charge",
        unpaid.object_id,
    ]
    assert "Stripe: 42.00 USD available on 2025-11-21; store: 42.00 USD succeeded" in report
    assert "a manual payout: you chose its timing and amount" in line_of(report, "why")
    assert "Payout po_1Pending: not reconciled yet" in report
    assert "reconciliation_status in_progress" in report
    assert report.splitlines()[-1] == (
        "4 payouts: 1 discrepancy (0 repaired), 1 open; 1 unreconcilable by Stripe; "
        "1 not reconciled by Stripe yet"
    )
    assert reconcile.exit_code(answer) == 1
    assert answer["not_paid_out"] == [d for r in answer["records"] for d in r["discrepancies"]]


def test_each_currency_has_its_rows_and_total_and_zero_decimal_currencies_have_no_cents() -> None:
    world = build_payout(20, currency="jpy")
    world.transactions[0]["currency"] = "eur"  # settled in a currency the payout is not in
    answer = reconcile.reconcile(reconciler_of(world), {"payout_id": world.payout_id, "account": None})
    report = reconcile.format_report(answer)
    eur = world.transactions[0]
    assert cells(line_of(report, "charge", "EUR"))[2:] == [
        "1",
        *(money(eur[k], "eur").removesuffix(" EUR") for k in ("amount", "fee", "net")),
    ]
    assert cells(line_of(report, "paid", "out", "EUR"))[-1] == "0.00"
    jpy_net = sum(t["net"] for t in world.transactions[1:-1])
    assert cells(line_of(report, "total", "JPY"))[-1] == f"{jpy_net:,}"  # yen: no decimals
    assert {g.split()[2] for g in report.splitlines() if "unbalanced_payout" in g} == {"payout"}
    assert len([line for line in report.splitlines() if "OPEN      unbalanced_payout" in line]) == 2


def test_failed_payouts_and_not_paid_out_gaps_no_record_carries_are_reported_and_fail_the_run() -> None:
    world = build_payout(20)
    answer = reconcile.reconcile(reconciler_of(world), {"payout_id": world.payout_id, "account": None})
    lost = {
        "discrepancy_id": "rd_lost",
        "kind": "not_paid_out",
        "object_type": "refund",
        "object_id": "re_Lost",
        "stripe": {"amount": -500, "currency": "usd", "available_on": "2025-11-20T00:00:00Z"},
        "store": {"amount": 500, "currency": "usd", "status": "succeeded"},
        "message": "refund re_Lost is in no payout",
    }
    answer |= {"not_paid_out": [lost], "failed": {"po_1Other": "store_unavailable: throttled"}}
    report = reconcile.format_report(answer)
    assert "FAILED  payout po_1Other: store_unavailable: throttled (run again to finish it)" in report
    assert line_of(report, "not_paid_out", "re_Lost").split()[:2] == ["OPEN", "not_paid_out"]
    assert report.splitlines()[-1] == "2 payouts: 1 discrepancy (0 repaired), 1 open; 1 failed (run again)"
    assert reconcile.exit_code(answer) == 1
    assert reconcile.exit_code(answer | {"not_paid_out": []}) == 1  # a failed payout alone fails the run


def test_a_truncated_record_says_how_many_more_and_of_which_kinds() -> None:
    world = build_payout(20)
    answer = reconcile.reconcile(reconciler_of(world), {"payout_id": world.payout_id, "account": None})
    record = answer["records"][0]
    shown = {
        "discrepancy_id": "rd_1",
        "kind": "amount_mismatch",
        "object_type": "charge",
        "object_id": "ch_1",
    }
    record |= {
        "status": "discrepancies",
        "discrepancies": [shown],
        "discrepancy_counts": {"missing_in_store": 1500, "amount_mismatch": 1},
        "discrepancies_truncated": True,
    }
    report = reconcile.format_report(answer)
    assert "  ... 1500 more, counted in 1500 missing_in_store, 1 amount_mismatch" in report
    assert report.splitlines()[-1] == "1 payout: 1501 discrepancies (0 repaired), 1501 open"


def test_an_empty_period_says_so() -> None:
    answer: dict[str, Any] = {"records": [], "not_paid_out": [], "failed": {}, "counters": {}}
    assert reconcile.format_report(answer).splitlines() == [
        "No payout was created in that period.",
        "",
        "0 payouts: nothing to judge",
    ]
    assert reconcile.exit_code(answer) == 0


# -- the arguments --------------------------------------------------------------------------------------
def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    reconcile.register(parser.add_subparsers())
    return parser.parse_args(["reconcile", *argv])


def test_the_arguments_make_the_functions_request() -> None:
    now = T0 + 0.5
    assert reconcile.build_request(parse("--payout", "po_1X"), now=now) == {
        "payout_id": "po_1X",
        "account": None,
    }
    assert reconcile.build_request(parse("--payout", "po_1X", "--accounts", "acct_1A"), now=now) == {
        "payout_id": "po_1X",
        "account": "acct_1A",
    }
    day = 1_763_942_400  # 2025-11-24T00:00:00Z
    assert reconcile.build_request(parse("--since", "2025-11-24"), now=now) == {
        "since": day,
        "until": T0,
        "accounts": [None],
    }
    request = reconcile.build_request(
        parse("--since", "2025-11-01", "--until", "2025-11-24", "--accounts", "platform,acct_1A,platform"),
        now=now,
    )
    assert request == {"since": day - 23 * DAY, "until": day + DAY - 1, "accounts": [None, "acct_1A"]}
    unix = reconcile.build_request(parse("--since", "100", "--until", "200"), now=now)
    assert (unix["since"], unix["until"]) == (100, 200)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--payout", "ch_1X"], "not a payout id"),
        (["--payout", "po_1X", "--accounts", "platform,acct_1A"], "at most one"),
        (["--payout", "po_1X", "--until", "2025-11-24"], "--until goes with --since"),
        (["--since", "2025-11-24", "--until", "2025-11-01"], "before --since"),
        (["--since", "2025-11-24", "--accounts", "everyone"], "'everyone' is neither"),
        (["--since", "2025-11-24", "--accounts", ","], "names no account"),
    ],
)
def test_bad_input_exits_2_with_a_reason_before_anything_runs(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--state-dir", str(tmp_path), "reconcile", *argv]) == 2  # no local mode is running
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["--payout", "po_1", "--since", "2025-11-01"], ["--since", "November"], ["--until", "2025-11-01"]],
)
def test_arguments_argparse_refuses_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["reconcile", *argv])
    assert exited.value.code == 2


def test_a_local_run_without_a_stripe_key_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "outputs.json").write_text(json.dumps({"table_name": "store"}))
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    assert cli.main(["--state-dir", str(tmp_path), "reconcile", "--payout", "po_1X"]) == 2
    assert "STRIPE_API_KEY" in capsys.readouterr().err


def test_json_prints_the_answer_and_keeps_the_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build_payout(20)
    world.inject_amount_mismatch()
    answer = reconcile.reconcile(reconciler_of(world), {"payout_id": world.payout_id, "account": None})
    (tmp_path / "outputs.json").write_text("{}")
    asked: list[dict[str, Any]] = []

    def run_locally(target: targets.Target, request: dict[str, Any]) -> dict[str, Any]:
        asked.append(request)
        return answer

    monkeypatch.setattr(reconcile, "_run_locally", run_locally)
    assert cli.main(["--state-dir", str(tmp_path), "reconcile", "--payout", world.payout_id, "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == answer
    assert asked == [{"payout_id": world.payout_id, "account": None}]


# -- a deployed stage -----------------------------------------------------------------------------------
@dataclass
class FakeLambda:
    answer: dict[str, Any]
    function_error: str | None = None
    invoked: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, *, FunctionName: str, Payload: bytes) -> dict[str, Any]:
        self.invoked.append({"function": FunctionName, "payload": json.loads(Payload)})
        response: dict[str, Any] = {"Payload": io.BytesIO(json.dumps(self.answer).encode())}
        if self.function_error:
            response["FunctionError"] = self.function_error
        return response


def deployed(monkeypatch: pytest.MonkeyPatch, fake: FakeLambda) -> None:
    class Deployed(targets.Target):
        def client(self, service: str, **options: Any) -> Any:
            assert service == "lambda" and options["config"].read_timeout >= 900
            return fake

    target = Deployed({"reconcile_function_name": "stripe-middleware-prod-reconcile"}, local=False)
    monkeypatch.setattr(targets, "deployed", lambda stage: target)


def test_a_stage_invokes_the_deployed_function_and_reports_its_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build_payout(20)
    answer = reconcile.reconcile(reconciler_of(world), {"since": SINCE, "until": UNTIL, "accounts": [None]})
    fake = FakeLambda(answer)
    deployed(monkeypatch, fake)
    argv = ["reconcile", "--stage", "prod", "--since", "2025-10-25", "--until", "1764086400"]
    assert cli.main([*argv, "--accounts", "platform,acct_1A"]) == 0
    assert fake.invoked == [
        {
            "function": "stripe-middleware-prod-reconcile",
            "payload": {"since": 1_761_350_400, "until": 1_764_086_400, "accounts": [None, "acct_1A"]},
        }
    ]
    out = capsys.readouterr().out
    assert f"Payout {world.payout_id}" in out and out.splitlines()[-1] == "1 payout: balanced"


@pytest.mark.parametrize(
    ("error_type", "code"), [("UnknownPayoutError", 2), ("RejectedError", 2), ("StripeUnavailableError", 1)]
)
def test_a_failed_invocation_is_an_error_unknown_payouts_being_bad_input(
    error_type: str, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeLambda({"errorType": error_type, "errorMessage": "Stripe has no payout po_1X"}, "Unhandled")
    deployed(monkeypatch, fake)
    assert cli.main(["reconcile", "--stage", "prod", "--payout", "po_1X"]) == code
    assert "the reconcile function failed: Stripe has no payout po_1X" in capsys.readouterr().err


def test_an_idle_function_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed(monkeypatch, FakeLambda({"skipped": "the StripeReadOnlyKey secret holds no Stripe key yet"}))
    assert cli.main(["reconcile", "--stage", "prod", "--payout", "po_1X"]) == 1
    assert (
        "reconciliation is idle: the StripeReadOnlyKey secret holds no Stripe key yet"
        in capsys.readouterr().err
    )


class LambdaContext:
    function_name = "reconcile"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:reconcile"
    aws_request_id = "req-1"


@pytest.mark.parametrize(
    "request_",
    [
        {"payout_id": "po_1Unpaid", "account": None},
        {"since": SINCE, "until": UNTIL, "accounts": [None]},
    ],
)
def test_a_local_run_answers_exactly_as_the_deployed_function(
    request_: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.reconcile import handler

    def worlds() -> list[PayoutWorld]:
        gaps = build_payout(40, payout_id="po_1Unpaid")
        gaps.inject_not_paid_out()
        gaps.inject_missing("charge", 0)
        pending = build_payout(20, payout_id="po_1Pending", created=T0 + 7200)
        pending.payout["reconciliation_status"] = "in_progress"
        return [build_payout(20, payout_id="po_1Clean", created=T0 - 7 * DAY), gaps, pending]

    deployed_reconciler = reconciler_of(*worlds())
    monkeypatch.setattr(handler, "reconciler", lambda: deployed_reconciler)
    expected = json.loads(json.dumps(handler.handler(dict(request_), LambdaContext())))
    assert expected["records"]  # the comparison is about something
    assert json.loads(json.dumps(reconcile.reconcile(reconciler_of(*worlds()), request_))) == expected


def test_charges_and_refunds_that_cannot_be_judged_yet_are_counted() -> None:
    answer: dict[str, Any] = {"records": [], "not_judged": 3, "counters": {}}
    assert (
        "3 succeeded charges and refunds of the period could not be judged paid out or not yet"
        in reconcile.format_report(answer)
    )


LOCAL_OUTPUTS = {
    "table_name": "store",
    "event_bus_name": "bus",
    "backfill_dead_letter_queue_url": "http://127.0.0.1:1/000000000000/backfill-dlq",
    "events_queue_url": "http://127.0.0.1:1/000000000000/events",
    "aws_endpoint_url": "http://127.0.0.1:1",
    "region": "us-east-1",
}


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (UnknownPayoutError("Stripe has no payout po_1X in the platform account"), 2, "no payout po_1X"),
        (StripeUnavailableError("Stripe kept answering 500"), 1, "run again to finish"),
        (StoreUnavailableError("BatchGetItem failed"), 1, "run again to finish"),
        (BackfillFailedError("Stripe refused GET /v1/payouts (401): Invalid API Key"), 1, "Invalid API Key"),
    ],
)
def test_a_local_run_that_cannot_finish_says_why(
    error: Exception,
    code: int,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "outputs.json").write_text(json.dumps(LOCAL_OUTPUTS))
    monkeypatch.setenv("STRIPE_API_KEY", "rk_test_unit")
    ran: list[Reconciler] = []

    def failing(reconciler: Reconciler, request: dict[str, Any]) -> dict[str, Any]:
        ran.append(reconciler)
        raise error

    monkeypatch.setattr(reconcile, "reconcile", failing)
    assert cli.main(["--state-dir", str(tmp_path), "reconcile", "--payout", "po_1X"]) == code
    assert says in capsys.readouterr().err
    [reconciler] = ran  # built from local mode's outputs, as `backfill` builds its run
    assert reconciler.livemode is False
