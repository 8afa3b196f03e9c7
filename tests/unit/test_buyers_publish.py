"""One-off buyers' churn risk on the bus: `detect` assesses a buyer on each charge and publishes the level
when it changes; the daily re-score (`rescore_buyers`) raises it as time passes, from the buyer's watch alone.

Every detail is built from the real Stripe fixtures (or is the simulator's, which copies them) and shaped as
the processor publishes it. Event time is the event's `created`; the re-score's time is given.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft4Validator

from events import load_event, stripe_event, stripe_object
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.signals.buyer_risk import Rescore, is_buyer_assessment, rescore_buyers
from stripe_middleware.signals.buyers import BuyerModel, load_buyer_model
from stripe_middleware.signals.churn import load_churn_model
from stripe_middleware.signals.config import SignalsConfig
from stripe_middleware.signals.detect import Detection, SignalsNotPublishedError, detect
from stripe_middleware.signals.ports import BuyerWatch
from stripe_middleware.signals.training import detail_of
from stripe_middleware_dev import REPO_ROOT
from stripe_middleware_dev.simulate import ONE_OFF, simulate
from tests.fakes.ports import FakePublisher
from tests.fakes.signals import InMemorySignalState

Detail = tuple[str, dict[str, Any]]
Arrange = Callable[[list[Detail]], list[Detail]]

DAY = 86_400
T0 = 1_764_000_000  # 2025-11-24T16:00:00Z
BUYERS = load_buyer_model(REPO_ROOT / "config" / "buyers_model.json")  # the shipped prior
CHURN = load_churn_model(REPO_ROOT / "config" / "churn_model.json")
SCHEMA = Draft4Validator(load_event("schemas/signal-churn-risk.detail.schema.json"))
CARD = stripe_object("charge")["payment_method_details"]["card"]
SUBSCRIPTION = stripe_object("subscription")
# With the shipped prior a single purchase reads medium 48 days after it, high after 504.
MEDIUM_AFTER, HIGH_AFTER = 48 * DAY, 504 * DAY


# -- details as the processor publishes them --------------------------------------------------------------
def published(event: dict[str, Any]) -> Detail:
    found = detail_of(event)
    assert found is not None
    return found


def charge(
    charge_id: str,
    at: int,
    *,
    customer: str = "cus_buyer",
    amount: int = 2500,
    failed: bool = False,
    version: int | None = None,
) -> Detail:
    """The real charge fixture, made at `at` (its event at `version`, when later: a refund, an update)."""
    status = "failed" if failed else "succeeded"
    event = stripe_event(
        f"charge.{status}",
        created=version or at,
        id=charge_id,
        customer=customer,
        status=status,
        amount=amount,
        currency="usd",
        payment_method_details={"type": "card", "card": {**CARD, "fingerprint": f"fp_{customer}"}},
    )
    event["data"]["object"]["created"] = at
    return published(event)


def subscribed(customer: str, at: int) -> Detail:
    """The real subscription fixture, the customer's, active and renewing in 30 days."""
    item = {**SUBSCRIPTION["items"]["data"][0], "current_period_end": at + 30 * DAY}
    event = stripe_event(
        "customer.subscription.created",
        created=at,
        id=f"sub_{customer}",
        customer=customer,
        status="active",
        cancel_at_period_end=False,
        cancel_at=None,
        pause_collection=None,
        trial_start=None,
        default_payment_method=None,
        items={**SUBSCRIPTION["items"], "data": [item]},
    )
    event["data"]["object"]["created"] = at
    return published(event)


@cache
def simulated() -> tuple[tuple[Detail, ...], int]:
    """The one-off buyers of a simulated year (their customers, cards, payment intents and charges, exactly
    as the simulator writes them from the fixtures) and the history's end."""
    history = simulate(60, 12, 11, datetime(2025, 1, 1, tzinfo=UTC), attacks={})
    buyers = {c for c, label in history.labels.customers.items() if label.segment == ONE_OFF}
    details = []
    for event in history.events:
        obj = event["data"]["object"]
        customer = obj["id"] if obj.get("object") == "customer" else obj.get("customer")
        if customer in buyers:
            details.append(published(event))
    return tuple(details), history.labels.end


