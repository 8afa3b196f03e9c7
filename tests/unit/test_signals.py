"""Signals: facts from published details, the three detectors, and `detect` on an in-memory state and bus.

Every detail is built from the real Stripe fixtures and shaped as the processor publishes it. Event time
is the object's `created` (a subscription's `trial_start`), never the wall clock.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

from events import load_event, stripe_event, stripe_object
from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.signals.churn import load_churn_model
from stripe_middleware.signals.config import (
    SignalsConfig,
    SignalsConfigError,
    TrialAbuse,
    load_signals_config,
)
from stripe_middleware.signals.detect import SignalsNotPublishedError, detect
from stripe_middleware.signals.facts import CARD, INVOICE, PLAN_CHANGE, SUBSCRIPTION, TRIAL, Fact, facts_of
from stripe_middleware.signals.ports import Anomaly
from stripe_middleware_dev import REPO_ROOT
from tests.fakes.ports import FakePublisher
from tests.fakes.signals import InMemorySignalState

Detail = tuple[str, dict[str, Any]]  # (detail-type, detail), as published on the bus
Arrange = Callable[[list[Detail]], list[Detail]]
Edit = Callable[[dict[str, Any]], object]

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z
DAY = 86_400
MIDNIGHT = 1_764_028_800  # 2025-11-25T00:00:00Z
KINDS = ("card_testing", "duplicate_charge", "trial_abuse")  # sorted
DEFAULTS = SignalsConfig(version=1)
REPO_SIGNALS_YAML = REPO_ROOT / "config" / "signals.yaml"
CHARGE_CARD = stripe_object("charge")["payment_method_details"]["card"]  # fingerprint, country US
PM_CARD = stripe_object("payment_method")["card"]
ANOMALY_SCHEMA = Draft4Validator(load_event("schemas/signal-anomaly.detail.schema.json"))


# -- details as the processor publishes them --------------------------------------------------------------
def published(event: dict[str, Any]) -> Detail:
    """The detail the processor publishes for a Stripe event (detail-type = the event's type)."""
    return event["type"], {
        "id": event["id"],
        "type": event["type"],
        "created": event["created"],
        "livemode": event["livemode"],
        "account": event.get("account"),
        "object": event["data"]["object"],
    }


def stripe_detail(event_type: str, at: int, **fields: Any) -> Detail:
    """`fields` override the fixture object, except stripe_event's own (`livemode`, `account`, `event_id`)."""
    event = stripe_event(event_type, created=at, **fields)
    event["data"]["object"]["created"] = at  # `created=` dates the event only; the object is dated here
    return published(event)


def charge(
    charge_id: str, at: int, *, failed: bool = False, fp: str | None = "fp_card", **fields: Any
) -> Detail:
    status = "failed" if failed else "succeeded"
    method = {"type": "card", "card": {**CHARGE_CARD, "fingerprint": fp}}
    return stripe_detail(
        f"charge.{status}", at, id=charge_id, status=status, payment_method_details=method, **fields
    )


def card(pm_id: str, customer: str, fp: str, at: int, **scope: Any) -> Detail:
    pm_card = {**PM_CARD, "fingerprint": fp}
    return stripe_detail("payment_method.attached", at, id=pm_id, customer=customer, card=pm_card, **scope)


def trial(sub_id: str, customer: str, at: int, **scope: Any) -> Detail:
    fields = {"id": sub_id, "customer": customer, "status": "trialing", "trial_start": at, **scope}
    return stripe_detail("customer.subscription.created", at, **fields)


def first_invoice(invoice_id: str, customer: str, at: int, **scope: Any) -> Detail:
    fields = {"id": invoice_id, "customer": customer, "billing_reason": "subscription_create", **scope}
    return stripe_detail("invoice.created", at, **fields)


def backfilled(obj: dict[str, Any], run_id: str, as_of: int) -> Detail:
    detail = {"run_id": run_id, "as_of": iso(as_of), "object_type": obj["object"], "object_id": obj["id"]}
    return DetailType.OBJECT_BACKFILLED, {
        **detail,
        "object": obj,
        "account": None,
        "livemode": obj["livemode"],
    }


# -- streams ----------------------------------------------------------------------------------------------
def card_and_trial(
    n: int, at: int, *, fp: str = "fp_shared", via: str = "subscription", **scope: Any
) -> list[Detail]:
    """Customer n attaches the card `fp`, then a minute later starts a trial (or pays a first invoice)."""
    customer = f"cus_trial{n}"
    start = trial if via == "subscription" else first_invoice
    return [
        card(f"pm_trial{n}", customer, fp, at - 60, **scope),
        start(f"{via[:3]}_trial{n}", customer, at, **scope),
    ]


def trial_abuse_stream(customers: int = 3, *, spacing: int = 5 * DAY, **kw: Any) -> list[Detail]:
    return [d for n in range(customers) for d in card_and_trial(n, T0 + n * spacing, **kw)]


def card_testing_stream(
    failures: int = 5, *, cards: int = 3, start: int = T0, spacing: int = 60, **kw: Any
) -> list[Detail]:
    """Failed charges of 100 (the fixture's amount) a minute apart, on `cards` fingerprints in turn."""
    kw = {"failed": True, **kw}
    return [
        charge(f"ch_test{n}", start + n * spacing, fp=f"fp_test{n % cards}", **kw) for n in range(failures)
    ]


def charge_pair(*, gap: int = 60, start: int = T0, **second: Any) -> list[Detail]:
    """cus_dup charged 2000 USD twice, `gap` seconds apart (`second` overrides the second charge)."""
    first: dict[str, Any] = {"amount": 2000, "currency": "usd", "customer": "cus_dup"}
    return [charge("ch_dup0", start, **first), charge("ch_dup1", start + gap, **{**first, **second})]


def mixed_stream() -> list[Detail]:
    """One anomaly of each kind, among noise that must raise nothing."""
    return [
        *trial_abuse_stream(3),
        *card_testing_stream(6, start=T0 + 3600),
        *charge_pair(gap=90, start=T0 + 7200),
        *card_and_trial(7, T0, fp="fp_two"),  # only two customers behind fp_two
        *card_and_trial(8, T0 + DAY, fp="fp_two"),
        charge("ch_big", T0 + 3700, failed=True, fp="fp_big", amount=50_000),
        charge("ch_other", T0 + 7250, amount=2000, customer="cus_other"),
        stripe_detail("customer.created", T0, id="cus_new"),
        stripe_detail("invoice.paid", T0 + 10, customer="cus_trial0"),  # billing_reason: manual
    ]


@dataclass
class Harness:
    """`detect` on an in-memory state and bus; each delivery gets its own copy, as from the bus."""

    config: SignalsConfig = DEFAULTS
    state: InMemorySignalState = field(default_factory=InMemorySignalState)
    publisher: FakePublisher = field(default_factory=FakePublisher)

    def deliver(self, *details: Detail) -> list[Anomaly]:
        ports: dict[str, Any] = {"state": self.state, "publisher": self.publisher, "config": self.config}
        ports["model"] = load_churn_model(REPO_ROOT / "config" / "churn_model.json")  # churn: test_churn.py
        return [a for kind, detail in details for a in detect(kind, copy.deepcopy(detail), **ports).raised]

    @property
    def signals(self) -> list[dict[str, Any]]:
        return self.publisher.details(DetailType.SIGNAL_ANOMALY)

    def kinds(self) -> list[str]:
        return sorted(s["kind"] for s in self.signals)

    def ids(self) -> list[str]:
        return sorted(s["signal_id"] for s in self.signals)


def delivered(*details: Detail, config: SignalsConfig = DEFAULTS) -> Harness:
    harness = Harness(config=config)
    harness.deliver(*details)
    return harness


def configured(**detectors: dict[str, Any]) -> SignalsConfig:
    return SignalsConfig.model_validate({"version": 1, "detectors": detectors})


# -- facts ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("failed", [False, True], ids=["succeeded", "failed"])
def test_a_charge_gives_one_charge_fact(failed: bool) -> None:
    scope = {"account": "acct_1", "livemode": True, "customer": "cus_1"}
    detail_type, detail = charge("ch_1", T0, failed=failed, fp="fp_x", amount=250, currency="eur", **scope)
    expected = {f.name: f.default for f in dataclasses.fields(Fact)}  # what the charge does not set
    expected |= {"id": "charge:ch_1", "kind": "charge", "object_id": "ch_1", "created": T0, **scope}
    expected |= {"evidence": detail["id"], "version": detail["created"]}
    expected |= {"amount": 250, "currency": "eur", "failed": failed}
    expected |= {"fingerprint": "fp_x", "country": "US"}  # the fixture card's country
    expected |= {"exp_month": 8, "exp_year": 2030}  # and expiry
    assert [f.to_item() for f in facts_of(detail_type, detail)] == [expected]


def test_cards_and_trials_are_facts_of_their_customer() -> None:
    subscription = trial("sub_1", "cus_1", T0)
    subscription[1]["object"]["created"] = T0 - DAY  # created a day before its trial started
    details = [card("pm_1", "cus_1", "fp_x", T0), subscription, first_invoice("in_1", "cus_1", T0)]
    facts = [f for d in details for f in facts_of(*d) if f.kind in (CARD, TRIAL)]  # churn's: test_churn.py
    assert [(f.id, f.kind, f.customer, f.fingerprint, f.created) for f in facts] == [
        ("card:pm_1", "card", "cus_1", "fp_x", T0),
        ("trial:sub_1", "trial", "cus_1", None, T0),  # dated by its trial_start
        ("trial:in_1", "trial", "cus_1", None, T0),  # billing_reason subscription_create
    ]


def test_a_backfilled_charge_is_the_same_fact_as_its_event() -> None:
    detail_type, detail = charge("ch_1", T0, customer="cus_1")
    [from_event] = facts_of(detail_type, detail)
    [from_backfill] = facts_of(*backfilled(copy.deepcopy(detail["object"]), "bf_run_1", as_of=T0 + DAY))
    assert (from_backfill.id, from_backfill.evidence, from_backfill.version) == (
        "charge:ch_1",
        "bf_run_1",
        T0 + DAY,
    )
    assert (
        dataclasses.replace(from_backfill, evidence=from_event.evidence, version=from_event.version)
        == from_event
    )
    assert from_backfill.newer_than(from_event)  # the later snapshot is the state kept


NOT_FACTS: dict[str, dict[str, Any]] = {  # event type -> object overrides
    "customer.created": {},
    "payment_intent.succeeded": {"customer": "cus_1"},
    "customer.updated": {"email": "jenny@example.com"},  # without previous_attributes: nothing changed
    "charge.pending": {"status": "pending"},
    "payment_method.attached": {},  # the fixture's has no customer
    "customer.subscription.created": {"trial_start": None},
    "invoice.created": {},  # the fixture's billing_reason: manual
}


@pytest.mark.parametrize(("event_type", "fields"), NOT_FACTS.items(), ids=list(NOT_FACTS))
def test_other_objects_give_no_facts(event_type: str, fields: dict[str, Any]) -> None:
    churn_facts = (SUBSCRIPTION, INVOICE, PLAN_CHANGE)  # what churn risk reads: test_churn.py
    assert [f for f in facts_of(*stripe_detail(event_type, T0, **fields)) if f.kind not in churn_facts] == []


BROKEN: dict[str, Edit] = {  # edits of a failed charge's detail
    "no created": lambda d: d["object"].pop("created"),
    "created as text": lambda d: d["object"].update(created=str(T0)),
    "created as a float": lambda d: d["object"].update(created=float(T0)),
    "created as a bool": lambda d: d["object"].update(created=True),
    "no id": lambda d: d["object"].pop("id"),
    "truncated object": lambda d: d.update(object=None),  # over 256 KB: published without it
    "no event id": lambda d: d.pop("id"),
}


@pytest.mark.parametrize("edit", BROKEN.values(), ids=list(BROKEN))
def test_a_detail_without_what_a_fact_needs_gives_none_and_keeps_nothing(edit: Edit) -> None:
    detail_type, detail = charge("ch_1", T0, failed=True)
    edit(detail)
    assert facts_of(detail_type, detail) == []
    assert delivered((detail_type, detail)).state.subjects() == []


# -- trial abuse ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["subscription", "invoice"])
def test_one_card_behind_three_trials_raises_one_trial_abuse(via: str) -> None:
    stream = trial_abuse_stream(3, via=via)
    [signal] = delivered(*stream).signals
    assert (signal["kind"], signal["level"], signal["customer_id"]) == ("trial_abuse", "medium", None)
    [reason] = signal["reasons"]
    assert (reason["feature"], reason["value"], reason["threshold"]) == ("customers_per_card", 3, 3)
    assert "3 customers" in reason["text"]
    assert set(signal["evidence"]["object_ids"]) == {d["object"]["id"] for _, d in stream}  # trials and cards


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param(trial_abuse_stream(2), 0, id="two customers"),
        pytest.param(trial_abuse_stream(3, spacing=16 * DAY), 0, id="days 0, 16, 32"),
        pytest.param(trial_abuse_stream(3, spacing=15 * DAY), 1, id="days 0, 15, 30"),
    ],
)
def test_trial_abuse_needs_enough_customers_within_the_window(stream: list[Detail], expected: int) -> None:
    assert len(delivered(*stream).signals) == expected


