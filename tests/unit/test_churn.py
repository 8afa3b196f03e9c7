"""Churn risk: the facts it reads, its features on crafted histories, the model artifact, scoring and
reasons, and `detect` publishing a customer's churn risk only when its level changes.

Every detail is built from the real Stripe fixtures and shaped as the processor publishes it (with
`previous_attributes`). Event time is the event's `created`, never the wall clock.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator

from events import load_event, stripe_event, stripe_object
from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.signals.churn import (
    CHURN_MODEL_ENV,
    FEATURES,
    ChurnModel,
    ChurnModelError,
    assess,
    explain,
    features,
    load_churn_model,
)
from stripe_middleware.signals.config import SignalsConfig
from stripe_middleware.signals.detect import Detection, SignalsNotPublishedError, detect
from stripe_middleware.signals.facts import INVOICE, PLAN_CHANGE, SUBSCRIPTION, Fact, facts_of
from stripe_middleware_dev import REPO_ROOT
from tests.fakes.ports import FakePublisher
from tests.fakes.signals import InMemorySignalState

Detail = tuple[str, dict[str, Any]]
Arrange = Callable[[list[Detail]], list[Detail]]

DAY = 86_400
T0 = 1_764_000_000  # 2025-11-24T16:00:00Z
START = T0 - 365 * DAY  # the subscriptions start a year before
REPO_MODEL = REPO_ROOT / "config" / "churn_model.json"
PRIOR = load_churn_model(REPO_MODEL)
SCHEMA = Draft4Validator(load_event("schemas/signal-churn-risk.detail.schema.json"))
SUBSCRIPTION_FIXTURE = stripe_object("subscription")
ITEM = SUBSCRIPTION_FIXTURE["items"]["data"][0]
INVOICE_LINES = stripe_object("invoice")["lines"]
LINE = INVOICE_LINES["data"][0]
CHARGE_CARD = stripe_object("charge")["payment_method_details"]["card"]  # expires 8/2030
PM_CARD = stripe_object("payment_method")["card"]


# -- details as the processor publishes them --------------------------------------------------------------
def detail(
    event_type: str,
    at: int,
    *,
    created: int | None = None,
    previous: dict[str, Any] | None = None,
    **fields: Any,
) -> Detail:
    """A Stripe event at `at` around the fixture object with `fields`; the object was created at `created`."""
    event = stripe_event(event_type, created=at, previous_attributes=previous, **fields)
    event["data"]["object"]["created"] = created or at
    return event["type"], {
        "id": event["id"],
        "type": event["type"],
        "created": event["created"],
        "livemode": event["livemode"],
        "account": event.get("account"),
        "object": event["data"]["object"],
        "previous_attributes": event["data"].get("previous_attributes"),
    }


def items(
    *,
    quantity: int = 1,
    unit_amount: int = 2000,
    interval: str = "month",
    interval_count: int = 1,
    period_end: int | None = None,
) -> dict[str, Any]:
    recurring = {**ITEM["price"]["recurring"], "interval": interval, "interval_count": interval_count}
    price = {**ITEM["price"], "unit_amount": unit_amount, "recurring": recurring}
    item = {**ITEM, "price": price, "quantity": quantity, "current_period_end": period_end}
    return {**SUBSCRIPTION_FIXTURE["items"], "data": [item]}


def subscription(
    at: int,
    *,
    event_type: str = "customer.subscription.updated",
    sub: str = "sub_1",
    customer: str = "cus_1",
    status: str = "active",
    period_end: int | None = None,
    previous: dict[str, Any] | None = None,
    **fields: Any,
) -> Detail:
    """The fixture subscription, active since START, nothing scheduled, renewing 30 days after `at`."""
    state: dict[str, Any] = {
        "id": sub,
        "customer": customer,
        "status": status,
        "cancel_at_period_end": False,
        "cancel_at": None,
        "canceled_at": None,
        "ended_at": None,
        "pause_collection": None,
        "trial_start": None,
        "trial_end": None,
        "default_payment_method": None,
        "items": items(period_end=period_end or at + 30 * DAY),
    }
    return detail(event_type, at, created=START, previous=previous, **state | fields)


def invoice(
    invoice_id: str,
    at: int,
    *,
    customer: str = "cus_1",
    sub: str = "sub_1",
    status: str = "paid",
    amount: int = 2000,
    attempts: int = 1,
    lines: dict[str, int] | None = None,
) -> Detail:
    """A subscription invoice; `lines` (subscription item -> quantity) replaces the fixture's lines."""
    event_type = {"paid": "invoice.paid", "open": "invoice.payment_failed"}.get(status, "invoice.updated")
    parent = {"type": "subscription_details", "subscription_details": {"metadata": None, "subscription": sub}}
    fields: dict[str, Any] = {}
    if lines is not None:
        fields["lines"] = {
            **INVOICE_LINES,
            "data": [line(item, quantity) for item, quantity in lines.items()],
        }
    return detail(
        event_type,
        at,
        id=invoice_id,
        customer=customer,
        status=status,
        amount_due=amount,
        amount_paid=amount if status == "paid" else 0,
        attempt_count=attempts,
        attempted=attempts > 0,
        billing_reason="subscription_cycle",
        parent=parent,
        **fields,
    )


