"""Training and backtesting the churn model: the plain-Python fit against scikit-learn, the metrics on
hand-computed examples, the dataset's labels, and train/backtest (library and dev CLI) on a small stream
of Stripe events generated here from the real fixtures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression

from events import stripe_event, stripe_object
from stripe_middleware.signals.churn import FEATURES, load_churn_model
from stripe_middleware.signals.facts import Fact
from stripe_middleware.signals.training import (
    TrainingDataError,
    backtest_model,
    build_dataset,
    calibration,
    digest,
    evaluate,
    fit_logistic,
    precision_at,
    roc_auc,
    train_model,
)
from stripe_middleware_dev import REPO_ROOT, signals_cli

DAY = 86_400
MONTH = 30 * DAY
BEGIN = 1_735_689_600  # 2025-01-01T00:00:00Z
ITEM = stripe_object("subscription")["items"]["data"][0]
PM_CARD = stripe_object("payment_method")["card"]


# -- the fit ----------------------------------------------------------------------------------------------
def random_problem(seed: int, n: int = 400) -> tuple[list[list[float]], list[int]]:
    rng = random.Random(seed)
    rows, labels = [], []
    for _ in range(n):
        row = [rng.gauss(0, 1), rng.gauss(0, 1), float(rng.random() < 0.3), float(rng.randrange(4))]
        z = -1 + 1.5 * row[0] - 0.7 * row[1] + 2 * row[2] + 0.1 * row[3]
        rows.append(row)
        labels.append(int(rng.random() < 1 / (1 + math.exp(-z))))
    return rows, labels


@pytest.mark.parametrize("l2", [0.01, 1.0, 25.0])
def test_the_fit_finds_scikit_learns_coefficients(l2: float) -> None:
    rows, labels = random_problem(seed=int(l2 * 100))
    coefficients, intercept = fit_logistic(rows, labels, l2=l2)
    reference = LogisticRegression(C=1 / l2, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    reference.fit(rows, labels)
    assert coefficients == pytest.approx(list(reference.coef_[0]), abs=1e-6)
    assert intercept == pytest.approx(reference.intercept_[0], abs=1e-6)


def test_the_fit_weights_rows_like_scikit_learns_sample_weights() -> None:
    rows, labels = random_problem(seed=3, n=150)
    weights = [1 + (i % 4) for i in range(len(rows))]
    coefficients, intercept = fit_logistic(rows, labels, l2=0.5, weights=weights)
    reference = LogisticRegression(C=2.0, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    reference.fit(rows, labels, sample_weight=weights)
    assert [*coefficients, intercept] == pytest.approx(
        [*reference.coef_[0], reference.intercept_[0]], abs=1e-6
    )


def test_separable_data_stays_finite_under_regularization() -> None:
    rows = [[float(x)] for x in range(-5, 6) if x]
    labels = [int(r[0] > 0) for r in rows]
    [coefficient], intercept = fit_logistic(rows, labels, l2=0.1)
    reference = LogisticRegression(C=10.0, solver="newton-cholesky", tol=1e-12).fit(rows, labels)
    assert coefficient == pytest.approx(reference.coef_[0][0], rel=1e-6)
    assert intercept == pytest.approx(reference.intercept_[0], abs=1e-6)


# -- metrics ----------------------------------------------------------------------------------------------
SCORES = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
LABELS = [1, 1, 0, 1, 0, 0, 1, 0, 0, 0]
RULE = [True, False, True, False, False, True, True, False, False, False]


def test_roc_auc_is_the_share_of_churned_and_stayed_pairs_ranked_right() -> None:
    # churned at 0.9, 0.8, 0.6, 0.3 above 6, 6, 5 and 3 of the 6 who stayed: 20 of 24 pairs
    assert roc_auc(SCORES, LABELS) == pytest.approx(20 / 24)
    assert roc_auc([0.5, 0.5, 0.2], [1, 0, 0]) == pytest.approx(0.75)  # a tie counts half
    assert roc_auc([0.1, 0.2], [1, 1]) is None


def test_precision_and_calibration_by_decile() -> None:
    assert precision_at(SCORES, LABELS, 1) == 1.0
    assert precision_at(SCORES, LABELS, 4) == 0.75
    assert calibration(SCORES * 2, LABELS * 2) == [  # 20 customers: two per decile, lowest scores first
        {"decile": d + 1, "count": 2, "predicted": s, "observed": float(label)}
        for d, (s, label) in enumerate(zip(SCORES[::-1], LABELS[::-1], strict=True))
    ]


def test_the_lift_over_the_rule_compares_at_the_rules_coverage() -> None:
    metrics = evaluate(SCORES, LABELS, RULE)
    # the rule flags 4 customers, 2 of whom churned; the model's top 4 (0.9, 0.8, 0.7, 0.6) hold 3
    assert metrics["rule"] | {"roc_auc": None} == {
        "name": "a payment failed in the last 30 days",
        "flagged": 4,
        "precision": 0.5,
        "recall": 0.5,
        "roc_auc": None,
    }
    assert metrics["model_at_rule_coverage"] == {"count": 4, "precision": 0.75, "recall": 0.75}
    assert metrics["lift_over_rule"] == 1.5
    assert metrics["top_decile"] == {"count": 1, "precision": 1.0, "lift": 2.5}  # base rate 0.4
    assert (metrics["roc_auc"], metrics["base_rate"]) == (round(20 / 24, 4), 0.4)


# -- a generated stream -----------------------------------------------------------------------------------
class Stream:
    """Stripe events of subscription customers from the real fixtures, with their churn mechanisms."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(
        self, event_type: str, at: int, *, created: int | None = None, previous: Any = None, **fields: Any
    ) -> None:
        event = stripe_event(event_type, created=at, previous_attributes=previous, **fields)
        event["data"]["object"]["created"] = created or at
        self.events.append(event)

    def subscription(self, n: int, at: int, *, start: int, quantity: int = 2, **fields: Any) -> None:
        item = {**ITEM, "quantity": quantity, "current_period_end": fields.pop("period_end", at + MONTH)}
        state = {
            "id": f"sub_{n}",
            "customer": f"cus_{n}",
            "status": "active",
            "cancel_at_period_end": False,
            "cancel_at": None,
            "pause_collection": None,
            "trial_start": None,
            "default_payment_method": None,
            "items": {"object": "list", "data": [item]},
        }
        event_type = fields.pop("event_type", "customer.subscription.updated")
        previous = fields.pop("previous", None)
        self.emit(event_type, at, created=start, previous=previous, **state | fields)

    def payment(self, n: int, key: str, at: int, *, failed: bool = False, attempts: int = 1) -> None:
        status = "failed" if failed else "succeeded"
        self.emit(f"charge.{status}", at, id=f"ch_{n}_{key}", customer=f"cus_{n}", status=status, amount=4000)
        parent = {"type": "subscription_details", "subscription_details": {"subscription": f"sub_{n}"}}
        invoice_status, event_type = (
            ("open", "invoice.payment_failed") if failed else ("paid", "invoice.paid")
        )
        self.emit(
            event_type,
            at,
            created=at - attempts * DAY,
            id=f"in_{n}_{key.split('_', maxsplit=1)[0]}",
            customer=f"cus_{n}",
            status=invoice_status,
            amount_due=4000,
            attempt_count=attempts,
            billing_reason="subscription_cycle",
            parent=parent,
        )


