"""Training and backtesting the churn model on a replayed stream of Stripe events, in plain Python (no
numpy: a training Lambda runs it as it is).

A dataset is a list of examples: a subscription customer's features at a snapshot time (from the events up
to it, as the signals Lambda would have seen them) and whether one of their live subscriptions ended
(`customer.subscription.deleted`, or status canceled or unpaid) within the horizon after it. Training is
time-based: it fits on snapshots whose outcome was known before the newest one, evaluates on the newest
(the last whose horizon ends by the cutoff), then refits on all of them for the artifact. The fit is an
L2-regularized logistic regression by Newton's method (IRLS), the objective of scikit-learn's
`LogisticRegression(C=1 / l2)` on standardized features.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.errors import MiddlewareError
from stripe_middleware.signals.churn import ENDED, FEATURES, LIVE, ChurnModel, features
from stripe_middleware.signals.facts import SUBSCRIPTION, Fact, customer_subject, facts_of

DAY = 86_400
STEP_DAYS = 30  # training snapshots a month apart
RULE = "failed_payments_30d"  # the baseline: "a payment failed in the last 30 days"


class TrainingDataError(MiddlewareError):
    """The stream cannot train or test a model: too short, or one outcome only."""


# -- the replay -------------------------------------------------------------------------------------------
def detail_of(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The detail the processor publishes for a Stripe event (what `facts_of` reads), from a Stripe event or
    from such a detail as the event archive holds it; None for a line that is neither."""
    if isinstance(event.get("object"), dict):  # a published detail: the object itself, not "event"
        event = {
            **event,
            "data": {"object": event["object"], "previous_attributes": event.get("previous_attributes")},
        }
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    event_type, created = event.get("type"), event.get("created")
    if not isinstance(obj, dict) or not isinstance(event_type, str) or not isinstance(created, int):
        return None
    return event_type, {
        "id": event.get("id"),
        "type": event_type,
        "created": created,
        "livemode": bool(event.get("livemode", False)),
        "account": event.get("account"),
        "object": obj,
        "previous_attributes": data.get("previous_attributes") if isinstance(data, dict) else None,
    }


@dataclass(frozen=True)
class Moment:
    """What training keeps of one event: its time, its facts, and the subscription it shows ended."""

    created: int
    event_id: str
    facts: tuple[Fact, ...] = ()
    ended: str | None = None  # deleted, or canceled or unpaid


@dataclass(frozen=True)
class Digest:
    """A stream of events as training reads it: a moment per event (its facts, never its object), in event
    time. Reading a stream into a digest holds one event at a time, so a year of archived lines trains in a
    fraction of the memory its JSON would take."""

    moments: tuple[Moment, ...]
    ignored: int = 0  # JSON objects without a `created`: not events

    def until(self, cutoff: int) -> Digest:
        return Digest(tuple(m for m in self.moments if m.created <= cutoff), self.ignored)

    def span(self) -> tuple[int, int]:
        if not self.moments:
            raise TrainingDataError("the stream has no events")
        return self.moments[0].created, self.moments[-1].created

    def __len__(self) -> int:
        return len(self.moments)


Stream = Iterable[Mapping[str, Any]] | Digest  # Stripe events or archived details, or their digest


def digest(stream: Stream) -> Digest:
    """The digest of a stream, read once (a generator of archived lines is fine); objects without a `created`
    are counted in `ignored`, and events that are not Stripe events count with no facts."""
    if isinstance(stream, Digest):
        return stream
    moments, ignored = [], 0
    for event in stream:
        created = event.get("created")
        if not isinstance(created, int):
            ignored += 1
            continue
        found = detail_of(event)
        if found is None:
            moments.append(Moment(created, str(event.get("id"))))
            continue
        event_type, detail = found
        obj = detail["object"]
        ended = event_type == "customer.subscription.deleted" or obj.get("status") in ENDED
        ended_id = obj.get("id") if obj.get("object") == SUBSCRIPTION and ended else None
        moments.append(
            Moment(
                created,
                str(detail["id"]),
                tuple(facts_of(*found)),
                ended_id if isinstance(ended_id, str) else None,
            )
        )
    return Digest(tuple(sorted(moments, key=lambda m: (m.created, m.event_id))), ignored)