def line(item: str, quantity: int) -> dict[str, Any]:
    """The fixture line item, billing `quantity` of subscription item `item`."""
    details = {**LINE["parent"]["subscription_item_details"], "subscription_item": item, "proration": False}
    parent = {"type": "subscription_item_details", "subscription_item_details": details}
    return {**LINE, "id": f"il_{item}_{quantity}", "quantity": quantity, "parent": parent}


def charge(
    charge_id: str,
    at: int,
    *,
    customer: str = "cus_1",
    failed: bool = False,
    amount: int = 2000,
    refunded: int = 0,
    disputed: bool = False,
    expires: tuple[int, int] = (8, 2030),
) -> Detail:
    status = "failed" if failed else "succeeded"
    card = {**CHARGE_CARD, "exp_month": expires[0], "exp_year": expires[1]}
    return detail(
        f"charge.{'refunded' if refunded else status}",
        at,
        id=charge_id,
        customer=customer,
        status=status,
        amount=amount,
        amount_refunded=refunded,
        refunded=refunded >= amount,
        disputed=disputed,
        payment_method_details={"type": "card", "card": card},
    )


def card(pm_id: str, at: int, *, customer: str = "cus_1", expires: tuple[int, int] = (8, 2030)) -> Detail:
    pm_card = {**PM_CARD, "exp_month": expires[0], "exp_year": expires[1]}
    return detail("payment_method.attached", at, id=pm_id, customer=customer, card=pm_card)


def history(customer: str = "cus_1", sub: str = "sub_1", months: int = 12) -> list[Detail]:
    """A subscriber since START who paid every month: each renewal an invoice, its charge, the new period."""
    found = [
        subscription(START, event_type="customer.subscription.created", sub=sub, customer=customer),
    ]
    for month in range(1, months + 1):
        at = START + month * 30 * DAY
        found += [
            invoice(f"in_{customer}_{month}", at, customer=customer, sub=sub),
            charge(f"ch_{customer}_{month}", at + 60, customer=customer),
            subscription(at + 120, sub=sub, customer=customer),
        ]
    return found


def kept(*details: Detail) -> list[Fact]:
    """The facts the state keeps of these details (the newest state of each)."""
    state = InMemorySignalState()
    for d in details:
        state.add_facts("customer", facts_of(*d))
    return state.facts("customer")


def measured(*details: Detail, as_of: int = T0) -> dict[str, float]:
    return features(kept(*details), as_of)


# -- facts ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("price", "monthly"),
    [
        pytest.param({"unit_amount": 2000}, 2000, id="monthly"),
        pytest.param({"unit_amount": 24_000, "interval": "year"}, 2000, id="yearly"),
        pytest.param({"unit_amount": 6000, "interval_count": 3}, 2000, id="quarterly"),
        pytest.param({"unit_amount": 500, "interval": "week"}, 2174, id="weekly"),
        pytest.param({"unit_amount": 2000, "quantity": 3}, 6000, id="three seats"),
    ],
)
def test_a_subscription_is_a_fact_of_its_state_with_the_amount_per_month(
    price: dict[str, Any], monthly: int
) -> None:
    renewal = T0 + 10 * DAY
    details = subscription(
        T0,
        status="past_due",
        items=items(period_end=renewal, **price),
        pause_collection={"behavior": "void", "resumes_at": None},
        default_payment_method="pm_1",
    )
    [fact] = [f for f in facts_of(*details) if f.kind == SUBSCRIPTION]
    assert (fact.id, fact.customer, fact.created, fact.version) == ("subscription:sub_1", "cus_1", START, T0)
    assert (fact.amount, fact.currency, fact.quantity) == (monthly, "usd", price.get("quantity", 1))
    assert (fact.status, fact.paused, fact.cancel_at_period_end) == ("past_due", True, False)
    assert (fact.period_end, fact.payment_method) == (renewal, "pm_1")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"cancel_at_period_end": True}, True, id="cancel_at_period_end"),
        pytest.param({"cancel_at": T0 + 30 * DAY}, True, id="cancel_at the period end"),
        pytest.param({"cancel_at": T0 + 400 * DAY}, False, id="cancel_at a later period"),
    ],
)
def test_a_cancellation_within_the_period_is_a_cancellation_at_its_end(
    fields: dict[str, Any], expected: bool
) -> None:
    [fact] = [f for f in facts_of(*subscription(T0, **fields)) if f.kind == SUBSCRIPTION]
    assert fact.cancel_at_period_end is expected


