"""Account takeover, payment failure and dispute spikes, amount outliers: their facts, positives and the
near misses that must stay quiet, and the same findings however the stream arrives.

Every detail is built from the real Stripe fixtures (events/stripe/fixtures3.json) and shaped as the
processor publishes it; streams, the harness and the arrangements come from test_signals.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

from events import load_event, stripe_event
from stripe_middleware.shared.clock import iso
from stripe_middleware.signals.config import SignalsConfigError, load_signals_config
from stripe_middleware.signals.detectors import payment_failure_spike
from stripe_middleware.signals.facts import DISPUTE, PROFILE, REFUND, Fact, facts_of, subjects
from tests.unit.test_signals import (
    ARRANGEMENTS,
    CHARGE_CARD,
    DAY,
    DEFAULTS,
    PM_CARD,
    REPO_SIGNALS_YAML,
    T0,
    Arrange,
    Detail,
    Edit,
    Harness,
    backfilled,
    configured,
    delivered,
    published,
    stripe_detail,
)

HOUR = 3_600
NEW_KINDS = ("account_takeover", "amount_outlier", "dispute_spike", "payment_failure_spike")  # sorted
TAKEOVER = T0 + 40 * DAY  # when cus_ato's profile changes: after four weekly charges


def anomaly_schema() -> Draft4Validator:
    return Draft4Validator(load_event("schemas/signal-anomaly.detail.schema.json"))


# -- details ----------------------------------------------------------------------------------------------
def payment(
    charge_id: str,
    at: int,
    *,
    customer: str | None = "cus_ato",
    amount: int = 2000,
    fp: str | None = "fp_usual",
    country: str = "US",
    failed: bool = False,
    **fields: Any,
) -> Detail:
    """A charge of `amount` USD on the card `fp` from `country`."""
    status = "failed" if failed else "succeeded"
    method = {"type": "card", "card": {**CHARGE_CARD, "fingerprint": fp, "country": country}}
    fields = {"currency": "usd", **fields}
    return stripe_detail(
        f"charge.{status}",
        at,
        id=charge_id,
        status=status,
        customer=customer,
        amount=amount,
        payment_method_details=method,
        **fields,
    )


def attached(pm_id: str, at: int, *, fp: str, country: str = "US", customer: str = "cus_ato") -> Detail:
    card = {**PM_CARD, "fingerprint": fp, "country": country}
    return stripe_detail("payment_method.attached", at, id=pm_id, customer=customer, card=card)


def profile_change(
    at: int, *, email: bool = True, payment_method: bool = False, customer: str = "cus_ato", **scope: Any
) -> Detail:
    """`customer.updated` at `at`: the email and/or the default payment method changed (the processor
    publishes the event's `previous_attributes`). The customer object keeps the fixture's old `created`."""
    previous: dict[str, Any] = {"email": "before@example.com"} if email else {}
    if payment_method:
        previous["invoice_settings"] = {"default_payment_method": "pm_before"}
    event = stripe_event(
        "customer.updated",
        created=at,
        previous_attributes=previous,
        id=customer,
        email="after@example.com",
        **scope,
    )
    detail_type, detail = published(event)
    return detail_type, {**detail, "previous_attributes": previous}


def refund(refund_id: str, at: int, *, charge: str, amount: int = 2000, customer: str = "cus_ato") -> Detail:
    fields = {
        "id": refund_id,
        "charge": charge,
        "amount": amount,
        "customer": customer,
        "status": "succeeded",
    }
    return stripe_detail("refund.created", at, **fields)


def dispute(dispute_id: str, at: int, *, charge: str = "ch_disputed", **scope: Any) -> Detail:
    return stripe_detail("charge.dispute.created", at, id=dispute_id, charge=charge, **scope)


# -- streams ----------------------------------------------------------------------------------------------
def usual_history(charges: int = 4, *, customer: str = "cus_ato") -> list[Detail]:
    """The customer attaches a US card and pays 2000 USD with it every week."""
    return [
        attached(f"pm_usual_{customer}", T0 - DAY, fp="fp_usual", customer=customer),
        *(payment(f"ch_{customer}_{n}", T0 + n * 7 * DAY, customer=customer) for n in range(charges)),
    ]


def takeover_stream(
    *,
    email: bool = True,
    payment_method: bool = True,
    fp: str = "fp_thief",
    country: str = "NG",
    amount: int = 2000,
    hours: float = 5,
    history: int = 4,
    customer: str = "cus_ato",
) -> list[Detail]:
    """After `history` usual charges: the profile changes, a card `fp` is attached a minute later, and
    `hours` after the change the customer pays `amount` with it."""
    changed = [profile_change(TAKEOVER, email=email, payment_method=payment_method, customer=customer)]
    if email or payment_method:
        changed.append(
            attached(f"pm_{customer}_new", TAKEOVER + 60, fp=fp, country=country, customer=customer)
        )
    at = TAKEOVER + int(hours * HOUR)
    return [
        *usual_history(history, customer=customer),
        *changed,
        payment(f"ch_{customer}_new", at, customer=customer, fp=fp, country=country, amount=amount),
    ]


def outlier_stream(
    amount: int = 20_000, *, history: tuple[int, ...] = (1900, 2000, 2100, 2000, 1950, 2050), **last: Any
) -> list[Detail]:
    """cus_big pays `history` weekly on its usual card, then `amount` (`last` overrides that charge)."""
    weeks = len(history)
    return [
        *(
            payment(f"ch_big{n}", T0 + n * 7 * DAY, customer="cus_big", fp="fp_big", amount=a)
            for n, a in enumerate(history)
        ),
        payment("ch_big", T0 + weeks * 7 * DAY, customer="cus_big", fp="fp_big", amount=amount, **last),
    ]


def account_charges(
    count: int, start: int, spacing: int, *, prefix: str, account: str, failed_every: int = 0, failed: int = 0
) -> list[Detail]:
    """`count` charges of one account `spacing` seconds apart (guests, without a card fingerprint): every
    `failed_every`-th fails, and so do the last `failed`."""
    return [
        payment(
            f"ch_{account}_{prefix}{n}",
            start + n * spacing,
            customer=None,
            fp=None,
            failed=bool(failed_every and n % failed_every == failed_every - 1) or n >= count - failed,
            account=account,
        )
        for n in range(count)
    ]


SPIKE_AT = T0 + 13 * DAY  # the recent window's first charge, after 12 days of baseline


def failure_stream(
    *,
    failed: int = 16,
    recent: int = 40,
    baseline: int = 120,
    baseline_failed_every: int = 20,
    account: str = "acct_f",
) -> list[Detail]:
    """`baseline` charges over 12 days (every `baseline_failed_every`-th failed), then `recent` charges in 20
    hours, the last `failed` of them failed (an issuer's outage)."""
    before = account_charges(
        baseline,
        T0,
        12 * DAY // max(baseline, 1),
        prefix="base",
        account=account,
        failed_every=baseline_failed_every,
    )
    now = account_charges(
        recent, SPIKE_AT, 20 * HOUR // max(recent, 1), prefix="now", account=account, failed=failed
    )
    return before + now


def dispute_stream(
    *,
    disputes: int = 3,
    recent: int = 35,
    baseline: int = 110,
    baseline_disputes: int = 0,
    account: str = "acct_d",
) -> list[Detail]:
    """`baseline` succeeded charges over 49 days with `baseline_disputes` disputes among them, a quiet week,
    then `recent` charges over 6 days and `disputes` disputes opened an hour apart at their end."""
    start = T0 + 56 * DAY
    return [
        *account_charges(baseline, T0, 49 * DAY // baseline, prefix="old", account=account),
        *(
            dispute(f"dp_{account}_old{n}", T0 + (n + 1) * 10 * DAY, account=account)
            for n in range(baseline_disputes)
        ),
        *account_charges(recent, start, 6 * DAY // recent, prefix="new", account=account),
        *(
            dispute(f"dp_{account}_new{n}", start + 6 * DAY + n * HOUR, account=account)
            for n in range(disputes)
        ),
    ]


def signals_of(stream: list[Detail], kind: str, **config: dict[str, Any]) -> list[dict[str, Any]]:
    harness = delivered(*stream, config=configured(**config) if config else DEFAULTS)
    return [s for s in harness.signals if s["kind"] == kind]


def reasons(signal: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {r["feature"]: (r["value"], r["threshold"]) for r in signal["reasons"]}


def at(*signals: dict[str, Any]) -> list[str]:
    """When each signal's newest fact happened (the charge or refund a takeover or an outlier is about)."""
    return sorted(s["as_of"] for s in signals)


def in_event_time(stream: list[Detail]) -> list[Detail]:
    return sorted(stream, key=lambda d: d[1]["object"]["created"])


# -- facts ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("email", "payment_method", "change"),
    [
        (True, False, "email"),
        (False, True, "default_payment_method"),
        (True, True, "default_payment_method email"),
    ],
)
def test_a_profile_change_is_a_fact_of_its_event(email: bool, payment_method: bool, change: str) -> None:
    detail_type, detail = profile_change(TAKEOVER, email=email, payment_method=payment_method)
    [fact] = facts_of(detail_type, detail)
    assert (fact.kind, fact.change, fact.customer, fact.object_id) == (PROFILE, change, "cus_ato", "cus_ato")
    assert fact.id == f"profile:cus_ato@{detail['id']}"  # an event of the customer, not a state of it
    assert fact.created == fact.version == TAKEOVER  # dated by the event: the customer is years older
    assert "example.com" not in repr(fact.to_item())  # never an e-mail address


@pytest.mark.parametrize(
    "detail",
    [
        pytest.param(profile_change(TAKEOVER, email=False), id="nothing that matters changed"),
        pytest.param(stripe_detail("customer.updated", TAKEOVER), id="no previous_attributes"),
        pytest.param(
            backfilled(profile_change(TAKEOVER)[1]["object"], "bf_run_1", TAKEOVER),
            id="a backfilled customer",
        ),
    ],
)
def test_a_customer_without_a_change_of_email_or_payment_method_is_no_fact(detail: Detail) -> None:
    assert facts_of(*detail) == []


def test_the_same_change_redelivered_is_one_fact_and_two_changes_are_two() -> None:
    first, second = profile_change(TAKEOVER), profile_change(TAKEOVER + 60)
    harness = delivered(first, first, second)
    [customer] = [s for s in harness.state.subjects() if s.endswith("/customer/cus_ato")]
    assert sorted(f.created for f in harness.state.facts(customer)) == [TAKEOVER, TAKEOVER + 60]


def test_refunds_and_disputes_are_facts_about_their_charge() -> None:
    [returned] = facts_of(*refund("re_1", T0, charge="ch_1", amount=700))
    assert (returned.id, returned.kind, returned.charge, returned.amount, returned.customer) == (
        "refund:re_1",
        REFUND,
        "ch_1",
        700,
        "cus_ato",
    )
    assert not returned.failed
    [failed] = facts_of(*stripe_detail("refund.failed", T0, id="re_2", charge="ch_1", status="failed"))
    assert failed.failed
    [disputed] = facts_of(*dispute("dp_1", T0, charge="ch_1", account="acct_1"))
    assert (disputed.id, disputed.kind, disputed.charge, disputed.created) == (
        "dispute:dp_1",
        DISPUTE,
        "ch_1",
        T0,
    )
    assert subjects(disputed) == ["test/acct_1/account"]  # an account's rate: no customer on a dispute


def test_new_facts_survive_a_store_that_drops_none_values() -> None:
    details = [profile_change(TAKEOVER), refund("re_1", T0, charge="ch_1"), dispute("dp_1", T0)]
    for fact in (f for d in details for f in facts_of(*d)):
        item = fact.to_item()
        assert all(isinstance(v, str | int | bool | type(None)) for v in item.values())  # no floats
        assert Fact.from_item(item) == fact
        assert Fact.from_item({k: v for k, v in item.items() if v is not None}) == fact  # DynamoDB's adapter


# -- account takeover -------------------------------------------------------------------------------------
def test_email_change_then_a_foreign_new_card_is_a_takeover() -> None:
    stream = takeover_stream()
    [signal] = signals_of(stream, "account_takeover")
    assert (signal["customer_id"], signal["level"], signal["score"]) == ("cus_ato", "high", 0.75)
    assert reasons(signal) == {
        "hours_since_change": (5.0, 72),
        "email_changed": ("email", None),
        "new_card": (1, None),
        "new_card_country": ("NG", None),
        "signs": (3, 2),
    }
    text = " ".join(r["text"] for r in signal["reasons"])
    assert "default payment method and email changed and a card was attached 5.0 hours before" in text
    assert "from NG" in text and "were from US" in text and "threshold 2" in text
    assert signal["as_of"] == iso(TAKEOVER + 5 * HOUR)
    assert set(signal["evidence"]["object_ids"]) == {"cus_ato", "pm_cus_ato_new", "ch_cus_ato_new"}


@pytest.mark.parametrize(
    ("stream", "signs"),
    [
        pytest.param(
            takeover_stream(email=False), {"new_card", "new_card_country"}, id="new default card abroad"
        ),
        pytest.param(
            takeover_stream(fp="fp_usual", country="US", amount=6000, payment_method=False),
            {"email_changed", "amount_to_median"},
            id="email, then 3 times the median",
        ),
    ],
)
def test_two_signs_after_a_change_are_a_takeover(stream: list[Detail], signs: set[str]) -> None:
    [signal] = signals_of(stream, "account_takeover")
    assert set(reasons(signal)) == {"hours_since_change", "signs", *signs}
    assert signal["level"] == "medium"


def test_a_refund_to_a_card_new_since_the_email_change_is_a_sign() -> None:
    stream = [
        *takeover_stream(country="US"),
        refund("re_thief", TAKEOVER + 6 * HOUR, charge="ch_cus_ato_new"),
    ]
    charged, refunded = sorted(signals_of(stream, "account_takeover"), key=lambda s: s["as_of"])
    assert (charged["as_of"], refunded["as_of"]) == (iso(TAKEOVER + 5 * HOUR), iso(TAKEOVER + 6 * HOUR))
    assert set(reasons(refunded)) == {"hours_since_change", "email_changed", "refund_to_new_card", "signs"}
    assert "ch_cus_ato_new" in refunded["evidence"]["object_ids"]  # the charge the money went back to


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(takeover_stream(fp="fp_usual", country="US"), id="email changed, usual payment"),
        pytest.param(
            takeover_stream(email=False, country="US"), id="a new card from the same country (a renewal)"
        ),
        pytest.param(
            takeover_stream(fp="fp_usual", country="US", amount=5999, payment_method=False),
            id="email changed, 2.99 times the median",
        ),
        pytest.param(takeover_stream(hours=73), id="73 hours after the change"),
        pytest.param(takeover_stream(history=2), id="a customer with two charges"),
        pytest.param(takeover_stream(email=False, payment_method=False), id="no change"),
        pytest.param(
            [
                *takeover_stream(fp="fp_usual", country="US"),
                refund("re_1", TAKEOVER + HOUR, charge="ch_cus_ato_1"),
            ],
            id="a refund to the usual card",
        ),
    ],
)
def test_a_change_with_fewer_than_two_signs_is_no_takeover(stream: list[Detail]) -> None:
    assert signals_of(stream, "account_takeover") == []


def test_the_usual_is_what_came_before_the_change() -> None:
    """The thief's card, used again after the change, is still new: the history ends at the change."""
    stream = [*takeover_stream(), payment("ch_again", TAKEOVER + 9 * HOUR, fp="fp_thief", country="NG")]
    signals = signals_of(stream, "account_takeover")
    assert at(*signals) == [iso(TAKEOVER + 5 * HOUR), iso(TAKEOVER + 9 * HOUR)]


def test_min_signs_is_configurable() -> None:
    renewal = takeover_stream(email=False, country="US")
    [signal] = signals_of(renewal, "account_takeover", account_takeover={"min_signs": 1})
    assert reasons(signal)["signs"] == (1, 1)


# -- amount outlier ---------------------------------------------------------------------------------------
def test_a_charge_ten_times_the_usual_is_an_outlier() -> None:
    [signal] = signals_of(outlier_stream(20_000), "amount_outlier")
    assert (signal["customer_id"], signal["level"], signal["score"]) == ("cus_big", "high", 1.0)
    assert reasons(signal) == {"robust_z": (45.0, 5.0), "history": (6, 5)}
    [z, history] = (r["text"] for r in signal["reasons"])
    assert "20000 USD, 45.0 spreads above the customer's median of 2000 USD (10.0 times it)" in z
    assert "6 earlier charges in USD" in history and "at least 20% of the median" in history
    assert signal["evidence"]["object_ids"] == sorted(["ch_big", *(f"ch_big{n}" for n in range(6))])


def test_a_charge_of_a_subscription_invoice_is_no_outlier_after_an_upgrade() -> None:
    upgrade = stripe_detail(
        "invoice.paid",
        T0 + 6 * 7 * DAY - 60,
        id="in_upgrade",
        customer="cus_big",
        amount_due=20_000,
        currency="usd",
        status="paid",
        subscription="sub_big",
    )
    *usual, last = outlier_stream(20_000)  # in event order: the invoice comes before its charge
    assert signals_of([*usual, upgrade, last], "amount_outlier") == []
    one_off = {**upgrade[1], "object": {**upgrade[1]["object"], "amount_due": 9_900}}
    assert len(signals_of([*usual, (upgrade[0], one_off), last], "amount_outlier")) == 1


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param(outlier_stream(4000), 1, id="5 spreads (400 each: 20% of 2000)"),
        pytest.param(outlier_stream(3999), 0, id="just under 5 spreads"),
        pytest.param(outlier_stream(history=(2000,) * 4), 0, id="four earlier charges"),
        pytest.param(outlier_stream(currency="eur"), 0, id="another currency"),
        pytest.param(outlier_stream(failed=True), 0, id="failed"),
        pytest.param(
            outlier_stream(9000, history=(500, 5000, 1000, 8000, 2000, 3000)), 0, id="a wide history"
        ),
        pytest.param(
            [*outlier_stream()[:-1], payment("ch_big", T0 + 250 * DAY, customer="cus_big", amount=20_000)],
            0,
            id="history older than 180 days",
        ),
    ],
)
def test_an_outlier_needs_enough_history_in_its_currency_and_distance(
    stream: list[Detail], expected: int
) -> None:
    assert len(signals_of(stream, "amount_outlier")) == expected