def test_a_fourth_customer_does_not_publish_again() -> None:
    harness, stream = Harness(), trial_abuse_stream(4)
    assert [a.kind for a in harness.deliver(*stream[:6])] == ["trial_abuse"]
    assert harness.deliver(*stream[6:]) == []
    assert len(harness.signals) == 1


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        pytest.param([(True, "acct_A")] * 3, 1, id="one scope"),
        pytest.param([(False, None), (False, None), (True, None)], 0, id="test and live"),
        pytest.param([(False, "acct_A"), (False, "acct_A"), (False, "acct_B")], 0, id="two accounts"),
        pytest.param([(False, "acct_A"), (False, "acct_A"), (False, None)], 0, id="account and platform"),
    ],
)
def test_trials_of_one_card_never_mix_modes_or_accounts(
    scopes: list[tuple[bool, str | None]], expected: int
) -> None:
    stream = [
        d
        for n, (live, acct) in enumerate(scopes)
        for d in card_and_trial(n, T0 + n * DAY, livemode=live, account=acct)
    ]
    signals = delivered(*stream).signals
    assert len(signals) == expected
    assert all((s["livemode"], s["account"]) == scopes[0] for s in signals)


# -- card testing -----------------------------------------------------------------------------------------
def test_five_small_failures_on_three_cards_within_minutes_raise_card_testing() -> None:
    [signal] = delivered(*card_testing_stream(5, account="acct_1")).signals
    assert (signal["kind"], signal["account"], signal["level"]) == ("card_testing", "acct_1", "medium")
    reasons = {r["feature"]: (r["value"], r["threshold"]) for r in signal["reasons"]}
    assert reasons == {"failed_small_charges": (5, 5), "distinct_cards": (3, 3)}
    assert signal["evidence"]["object_ids"] == [f"ch_test{n}" for n in range(5)]


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(card_testing_stream(4), id="four failures"),
        pytest.param(card_testing_stream(8, cards=1), id="one card"),
        pytest.param(card_testing_stream(8, amount=501), id="large amounts"),
        pytest.param(card_testing_stream(8, failed=False), id="succeeded"),
        pytest.param(card_testing_stream(5, spacing=200), id="over 13 minutes"),
        pytest.param(
            card_testing_stream(3, account="acct_A")
            + card_testing_stream(2, start=T0 + 30, account="acct_B"),
            id="two accounts",
        ),
        pytest.param(
            card_testing_stream(3) + card_testing_stream(2, start=T0 + 30, livemode=True), id="test and live"
        ),
    ],
)
def test_card_testing_needs_enough_small_failures_on_many_cards_of_one_account(stream: list[Detail]) -> None:
    assert delivered(*stream).signals == []