def simulated_stream() -> list[Detail]:
    return [copy.deepcopy(d) for d in simulated()[0]]


# -- the harness ------------------------------------------------------------------------------------------
@dataclass
class Harness:
    state: InMemorySignalState = field(default_factory=InMemorySignalState)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    buyer_model: BuyerModel | None = BUYERS

    def deliver(self, *details: Detail) -> list[Detection]:
        ports: dict[str, Any] = {"state": self.state, "publisher": self.publisher}
        ports |= {"config": SignalsConfig(version=1), "model": CHURN, "buyer_model": self.buyer_model}
        return [detect(kind, copy.deepcopy(d), **ports) for kind, d in details]

    def rescore(self, now: int, **options: Any) -> Rescore:
        return rescore_buyers(self.state, self.publisher, BUYERS, now, **options)

    @property
    def published(self) -> list[dict[str, Any]]:
        return self.publisher.details(DetailType.SIGNAL_CHURN_RISK)

    def levels(self, customer: str = "cus_buyer") -> list[str]:
        return [d["level"] for d in self.published if d["customer_id"] == customer]

    def record(self, customer: str = "cus_buyer") -> dict[str, Any] | None:
        return self.state.churn.get(subject(customer))

    def watch(self, customer: str = "cus_buyer") -> BuyerWatch | None:
        return self.state.watches.get(subject(customer))

    def recorded(self) -> dict[str, str]:
        return {s.rsplit("/", 1)[1]: d["level"] for s, d in self.state.churn.items()}


def subject(customer: str) -> str:
    return f"test/platform/customer/{customer}"


def delivered(*details: Detail) -> Harness:
    harness = Harness()
    harness.deliver(*details)
    return harness


def settled(watch: BuyerWatch | None) -> BuyerWatch | None:
    """A watch without its write count (which depends on how many deliveries wrote it)."""
    return dataclasses.replace(watch, revision=0) if watch else None


# -- on a charge --------------------------------------------------------------------------------------------
def test_a_buyer_is_published_on_the_first_charge_and_then_only_when_the_level_changes() -> None:
    harness = Harness()
    harness.deliver(charge("ch_1", T0 - 90 * DAY))
    [first] = harness.published
    SCHEMA.validate(first)
    assert (first["level"], first["previous_level"], first["customer_id"]) == ("low", None, "cus_buyer")
    assert first["model_version"] == BUYERS.version and is_buyer_assessment(first)
    assert first["as_of"] == "2025-08-26T16:00:00Z"  # the charge's time, not the clock
    assert first["evidence"]["object_ids"] == ["ch_1"]
    harness.deliver(*(charge(f"ch_{n}", T0 - (90 - 30 * n) * DAY) for n in (2, 3)))
    assert harness.levels() == ["low"]  # a buyer who keeps buying stays low: nothing new
    assert harness.record() == first  # the read API's record is what was published
    watch = harness.watch()
    assert watch is not None and watch.pending is None
    assert (watch.level, watch.repeat_purchases, watch.as_of) == ("low", 2, T0)


def test_the_detail_says_why_in_words_and_its_parts_add_up_to_the_score() -> None:
    harness = Harness()
    harness.deliver(*(charge(f"ch_{n}", T0 - (200 - 30 * n) * DAY) for n in range(4)))
    harness.rescore(T0)  # 110 days after the last of 4 monthly purchases
    detail = harness.published[-1]
    SCHEMA.validate(detail)
    assert (detail["previous_level"], detail["level"]) == ("low", "medium")
    assert [r["text"] for r in detail["reasons"]] == [
        "last purchase 110 days ago: raises the risk a lot",
        "4 purchases in 7 months: lowers the risk a lot",
        "average charge 25.00 USD (4 charges): not part of the score",
    ]
    # The contributions are the parts of the log-odds of having left, against the model's reference buyer
    # (one purchase, just made): they add up to the published score.
    log_odds = math.log(BUYERS.a / BUYERS.b) + sum(r["contribution"] for r in detail["reasons"])
    assert 1 / (1 + math.exp(-log_odds)) == pytest.approx(detail["score"], abs=0.002)
    assert detail["features"]["purchases"] == 4
    assert detail["features"]["probability_active"] == pytest.approx(1 - detail["score"], abs=0.001)
    assert 0 < detail["features"]["expected_purchases_90d"] < 4