def test_the_next_usual_charge_after_an_outlier_is_not_one() -> None:
    stream = [*outlier_stream(20_000), payment("ch_after", T0 + 50 * DAY, customer="cus_big", fp="fp_big")]
    assert at(*signals_of(stream, "amount_outlier")) == [iso(T0 + 42 * DAY)]


# -- payment failure spike --------------------------------------------------------------------------------
def test_a_failure_rate_four_times_its_baseline_is_a_spike_as_soon_as_it_crosses() -> None:
    """In event time the 30th charge of the day completes a window: 6 of them failed, 4 times the 5% of
    the two weeks before. The outage goes on (16 of 40) under the same signal: one per account and day."""
    [signal] = signals_of(failure_stream(), "payment_failure_spike")
    assert (signal["account"], signal["customer_id"], signal["score"]) == ("acct_f", None, 0.667)
    assert reasons(signal) == {
        "failure_rate_percent": (20.0, 15.0),
        "times_baseline": (4.0, 3.0),
        "charges_in_window": (30, 30),
    }
    texts = [r["text"] for r in signal["reasons"]]
    assert (
        texts[0]
        == "6 of the 30 charges in the 24 hours to 2025-12-08 06:30 UTC failed: 20.0% (threshold 15%)"
    )
    assert texts[1] == (
        "4.0 times the account's own rate: 6 of the 120 charges of the 14 days before failed (5.0% at most) "
        "(threshold 3 times)"
    )
    assert signal["evidence"]["object_ids"] == sorted(f"ch_acct_f_now{n}" for n in range(24, 30))
    assert signal["as_of"] == iso(SPIKE_AT + 29 * 30 * 60)


