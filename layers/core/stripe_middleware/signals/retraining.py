"""Retraining on AWS: the churn model learned again, on a schedule, from the archive of Stripe events, and the
signals Lambda scoring with the newest approved one.

The training Lambda reads the events of the last `window_days` from the archive (the warehouse bucket's
`events/`: every event the processor published, one JSON detail per line), trains as `signals train` does
(`training.train_model`, cutoff = now), and writes the candidate and its report under `models/churn/`. The
candidate is approved, and becomes what the signals Lambda scores with, only if on the held-out snapshot
it ranks at least as well as the model in use (scored on the very same customers) and reaches `min_auc`:
a retraining on a quiet or broken month never replaces a better model. A person approves a candidate the
gate refused by copying it over the approved key (the README says how).

The signals Lambda reads the approved artifact when it starts and again every `REFRESH_SECONDS`; until
one exists it scores with the prior the layer ships, and an artifact it cannot read or validate leaves the
model it had in use (and says so in the log).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from stripe_middleware.shared.clock import epoch, iso
from stripe_middleware.signals.churn import ChurnModel
from stripe_middleware.signals.training import (
    DAY,
    Digest,
    TrainingDataError,
    backtest_model,
    digest,
    train_model,
)

MODELS_PREFIX = "models/churn/"
APPROVED_KEY = f"{MODELS_PREFIX}approved.json"
REFRESH_SECONDS = 900  # how stale the signals Lambda's model may be after an approval


def candidate_key(version: str) -> str:
    return f"{MODELS_PREFIX}candidates/{version}.json"


def report_key(version: str) -> str:
    return f"{MODELS_PREFIX}candidates/{version}.report.json"


class EventArchive(Protocol):
    def events(self, since: int) -> Iterable[dict[str, Any]]:
        """Every archived event that arrived from `since` (epoch seconds) on; lines that are not JSON
        objects are skipped and counted in `skipped`."""
        ...

    @property
    def skipped(self) -> int: ...


class ModelStore(Protocol):
    def read(self, key: str) -> str | None:
        """The artifact's text; None when there is none."""
        ...

    def write(self, key: str, text: str) -> None: ...


@dataclass(frozen=True)
class Retraining:
    """What one scheduled retraining did."""

    status: str  # approved | rejected | skipped
    reason: str
    events: int = 0
    skipped_lines: int = 0
    version: str | None = None  # the candidate's
    in_use: str | None = None  # the model it was measured against
    report: dict[str, Any] = field(default_factory=dict)


def approve(candidate: Mapping[str, Any], in_use: Mapping[str, Any], min_auc: float) -> tuple[bool, str]:
    """Whether the candidate replaces the model in use, from both models' metrics on the same held-out
    customers, and why in words."""
    new, old = candidate.get("roc_auc"), in_use.get("roc_auc")
    if new is None:
        return False, "the held-out customers all had the same outcome: the candidate's ranking is unmeasured"
    if new < min_auc:
        return False, f"held-out ROC AUC {new:.3f} is below the minimum {min_auc:.3f}"
    if old is not None and new < old:
        return (
            False,
            f"held-out ROC AUC {new:.3f} is below the model in use's {old:.3f} on the same customers",
        )
    versus = "unmeasured" if old is None else f"{old:.3f}"
    return True, f"held-out ROC AUC {new:.3f} (the model in use: {versus}), minimum {min_auc:.3f}"


def retrain(
    archive: EventArchive,
    models: ModelStore,
    *,
    in_use: ChurnModel,
    now: int,
    window_days: int,
    horizon_days: int,
    min_auc: float,
) -> Retraining:
    """Train a candidate on the archived events of the window, write it with its report, and approve it
    when it beats the model in use on the held-out snapshot."""
    events = digest(archive.events(now - window_days * DAY))  # one archived line in memory at a time
    skipped = archive.skipped + events.ignored  # unreadable lines and files, and JSON that is no event
    try:
        model, report = train_model(events, cutoff=now, horizon_days=horizon_days, trained_at=iso(now))
    except TrainingDataError as error:
        return Retraining("skipped", str(error), len(events), skipped, in_use=in_use.version)
    held_out = now - horizon_days * DAY  # train_model's held-out snapshot
    baseline = _out_of_sample(in_use, events, held_out, horizon_days)
    approved, reason = approve(report["metrics"], baseline, min_auc)
    status = "approved" if approved else "rejected"
    report = {**report, "in_use": {"model_version": in_use.version, "metrics": baseline}, status: reason}
    models.write(candidate_key(model.version), model.to_json())
    models.write(report_key(model.version), json.dumps(report, indent=2, sort_keys=True) + "\n")
    if approved:  # last, so an approved key always names a candidate that was written
        models.write(APPROVED_KEY, model.to_json())
    return Retraining(status, reason, len(events), skipped, model.version, in_use.version, report)


def _out_of_sample(in_use: ChurnModel, events: Digest, held_out: int, horizon_days: int) -> Mapping[str, Any]:
    """The model in use's metrics on customers it never learned from: the candidate's held-out snapshot
    when the model was trained before it (or is the prior), else the held-out metrics it was approved
    with (a model trained up to last week learned most of this snapshot's outcomes)."""
    trained_until = epoch(in_use.trained_at)
    if in_use.prior or trained_until is None or trained_until <= held_out:
        metrics: Mapping[str, Any] = backtest_model(
            events, in_use, cutoff=held_out, horizon_days=horizon_days
        )["metrics"]
        return metrics
    return in_use.metrics or {}


@dataclass
class ModelInUse:
    """The model the signals Lambda scores with: the approved artifact, read again every `refresh`
    seconds, else the prior. `warn` hears of an artifact that cannot be used (the model stays as it was)."""

    models: ModelStore
    prior: ChurnModel
    clock: Callable[[], float]
    warn: Callable[[str], None]
    refresh: float = REFRESH_SECONDS
    _model: ChurnModel | None = None
    _read_at: float | None = None

    def get(self) -> ChurnModel:
        now = self.clock()
        if self._model is None or self._read_at is None or now - self._read_at >= self.refresh:
            self._model = self._read() or self._model or self.prior
            self._read_at = now
        return self._model

    def _read(self) -> ChurnModel | None:
        try:
            text = self.models.read(APPROVED_KEY)
        except Exception as error:
            self.warn(f"the approved churn model could not be read ({error}); scoring with the model in use")
            return None
        if text is None:
            return None
        try:
            return ChurnModel.model_validate_json(text)
        except ValidationError as error:
            self.warn(
                f"the approved churn model {APPROVED_KEY} is invalid; scoring with the model in use:\n{error}"
            )
            return None