def test_a_buyer_without_a_successful_charge_or_without_a_buyer_model_is_not_assessed() -> None:
    assert delivered(charge("ch_declined", T0, failed=True)).published == []
    harness = Harness(buyer_model=None)  # how detect ran before: one-off buyers are not its to score
    harness.deliver(charge("ch_1", T0))
    assert harness.published == [] and harness.state.watches == {}


def shuffled(seed: int) -> Arrange:
    return lambda s: random.Random(seed).sample(s, len(s))


ARRANGEMENTS: dict[str, Arrange] = {
    "reversed": lambda s: s[::-1],
    **{f"shuffle-{seed}": shuffled(seed) for seed in range(3)},
    "each twice": lambda s: [d for d in s for _ in (1, 2)],
    "twice, shuffled": lambda s: random.Random(42).sample(s * 2, 2 * len(s)),
}


@pytest.mark.parametrize("arrange", ARRANGEMENTS.values(), ids=list(ARRANGEMENTS))
def test_any_order_and_redelivery_of_the_simulated_buyers_end_at_the_same_watch_and_level(
    arrange: Arrange,
) -> None:
    stream = simulated_stream()
    in_order, arranged = delivered(*stream), delivered(*arrange(stream))
    assert in_order.state.watches and in_order.recorded()
    assert arranged.recorded() == in_order.recorded()
    assert {s: settled(w) for s, w in arranged.state.watches.items()} == {
        s: settled(w) for s, w in in_order.state.watches.items()
    }
    for customer in in_order.recorded():
        levels = [d for d in arranged.published if d["customer_id"] == customer]
        assert [d["previous_level"] for d in levels] == [None] + [d["level"] for d in levels[:-1]]
    # ... and the re-score, run on either, publishes the same changes.
    end = simulated()[1]
    assert [d["signal_id"] for d in _changes(in_order, end)] == [
        d["signal_id"] for d in _changes(arranged, end)
    ]


def _changes(harness: Harness, now: int) -> list[dict[str, Any]]:
    before = len(harness.published)
    harness.rescore(now)
    return sorted(harness.published[before:], key=lambda d: d["signal_id"])


def test_duplicates_in_order_publish_exactly_what_one_delivery_does() -> None:
    stream = simulated_stream()
    twice = delivered(*(d for d in stream for _ in (1, 2)))
    assert [d["signal_id"] for d in twice.published] == [d["signal_id"] for d in delivered(*stream).published]


def test_a_refused_publication_stays_pending_and_the_redelivery_publishes_it_under_the_same_id() -> None:
    harness = Harness()
    harness.publisher.fail_all = True
    with pytest.raises(SignalsNotPublishedError, match="1 churn risks"):
        harness.deliver(charge("ch_1", T0))
    watch = harness.watch()
    assert watch is not None and watch.pending is not None and harness.record() is None
    harness.publisher.fail_all = False
    harness.deliver(charge("ch_1", T0), charge("ch_1", T0))  # the redelivery, and a duplicate
    [detail] = harness.published
    assert detail == watch.pending and harness.record() == detail
    assert harness.watch() is not None and harness.watch().pending is None  # type: ignore[union-attr]


def test_a_store_outage_fails_the_message_for_redelivery() -> None:
    harness = Harness()
    harness.state.unavailable = {"put_buyer_watch"}
    with pytest.raises(StoreUnavailableError):
        harness.deliver(charge("ch_1", T0))
    assert harness.published == []
    harness.state.unavailable.clear()
    harness.deliver(charge("ch_1", T0))
    assert harness.levels() == ["low"]