def test_the_worst_window_of_the_day_is_what_the_whole_stream_shows() -> None:
    facts = [f for d in failure_stream() for f in facts_of(*d)]
    [anomaly] = payment_failure_spike("test/acct_f/account", facts, DEFAULTS.detectors.payment_failure_spike)
    assert anomaly.score == 1.0  # 16 of 40 failed: 8 times the baseline
    assert [r.value for r in anomaly.reasons] == [40.0, 8.0, 40]
    assert anomaly.signal_id == signals_of(failure_stream(), "payment_failure_spike")[0]["signal_id"]


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(failure_stream(failed=12, recent=20), id="twenty charges: a small account"),
        pytest.param(failure_stream(baseline=0), id="no baseline: a new account"),
        pytest.param(failure_stream(baseline=90), id="90 charges of baseline"),
        pytest.param(failure_stream(failed=5, baseline_failed_every=120), id="12.5%: under 15%"),
        pytest.param(failure_stream(baseline_failed_every=6), id="2.4 times a 16.7% baseline"),
        pytest.param(
            [
                *failure_stream(recent=30, failed=0, account="acct_a"),
                *failure_stream(baseline=0, account="acct_b"),
            ],
            id="the baseline of another account",
        ),
    ],
)
def test_a_failure_rate_needs_volume_a_baseline_and_a_jump(stream: list[Detail]) -> None:
    assert signals_of(stream, "payment_failure_spike") == []