@cache
def generated(customers: int = 240, months: int = 15, seed: int = 11) -> tuple[dict[str, Any], ...]:
    """Customers who pay monthly until, for most of them, they churn: involuntarily (renewals fail, the
    subscription goes past due and ends weeks later unless a retry succeeds), voluntarily (a
    cancellation scheduled for the period end, sometimes after a downgrade) or without warning."""
    rng, stream, end = random.Random(seed), Stream(), BEGIN + months * MONTH
    for n in range(customers):
        kind = rng.choices(["loyal", "involuntary", "voluntary", "silent"], weights=[52, 22, 18, 8])[0]
        start = BEGIN + rng.randrange(0, 90) * DAY
        trouble = rng.randrange(3, months)
        stream.emit("payment_method.attached", start - DAY, id=f"pm_{n}", customer=f"cus_{n}", card=PM_CARD)
        stream.subscription(n, start, start=start, event_type="customer.subscription.created")
        for month in range(1, months + 1):
            at = start + month * MONTH
            if at > end:
                break
            if kind == "involuntary" and month == trouble:
                stream.payment(n, f"{month}_a", at, failed=True)
                stream.subscription(n, at + 60, start=start, status="past_due", period_end=at + MONTH)
                stream.payment(n, f"{month}_b", at + 5 * DAY, failed=True, attempts=2)
                if rng.random() < 0.75:
                    stream.subscription(
                        n,
                        at + rng.randrange(15, 40) * DAY,
                        start=start,
                        status="canceled",
                        event_type="customer.subscription.deleted",
                    )
                    break
                stream.payment(n, f"{month}_c", at + 8 * DAY, attempts=3)
                stream.subscription(n, at + 8 * DAY + 60, start=start)
                continue
            if kind == "voluntary" and month == trouble:
                if rng.random() < 0.5:
                    before = {"items": {"object": "list", "data": [{**ITEM, "quantity": 4}]}}
                    stream.subscription(
                        n, at - 40 * DAY, start=start, previous=before, period_end=at - 30 * DAY
                    )
                cancel = {"cancel_at_period_end": False}
                stream.subscription(n, at - 20 * DAY, start=start, cancel_at_period_end=True, previous=cancel)
                stream.subscription(
                    n, at, start=start, status="canceled", event_type="customer.subscription.deleted"
                )
                break
            if kind == "silent" and month == trouble:
                stream.subscription(
                    n, at, start=start, status="canceled", event_type="customer.subscription.deleted"
                )
                break
            if kind == "loyal" and rng.random() < 0.08:  # a declined renewal a retry pays the next day
                stream.payment(n, f"{month}_x", at, failed=True)
                stream.payment(n, f"{month}", at + DAY, attempts=2)
            else:
                stream.payment(n, f"{month}", at)
            stream.subscription(n, at + 60, start=start)
    return tuple(stream.events)