def test_a_plan_change_is_a_fact_of_the_event_that_tells_it() -> None:
    before = {"items": items(quantity=5, unit_amount=2000)}
    change = subscription(T0, items=items(quantity=3, unit_amount=2500), previous=before)
    [fact] = [f for f in facts_of(*change) if f.kind == PLAN_CHANGE]
    assert (fact.previous_quantity, fact.quantity) == (5, 3)
    assert (fact.previous_amount, fact.amount) == (10_000, 7500)
    assert (fact.created, fact.evidence) == (T0, change[1]["id"])  # dated by the event, not the subscription
    assert fact.id == f"plan_change:sub_1@{change[1]['id']}"
    assert [f.id for f in facts_of(*copy.deepcopy(change))] == [f.id for f in facts_of(*change)]
    other = subscription(T0, previous={"cancel_at_period_end": True})  # no change of plan
    assert [f.kind for f in facts_of(*other)] == [SUBSCRIPTION]


@pytest.mark.parametrize(
    ("status", "attempts", "failed"),
    [("open", 2, True), ("paid", 3, False), ("draft", 0, False), ("uncollectible", 4, True)],
)
def test_an_invoice_is_a_fact_of_its_outcome(status: str, attempts: int, failed: bool) -> None:
    [fact] = [
        f for f in facts_of(*invoice("in_1", T0, status=status, attempts=attempts)) if f.kind == INVOICE
    ]
    assert (fact.status, fact.attempts, fact.failed, fact.amount) == (status, attempts, failed, 2000)
    assert (fact.subscription, fact.customer) == ("sub_1", "cus_1")  # parent.subscription_details


def test_a_charge_says_its_refund_dispute_and_card_expiry() -> None:
    [fact] = facts_of(*charge("ch_1", T0, refunded=500, disputed=True, expires=(3, 2027)))
    assert (fact.refunded, fact.disputed, fact.exp_month, fact.exp_year) == (500, True, 3, 2027)


# -- features ---------------------------------------------------------------------------------------------
def test_a_subscriber_who_pays_every_month_has_nothing_wrong() -> None:
    values = measured(*history())
    assert set(values) == set(FEATURES)
    assert values["tenure_days"] == 365
    assert values["days_since_last_payment"] == pytest.approx(5, abs=0.01)  # paid at START + 360 days
    wrong = {n: v for n, v in values.items() if v and n not in ("tenure_days", "days_since_last_payment")}
    assert wrong == {}


@pytest.mark.parametrize(
    ("seen", "failures"),
    [
        pytest.param("charges", 2, id="failed charges"),
        pytest.param("invoice", 2, id="the invoice's failed attempts"),
        pytest.param("both", 2, id="both, counted once"),
    ],
)
def test_failed_payments_count_each_attempt_once(seen: str, failures: int) -> None:
    stream = history()
    if seen in ("charges", "both"):
        stream += [charge("ch_f1", T0 - 3 * DAY, failed=True), charge("ch_f2", T0 - 2 * DAY, failed=True)]
    if seen in ("invoice", "both"):
        stream.append(invoice("in_f", T0 - 3 * DAY, status="open", attempts=2))
    values = measured(*stream)
    assert (values["failed_payments_30d"], values["failed_payments_90d"]) == (failures, failures)