# -- dispute spike ----------------------------------------------------------------------------------------
def test_three_disputes_in_a_week_of_thirty_five_charges_is_a_spike() -> None:
    [signal] = signals_of(dispute_stream(), "dispute_spike")
    assert (signal["account"], signal["score"], signal["level"]) == ("acct_d", 1.0, "high")
    assert reasons(signal) == {
        "disputes": (3, 3),
        "dispute_rate_percent": (8.57, 1.0),
        "times_baseline": (9.4, 3.0),
    }
    text = " ".join(r["text"] for r in signal["reasons"])
    assert "3 disputes opened in the 7 days to" in text and "of the 35 succeeded charges" in text
    assert "none of the 110 charges of the 56 days before were disputed" in text
    assert signal["evidence"]["object_ids"] == ["dp_acct_d_new0", "dp_acct_d_new1", "dp_acct_d_new2"]


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(dispute_stream(disputes=2), id="two disputes"),
        pytest.param(dispute_stream(recent=20), id="twenty charges"),
        pytest.param(dispute_stream(baseline=60), id="60 charges of baseline"),
        pytest.param(dispute_stream(baseline_disputes=4), id="2.4 times a 3.6% baseline"),
    ],
)
def test_a_dispute_rate_needs_disputes_volume_and_a_jump(stream: list[Detail]) -> None:
    assert signals_of(stream, "dispute_spike") == []