def test_a_burst_across_midnight_utc_is_card_testing() -> None:
    assert delivered(*card_testing_stream(5, start=MIDNIGHT - 150)).kinds() == ["card_testing"]


# -- duplicate charge -------------------------------------------------------------------------------------
def test_the_same_charge_twice_within_a_minute_is_a_duplicate_of_the_later_one() -> None:
    [signal] = delivered(*charge_pair(gap=60)).signals
    assert (signal["kind"], signal["customer_id"]) == ("duplicate_charge", "cus_dup")
    assert 0.5 <= signal["score"] <= 1
    assert signal["evidence"]["object_ids"] == ["ch_dup0", "ch_dup1"]
    assert signal["as_of"] == iso(T0 + 60)  # dated by the later charge
    assert signal["reasons"][0]["value"] == 60


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(charge_pair(gap=600), id="ten minutes apart"),
        pytest.param(charge_pair(amount=2100), id="different amount"),
        pytest.param(charge_pair(currency="eur"), id="different currency"),
        pytest.param(charge_pair(customer="cus_other"), id="different customer"),
        pytest.param(charge_pair(failed=True), id="second failed"),
        pytest.param(charge_pair(fp="fp_other"), id="another card"),
    ],
)
def test_different_distant_or_failed_charges_are_no_duplicates(pair: list[Detail]) -> None:
    assert delivered(*pair).signals == []