def test_failures_age_out_of_the_30_day_window_first() -> None:
    stream = [
        *history(),
        charge("ch_old", T0 - 45 * DAY, failed=True),
        charge("ch_new", T0 - DAY, failed=True),
    ]
    values = measured(*stream)
    assert (values["failed_payments_30d"], values["failed_payments_90d"]) == (1, 2)
    assert measured(*stream, as_of=T0 - 2 * DAY)["failed_payments_30d"] == 0  # ch_new is after as_of


def test_a_paid_invoice_that_took_retries_counts_its_failed_attempts() -> None:
    values = measured(*history(), invoice("in_retried", T0 - DAY, attempts=3))
    assert values["failed_payments_30d"] == 2


@pytest.mark.parametrize(
    ("expires", "expected"),
    [
        pytest.param((11, 2025), 1, id="expires this month, renews in December"),
        pytest.param((12, 2025), 0, id="works through December"),
    ],
)
def test_a_card_that_expires_before_the_next_renewal(expires: tuple[int, int], expected: int) -> None:
    renewal = T0 + 10 * DAY  # 2025-12-04
    stream = [*history(), card("pm_1", T0 - DAY, expires=expires), subscription(T0, period_end=renewal)]
    assert measured(*stream)["card_expires_before_renewal"] == expected


def test_the_subscriptions_default_card_counts_before_a_newer_one() -> None:
    renewal = T0 + 10 * DAY
    stream = [
        *history(),
        card("pm_default", T0 - 5 * DAY, expires=(11, 2025)),  # expires before the renewal
        card("pm_newer", T0 - DAY, expires=(1, 2030)),
        subscription(T0, period_end=renewal, default_payment_method="pm_default"),
    ]
    assert measured(*stream)["card_expires_before_renewal"] == 1
    stream[-1] = subscription(T0, period_end=renewal)  # no default: the newest card
    assert measured(*stream)["card_expires_before_renewal"] == 0


def test_the_card_of_the_last_payment_counts_when_none_was_attached() -> None:
    stream = [
        *history(),
        charge("ch_x", T0 - DAY, expires=(11, 2025)),
        subscription(T0, period_end=T0 + 9 * DAY),
    ]
    assert measured(*stream)["card_expires_before_renewal"] == 1


def test_downgrades_quantity_decreases_and_price_increases_in_the_last_90_days() -> None:
    def change(at: int, before: tuple[int, int], after: tuple[int, int]) -> Detail:
        (q0, p0), (q1, p1) = before, after
        previous = {"items": items(quantity=q0, unit_amount=p0)}
        return subscription(at, items=items(quantity=q1, unit_amount=p1), previous=previous)

    stream = [
        *history(),
        change(T0 - 200 * DAY, (5, 2000), (4, 2000)),  # too old
        change(T0 - 60 * DAY, (4, 2000), (3, 2000)),  # fewer seats: a downgrade and a quantity decrease
        change(T0 - 30 * DAY, (3, 2000), (3, 2500)),  # the same seats, dearer: a price increase
        change(T0 - 10 * DAY, (3, 2500), (1, 4000)),  # fewer seats, dearer each, cheaper in all
    ]
    values = measured(*stream)
    assert (values["downgrades_90d"], values["quantity_decreases_90d"], values["price_increases_90d"]) == (
        2,
        2,
        2,
    )


def test_refunds_and_disputes_count_once_per_charge() -> None:
    refund = detail(
        "refund.created", T0 - 2 * DAY, id="re_1", charge="ch_r", customer="cus_1", status="succeeded"
    )
    stream = [
        *history(),
        charge("ch_r", T0 - 3 * DAY, refunded=2000),
        refund,  # the same refund, told by the refund itself
        charge("ch_d", T0 - 100 * DAY, disputed=True),
    ]
    values = measured(*stream)
    assert (values["refunds_90d"], values["disputes_365d"]) == (1, 1)


@pytest.mark.parametrize(
    ("fields", "feature"),
    [
        pytest.param({"status": "past_due"}, "past_due", id="past due"),
        pytest.param({"status": "trialing"}, "in_trial", id="trialing"),
        pytest.param({"pause_collection": {"behavior": "void", "resumes_at": None}}, "paused", id="paused"),
        pytest.param({"cancel_at_period_end": True}, "cancel_at_period_end", id="cancel at period end"),
    ],
)
def test_the_state_of_a_live_subscription(fields: dict[str, Any], feature: str) -> None:
    assert measured(*history(), subscription(T0, **fields))[feature] == 1