# -- arrival order and redeliveries -----------------------------------------------------------------------
SMALL = {  # the spikes' volumes scaled down, so that every arrangement runs in a blink
    "payment_failure_spike": {"min_charges": 10, "min_baseline_charges": 30},
    "dispute_spike": {"min_charges": 10, "min_baseline_charges": 30},
}


def mixed_stream() -> list[Detail]:
    """One finding of each of these detectors (two takeovers), among near misses that must stay quiet."""
    return [
        *takeover_stream(),
        *takeover_stream(email=False, customer="cus_ato2"),
        *takeover_stream(fp="fp_usual", country="US", customer="cus_quiet1"),  # one sign
        *takeover_stream(email=False, country="US", customer="cus_quiet2"),  # a renewal
        *takeover_stream(history=2, customer="cus_quiet3"),  # no usual yet
        *outlier_stream(20_000),
        *failure_stream(recent=12, failed=6, baseline=40, baseline_failed_every=10),
        *failure_stream(recent=8, failed=8, baseline=40, account="acct_small"),  # too few charges
        *dispute_stream(recent=12, baseline=40),
        *dispute_stream(disputes=2, recent=12, baseline=40, account="acct_two"),  # too few disputes
    ]


@pytest.mark.parametrize("arrange", ARRANGEMENTS.values(), ids=list(ARRANGEMENTS))
def test_any_order_and_redelivery_publish_the_same_signals_once(arrange: Arrange) -> None:
    stream, config = mixed_stream(), configured(**SMALL)
    in_order = delivered(*stream, config=config)
    assert in_order.kinds() == sorted([*NEW_KINDS, "account_takeover"])
    assert delivered(*arrange(stream), config=config).ids() == in_order.ids()


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(failure_stream(baseline_failed_every=6), id="failure rate 2.4 times its baseline"),
        pytest.param(dispute_stream(baseline_disputes=4), id="dispute rate 2.4 times its baseline"),
        pytest.param(outlier_stream(3999), id="an amount just under 5 spreads"),
    ],
)
def test_a_near_miss_on_a_rate_or_a_distance_stays_quiet_when_redelivered(stream: list[Detail]) -> None:
    """A rate or a median judged on part of the facts can differ: these are quiet in event-time order, with
    every detail delivered twice (a shuffle could show a window without its succeeded charges)."""
    harness = Harness()
    harness.deliver(*(d for d in in_event_time(stream) for _ in (1, 2)))
    assert harness.signals == []