# -- arrival order and redeliveries -----------------------------------------------------------------------
def shuffled(seed: int) -> Arrange:
    return lambda s: random.Random(seed).sample(s, len(s))


ARRANGEMENTS: dict[str, Arrange] = {
    "reversed": lambda s: s[::-1],
    **{f"shuffle-{seed}": shuffled(seed) for seed in range(5)},
    "each twice": lambda s: [d for d in s for _ in (1, 2)],
    "twice, shuffled": lambda s: random.Random(42).sample(s * 2, 2 * len(s)),
}


@pytest.mark.parametrize("arrange", ARRANGEMENTS.values(), ids=list(ARRANGEMENTS))
def test_any_order_and_redelivery_publish_the_same_signals_once(arrange: Arrange) -> None:
    stream = mixed_stream()
    in_order = delivered(*stream)
    assert in_order.kinds() == list(KINDS)  # one of each
    assert delivered(*arrange(stream)).ids() == in_order.ids()  # sorted lists, not sets: each published once


def test_a_charge_that_gains_its_customer_later_counts_in_any_order() -> None:
    guest = charge("ch_guest", T0 + 10 * DAY, fp="fp_shared")  # no customer yet
    _, updated = charge("ch_guest", T0 + 10 * DAY, fp="fp_shared", customer="cus_trial2")
    stream = [*trial_abuse_stream(2), trial("sub_trial2", "cus_trial2", T0 + 10 * DAY), guest]
    # Stripe sent the update a minute later: its state is the newer one.
    stream.append(("charge.updated", {**updated, "type": "charge.updated", "created": T0 + 10 * DAY + 60}))
    assert delivered(*stream).kinds() == delivered(*stream[::-1]).kinds() == ["trial_abuse"]