def subscription_ends(stream: Stream) -> dict[str, int]:
    """When each subscription ended: the first event that deleted it or showed it canceled or unpaid."""
    ends: dict[str, int] = {}
    for moment in digest(stream).moments:
        if moment.ended is not None:
            ends[moment.ended] = min(ends.get(moment.ended, moment.created), moment.created)
    return ends


@dataclass(frozen=True)
class Example:
    subject: str  # the customer
    as_of: int  # the snapshot
    features: dict[str, float]
    label: int  # 1: a subscription live at the snapshot ended within the horizon


def build_dataset(stream: Stream, snapshots: Iterable[int], *, horizon_days: int) -> list[Example]:
    """The examples of every subscription customer live at each snapshot, from the events up to it."""
    read = digest(stream)
    ends, ordered = subscription_ends(read), read.moments
    kept: dict[str, dict[str, Fact]] = {}  # customer subject -> fact id -> newest fact
    examples: list[Example] = []
    position = 0
    for at in sorted(set(snapshots)):
        while position < len(ordered) and ordered[position].created <= at:
            for fact in ordered[position].facts:
                subject = customer_subject(fact)
                facts = kept.setdefault(subject, {}) if subject else {}
                if fact.id not in facts or fact.newer_than(facts[fact.id]):
                    facts[fact.id] = fact
            position += 1
        for subject in sorted(kept):
            example = _example(subject, list(kept[subject].values()), at, ends, horizon_days * DAY)
            if example:
                examples.append(example)
    return examples


def _example(subject: str, facts: list[Fact], at: int, ends: dict[str, int], horizon: int) -> Example | None:
    live = [f for f in facts if f.kind == SUBSCRIPTION and f.status in LIVE]
    live = [s for s in live if ends.get(s.object_id, at + 1) > at]  # not ended by an event it missed
    if not live:
        return None
    label = any(at < ends.get(s.object_id, 0) <= at + horizon for s in live)
    return Example(subject=subject, as_of=at, features=features(facts, at), label=int(label))