@pytest.mark.parametrize(("amount", "expected"), [(20_000, [iso(T0 + 42 * DAY)]), (3999, [])])
def test_a_history_that_arrives_newest_first_judges_the_same(amount: int, expected: list[str]) -> None:
    """A newest-first backfill: the charge is judged once `min_history` of its history has arrived."""
    stream = outlier_stream(amount)
    assert at(*delivered(*stream).signals) == at(*delivered(*stream[::-1]).signals) == expected


# -- config and the published detail ----------------------------------------------------------------------
@pytest.mark.parametrize("disabled", NEW_KINDS)
def test_a_disabled_detector_raises_nothing(disabled: str) -> None:
    rules: dict[str, dict[str, Any]] = {kind: dict(values) for kind, values in SMALL.items()}
    rules.setdefault(disabled, {})["enabled"] = False
    kinds = delivered(*mixed_stream(), config=configured(**rules)).kinds()
    assert disabled not in kinds and set(kinds) == set(NEW_KINDS) - {disabled}


def test_the_repository_config_enables_them_with_the_defaults() -> None:
    detectors = load_signals_config(REPO_SIGNALS_YAML).detectors
    for kind in NEW_KINDS:
        assert getattr(detectors, kind) == getattr(DEFAULTS.detectors, kind)  # the documented defaults
        assert getattr(detectors, kind).enabled