# -- config -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("disabled", KINDS)
def test_a_disabled_detector_raises_nothing(disabled: str) -> None:
    config = configured(**{disabled: {"enabled": False}})
    assert delivered(*mixed_stream(), config=config).kinds() == [k for k in KINDS if k != disabled]


def test_the_repository_config_loads() -> None:
    config = load_signals_config()
    assert config == load_signals_config(REPO_SIGNALS_YAML)
    assert config.version == 1
    assert all(getattr(config.detectors, kind).enabled for kind in KINDS)


INVALID: dict[str, tuple[str, Edit]] = {
    "unknown detector": ("churn", lambda c: c["detectors"].update(churn={"enabled": True})),
    "unknown setting": ("max_amout", lambda c: c["detectors"]["card_testing"].update(max_amout=500)),
    "customers: 1": ("customers", lambda c: c["detectors"]["trial_abuse"].update(customers=1)),
}


@pytest.mark.parametrize(("key", "edit"), INVALID.values(), ids=list(INVALID))
def test_an_invalid_config_names_its_file_and_key(tmp_path: Path, key: str, edit: Edit) -> None:
    content = yaml.safe_load(REPO_SIGNALS_YAML.read_text())
    edit(content)
    path = tmp_path / "signals.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(SignalsConfigError, match=re.escape(str(path))) as raised:
        load_signals_config(path)
    assert key in str(raised.value)