# -- the fit ----------------------------------------------------------------------------------------------
def standardize(rows: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """Each column's mean and standard deviation (1 for a constant column)."""
    n, width = len(rows), len(rows[0])
    means = [sum(r[j] for r in rows) / n for j in range(width)]
    deviations = [math.sqrt(sum((r[j] - means[j]) ** 2 for r in rows) / n) for j in range(width)]
    return means, [d if d > 1e-12 else 1.0 for d in deviations]


def _softplus(z: float) -> float:
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def fit_logistic(
    rows: Sequence[Sequence[float]],
    labels: Sequence[int],
    *,
    l2: float = 1.0,
    weights: Sequence[float] | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[list[float], float]:
    """(coefficients, intercept) maximizing Σ weight · log-likelihood - l2 / 2 · |coefficients|² (the
    intercept is not penalized) by Newton's method with step halving; identical rows are fitted once."""
    if not rows or len(rows) != len(labels):
        raise TrainingDataError("no rows to fit, or not one label per row")
    groups: dict[tuple[float, ...], list[float]] = {}  # row -> [weight, weight of positives]
    for index, (row, label) in enumerate(zip(rows, labels, strict=True)):
        weight = weights[index] if weights is not None else 1.0
        group = groups.setdefault((1.0, *row), [0.0, 0.0])
        group[0] += weight
        group[1] += weight * label
    data = [(x, n, k) for x, (n, k) in groups.items()]
    size = len(rows[0]) + 1
    theta = [0.0] * size

    def objective(theta: list[float]) -> float:
        total = -l2 / 2 * sum(t * t for t in theta[1:])
        for x, n, k in data:
            z = sum(a * b for a, b in zip(theta, x, strict=True))
            total -= k * _softplus(-z) + (n - k) * _softplus(z)
        return total

    current = objective(theta)
    for _ in range(max_iter):
        gradient = [-l2 * t for t in theta]
        gradient[0] = 0.0
        hessian = [[l2 if a == b and a > 0 else 0.0 for b in range(size)] for a in range(size)]
        for x, n, k in data:
            p = _sigmoid(sum(a * b for a, b in zip(theta, x, strict=True)))
            residual, weight = k - n * p, n * p * (1 - p)
            for a in range(size):
                gradient[a] += residual * x[a]
                wa = weight * x[a]
                row = hessian[a]
                for b in range(a, size):
                    row[b] += wa * x[b]
        for a in range(size):
            for b in range(a):
                hessian[a][b] = hessian[b][a]
        step = _solve(hessian, gradient)
        scale = 1.0
        while True:  # Newton's step, halved until the objective does not fall
            candidate = [t + scale * s for t, s in zip(theta, step, strict=True)]
            value = objective(candidate)
            if value >= current - 1e-12 or scale < 1e-6:
                break
            scale /= 2
        moved = max(abs(scale * s) for s in step)
        theta, current = candidate, value
        if moved < tol:
            break
    return theta[1:], theta[0]


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """x with matrix · x = vector, by Gaussian elimination with partial pivoting."""
    size = len(vector)
    rows = [[*matrix[i], vector[i]] for i in range(size)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(rows[r][column]))
        if abs(rows[pivot][column]) < 1e-300:
            raise TrainingDataError("the fit is singular: add regularization (l2 > 0)")
        rows[column], rows[pivot] = rows[pivot], rows[column]
        for r in range(column + 1, size):
            factor = rows[r][column] / rows[column][column]
            if factor:
                for c in range(column, size + 1):
                    rows[r][c] -= factor * rows[column][c]
    solution = [0.0] * size
    for r in range(size - 1, -1, -1):
        known = sum(rows[r][c] * solution[c] for c in range(r + 1, size))
        solution[r] = (rows[r][size] - known) / rows[r][r]
    return solution


def fit_model(
    examples: Sequence[Example],
    *,
    l2: float = 1.0,
    horizon_days: int,
    trained_at: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> ChurnModel:
    """A churn model fitted on standardized features: every feature `churn.features` measures."""
    names = list(FEATURES)
    raw = [[e.features[n] for n in names] for e in examples]
    labels = [e.label for e in examples]
    if len(set(labels)) < 2:
        raise TrainingDataError(f"{len(examples)} examples with one outcome only: nothing to learn from")
    means, scales = standardize(raw)
    rows = [[(v - m) / s for v, m, s in zip(row, means, scales, strict=True)] for row in raw]
    coefficients, intercept = fit_logistic(rows, labels, l2=l2)
    return ChurnModel.build(
        prior=False,
        features=names,
        coefficients=dict(zip(names, coefficients, strict=True)),
        intercept=intercept,
        means=dict(zip(names, means, strict=True)),
        scales=dict(zip(names, scales, strict=True)),
        trained_at=trained_at,
        horizon_days=horizon_days,
        metrics=metrics,
        comment={"model": f"trained on {len(examples)} examples ({sum(labels)} churned), l2 {l2}"},
    )


# -- metrics ----------------------------------------------------------------------------------------------
def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """The chance a churned customer scores above one who stayed (ties count half); None with one outcome."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):  # tied scores share their average rank
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    positive_ranks = sum(r for r, label in zip(ranks, labels, strict=True) if label)
    return (positive_ranks - positives * (positives + 1) / 2) / (positives * negatives)


def top(scores: Sequence[float], count: int) -> list[int]:
    """The indexes of the `count` highest scores (the earlier row first among ties)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:count]


def precision_at(scores: Sequence[float], labels: Sequence[int], count: int) -> float | None:
    chosen = top(scores, count)
    return sum(labels[i] for i in chosen) / len(chosen) if chosen else None


def calibration(scores: Sequence[float], labels: Sequence[int], bins: int = 10) -> list[dict[str, Any]]:
    """Predicted against observed churn by decile of the score (equal counts, lowest first)."""
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))
    found = []
    for b in range(bins):
        chosen = order[b * len(order) // bins : (b + 1) * len(order) // bins]
        if chosen:
            found.append(
                {
                    "decile": b + 1,
                    "count": len(chosen),
                    "predicted": round(sum(scores[i] for i in chosen) / len(chosen), 4),
                    "observed": round(sum(labels[i] for i in chosen) / len(chosen), 4),
                }
            )
    return found


def evaluate(scores: Sequence[float], labels: Sequence[int], flagged: Sequence[bool]) -> dict[str, Any]:
    """ROC AUC, precision in the top decile, lift over the rule that flags `flagged`, calibration."""
    n, positives = len(labels), sum(labels)
    base = positives / n if n else None
    decile = math.ceil(n / 10)
    top_precision = precision_at(scores, labels, decile)
    rule_count = sum(flagged)
    rule_hits = sum(label for label, flag in zip(labels, flagged, strict=True) if flag)
    rule_precision = rule_hits / rule_count if rule_count else None
    model_hits = sum(labels[i] for i in top(scores, rule_count))
    model_precision = model_hits / rule_count if rule_count else None
    return {
        "examples": n,
        "positives": positives,
        "base_rate": _round(base),
        "roc_auc": _round(roc_auc(scores, labels)),
        "top_decile": {
            "count": decile,
            "precision": _round(top_precision),
            "lift": _round(top_precision / base if top_precision is not None and base else None),
        },
        "rule": {
            "name": "a payment failed in the last 30 days",
            "flagged": rule_count,
            "precision": _round(rule_precision),
            "recall": _round(rule_hits / positives if positives else None),
            "roc_auc": _round(roc_auc([float(f) for f in flagged], labels)),
        },
        "model_at_rule_coverage": {  # the model's top as many customers as the rule flags
            "count": rule_count,
            "precision": _round(model_precision),
            "recall": _round(model_hits / positives if positives and rule_count else None),
        },
        "lift_over_rule": _round(
            model_precision / rule_precision if model_precision is not None and rule_precision else None
        ),
        "calibration": calibration(scores, labels),
    }


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def score_examples(model: ChurnModel, examples: Sequence[Example]) -> dict[str, Any]:
    scores = [model.predict(e.features) for e in examples]
    labels = [e.label for e in examples]
    return evaluate(scores, labels, [e.features[RULE] > 0 for e in examples])


# -- train and backtest -----------------------------------------------------------------------------------
def train_model(
    events: Stream,
    *,
    cutoff: int,
    horizon_days: int = 60,
    step_days: int = STEP_DAYS,
    l2: float = 1.0,
    trained_at: str | None = None,
) -> tuple[ChurnModel, dict[str, Any]]:
    """The model learned from the events up to `cutoff`, and the report of its held-out evaluation.

    Snapshots are `step_days` apart. The newest (cutoff - horizon) is held out; the older ones are those
    whose horizon ends before it, so nothing the held-out snapshot knows is in what the fit learned from."""
    known = digest(events).until(cutoff)
    first, _ = known.span()
    horizon, step = horizon_days * DAY, step_days * DAY
    held_out = cutoff - horizon
    older = []
    at = held_out - horizon
    while at >= first + step:  # at least a step of history before a snapshot
        older.append(at)
        at -= step
    if not older:
        days = (cutoff - first) // DAY
        raise TrainingDataError(
            f"the stream has {days} days of history before the cutoff; training needs more than "
            f"{2 * horizon_days + step_days} (two horizons and a month)"
        )
    examples = build_dataset(known, [*older, held_out], horizon_days=horizon_days)
    fitting = [e for e in examples if e.as_of != held_out]
    testing = [e for e in examples if e.as_of == held_out]
    if not testing:
        raise TrainingDataError(f"no subscription customer was live at the held-out snapshot {iso(held_out)}")
    held_out_metrics = score_examples(fit_model(fitting, l2=l2, horizon_days=horizon_days), testing)
    metrics = {"held_out_snapshot": iso(held_out), **held_out_metrics}
    model = fit_model(examples, l2=l2, horizon_days=horizon_days, trained_at=trained_at, metrics=metrics)
    report = {
        "command": "train",
        "events": len(known),
        "cutoff": iso(cutoff),
        "horizon_days": horizon_days,
        "model_version": model.version,
        "training": {
            "snapshots": [iso(t) for t in sorted(older)],
            "examples": len(fitting),
            "positives": sum(e.label for e in fitting),
        },
        "metrics": metrics,
        "coefficients": {n: round(c, 4) for n, c in model.coefficients.items()},
        "intercept": round(model.intercept, 4),
    }
    return model, report


def backtest_model(
    events: Stream, model: ChurnModel, *, cutoff: int, horizon_days: int = 60
) -> dict[str, Any]:
    """How the model ranks the customers live at `cutoff` (features from the events up to it) by whether
    they churned within the horizon after it."""
    events = digest(events)
    _, last = events.span()
    examples = build_dataset(events, [cutoff], horizon_days=horizon_days)
    if not examples:
        raise TrainingDataError(f"no subscription customer was live at the cutoff {iso(cutoff)}")
    return {
        "command": "backtest",
        "events": len(events),
        "cutoff": iso(cutoff),
        "horizon_days": horizon_days,
        "horizon_complete": last >= cutoff + horizon_days * DAY,  # else churn after the stream is unseen
        "model_version": model.version,
        "prior": model.prior,
        "metrics": score_examples(model, examples),
    }
