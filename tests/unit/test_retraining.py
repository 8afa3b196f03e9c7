"""Retraining the churn model on a schedule: the gate that approves a candidate, what is written, and the
model the signals Lambda scores with (stripe_middleware.signals.retraining)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from stripe_middleware.shared.clock import iso
from stripe_middleware.signals.churn import ChurnModel, load_churn_model
from stripe_middleware.signals.config import RetrainingConfig
from stripe_middleware.signals.retraining import (
    APPROVED_KEY,
    REFRESH_SECONDS,
    ModelInUse,
    approve,
    candidate_key,
    report_key,
    retrain,
)
from stripe_middleware.signals.training import DAY, detail_of, train_model
from stripe_middleware_dev.simulate import simulate

PRIOR = load_churn_model(Path(__file__).parents[2] / "config" / "churn_model.json")


class ListArchive:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events, self.skipped, self.since = events, 0, None

    def events(self, since: int) -> Iterator[dict[str, Any]]:
        self.since = since
        return iter(self._events)


class DictModels:
    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def read(self, key: str) -> str | None:
        return self.texts.get(key)

    def write(self, key: str, text: str) -> None:
        self.texts[key] = text


@cache
def history(seed: int) -> list[dict[str, Any]]:
    """Eight months of 300 subscription customers (seed 3: a candidate beats the prior on held-out
    customers; seed 5: the prior ranks them better)."""
    return simulate(300, 8, seed, datetime(2025, 1, 1), attacks={}).events


def end_of(events: list[dict[str, Any]]) -> int:
    return max(e["created"] for e in events)


def run(events: list[dict[str, Any]], models: DictModels, **settings: Any) -> Any:
    options = {"window_days": 400, "horizon_days": 60, "min_auc": 0.6, "in_use": PRIOR, **settings}
    return retrain(ListArchive(events), models, now=end_of(events), **options)


def test_a_candidate_better_than_the_model_in_use_is_written_and_approved() -> None:
    models = DictModels()
    outcome = run(history(3), models)
    assert outcome.status == "approved", outcome.reason
    candidate = ChurnModel.model_validate_json(models.texts[APPROVED_KEY])
    assert candidate.version == outcome.version and not candidate.prior
    assert models.texts[candidate_key(candidate.version)] == models.texts[APPROVED_KEY]
    report = models.texts[report_key(candidate.version)]
    assert '"approved"' in report and PRIOR.version in report  # what it was measured against
    new, old = outcome.report["metrics"]["roc_auc"], outcome.report["in_use"]["metrics"]["roc_auc"]
    assert new >= old and new >= 0.6
    assert outcome.in_use == PRIOR.version and outcome.events == len(history(3))


def test_a_candidate_worse_than_the_model_in_use_is_kept_but_not_approved() -> None:
    models = DictModels()
    outcome = run(history(5), models, min_auc=0.5)
    assert outcome.status == "rejected"
    assert "below the model in use" in outcome.reason
    assert APPROVED_KEY not in models.texts  # the prior goes on scoring
    assert candidate_key(str(outcome.version)) in models.texts  # a person may still approve it


def test_a_candidate_below_the_minimum_is_not_approved() -> None:
    models = DictModels()
    outcome = run(history(3), models, min_auc=0.95)
    assert (outcome.status, APPROVED_KEY in models.texts) == ("rejected", False)
    assert "below the minimum 0.950" in outcome.reason


def test_too_little_history_is_skipped_with_the_reason_and_writes_nothing() -> None:
    events = history(3)
    recent = [e for e in events if e["created"] > end_of(events) - 100 * DAY]
    models = DictModels()
    outcome = run(recent, models)
    assert outcome.status == "skipped" and "training needs more than 150" in outcome.reason
    assert models.texts == {}


def test_the_archive_is_read_from_the_start_of_the_window() -> None:
    archive = ListArchive(history(3))
    retrain(
        archive,
        DictModels(),
        in_use=PRIOR,
        now=end_of(history(3)),
        window_days=200,
        horizon_days=60,
        min_auc=0.6,
    )
    assert archive.since == end_of(history(3)) - 200 * DAY


def test_archived_details_train_the_same_model_as_the_stripe_events() -> None:
    """The archive holds the processor's published details, not Stripe's events: the same model."""
    events = history(3)
    details = [found[1] for e in events if (found := detail_of(e))]
    cutoff = end_of(events)
    from_events, _ = train_model(events, cutoff=cutoff)
    from_details, _ = train_model(details, cutoff=cutoff)
    assert from_details.version == from_events.version


@pytest.mark.parametrize(
    ("candidate", "in_use", "approved", "words"),
    [
        ({"roc_auc": 0.7}, {"roc_auc": 0.65}, True, "held-out ROC AUC 0.700 (the model in use: 0.650)"),
        ({"roc_auc": 0.7}, {"roc_auc": None}, True, "the model in use: unmeasured"),
        ({"roc_auc": 0.7}, {"roc_auc": 0.71}, False, "below the model in use's 0.710"),
        ({"roc_auc": 0.55}, {"roc_auc": 0.5}, False, "below the minimum 0.600"),
        ({"roc_auc": None}, {"roc_auc": 0.7}, False, "the same outcome"),
    ],
)
def test_the_gate(candidate: dict[str, Any], in_use: dict[str, Any], approved: bool, words: str) -> None:
    verdict, reason = approve(candidate, in_use, 0.6)
    assert verdict is approved and words in reason


def test_the_window_must_hold_two_horizons_and_a_month() -> None:
    with pytest.raises(ValueError, match="window_days must be at least 151"):
        RetrainingConfig(window_days=150, horizon_days=60)
    assert RetrainingConfig(window_days=151, horizon_days=60).window_days == 151


# -- the model the signals Lambda scores with ---------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@cache
def trained() -> ChurnModel:
    model, _ = train_model(history(3), cutoff=end_of(history(3)))
    return model


def test_the_prior_scores_until_a_model_is_approved_then_the_approved_one_after_a_refresh() -> None:
    models, clock, warnings = DictModels(), Clock(), []
    in_use = ModelInUse(models, PRIOR, clock, warnings.append)
    assert in_use.get() is PRIOR
    models.write(APPROVED_KEY, trained().to_json())
    clock.now += REFRESH_SECONDS - 1
    assert in_use.get() is PRIOR  # not read again before the refresh
    clock.now += 1
    assert in_use.get().version == trained().version
    assert warnings == []


def test_an_unusable_approved_model_keeps_the_model_in_use_and_says_so() -> None:
    models, clock, warnings = DictModels(), Clock(), []
    in_use = ModelInUse(models, PRIOR, clock, warnings.append)
    models.write(APPROVED_KEY, trained().to_json())
    good = in_use.get()
    models.write(APPROVED_KEY, trained().to_json().replace(trained().version, "churn@00000000"))
    clock.now += REFRESH_SECONDS
    assert in_use.get() is good
    assert "is invalid" in warnings[-1] and "does not match the model's content" in warnings[-1]

    def broken(key: str) -> str | None:
        raise ConnectionError("S3 is down")

    models.read = broken  # type: ignore[method-assign]
    clock.now += REFRESH_SECONDS
    assert in_use.get() is good
    assert "could not be read (S3 is down)" in warnings[-1]


def test_a_model_trained_after_the_held_out_snapshot_is_judged_by_its_own_held_out_metrics() -> None:
    """Last week's model learned most outcomes of this week's held-out snapshot: scoring it there would be
    in-sample, so the candidate is measured against the held-out metrics it was approved with."""
    events, end = history(3), end_of(history(3))
    last_week, _ = train_model(events, cutoff=end - 7 * DAY, trained_at=iso(end - 7 * DAY))
    outcome = run(events, DictModels(), in_use=last_week)
    assert outcome.report["in_use"]["metrics"] == last_week.metrics
    older, _ = train_model(events, cutoff=end - 70 * DAY, trained_at=iso(end - 70 * DAY))
    outcome = run(events, DictModels(), in_use=older)  # trained before the snapshot: scored on it
    assert outcome.report["in_use"]["metrics"] != older.metrics