# -- as time passes: the re-score ----------------------------------------------------------------------------
def test_time_passing_raises_the_level_only_through_the_rescore() -> None:
    harness = Harness()
    harness.deliver(charge("ch_1", T0))
    harness.deliver(charge("ch_0", T0 - DAY, failed=True))  # an older event: nothing is re-timed by it
    assert harness.levels() == ["low"]
    assert harness.rescore(T0 + MEDIUM_AFTER - DAY).changes == []
    outcome = harness.rescore(T0 + MEDIUM_AFTER)
    assert outcome.rescored == 1 and len(outcome.shards) == 16 and outcome.complete
    [change] = outcome.changes
    assert change.detail == harness.published[-1] == harness.record()
    assert (change.detail["previous_level"], change.level) == ("low", "medium")
    assert change.detail["as_of"] == "2026-01-11T16:00:00Z"  # the re-score's time
    assert change.detail["evidence"]["object_ids"] == ["ch_0", "ch_1"]
    SCHEMA.validate(change.detail)
    # Run again (the same day, the next day): nothing new.
    assert (
        harness.rescore(T0 + MEDIUM_AFTER).changes == harness.rescore(T0 + MEDIUM_AFTER + DAY).changes == []
    )
    assert [c.level for c in harness.rescore(T0 + HIGH_AFTER).changes] == ["high"]
    assert harness.rescore(T0 + 2 * HIGH_AFTER).changes == []  # high is as high as time takes it
    assert harness.levels() == ["low", "medium", "high"]


def test_a_charge_after_a_rescore_is_assessed_after_it_and_lowers_the_level() -> None:
    harness = Harness()
    harness.deliver(charge("ch_1", T0))
    now = T0 + 100 * DAY
    harness.rescore(now)
    # A purchase made before the re-score ran, delivered after it (a backlog): assessed a second after it.
    harness.deliver(charge("ch_2", now - 3600))
    assert harness.levels() == ["low", "medium", "low"]
    record = harness.record()
    assert record is not None and record["level"] == "low" and record["as_of"] == "2026-03-04T16:00:01Z"
    assert harness.rescore(now + DAY).changes == []


def test_a_charge_claiming_the_watch_during_a_rescore_wins() -> None:
    harness = Harness()
    harness.deliver(charge("ch_1", T0))
    now = T0 + 100 * DAY
    state = harness.state
    put = state.put_buyer_watch

    def charge_first(watch: BuyerWatch, *, expected_revision: int | None) -> bool:
        state.put_buyer_watch = put  # type: ignore[method-assign]
        harness.deliver(charge("ch_2", now - 60))  # between the re-score's read and its claim
        return put(watch, expected_revision=expected_revision)

    state.put_buyer_watch = charge_first  # type: ignore[method-assign]
    assert harness.rescore(now).changes == []  # refused: it read the watch before the charge
    assert harness.levels() == ["low"]  # the charge's assessment stands: still low, nothing to publish
    watch = harness.watch()
    assert watch is not None and (watch.level, watch.repeat_purchases) == ("low", 1)


def test_a_refused_rescore_publication_is_published_once_by_the_next_run() -> None:
    harness = Harness()
    harness.deliver(charge("ch_1", T0))
    now = T0 + 60 * DAY
    harness.publisher.fail_all = True
    outcome = harness.rescore(now)
    assert (outcome.changes, outcome.failures) == ([], 1)
    pending = harness.watch().pending  # type: ignore[union-attr]
    assert pending is not None and pending["level"] == "medium"
    assert harness.record() is not None and harness.record()["level"] == "low"  # type: ignore[index]
    harness.publisher.fail_all = False
    [change] = harness.rescore(now + DAY).changes
    assert change.detail == pending  # the same detail, under the same id
    assert harness.rescore(now + 2 * DAY).changes == []
    assert harness.levels() == ["low", "medium"]