def test_the_invoice_amount_trend_compares_the_latest_with_the_median_before() -> None:
    stream = [
        *history(months=0),
        *(
            invoice(f"in_{n}", START + n * DAY, amount=a)
            for n, a in enumerate([9000, 2000, 2000, 2000, 1000], 1)
        ),
    ]
    assert measured(*stream)["invoice_amount_trend"] == pytest.approx(-0.5)


def test_the_usage_trend_reads_the_metered_items_quantities_on_the_invoices() -> None:
    """Seats (licensed) and API calls (metered): only the metered item's usage makes the trend."""
    metered_price = {
        **ITEM["price"],
        "id": "price_calls",
        "recurring": {**ITEM["price"]["recurring"], "usage_type": "metered"},
    }
    seats, calls = (
        {**ITEM, "id": "si_seats"},
        {**ITEM, "id": "si_calls", "price": metered_price, "quantity": None},
    )
    both = {**SUBSCRIPTION_FIXTURE["items"], "data": [seats, calls]}
    used = [1200, 900, 1000, 1100, 400]  # the median of the three before the last is 1000
    stream = [
        subscription(START, event_type="customer.subscription.created", items=both),
        *(
            invoice(f"in_{n}", START + n * 30 * DAY, lines={"si_seats": 5, "si_calls": q})
            for n, q in enumerate(used, 1)
        ),
    ]
    [fact] = [f for f in kept(*stream) if f.kind == SUBSCRIPTION]
    assert fact.metered_items == "si_calls" and fact.amount == 2000 * 1  # the metered item is not MRR
    values = measured(*stream)
    assert values["usage_trend"] == pytest.approx(-0.6)
    assert values["invoice_amount_trend"] == 0  # the bill stayed the same: only usage tells
    no_meter = [subscription(START, event_type="customer.subscription.created"), *stream[1:]]
    assert measured(*no_meter)["usage_trend"] == 0  # no metered item: no usage trend


def test_a_falling_usage_raises_the_risk_and_is_named_as_a_reason() -> None:
    metered = {**ITEM["price"], "recurring": {**ITEM["price"]["recurring"], "usage_type": "metered"}}
    calls = {**SUBSCRIPTION_FIXTURE["items"], "data": [{**ITEM, "id": "si_calls", "price": metered}]}

    def stream(last: int) -> list[Detail]:
        return [
            subscription(START, event_type="customer.subscription.created", items=calls),
            *(
                invoice(f"in_{n}", START + n * 30 * DAY, lines={"si_calls": q})
                for n, q in enumerate([500, 500, 500, last], 1)
            ),
        ]

    steady, falling = (assess("s", kept(*stream(q)), PRIOR) for q in (500, 100))
    assert steady is not None and falling is not None and falling.score > steady.score
    [reason] = [r for r in falling.reasons if r.feature == "usage_trend"]
    assert "the metered usage on the latest invoice is 80% below the ones before" in reason.text


# -- the model --------------------------------------------------------------------------------------------
def test_the_repository_prior_is_documented_and_marked_as_such() -> None:
    assert PRIOR.prior is True and PRIOR.trained_at is None
    assert re.fullmatch(r"churn_prior@[0-9a-f]{8}", PRIOR.version)
    assert list(PRIOR.features) == list(FEATURES)
    assert set(PRIOR.comment) == {"model", "intercept", *FEATURES}  # each explained
    assert "PRIOR" in PRIOR.comment["model"]


def test_the_model_is_found_like_the_signals_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(REPO_MODEL.read_text())
    monkeypatch.setenv(CHURN_MODEL_ENV, str(path))
    load_churn_model.cache_clear()
    try:
        assert load_churn_model() == PRIOR
        monkeypatch.setenv(CHURN_MODEL_ENV, str(tmp_path / "missing.json"))
        load_churn_model.cache_clear()
        with pytest.raises(ChurnModelError, match=r"missing\.json"):
            load_churn_model()
    finally:
        load_churn_model.cache_clear()


