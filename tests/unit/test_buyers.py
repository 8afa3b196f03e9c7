"""One-off buyers: the MBG/NBD and BG/NBD closed forms against lifetimes, the plain-Python fit, scoring
from charge facts (built from the real Stripe fixtures, through `facts_of`), the model file, and a small
CDNOW run of the benchmark so it cannot rot.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter
from scipy.special import hyp2f1 as scipy_hyp2f1

from bench import cdnow
from events import stripe_event, stripe_object
from stripe_middleware.signals.buyers import (
    BUYERS_MODEL_ENV,
    BuyerModel,
    BuyerModelError,
    Rfm,
    expected_purchases,
    fit_buyer_model,
    hyp2f1,
    load_buyer_model,
    log_likelihood,
    probability_alive,
    purchase_history,
    score_buyer,
)
from stripe_middleware.signals.facts import Fact, facts_of
from stripe_middleware_dev import REPO_ROOT

DAY = 86_400
AS_OF = 1_764_000_000  # 2025-11-24T16:00:00Z
REPO_MODEL = REPO_ROOT / "config" / "buyers_model.json"
PARAMS = {"r": 0.64, "alpha": 7.3, "a": 0.81, "b": 1.23}
HISTORIES = [  # (x, t_x, T) in weeks: none, one, many repeat purchases; recent and long-gone buyers
    (0, 0.0, 0.0),
    (0, 0.0, 30.0),
    (1, 10.0, 30.0),
    (5, 20.0, 38.0),
    (3, 2.0, 39.0),
    (40, 38.0, 39.0),
    (200, 50.0, 52.0),
]


# -- charge facts as the signals context gets them -----------------------------------------------------------
def charge_facts(
    charge_id: str,
    at: int,
    *,
    failed: bool = False,
    amount: int = 2500,
    currency: str = "usd",
    customer: str = "cus_buyer",
    version: int | None = None,
) -> list[Fact]:
    """The facts of a `charge.succeeded` (or `.failed`) event around the real charge fixture."""
    status = "failed" if failed else "succeeded"
    obj = stripe_object(
        "charge", id=charge_id, created=at, status=status, amount=amount, currency=currency, customer=customer
    )
    event = stripe_event(f"charge.{status}", obj=obj, created=version or at)
    detail = {k: event[k] for k in ("id", "type", "created", "livemode")} | {"object": obj, "account": None}
    return facts_of(event["type"], detail)


def purchases(*days_ago: float, **fields: Any) -> list[Fact]:
    return [
        f for n, ago in enumerate(days_ago) for f in charge_facts(f"ch_{n}", int(AS_OF - ago * DAY), **fields)
    ]


def texts(charges: list[Fact], model: BuyerModel | None = None) -> list[str]:
    score = score_buyer(charges, AS_OF, model or load_buyer_model(REPO_MODEL))
    assert score is not None
    return [r.text for r in score.reasons]


# -- the closed forms ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "c", "z"),
    [
        (1.2, 0.5, 3.1, 0.3),
        (0.3, -0.2, 2.0, 0.95),  # slow: z near 1
        (50.0, 60.0, 40.5, 0.9),  # terms grow for a while before they shrink
        (2.0, 1.5, 0.7, 0.999),
        (0.5, -3.0, 1.5, 0.8),  # b a negative integer: a polynomial
        (1.0, 1.0, 2.0, 0.0),
    ],
)
def test_hyp2f1_is_scipys(a: float, b: float, c: float, z: float) -> None:
    assert hyp2f1(a, b, c, z) == pytest.approx(float(scipy_hyp2f1(a, b, c, z)), rel=1e-12)


def test_hyp2f1_says_when_it_does_not_converge() -> None:
    with pytest.raises(ArithmeticError, match="did not converge in 3 terms"):
        hyp2f1(1.0, 1.0, 2.0, 0.9, max_terms=3)


@pytest.mark.parametrize(("c", "z"), [(2.0, 1.0), (2.0, -0.1), (0.0, 0.5), (-2.0, 0.5)])
def test_hyp2f1_refuses_where_the_series_is_undefined(c: float, z: float) -> None:
    with pytest.raises(ValueError, match="hyp2f1"):
        hyp2f1(1.0, 1.0, c, z)


@pytest.mark.parametrize(
    ("family", "reference"), [("bgnbd", BetaGeoFitter), ("mbgnbd", ModifiedBetaGeoFitter)]
)
@pytest.mark.parametrize(("x", "t_x", "big_t"), HISTORIES)
def test_closed_forms_are_lifetimes(family: str, reference: Any, x: int, t_x: float, big_t: float) -> None:
    model = BuyerModel(**PARAMS, family=family)
    fitter = reference()
    fitter.params_ = pd.Series(PARAMS)
    rfm = Rfm(x, t_x * 7, big_t * 7)  # the model's unit is a week, Rfm is in days
    alive = float(np.atleast_1d(fitter.conditional_probability_alive(x, t_x, big_t))[0])
    expected = float(fitter.conditional_expected_number_of_purchases_up_to_time(13, x, t_x, big_t))
    assert probability_alive(rfm, model) == pytest.approx(alive, rel=1e-9)
    assert expected_purchases(rfm, model, 13 * 7) == pytest.approx(expected, rel=1e-9)


def test_the_bgnbd_calls_a_single_purchase_alive_and_the_mbgnbd_does_not() -> None:
    long_ago = Rfm(0, 0.0, 300.0)
    assert probability_alive(long_ago, BuyerModel(**PARAMS, family="bgnbd")) == 1.0
    mbgnbd = BuyerModel(**PARAMS)
    assert probability_alive(long_ago, mbgnbd) < probability_alive(Rfm(0, 0.0, 3.0), mbgnbd) < 1.0


def test_a_near_singular_a_gives_the_limit() -> None:
    at_one = BuyerModel(r=0.6, alpha=7.0, a=1.0, b=1.2)
    near = BuyerModel(r=0.6, alpha=7.0, a=1.0 + 1e-5, b=1.2)
    rfm = Rfm(2, 50.0, 120.0)
    assert expected_purchases(rfm, at_one, 90) == pytest.approx(expected_purchases(rfm, near, 90), rel=1e-4)
    assert expected_purchases(rfm, at_one, 0) == 0.0


def test_the_log_likelihood_is_the_probability_of_the_history() -> None:
    """It is the density of the purchase times: times the orderings of the x - 1 earlier purchases within
    t_x, summed over x and integrated over t_x, it is one."""
    model = BuyerModel(**PARAMS)
    big_t, steps = 10.0, 400  # weeks

    def density(x: int, t_x: float) -> float:
        return math.exp(
            log_likelihood(Rfm(x, t_x * 7, big_t * 7), model) + (x - 1) * math.log(t_x) - math.lgamma(x)
        )

    total = math.exp(log_likelihood(Rfm(0, 0.0, big_t * 7), model))
    width = big_t / steps
    total += sum(density(x, (i + 0.5) * width) * width for x in range(1, 40) for i in range(steps))
    assert total == pytest.approx(1.0, abs=1e-3)


# -- the fit ------------------------------------------------------------------------------------------------
def simulate(model: BuyerModel, buyers: int, seed: int) -> list[Rfm]:
    """MBG/NBD buyers: a rate and a chance of leaving each, leaving (or not) after every purchase, first
    included; observed for 26 to 52 weeks after their first purchase."""
    rng = random.Random(seed)
    histories = []
    for _ in range(buyers):
        rate = rng.gammavariate(model.r, 1 / model.alpha)
        leave = rng.betavariate(model.a, model.b)
        observed = rng.uniform(26, 52)
        t, times = 0.0, []
        while rng.random() >= leave:
            t += rng.expovariate(rate)
            if t > observed:
                break
            times.append(t)
        last = times[-1] if times else 0.0
        histories.append(Rfm(len(times), last * 7, observed * 7))
    return histories


def test_the_fit_recovers_simulated_buyers_and_is_lifetimes_fit() -> None:
    truth = BuyerModel(**PARAMS)
    histories = simulate(truth, 4000, seed=11)
    fitted = fit_buyer_model(histories, horizon_days=30, source="simulated")
    # What 4,000 buyers pin down well: the mean purchase rate and the mean chance of leaving.
    assert fitted.r / fitted.alpha == pytest.approx(truth.r / truth.alpha, rel=0.1)
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(truth.a / (truth.a + truth.b), rel=0.1)
    reference = ModifiedBetaGeoFitter().fit(
        *(
            np.array(v)
            for v in zip(
                *((h.repeat_purchases, h.days_to_last / 7, h.days_observed / 7) for h in histories),
                strict=True,
            )
        )
    )
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(float(reference.params_[name]), rel=1e-3), name
    assert (fitted.family, fitted.horizon_days, fitted.prior, fitted.source) == (
        "mbgnbd",
        30,
        False,
        "simulated",
    )


def test_a_fit_needs_repeat_buyers_and_a_known_family() -> None:
    with pytest.raises(ValueError, match="more than once"):
        fit_buyer_model([Rfm(0, 0.0, 30.0)] * 10)
    with pytest.raises(ValueError, match="family"):
        fit_buyer_model([Rfm(1, 3.0, 30.0)], family="pareto")


# -- scoring from charge facts ------------------------------------------------------------------------------
def test_no_successful_charge_by_then_is_not_scored() -> None:
    model = load_buyer_model(REPO_MODEL)
    assert score_buyer([], AS_OF, model) is None
    assert score_buyer(purchases(10, failed=True), AS_OF, model) is None
    assert score_buyer(purchases(-1), AS_OF, model) is None  # a day after as_of
    card = stripe_object("payment_method", customer="cus_buyer")
    card_facts = facts_of("payment_method.attached", {"id": "evt_1", "created": AS_OF, "object": card})
    assert card_facts and score_buyer(card_facts, AS_OF, model) is None


def test_a_single_purchase_fades_with_time() -> None:
    model = load_buyer_model(REPO_MODEL)
    recent, old = (score_buyer(purchases(ago), AS_OF, model) for ago in (3, 143))
    assert recent and old
    assert 0 < old.probability_active < recent.probability_active < 1
    assert old.churn_risk == pytest.approx(1 - old.probability_active)
    assert 0 < old.expected_purchases < recent.expected_purchases
    assert (old.horizon_days, old.model_version) == (90, model.version)
    assert texts(purchases(143)) == [
        "last purchase 143 days ago",
        "a single purchase so far",
        "average charge 25.00 USD (1 charge)",
    ]
    assert texts(purchases(0.2))[0] == "last purchase less than a day ago"
    assert texts(purchases(1300, 800))[:3] == [
        "last purchase 2.2 years ago",
        "2 purchases in 3.6 years",
        "a purchase every 500 days on average",
    ]


def test_a_regular_buyer_reads_like_words() -> None:
    charges = purchases(335, 240, 150, 60, amount=1999)
    assert texts(charges) == [
        "last purchase 60 days ago",
        "4 purchases in 11 months",
        "a purchase every 91 days on average",
        "average charge 19.99 USD (4 charges)",
    ]
    score = score_buyer(charges, AS_OF, load_buyer_model(REPO_MODEL))
    assert score and [r.feature for r in score.reasons] == [
        "days_since_last_purchase",
        "purchases",
        "days_between_purchases",
        "average_charge_usd",
    ]
    assert [r.value for r in score.reasons] == [60, 4, 91.7, 19.99]


def test_a_buyer_who_stops_is_at_risk_and_one_who_keeps_buying_is_not() -> None:
    model = load_buyer_model(REPO_MODEL)
    stopped = score_buyer(purchases(400, 390, 380, 370, 360, 350), AS_OF, model)
    steady = score_buyer(purchases(60, 50, 40, 30, 20, 10), AS_OF, model)
    assert stopped and steady
    assert stopped.churn_risk > 0.9 > 0.2 > steady.churn_risk
    assert steady.expected_purchases > 5 * stopped.expected_purchases


def test_failed_future_and_repeated_charges_change_nothing() -> None:
    model = load_buyer_model(REPO_MODEL)
    charges = purchases(200, 100, 30)
    noise = [
        *charge_facts("ch_failed", AS_OF - 5 * DAY, failed=True),
        *charge_facts("ch_future", AS_OF + DAY),
        *charge_facts("ch_0", AS_OF - 200 * DAY, version=AS_OF - 100),  # a later state of the same charge
    ]
    mixed = charges + noise
    random.Random(3).shuffle(mixed)
    assert score_buyer(mixed, AS_OF, model) == score_buyer(charges, AS_OF, model)


def test_a_charge_without_amount_or_currency_is_a_purchase_without_spend() -> None:
    bare = [
        dataclasses.replace(f, amount=None, currency=None) for f in charge_facts("ch_bare", AS_OF - 40 * DAY)
    ]
    assert texts([*purchases(100), *bare]) == [
        "last purchase 40 days ago",
        "2 purchases in 3 months",
        "a purchase every 60 days on average",
        "average charge 25.00 USD (1 charge)",
    ]


def test_charges_within_a_day_are_one_purchase() -> None:
    charges = [*purchases(20), *charge_facts("ch_same_basket", AS_OF - 20 * DAY + 3600)]
    history = purchase_history(charges, AS_OF)
    assert history and (history.purchases, history.charges) == (1, 2)
    assert texts(charges)[1] == "a single purchase so far (2 charges)"


def test_purchases_in_several_currencies_count_together_and_are_spent_apart() -> None:
    charges = [
        *charge_facts("ch_a", AS_OF - 90 * DAY, amount=2500, currency="usd"),
        *charge_facts("ch_b", AS_OF - 60 * DAY, amount=1500, currency="jpy"),
        *charge_facts("ch_c", AS_OF - 30 * DAY, amount=3500, currency="usd"),
        *charge_facts("ch_d", AS_OF - 10 * DAY, amount=12_340, currency="kwd"),
    ]
    assert texts(charges)[1:] == [
        "4 purchases in 3 months",
        "a purchase every 26 days on average",
        "average charge 30.00 USD (2 charges)",
        "average charge 1,500 JPY (1 charge)",
        "average charge 12.340 KWD (1 charge)",
    ]


# -- the model file -----------------------------------------------------------------------------------------
def test_the_shipped_model_is_a_documented_prior() -> None:
    model = load_buyer_model(REPO_MODEL)
    assert model.prior and model.family == "mbgnbd" and "CDNOW" in model.source
    assert model.version.startswith("mbgnbd-prior@")
    assert BuyerModel.from_json(json.loads(json.dumps(model.to_json()))) == model


def test_the_model_path_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(BuyerModel(**PARAMS, horizon_days=30).to_json()))
    monkeypatch.setenv(BUYERS_MODEL_ENV, str(path))
    load_buyer_model.cache_clear()
    try:
        assert load_buyer_model() == BuyerModel(**PARAMS, horizon_days=30)
    finally:
        load_buyer_model.cache_clear()


def test_the_version_follows_what_the_score_depends_on() -> None:
    model = BuyerModel(**PARAMS)
    assert model.version == BuyerModel(**PARAMS, source="other words").version
    assert model.version != BuyerModel(**{**PARAMS, "a": 0.82}).version
    assert model.version != BuyerModel(**PARAMS, horizon_days=30).version


def _edit(path: Path, edit: Any) -> None:
    data = json.loads(REPO_MODEL.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: None, "No such file"),
        (lambda p: p.write_text("{not json"), "Expecting property name"),
        (lambda p: p.write_text("[]"), "a JSON object"),
        (lambda p: _edit(p, lambda d: d["params"].pop("b")), "exactly r, alpha, a, b"),
        (lambda p: _edit(p, lambda d: d["params"].update(alpha=-1)), "alpha must be a positive number"),
        (lambda p: _edit(p, lambda d: d["params"].update(r="0.6")), "r must be a positive number"),
        (lambda p: _edit(p, lambda d: d["params"].update(a=math.inf)), "a must be a positive number"),
        (lambda p: _edit(p, lambda d: d.update(family="pareto")), "family must be one of"),
        (lambda p: _edit(p, lambda d: d.pop("family")), "family is required"),
        (lambda p: _edit(p, lambda d: d.update(horizon_days=1.5)), "horizon_days must be a whole number"),
        (lambda p: _edit(p, lambda d: d.update(prior="yes")), "prior must be true or false"),
        (lambda p: _edit(p, lambda d: d.update(horizon=90)), "unknown buyer model fields: horizon"),
    ],
)
def test_a_bad_model_file_is_a_clear_error(tmp_path: Path, write: Any, message: str) -> None:
    path = tmp_path / "buyers_model.json"
    write(path)
    with pytest.raises(BuyerModelError, match=message) as error:
        load_buyer_model(path)
    assert str(path) in str(error.value)


# -- the CDNOW benchmark, small ------------------------------------------------------------------------------
def test_cdnow_sample_ranks_future_buyers_like_the_bgnbd() -> None:
    result = cdnow.run(limit_customers=2000)  # speed is judged in `make bench`, not here
    assert result["customers"] == 2000
    assert result["stripe_event_type"] in ("payment_intent.succeeded", "charge.succeeded")
    ours, reference = result["ours"], result["bgnbd_lifetimes"]
    assert ours["mbgnbd"]["auc"] > 0.7
    assert ours["mbgnbd"]["auc"] >= reference["auc"] - 0.01
    # Our BG/NBD fit, from the charge facts, is lifetimes' fit from the raw file: same data, same model.
    for name, value in reference["params"].items():
        assert ours["bgnbd"]["params"][name] == pytest.approx(value, rel=1e-3), name
    assert ours["bgnbd"]["auc"] == pytest.approx(reference["auc"], abs=1e-3)
    assert result["rfm_ceiling_auc"] < 0.8  # the ceiling an RFM score can reach on this split