INVALID: dict[str, tuple[str, Edit]] = {
    "unknown setting": ("min_histroy", lambda c: c["detectors"]["amount_outlier"].update(min_histroy=5)),
    "min_history: 2": ("min_history", lambda c: c["detectors"]["amount_outlier"].update(min_history=2)),
    "ratio: 1": ("ratio", lambda c: c["detectors"]["payment_failure_spike"].update(ratio=1)),
    "min_rate_percent: 0": (
        "min_rate_percent",
        lambda c: c["detectors"]["dispute_spike"].update(min_rate_percent=0),
    ),
    "window_hours: 0": ("window_hours", lambda c: c["detectors"]["account_takeover"].update(window_hours=0)),
}


@pytest.mark.parametrize(("key", "edit"), INVALID.values(), ids=list(INVALID))
def test_an_invalid_threshold_names_its_file_and_key(tmp_path: Path, key: str, edit: Edit) -> None:
    content = yaml.safe_load(REPO_SIGNALS_YAML.read_text())
    edit(content)
    path = tmp_path / "signals.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(SignalsConfigError, match=re.escape(str(path))) as raised:
        load_signals_config(path)
    assert key in str(raised.value)


def test_every_published_detail_has_the_contract_shape() -> None:
    stream = mixed_stream()
    event_time = {f.object_id: f.created for d in stream for f in facts_of(*d)}
    signals = delivered(*stream, config=configured(**SMALL)).signals
    schema = anomaly_schema()
    for s in signals:
        schema.validate(s)
        assert 0 <= s["score"] <= 1
        assert s["level"] == ("high" if s["score"] >= 0.75 else "medium" if s["score"] >= 0.5 else "low")
        assert all(r["text"] and r["text"][0].isalnum() for r in s["reasons"])
        assert s["as_of"] == iso(max(event_time[o] for o in s["evidence"]["object_ids"]))
        assert re.fullmatch(rf"{s['kind']}@[0-9a-f]{{8}}", s["model_version"])
    assert {s["customer_id"] for s in signals if s["kind"].endswith("_spike")} == {None}