def test_a_model_round_trips_through_its_artifact(tmp_path: Path) -> None:
    model = ChurnModel.build(
        prior=False,
        features=["failed_payments_30d", "tenure_days"],
        coefficients={"failed_payments_30d": 1.25, "tenure_days": -0.4},
        intercept=-1.5,
        means={"failed_payments_30d": 0.2, "tenure_days": 300.0},
        scales={"failed_payments_30d": 0.6, "tenure_days": 200.0},
        trained_at="2025-11-24T16:00:00Z",
        metrics={"roc_auc": 0.8},
    )
    path = tmp_path / "model.json"
    path.write_text(model.to_json())
    loaded = load_churn_model(path)
    assert loaded == model and re.fullmatch(r"churn@[0-9a-f]{8}", loaded.version)
    values = {**dict.fromkeys(FEATURES, 0.0), "failed_payments_30d": 2.0, "tenure_days": 100.0}
    z = -1.5 + 1.25 * (2 - 0.2) / 0.6 - 0.4 * (100 - 300) / 200
    assert loaded.predict(values) == pytest.approx(1 / (1 + 2.718281828459045**-z))


def edited(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda artifact: artifact.update(changes)


BAD_ARTIFACTS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "unknown feature": (
        lambda a: (a["features"].append("mood"), a["coefficients"].update(mood=1.0)),
        "unknown features",
    ),
    "missing coefficient": (lambda a: a["coefficients"].pop("paused"), "coefficients must name exactly"),
    "zero scale": (lambda a: a["scales"].update(paused=0.0), "scales must be positive"),
    "edited without its version": (lambda a: a.update(intercept=-1.0), "does not match the model's content"),
    "unknown key": (edited(weights=[1, 2]), "weights"),
    "no prior flag": (lambda a: a.pop("prior"), "prior"),
}


@pytest.mark.parametrize(("edit", "message"), BAD_ARTIFACTS.values(), ids=list(BAD_ARTIFACTS))
def test_a_bad_artifact_is_refused_with_its_path_and_reason(
    tmp_path: Path, edit: Callable[[dict[str, Any]], Any], message: str
) -> None:
    artifact = json.loads(REPO_MODEL.read_text())
    edit(artifact)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(artifact))
    with pytest.raises(ChurnModelError, match=re.escape(str(path))) as raised:
        load_churn_model(path)
    assert message in str(raised.value)


@pytest.mark.parametrize("content", ["", "{not json", '{"intercept": NaN}'], ids=["empty", "not JSON", "NaN"])
def test_an_unreadable_artifact_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "model.json"
    path.write_text(content)
    with pytest.raises(ChurnModelError, match="is invalid"):
        load_churn_model(path)


# -- scoring and reasons ----------------------------------------------------------------------------------
def test_the_prior_scores_a_paying_subscriber_low_and_one_cancelling_high() -> None:
    healthy = assess("s", kept(*history()), PRIOR)
    cancelling = assess("s", kept(*history(), subscription(T0, cancel_at_period_end=True)), PRIOR)
    assert healthy and cancelling
    assert (healthy.level, cancelling.level) == ("low", "high")
    assert cancelling.reasons[0].feature == "cancel_at_period_end"
    assert cancelling.reasons[0].text == (
        "the subscription is set to cancel at the end of its period: raises the risk a lot"
    )


def test_failing_payments_raise_the_risk_step_by_step() -> None:
    stream = [*history(), subscription(T0 - 4 * DAY, status="past_due")]
    levels = []
    for n in range(4):
        stream.append(charge(f"ch_fail{n}", T0 - 3 * DAY + n * DAY, failed=True))
        risk = assess("s", kept(*stream), PRIOR)
        assert risk is not None
        levels.append(risk.level)
    assert levels == ["low", "medium", "high", "high"]
    assert risk.reasons[0].text == "4 payments failed in the last 30 days: raises the risk a lot"


def test_reasons_are_the_largest_contributions_with_their_values_in_words() -> None:
    stream = [
        *history(),
        charge("ch_fail", T0 - DAY, failed=True),
        charge("ch_refund", T0 - 2 * DAY, refunded=2000),
        subscription(T0, status="trialing"),
    ]
    values = features(kept(*stream), T0)
    reasons = explain(PRIOR, values)
    contributions = PRIOR.contributions(values)
    assert [r.feature for r in reasons] == ["failed_payments_30d", "in_trial", "refunds_90d"]
    for r in reasons:
        assert r.value == values[r.feature]
        assert r.contribution == pytest.approx(contributions[r.feature], abs=1e-3)
    assert reasons[0].text == "1 payment failed in the last 30 days: raises the risk"
    assert reasons[2].text == "1 refunded payment in the last 90 days: raises the risk"


