"""One-off buyers (payments without a subscription): is the buyer still active, and how many purchases
will they make in a horizon? From the recency and frequency of their successful charges, in event time.

The model is the MBG/NBD (Batislam, Denizel & Filiztekin 2007), the BG/NBD of Fader, Hardie & Lee (2005)
with one change. In both, an active buyer buys at a steady rate (gamma-distributed across buyers) and,
after a purchase, leaves for good with a probability (beta-distributed across buyers). The BG/NBD lets a
buyer leave only after a *repeat* purchase, so it calls every single-purchase buyer certainly active, however
long ago the purchase: no use as a churn risk for the commonest one-off buyer. The MBG/NBD lets a buyer
leave after the first purchase too; on CDNOW it ranks future buyers as well as the BG/NBD (bench/cdnow.py).
Both families are implemented, with the same closed forms (the artifact names its family).

Charges less than a day after the start of a purchase count as that purchase (one basket, several charges):
the models count purchase occasions. Spend is reported in the reasons but does not enter the score: on
CDNOW even a model fitted to the answers gains under 0.01 AUC from it.

Scoring is plain Python on the standard library; `fit_buyer_model` (maximum likelihood, Nelder-Mead) is the
training step, slow but dependency-free, so `signals train` and the Lambda share one definition.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from stripe_middleware.shared.errors import ConfigurationError
from stripe_middleware.shared.settings import config_file
from stripe_middleware.signals.facts import CHARGE, Fact
from stripe_middleware.signals.ports import Reason

BUYERS_MODEL_ENV = "BUYERS_MODEL_PATH"
BUYERS_MODEL_FILE = "buyers_model.json"
DAY = 86_400
SAME_PURCHASE_SECONDS = DAY  # charges this close after a purchase's first charge are that purchase
FAMILIES = ("mbgnbd", "bgnbd")
_PARAMS = ("r", "alpha", "a", "b")
_OPTIONS = ("family", "prior", "source", "time_unit_days", "horizon_days")
# Stripe's minor units: these currencies have no decimals, or three.
_ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())  # noqa: SIM905
_THREE_DECIMAL = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))


class BuyerModelError(ConfigurationError):
    """The buyer model (its file or its parameters) is invalid: the score cannot be computed."""


# -- the model ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuyerModel:
    """Fitted (or prior) parameters: purchase rate ~ Gamma(r, alpha) per `time_unit_days`; the chance
    of leaving after a purchase ~ Beta(a, b). `horizon_days`: the default horizon of expected purchases."""

    r: float
    alpha: float
    a: float
    b: float
    family: str = "mbgnbd"
    time_unit_days: float = 7.0
    horizon_days: int = 90
    prior: bool = False  # a documented default, not learned from this tenant's history
    source: str = ""  # where the parameters come from, in words

    def __post_init__(self) -> None:
        for name in _PARAMS:
            _require_positive(name, getattr(self, name))
        _require_positive("time_unit_days", self.time_unit_days)
        if self.family not in FAMILIES:
            raise BuyerModelError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if not isinstance(self.horizon_days, int) or isinstance(self.horizon_days, bool):
            raise BuyerModelError(f"horizon_days must be a whole number of days, got {self.horizon_days!r}")
        _require_positive("horizon_days", self.horizon_days)
        if not isinstance(self.prior, bool) or not isinstance(self.source, str):
            raise BuyerModelError("prior must be true or false and source a string")
        for name in (*_PARAMS, "time_unit_days"):  # 7 and 7.0 are one model (and one version)
            object.__setattr__(self, name, float(getattr(self, name)))

    @cached_property
    def version(self) -> str:
        """`<family>[-prior]@<hash of what the score depends on>`: a signal says which model raised it."""
        scored = {k: v for k, v in asdict(self).items() if k not in ("prior", "source")}
        digest = hashlib.sha256(json.dumps(scored, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.family}{'-prior' if self.prior else ''}@{digest}"

    def to_json(self) -> dict[str, Any]:
        """The artifact (`config/buyers_model.json`): what `from_json` reads back."""
        return {
            "family": self.family,
            "prior": self.prior,
            "source": self.source,
            "time_unit_days": self.time_unit_days,
            "horizon_days": self.horizon_days,
            "params": {name: getattr(self, name) for name in _PARAMS},
        }

    @classmethod
    def from_json(cls, data: Any) -> BuyerModel:
        if not isinstance(data, dict):
            raise BuyerModelError("a buyer model is a JSON object")
        unknown = set(data) - {*_OPTIONS, "params"}
        if unknown:
            raise BuyerModelError(f"unknown buyer model fields: {', '.join(sorted(unknown))}")
        params = data.get("params")
        if not isinstance(params, dict) or set(params) != set(_PARAMS):
            raise BuyerModelError(f"params must name exactly {', '.join(_PARAMS)}")
        if "family" not in data:
            raise BuyerModelError("family is required")
        options = {k: data[k] for k in _OPTIONS if k in data}
        return cls(**params, **options)


def _require_positive(name: str, value: Any) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise BuyerModelError(f"{name} must be a positive number, got {value!r}")


@cache
def load_buyer_model(path: Path | None = None) -> BuyerModel:
    """The model the layer ships (`buyers_model.json` next to the library), or the file `BUYERS_MODEL_PATH`
    names."""
    path = path or config_file(BUYERS_MODEL_ENV, BUYERS_MODEL_FILE)
    try:
        return BuyerModel.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, BuyerModelError) as error:
        raise BuyerModelError(f"buyer model {path} is invalid: {error}") from error


# -- a buyer's history ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rfm:
    """A buyer's history as the models read it (in days): purchases after the first (x), from the first
    purchase to the last (t_x), and from the first purchase to the time of scoring (T)."""

    repeat_purchases: int
    days_to_last: float
    days_observed: float


@dataclass(frozen=True)
class PurchaseHistory:
    rfm: Rfm
    charges: int  # successful charges (several may make one purchase)
    spend: tuple[tuple[str, int, int], ...]  # (currency, charges, total in the minor unit), most used first

    @property
    def purchases(self) -> int:
        return self.rfm.repeat_purchases + 1

    @property
    def days_since_last(self) -> float:
        return self.rfm.days_observed - self.rfm.days_to_last


@dataclass(frozen=True)
class PurchaseSummary:
    """A buyer's purchases as times (Unix seconds), which score at any later time: what a buyer's watch keeps
    for the time-driven re-score once the charges themselves are no longer read."""

    first: int  # the first purchase
    last: int  # the start of the last purchase
    repeat_purchases: int
    charges: int
    spend: tuple[tuple[str, int, int], ...]

    def at(self, as_of: int) -> PurchaseHistory:
        """The history as the models read it at `as_of` (not before the last purchase)."""
        days_to_last = (self.last - self.first) / DAY
        rfm = Rfm(self.repeat_purchases, days_to_last, max((as_of - self.first) / DAY, days_to_last))
        return PurchaseHistory(rfm, self.charges, self.spend)


def purchase_summary(charges: Iterable[Fact], as_of: int) -> PurchaseSummary | None:
    """The successful charges made by `as_of` (event time), as purchases; None when there are none.

    Facts of other kinds, failed charges and charges after `as_of` are ignored; several states of one
    charge count once (the newest)."""
    newest: dict[str, Fact] = {}
    for fact in charges:
        kept = newest.get(fact.id)
        if fact.kind == CHARGE and (kept is None or fact.newer_than(kept)):
            newest[fact.id] = fact
    paid = sorted((f for f in newest.values() if not f.failed and f.created <= as_of), key=_by_time)
    if not paid:
        return None
    starts = [paid[0].created]
    for fact in paid[1:]:
        if fact.created - starts[-1] >= SAME_PURCHASE_SECONDS:
            starts.append(fact.created)
    counts: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for fact in paid:
        if fact.currency and isinstance(fact.amount, int):
            counts[fact.currency.lower()] += 1
            totals[fact.currency.lower()] += fact.amount
    spend = tuple((c, counts[c], totals[c]) for c in sorted(counts, key=lambda c: (-counts[c], c)))
    return PurchaseSummary(starts[0], starts[-1], len(starts) - 1, len(paid), spend)


def purchase_history(charges: Iterable[Fact], as_of: int) -> PurchaseHistory | None:
    """`purchase_summary` as the models read it at `as_of`."""
    summary = purchase_summary(charges, as_of)
    return summary.at(as_of) if summary else None


def _by_time(fact: Fact) -> tuple[int, str]:
    return fact.created, fact.id


# -- closed forms -------------------------------------------------------------------------------------------
def probability_alive(rfm: Rfm, model: BuyerModel) -> float:
    """P(the buyer has not left | x, t_x, T)."""
    x, t_x, big_t = _in_units(rfm, model)
    if model.family == "bgnbd":
        if x == 0:
            return 1.0  # the BG/NBD's blind spot: nobody leaves before a repeat purchase
        log_odds = math.log(model.a / (model.b + x - 1))
    else:
        log_odds = math.log(model.a / (model.b + x))
    log_odds += (model.r + x) * (math.log(model.alpha + big_t) - math.log(model.alpha + t_x))
    if log_odds > 0:
        odds = math.exp(-log_odds)
        return odds / (1.0 + odds)
    return 1.0 / (1.0 + math.exp(log_odds))


@dataclass(frozen=True)
class LogOdds:
    """The log-odds that a buyer has left (1 - `probability_alive`), in three parts: the model's reference
    buyer (one purchase, just made), what the purchases after it change (they lower it), and what the time
    since the last purchase adds (it raises it, faster for a frequent buyer)."""

    reference: float
    purchases: float
    recency: float

    @property
    def total(self) -> float:
        return self.reference + self.purchases + self.recency


def log_odds_left(rfm: Rfm, model: BuyerModel) -> LogOdds | None:
    """`probability_alive` as log-odds of having left, in parts; None where the model calls the buyer
    certainly active (the BG/NBD's single purchase)."""
    x, t_x, big_t = _in_units(rfm, model)
    if model.family == "bgnbd" and x == 0:
        return None
    repeat = x - 1 if model.family == "bgnbd" else x
    return LogOdds(
        reference=math.log(model.a / model.b),
        purchases=math.log(model.b / (model.b + repeat)),
        recency=(model.r + x) * (math.log(model.alpha + big_t) - math.log(model.alpha + t_x)),
    )


def expected_purchases(rfm: Rfm, model: BuyerModel, horizon_days: float) -> float:
    """E[purchases in the next `horizon_days` | x, t_x, T]."""
    x, _, big_t = _in_units(rfm, model)
    t = horizon_days / model.time_unit_days
    if t <= 0:
        return 0.0
    r, alpha, b = model.r, model.alpha, model.b
    a = model.a if abs(model.a - 1.0) > 1e-7 else 1.0 + 1e-7  # a removable singularity of the closed form
    c = a + b + x - (1 if model.family == "bgnbd" else 0)
    z = t / (alpha + big_t + t)
    # (1-z)^(r+x) 2F1(r+x, c-a+1; c; z) by Euler's transformation: (1-z)^(a-1) 2F1(c-r-x, a-1; c; z), a series
    # whose parameters do not grow with x, so it neither overflows nor needs thousands of terms.
    tail = math.exp((a - 1) * math.log1p(-z)) * hyp2f1(c - r - x, a - 1, c, z)
    return c / (a - 1) * (1.0 - tail) * probability_alive(rfm, model)


def hyp2f1(a: float, b: float, c: float, z: float, *, max_terms: int = 500_000) -> float:
    """The Gaussian hypergeometric function 2F1(a, b; c; z) for 0 <= z < 1, by its power series, summed
    until the rest is below double precision (ArithmeticError if it does not get there)."""
    if not 0.0 <= z < 1.0:
        raise ValueError(f"hyp2f1 needs 0 <= z < 1, got {z}")
    if c <= 0 and c == int(c):
        raise ValueError(f"hyp2f1 is undefined for c = {c}")
    total, term = 1.0, 1.0
    for k in range(max_terms):
        ratio = (a + k) * (b + k) / ((c + k) * (k + 1)) * z
        term *= ratio
        total += term
        if term == 0.0:  # a or b is zero or a negative integer: a polynomial
            return total
        # Late in the series the step tends to z (from above or below), so once it is below 1 the rest is
        # bounded by term * rho / (1 - rho) with rho the larger of the two.
        rho = max(abs(ratio), z)
        if rho < 1.0 and abs(term) * rho <= 1e-16 * (1.0 - rho) * abs(total):
            return total
    raise ArithmeticError(f"hyp2f1({a}, {b}; {c}; {z}) did not converge in {max_terms} terms")


def _in_units(rfm: Rfm, model: BuyerModel) -> tuple[int, float, float]:
    unit = model.time_unit_days
    return rfm.repeat_purchases, rfm.days_to_last / unit, rfm.days_observed / unit


# -- the score --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuyerScore:
    probability_active: float  # the buyer has not left
    expected_purchases: float  # in the next `horizon_days`
    reasons: tuple[Reason, ...]
    horizon_days: int
    model_version: str

    @property
    def churn_risk(self) -> float:
        """A one-off buyer's churn risk: the probability that they have left."""
        return 1.0 - self.probability_active


def score_buyer(
    charges: Iterable[Fact], as_of: int, model: BuyerModel, *, horizon_days: int | None = None
) -> BuyerScore | None:
    """Score a buyer from their charge facts as of `as_of` (event time, Unix seconds); None when they had
    no successful charge by then (nothing to score). See `purchase_history` for what counts."""
    history = purchase_history(charges, as_of)
    return None if history is None else score_history(history, model, horizon_days=horizon_days)


def score_history(
    history: PurchaseHistory, model: BuyerModel, *, horizon_days: int | None = None
) -> BuyerScore:
    """Score a buyer's history (`purchase_history`, or a `PurchaseSummary` at a time)."""
    horizon = model.horizon_days if horizon_days is None else horizon_days
    return BuyerScore(
        probability_active=probability_alive(history.rfm, model),
        expected_purchases=expected_purchases(history.rfm, model, horizon),
        reasons=buyer_reasons(history),
        horizon_days=horizon,
        model_version=model.version,
    )


def buyer_reasons(history: PurchaseHistory) -> tuple[Reason, ...]:
    """Recency, frequency, rhythm and spend, in words: "last purchase 143 days ago"."""
    rfm = history.rfm
    since = history.days_since_last
    recency = "less than a day ago" if since < 1 else f"{_span(since)} ago"
    if history.purchases == 1:
        frequency = "a single purchase so far"
    else:
        frequency = f"{history.purchases} purchases in {_span(rfm.days_observed, months=True)}"
    if history.charges != history.purchases:
        frequency += f" ({history.charges} charges)"
    reasons = [
        Reason("days_since_last_purchase", int(since), None, f"last purchase {recency}"),
        Reason("purchases", history.purchases, None, frequency),
    ]
    if rfm.repeat_purchases:
        every = rfm.days_to_last / rfm.repeat_purchases  # at least a day: purchases are a day apart or more
        text = f"a purchase every {_span(every)} on average"
        reasons.append(Reason("days_between_purchases", round(every, 1), None, text))
    for currency, count, total in history.spend:
        average = total / count
        reasons.append(
            Reason(
                f"average_charge_{currency}",
                round(average / 10 ** _decimals(currency), 2),
                None,
                f"average charge {_money(average, currency)} ({count} charge{'s' if count != 1 else ''})",
            )
        )
    return tuple(reasons)


def _span(days: float, *, months: bool = False) -> str:
    """Days read best for recency and rhythm ("143 days ago"), months for a history ("in 11 months")."""
    if days < (60 if months else 730):
        whole = max(1, int(days))
        return f"{whole} day{'s' if whole != 1 else ''}"
    if days < 730:
        return f"{round(days / 30.44)} months"
    return f"{round(days / 365.25, 1):g} years"


def _decimals(currency: str) -> int:
    return 0 if currency in _ZERO_DECIMAL else 3 if currency in _THREE_DECIMAL else 2


def _money(minor: float, currency: str) -> str:
    digits = _decimals(currency)
    return f"{minor / 10**digits:,.{digits}f} {currency.upper()}"


# -- training -----------------------------------------------------------------------------------------------
def log_likelihood(rfm: Rfm, model: BuyerModel) -> float:
    """The log-likelihood of one buyer's (x, t_x, T) under the model (what the fit maximizes)."""
    return _LogLikelihood(Counter([_in_units(rfm, model)]), model.family)(
        [math.log(getattr(model, name)) for name in _PARAMS]
    )


def fit_buyer_model(
    histories: Iterable[Rfm],
    *,
    family: str = "mbgnbd",
    time_unit_days: float = 7.0,
    horizon_days: int = 90,
    source: str = "",
    max_evaluations: int = 5_000,
) -> BuyerModel:
    """Maximum-likelihood parameters for these buyers' histories (Nelder-Mead on the log parameters).

    Training code: plain Python, seconds for tens of thousands of buyers (identical histories are counted
    once). ValueError when the histories cannot identify the parameters (no buyer bought twice)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    unit = time_unit_days
    counts = Counter((h.repeat_purchases, h.days_to_last / unit, h.days_observed / unit) for h in histories)
    if not any(x for x, _, _ in counts):
        raise ValueError("fitting a buyer model needs buyers who bought more than once")
    likelihood = _LogLikelihood(counts, family)
    size = sum(counts.values())

    def objective(theta: Sequence[float]) -> float:
        if max(abs(v) for v in theta) > 30:  # e^30: far outside any sensible parameter
            return math.inf
        try:
            return -likelihood(theta) / size
        except (ValueError, OverflowError, ZeroDivisionError):
            return math.inf

    theta, value = _nelder_mead(objective, [0.0] * 4, step=1.0, max_evaluations=max_evaluations)
    for _ in range(5):  # restart from the best point: Nelder-Mead can stall on a ridge
        again, improved = _nelder_mead(objective, theta, step=0.1, max_evaluations=max_evaluations)
        if improved > value - 1e-12:
            break
        theta, value = again, improved
    r, alpha, a, b = (math.exp(v) for v in theta)
    return BuyerModel(
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        family=family,
        time_unit_days=time_unit_days,
        horizon_days=horizon_days,
        source=source,
    )


class _LogLikelihood:
    """Sum of log-likelihoods over distinct (x, t_x, T), weighted by how many buyers share each; the terms
    that depend on x only, or on one time only, are computed once per distinct value."""

    def __init__(self, counts: Counter[tuple[int, float, float]], family: str) -> None:
        self.bg = family == "bgnbd"
        self.by_x = Counter[int]()
        times = sorted({t for x, t_x, big_t in counts for t in (t_x, big_t)})
        index = {t: i for i, t in enumerate(times)}
        self.times = times
        self.rows = [(n, x, index[t_x], index[big_t]) for (x, t_x, big_t), n in counts.items()]
        for (x, _, _), n in counts.items():
            self.by_x[x] += n

    def __call__(self, theta: Sequence[float]) -> float:
        r, alpha, a, b = (math.exp(v) for v in theta)
        lgamma, log = math.lgamma, math.log
        shift = 1 if self.bg else 0  # BG/NBD: leaving is possible after repeat purchases only
        total = 0.0
        for x, n in self.by_x.items():
            total += n * (
                lgamma(r + x)
                - lgamma(r)
                + r * log(alpha)
                + lgamma(a + b)
                + lgamma(b + x + 1 - shift)
                - lgamma(b)
                - lgamma(a + b + x + 1 - shift)
            )
        log_time = [log(alpha + t) for t in self.times]
        log_leave = {x: log(a) - log(b + x - shift) for x in self.by_x if x >= shift and b + x - shift > 0}
        for n, x, i_last, i_end in self.rows:
            stayed = -(r + x) * log_time[i_end]
            if self.bg and x == 0:
                total += n * stayed
                continue
            left = log_leave[x] - (r + x) * log_time[i_last]
            high, low = (stayed, left) if stayed > left else (left, stayed)
            total += n * (high + math.log1p(math.exp(low - high)))
        return total


def _nelder_mead(
    f: Callable[[Sequence[float]], float],
    start: Sequence[float],
    *,
    step: float,
    max_evaluations: int,
    f_tolerance: float = 1e-13,
    x_tolerance: float = 1e-8,
) -> tuple[list[float], float]:
    """Minimize f from `start` (the simplex of Nelder & Mead 1965, standard coefficients)."""
    n = len(start)
    simplex = [list(start)] + [[v + (step if i == j else 0.0) for j, v in enumerate(start)] for i in range(n)]
    values = [f(p) for p in simplex]
    evaluations = n + 1
    while evaluations < max_evaluations:
        order = sorted(range(n + 1), key=values.__getitem__)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        spread = max(abs(p[j] - simplex[0][j]) for p in simplex[1:] for j in range(n))
        if values[-1] - values[0] <= f_tolerance and spread <= x_tolerance:
            break
        centroid = [sum(p[j] for p in simplex[:-1]) / n for j in range(n)]
        worst = simplex[-1]
        reflected = _along(centroid, worst, -1.0)
        f_reflected = f(reflected)
        evaluations += 1
        if f_reflected < values[0]:
            expanded = _along(centroid, worst, -2.0)
            f_expanded = f(expanded)
            evaluations += 1
            simplex[-1], values[-1] = (
                (expanded, f_expanded) if f_expanded < f_reflected else (reflected, f_reflected)
            )
            continue
        if f_reflected < values[-2]:
            simplex[-1], values[-1] = reflected, f_reflected
            continue
        outside = f_reflected < values[-1]
        contracted = _along(centroid, worst, -0.5 if outside else 0.5)
        f_contracted = f(contracted)
        evaluations += 1
        if f_contracted < (f_reflected if outside else values[-1]):
            simplex[-1], values[-1] = contracted, f_contracted
            continue
        best = simplex[0]  # shrink toward the best point
        simplex = [best] + [[b + 0.5 * (v - b) for b, v in zip(best, p, strict=True)] for p in simplex[1:]]
        values = [values[0]] + [f(p) for p in simplex[1:]]
        evaluations += n
    i = min(range(n + 1), key=values.__getitem__)
    return simplex[i], values[i]


def _along(centroid: Sequence[float], worst: Sequence[float], t: float) -> list[float]:
    """The point at `t` on the line from the centroid (0) to the worst point (1)."""
    return [c + t * (w - c) for c, w in zip(centroid, worst, strict=True)]