CUTOFF = BEGIN + 12 * MONTH  # three months of the stream after it: the 60-day horizon is complete


def test_the_dataset_labels_churn_within_the_horizon_from_the_events_before_the_snapshot() -> None:
    stream = Stream()
    at = BEGIN + 100 * DAY
    for n, ends in enumerate([at + 30 * DAY, at + 90 * DAY, at - DAY, None]):  # churns, later, before, never
        stream.subscription(n, BEGIN, start=BEGIN, event_type="customer.subscription.created")
        if ends:
            stream.subscription(
                n, ends, start=BEGIN, status="canceled", event_type="customer.subscription.deleted"
            )
    stream.payment(3, "late", at + DAY, failed=True)  # after the snapshot: unseen
    examples = build_dataset(stream.events, [at], horizon_days=60)
    assert [(e.subject.rsplit("/", 1)[1], e.label) for e in examples] == [
        ("cus_0", 1),
        ("cus_1", 0),
        ("cus_3", 0),
    ]
    assert all(e.features["failed_payments_30d"] == 0 and e.as_of == at for e in examples)
    assert set(examples[0].features) == set(FEATURES)


def test_a_digest_reads_a_stream_once_and_trains_as_the_events_do() -> None:
    events = list(generated())
    lazy = digest(iter([*events, {}, {"id": "evt_no_time"}]))  # a generator; two objects that are no events
    assert (len(lazy), lazy.ignored) == (len(events), 2)
    assert all(isinstance(f, Fact) for m in lazy.moments for f in m.facts)  # facts, not the objects
    at = CUTOFF - 60 * DAY
    assert build_dataset(lazy, [at], horizon_days=60) == build_dataset(events, [at], horizon_days=60)