def test_a_customer_with_nothing_wrong_hears_what_lowers_the_risk() -> None:
    reasons = explain(PRIOR, features(kept(*history()), T0))
    assert [r.text for r in reasons] == [
        "a subscriber for 365 days: lowers the risk",
        "5 days since the last successful payment: lowers it slightly",
    ]


def test_customers_without_a_live_subscription_are_not_scored() -> None:
    ended = [*history(), subscription(T0, event_type="customer.subscription.deleted", status="canceled")]
    assert assess("s", kept(*ended), PRIOR) is None
    assert assess("s", kept(charge("ch_1", T0)), PRIOR) is None  # a one-off buyer (signals/buyers.py)


# -- detection: published when the level changes ----------------------------------------------------------
@dataclass
class Harness:
    state: InMemorySignalState = field(default_factory=InMemorySignalState)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    model: ChurnModel = PRIOR

    def deliver(self, *details: Detail) -> list[Detection]:
        ports: dict[str, Any] = {"state": self.state, "publisher": self.publisher}
        ports |= {"config": SignalsConfig(version=1), "model": self.model}
        return [detect(kind, copy.deepcopy(d), **ports) for kind, d in details]

    @property
    def published(self) -> list[dict[str, Any]]:
        return self.publisher.details(DetailType.SIGNAL_CHURN_RISK)

    def levels(self, customer: str = "cus_1") -> list[str]:
        return [s["level"] for s in self.published if s["customer_id"] == customer]

    def recorded(self) -> dict[str, str]:
        return {subject.rsplit("/", 1)[1]: d["level"] for subject, d in self.state.churn.items()}


def delivered(*details: Detail) -> Harness:
    harness = Harness()
    harness.deliver(*details)
    return harness


def cancelling(customer: str = "cus_2") -> list[Detail]:
    """A year of payments, then the customer schedules the cancellation: low, then high."""
    return [
        *history(customer, f"sub_{customer}"),
        subscription(T0, sub=f"sub_{customer}", customer=customer, cancel_at_period_end=True),
    ]


def failing(customer: str = "cus_3") -> list[Detail]:
    """A year of payments, then the renewal fails again and again: low, medium, high."""
    sub = f"sub_{customer}"
    return [
        *history(customer, sub),
        subscription(T0 - 4 * DAY, sub=sub, customer=customer, status="past_due"),
        *(
            charge(f"ch_{customer}_fail{n}", T0 - 3 * DAY + n * DAY, customer=customer, failed=True)
            for n in range(3)
        ),
    ]


def mixed_stream() -> list[Detail]:
    return [*history(), *cancelling(), *failing()]


def test_a_level_is_published_when_it_changes_and_only_then() -> None:
    harness = Harness()
    harness.deliver(*history())
    [first] = harness.published
    assert (first["level"], first["previous_level"]) == ("low", None)  # the first assessment
    harness.deliver(charge("ch_more", T0 - DAY))  # still low: nothing
    assert len(harness.published) == 1
    [detection] = harness.deliver(subscription(T0, cancel_at_period_end=True))
    [risk] = detection.churn_risks
    assert (risk.level, risk.previous_level, risk.customer_id) == ("high", "low", "cus_1")
    harness.deliver(subscription(T0 + DAY))  # the customer changed their mind
    assert harness.levels() == ["low", "high", "low"]
    assert harness.recorded() == {"cus_1": "low"}
    assert harness.state.churn["test/platform/customer/cus_1"] == harness.published[-1]


def test_each_level_change_is_published_once_in_event_order() -> None:
    harness = delivered(*mixed_stream())
    assert (harness.levels("cus_1"), harness.levels("cus_2"), harness.levels("cus_3")) == (
        ["low"],
        ["low", "high"],
        ["low", "medium", "high"],
    )


def shuffled(seed: int) -> Arrange:
    return lambda s: random.Random(seed).sample(s, len(s))


ARRANGEMENTS: dict[str, Arrange] = {
    "reversed": lambda s: s[::-1],
    **{f"shuffle-{seed}": shuffled(seed) for seed in range(5)},
    "each twice": lambda s: [d for d in s for _ in (1, 2)],
    "twice, shuffled": lambda s: random.Random(42).sample(s * 2, 2 * len(s)),
}