def test_the_model_version_follows_the_thresholds() -> None:
    stream = trial_abuse_stream(4)
    [three] = delivered(*stream).signals
    [four] = delivered(*stream, config=configured(trial_abuse={"customers": 4})).signals
    assert three["model_version"] != four["model_version"]
    assert re.fullmatch(r"trial_abuse@[0-9a-f]{8}", four["model_version"])
    assert TrialAbuse(enabled=False).version("trial_abuse") == TrialAbuse().version("trial_abuse")


# -- failures ---------------------------------------------------------------------------------------------
def test_a_refused_publication_is_published_by_the_redelivery_once() -> None:
    harness = Harness()
    *before, last = trial_abuse_stream(3)
    harness.deliver(*before)
    harness.publisher.fail_all = True
    with pytest.raises(SignalsNotPublishedError):
        harness.deliver(last)
    assert harness.signals == []
    harness.publisher.fail_all = False
    harness.deliver(last, last)
    assert harness.kinds() == ["trial_abuse"]


def test_a_partly_refused_publication_republishes_only_what_failed() -> None:
    stream = [  # the last charge puts cus_trial2 on the shared card and duplicates its first charge
        *trial_abuse_stream(2),
        trial("sub_trial2", "cus_trial2", T0 + 10 * DAY),
        charge("ch_a", T0 + 10 * DAY, fp=None, amount=2000, customer="cus_trial2"),
        charge("ch_b", T0 + 10 * DAY + 60, fp="fp_shared", amount=2000, customer="cus_trial2"),
    ]
    ids = {s["kind"]: s["signal_id"] for s in delivered(*stream).signals}  # stable: the same in every run
    harness = Harness(publisher=FakePublisher(fail_keys={ids["duplicate_charge"]}))
    harness.deliver(*stream[:-1])
    with pytest.raises(SignalsNotPublishedError):
        harness.deliver(stream[-1])
    assert harness.kinds() == ["trial_abuse"]
    harness.publisher.fail_keys.clear()
    harness.deliver(stream[-1], stream[-1])
    assert harness.ids() == sorted(ids.values())


@pytest.mark.parametrize("operation", ["add_facts", "facts", "published"])
def test_a_store_outage_publishes_nothing_and_propagates(operation: str) -> None:
    harness = Harness()
    *before, last = trial_abuse_stream(3)
    harness.deliver(*before)
    harness.state.unavailable = {operation}
    with pytest.raises(StoreUnavailableError):
        harness.deliver(last)
    assert harness.signals == []
    harness.state.unavailable.clear()
    harness.deliver(last)
    assert harness.kinds() == ["trial_abuse"]


def test_a_created_out_of_range_does_not_poison_its_account() -> None:
    harness = Harness()
    harness.deliver(charge("ch_ms", T0 * 1000, failed=True))
    harness.deliver(*card_testing_stream(5))
    assert harness.kinds() == ["card_testing"]


# -- the published detail ---------------------------------------------------------------------------------
def test_every_published_detail_has_the_contract_shape() -> None:
    stream = mixed_stream()
    event_time = {f.object_id: f.created for d in stream for f in facts_of(*d)}
    signals = delivered(*stream).signals
    assert sorted(s["kind"] for s in signals) == list(KINDS)
    for s in signals:
        ANOMALY_SCHEMA.validate(s)
        assert s["signal_id"].startswith("sig_") and 0 <= s["score"] <= 1
        assert s["level"] == ("high" if s["score"] >= 0.75 else "medium" if s["score"] >= 0.5 else "low")
        assert s["reasons"] and all(set(r) == {"feature", "value", "threshold", "text"} for r in s["reasons"])
        assert set(s["evidence"]) == {"event_ids", "object_ids", "facts"}
        assert s["evidence"]["facts"] >= len(s["evidence"]["object_ids"])
        assert set(s["evidence"]["event_ids"]) <= {d["id"] for _, d in stream}
        assert s["as_of"] == iso(max(event_time[o] for o in s["evidence"]["object_ids"]))
        assert s["as_of"].endswith("Z") and s["livemode"] is False and s["account"] is None
        assert re.fullmatch(rf"{s['kind']}@[0-9a-f]{{8}}", s["model_version"])
    assert {s["customer_id"] for s in signals if s["kind"] == "duplicate_charge"} == {"cus_dup"}