def test_training_learns_from_the_past_and_beats_the_rule_out_of_time() -> None:
    events = list(generated())
    model, report = train_model(events, cutoff=CUTOFF, horizon_days=60, trained_at="2026-01-01T00:00:00Z")
    assert model.prior is False and model.version.startswith("churn@")
    assert report["training"]["examples"] > 500 and len(report["training"]["snapshots"]) == 8
    held_out = model.metrics or {}
    assert (
        held_out["held_out_snapshot"] == "2025-10-28T00:00:00Z"
    )  # cutoff - 60 days: its horizon ends by the cutoff
    assert held_out["roc_auc"] > 0.75
    assert model.coefficients["cancel_at_period_end"] > 0 and model.coefficients["past_due"] > 0
    backtest = backtest_model(events, model, cutoff=CUTOFF, horizon_days=60)
    assert backtest["horizon_complete"] is True and backtest["prior"] is False
    metrics = backtest["metrics"]
    assert metrics["roc_auc"] > 0.75 and metrics["roc_auc"] > metrics["rule"]["roc_auc"] + 0.15
    assert metrics["lift_over_rule"] > 1.5
    assert sum(row["count"] for row in metrics["calibration"]) == metrics["examples"]


def test_the_prior_ranks_the_generated_customers_too() -> None:
    prior = load_churn_model(REPO_ROOT / "config" / "churn_model.json")
    metrics = backtest_model(list(generated()), prior, cutoff=CUTOFF, horizon_days=60)["metrics"]
    assert metrics["roc_auc"] > max(0.6, metrics["rule"]["roc_auc"])


def test_too_short_a_history_cannot_train() -> None:
    with pytest.raises(TrainingDataError, match="training needs more than 150"):
        train_model(list(generated()), cutoff=BEGIN + 100 * DAY, horizon_days=60)


# -- the dev CLI ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "events.jsonl.gz"
    with gzip.open(path, "wt") as out:
        out.writelines(json.dumps(event) + "\n" for event in generated())
    return path


def test_train_then_backtest_from_an_export(events_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "churn_model.json"
    cutoff = signals_cli.parse_cutoff("2025-12-27")  # CUTOFF
    trained = signals_cli.train(events_file, out, cutoff, signals_cli.parse_horizon("60d"))
    model = load_churn_model(out)
    assert trained["model_version"] == model.version and model.trained_at
    report = signals_cli.backtest(events_file, out, cutoff, 60)
    assert report["model_version"] == model.version and report["metrics"]["roc_auc"] > 0.75
    text = signals_cli.format_report(report)
    assert "ROC AUC: 0." in text and "lift over the rule" in text and text.count("\n") > 12
    assert "trained on the events up to 2025-12-27T00:00:00Z" in signals_cli.format_report(trained)


def test_the_cli_subcommands_parse_and_run(events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    signals_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["signals", "backtest", "--events", str(events_file), "--cutoff", "2025-12-27"])
    assert (args.horizon, args.model) == (60, None)
    assert args.run(args) == 0
    assert "a PRIOR (hand-set, not learned)" in capsys.readouterr().out  # the repository's prior
    args = parser.parse_args(
        ["signals", "train", "--events", "x.jsonl", "--cutoff", "2025-12-27", "--out", "m.json"]
    )
    assert args.run(args) == 2
    assert "x.jsonl: cannot be read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("60d", 60), ("90", 90), (" 7d ", 7), ("0d", None), ("60 days", None), ("366d", None)],
)
def test_the_horizon_is_days(text: str, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(argparse.ArgumentTypeError):
            signals_cli.parse_horizon(text)
    else:
        assert signals_cli.parse_horizon(text) == expected


def test_a_line_that_is_not_an_event_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(generated()[0]) + "\n\n{broken\n")
    with pytest.raises(signals_cli.EventsFileError, match=r"events\.jsonl:3: not JSON"):
        list(signals_cli.read_events(path))