def test_a_charge_after_a_refused_rescore_settles_what_subscribers_may_have_heard() -> None:
    harness = Harness()
    harness.deliver(charge("ch_1", T0))
    harness.publisher.fail_all = True
    harness.rescore(T0 + 60 * DAY)  # medium claimed; the bus refused it (or the function died after)
    harness.publisher.fail_all = False
    harness.deliver(charge("ch_2", T0 + 61 * DAY))  # a purchase: low again, the level published before
    assert harness.levels() == ["low", "low"]  # said again: the pending medium may have gone out
    assert harness.published[-1]["previous_level"] == "medium"
    assert harness.watch().pending is None and harness.record() == harness.published[-1]  # type: ignore[union-attr]
    assert harness.rescore(T0 + 62 * DAY).changes == []


def test_a_store_outage_leaves_the_buyers_for_the_next_run() -> None:
    harness = delivered(charge("ch_1", T0), charge("ch_a", T0, customer="cus_other"))
    harness.state.unavailable = {"buyer_watches"}
    outcome = harness.rescore(T0 + 60 * DAY)
    assert (outcome.failures, outcome.complete, outcome.shards, outcome.changes) == (16, False, [], [])
    harness.state.unavailable = {"put_churn_risk"}
    outcome = harness.rescore(T0 + 60 * DAY)
    assert (outcome.failures, len(outcome.changes)) == (2, 0)
    harness.state.unavailable.clear()
    # Published but not recorded: the claim is still pending, so the next run publishes it again.
    assert len(harness.rescore(T0 + 61 * DAY).changes) == 2
    assert harness.recorded() == {"cus_buyer": "medium", "cus_other": "medium"}


def test_a_rescore_out_of_time_stops_and_the_next_day_starts_from_another_shard() -> None:
    harness = delivered(*(charge(f"ch_{n}", T0, customer=f"cus_{n}") for n in range(40)))
    calls = iter(range(1_000))
    now = T0 + 60 * DAY
    outcome = harness.rescore(now, out_of_time=lambda: next(calls) >= 10)
    assert (outcome.rescored, len(outcome.changes), outcome.complete) == (10, 10, False)
    rest = harness.rescore(now + DAY)
    assert (rest.rescored, len(rest.changes), rest.complete) == (40, 30, True)
    today = (now // DAY) % 16
    assert outcome.shards == [(today + n) % 16 for n in range(len(outcome.shards))]
    assert rest.shards == [(today + 1 + n) % 16 for n in range(16)]
    assert set(harness.recorded().values()) == {"medium"}


def test_the_simulated_buyers_who_stopped_buying_are_raised_by_the_rescore() -> None:
    history, end = simulated()
    harness = delivered(*history)
    assert set(harness.recorded().values()) == {"low"}  # on their charges, buyers read low
    harness.rescore(end)
    watches = {w.customer_id: w for w in harness.state.watches.values()}
    raised = set()
    for customer, level in harness.recorded().items():
        watch, idle = watches[customer], end - watches[customer].last_purchase
        if watch.repeat_purchases == 0:  # a single purchase: medium after 48 days
            assert level == ("low" if idle < MEDIUM_AFTER else "medium"), (customer, idle / DAY)
        if idle < 30 * DAY:
            assert level == "low", (customer, idle / DAY)
        if level != "low":
            raised.add(watch.repeat_purchases)
    assert 0 in raised and raised - {0}  # single and repeat buyers alike


# -- a buyer who subscribes ---------------------------------------------------------------------------------
def test_a_buyer_who_subscribes_is_scored_by_the_subscription_model_and_no_longer_rescored() -> None:
    harness = Harness()
    harness.deliver(charge("ch_1", T0))
    harness.deliver(subscribed("cus_buyer", T0 + DAY))
    buyer, subscriber = harness.published
    assert buyer["model_version"].startswith("mbgnbd") and subscriber["model_version"].startswith("churn")
    assert subscriber["previous_level"] == buyer["level"]  # published though the level may be the same
    assert harness.watch() is None
    assert harness.rescore(T0 + HIGH_AFTER).changes == []
    harness.deliver(charge("ch_2", T0 + 2 * DAY))  # the subscriber's charge is the subscription model's
    assert harness.watch() is None and len(harness.published) == 2