def test_the_anomaly_schema_names_every_detector_and_nothing_else() -> None:
    from stripe_middleware.signals.config import Detectors

    kinds = load_event("schemas/signal-anomaly.detail.schema.json")["properties"]["kind"]["enum"]
    assert sorted(kinds) == sorted(Detectors.model_fields)


def test_an_account_is_read_from_its_detectors_lookback_on_and_a_customer_whole() -> None:
    reads: list[tuple[str, int | None]] = []

    class Recording(InMemorySignalState):
        def facts(self, subject: str, since: int | None = None) -> list[Fact]:
            reads.append((subject.split("/")[2], since))
            return super().facts(subject, since)

    harness = Harness(state=Recording())
    old = charge("ch_old", T0 - 400 * DAY, customer="cus_lookback")  # older than every account window
    harness.deliver(old)
    reads.clear()
    harness.deliver(charge("ch_new", T0, failed=True, customer="cus_lookback"))
    lookback = DEFAULTS.account_lookback_seconds()
    assert lookback == (7 + 56) * DAY  # dispute_spike's window and baseline: the longest
    assert ("account", T0 - lookback) in reads and ("customer", None) in reads
    account = next(s for s in harness.state.subjects() if s.endswith("/account"))
    assert {f.object_id for f in harness.state.facts(account, since=T0 - lookback)} == {"ch_new"}


def test_a_message_that_breaks_detection_fails_alone() -> None:
    import json

    from stripe_middleware.signals.consume import Message, consume
    from stripe_middleware.signals.detect import Detection

    def detect_or_break(detail_type: str, detail: dict[str, Any]) -> Detection:
        if detail["id"] == "evt_bug":
            raise ValueError("year 10000 is out of range")
        return Detection(facts=1)

    bodies = [
        {"detail-type": "charge.succeeded", "detail": {"id": i, "created": T0}} for i in ("evt_ok", "evt_bug")
    ]
    outcome = consume([Message(f"m{n}", json.dumps(b)) for n, b in enumerate(bodies)], detect_or_break)
    assert [c.event_id for c in outcome.consumed] == ["evt_ok"]
    assert list(outcome.errors) == ["m1"] and "ValueError" in outcome.errors["m1"]


def test_a_finding_behind_thousands_of_facts_publishes_a_detail_that_fits_eventbridge() -> None:
    import json

    from stripe_middleware.signals.ports import MAX_EVIDENCE, Reason

    facts = [f for n in range(3000) for f in facts_of(*charge(f"ch_b{n:04d}", T0 + n, failed=True))]
    anomaly = Anomaly(
        signal_id="sig_" + "0" * 24,
        kind="card_testing",
        subject="test/platform/account",
        account=None,
        livemode=False,
        customer_id=None,
        score=1.0,
        reasons=(Reason("failed_charges", 3000, 5, "3000 failed charges"),),
        evidence=tuple(facts),
        model_version="card_testing@00000000",
    )
    detail = anomaly.detail()
    ANOMALY_SCHEMA.validate(detail)
    assert detail["evidence"]["facts"] == 3000
    assert detail["evidence"]["object_ids"] == [f"ch_b{n:04d}" for n in range(3000 - MAX_EVIDENCE, 3000)]
    assert len(json.dumps(detail)) < 10_000  # EventBridge takes 256 KB, a DynamoDB item 400 KB


def test_a_window_whose_baseline_fell_out_of_the_read_is_not_judged_again() -> None:
    """Review finding: read from a lookback on, an old window's cut-short baseline looked like a spike weeks
    later. A day at 1.4 times its baseline raises nothing, then or when in-order traffic goes on."""
    stream, n = [], 0
    for day in range(15):
        for k in range(30):  # 6 of 30 charges fail on days 0-9 and on day 14 (no failures on days 10-13)
            failing = (day < 10 or day == 14) and k >= 24
            stream.append(charge(f"ch_{n}", T0 + day * DAY + k * 600, failed=failing, customer=None))
            n += 1
    later = [charge(f"ch_{n + i}", T0 + (15 + i) * DAY, customer=None) for i in range(70)]
    harness = Harness()
    assert [a.kind for a in harness.deliver(*stream, *later) if a.kind == "payment_failure_spike"] == []