@pytest.mark.parametrize("arrange", ARRANGEMENTS.values(), ids=list(ARRANGEMENTS))
def test_any_order_and_redelivery_end_at_the_same_level_publishing_only_changes(arrange: Arrange) -> None:
    stream = mixed_stream()
    in_order, arranged = delivered(*stream), delivered(*arrange(stream))
    assert arranged.recorded() == in_order.recorded() == {"cus_1": "low", "cus_2": "high", "cus_3": "high"}
    for customer in ("cus_1", "cus_2", "cus_3"):
        published = [s for s in arranged.published if s["customer_id"] == customer]
        previous = [None] + [s["level"] for s in published[:-1]]
        assert [s["previous_level"] for s in published] == previous  # every publication is a change
        assert all(s["level"] != s["previous_level"] for s in published)
    ids = [s["signal_id"] for s in arranged.published]
    assert len(ids) == len(set(ids))  # a late, older event changes the level, not the newest time: a new id


def test_duplicates_in_order_publish_exactly_what_one_delivery_does() -> None:
    stream = mixed_stream()
    twice = delivered(*(d for d in stream for _ in (1, 2)))
    assert [s["signal_id"] for s in twice.published] == [s["signal_id"] for s in delivered(*stream).published]


def test_a_refused_publication_is_published_by_the_redelivery_once() -> None:
    harness = Harness()
    *before, last = cancelling("cus_1")
    harness.deliver(*before)
    harness.publisher.fail_all = True
    with pytest.raises(SignalsNotPublishedError, match="1 churn risks"):
        harness.deliver(last)
    assert harness.levels() == ["low"] and harness.recorded() == {"cus_1": "low"}  # not recorded
    harness.publisher.fail_all = False
    harness.deliver(last, last)
    assert harness.levels() == ["low", "high"]
    assert harness.recorded() == {"cus_1": "high"}


def test_a_level_not_recorded_is_published_again_under_the_same_id() -> None:
    harness = Harness()
    *before, last = cancelling("cus_1")
    harness.deliver(*before)
    harness.state.unavailable = {"put_churn_risk"}
    with pytest.raises(StoreUnavailableError):
        harness.deliver(last)
    harness.state.unavailable.clear()
    harness.deliver(last)
    first, again = harness.published[-2:]
    assert first == again and first["level"] == "high"  # at least once: subscribers de-duplicate on the id
    assert harness.recorded() == {"cus_1": "high"}


def test_an_older_assessment_never_replaces_a_newer_one() -> None:
    harness = delivered(*cancelling("cus_1"))
    newest = harness.state.churn["test/platform/customer/cus_1"]
    harness.state.churn["test/platform/customer/cus_1"] = {**newest, "level": "low", "as_of": iso(T0 + DAY)}
    harness.deliver(charge("ch_late", T0 - DAY))  # a concurrent delivery recorded a later one
    assert harness.levels() == ["low", "high"]


def test_one_off_buyers_and_ended_subscriptions_publish_no_churn_risk() -> None:
    harness = delivered(
        charge("ch_1", T0, customer="cus_buyer"), charge("ch_2", T0 + DAY, customer="cus_buyer")
    )
    assert harness.published == []
    harness.deliver(*cancelling("cus_1"))
    harness.deliver(
        subscription(
            T0 + 30 * DAY, sub="sub_cus_1", event_type="customer.subscription.deleted", status="canceled"
        )
    )
    assert harness.levels() == ["low", "high"]  # the deletion itself is the news
    assert harness.recorded() == {}  # and the read API no longer calls the churned customer "high"


def test_the_published_detail_has_the_contract_shape() -> None:
    stream = mixed_stream()
    event_ids = {d["id"] for _, d in stream}
    harness = delivered(*stream)
    for signal in harness.published:
        SCHEMA.validate(signal)
        assert signal["kind"] == "churn_risk" and signal["model_version"] == PRIOR.version
        assert signal["level"] == (
            "high" if signal["score"] >= 0.75 else "medium" if signal["score"] >= 0.5 else "low"
        )
        assert set(signal["evidence"]["event_ids"]) <= event_ids
        assert set(signal["features"]) == set(FEATURES)
        assert (signal["account"], signal["livemode"]) == (None, False)
    high = next(s for s in harness.published if s["customer_id"] == "cus_2" and s["level"] == "high")
    assert high["as_of"] == iso(T0)  # the newest event of the customer
    assert "sub_cus_2" in high["evidence"]["object_ids"]
    assert high["reasons"][0]["feature"] == "cancel_at_period_end"
