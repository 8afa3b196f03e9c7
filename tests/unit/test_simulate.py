"""The simulator: deterministic, faithful Stripe events built from the real fixtures, and honest labels.

One shared year of 400 customers (every attack kind injected) is checked event by event: the envelope
Stripe delivers, the fixture's keys on every object, the detail the processor publishes against its
registered schema, previous_attributes that describe a real change, and labels that the events bear out.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import stripe
from jsonschema import Draft4Validator

from events import detail_schema, event_types, resource_for_event_type, stripe_object
from stripe_middleware.ingest.signature import SignatureError, verify_signature
from stripe_middleware.processing.normalize import normalize
from stripe_middleware.processing.processor import build_detail, parse_message
from stripe_middleware.shared.contract import STRIPE_API_VERSION
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware.signals.facts import facts_of
from stripe_middleware_dev.simulate import (
    ATTACK_KINDS,
    ATTACKER,
    MECHANISMS,
    ONE_OFF,
    SUBSCRIPTION,
    AttackLabel,
    History,
    default_attacks,
    parse_attacks,
    read_jsonl,
    read_labels,
    register,
    signed_deliveries,
    signed_delivery,
    simulate,
    write_jsonl,
    write_labels,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86_400
EVERY_ATTACK = dict.fromkeys(ATTACK_KINDS, 1)
ENVELOPE = {
    "id",
    "object",
    "api_version",
    "created",
    "data",
    "livemode",
    "pending_webhooks",
    "request",
    "type",
}
SECRET = "whsec_simulated_0123456789"

Event = dict[str, Any]


@pytest.fixture(scope="module")
def year() -> History:
    return simulate(400, 12, 11, START, attacks=EVERY_ATTACK)


@pytest.fixture(scope="module")
def by_customer(year: History) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = defaultdict(list)
    for event in year.events:
        if customer := customer_of(event):
            found[customer].append(event)
    return found


def customer_of(event: Event) -> str | None:
    found = obj(event)["id"] if obj(event)["object"] == "customer" else obj(event).get("customer")
    return str(found) if found else None


def of_type(events: list[Event], *types: str) -> list[Event]:
    return [e for e in events if e["type"] in types]


def obj(event: Event) -> dict[str, Any]:
    found: dict[str, Any] = event["data"]["object"]
    return found


def attack(history: History, kind: str) -> AttackLabel:
    return next(a for a in history.labels.attacks if a.kind == kind)


def attack_events(history: History, kind: str) -> list[Event]:
    ids = set(attack(history, kind).event_ids)
    return [e for e in history.events if e["id"] in ids]


# -- determinism ------------------------------------------------------------------------------------------
def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    files = []
    for n, seed in enumerate((5, 5, 6)):
        history = simulate(40, 6, seed, START, attacks=EVERY_ATTACK)
        write_jsonl(history, tmp_path / f"{n}.jsonl.gz")
        write_labels(history, tmp_path / f"{n}.json")
        files.append(((tmp_path / f"{n}.jsonl.gz").read_bytes(), (tmp_path / f"{n}.json").read_bytes()))
    assert files[0] == files[1]
    assert files[0][0] != files[2][0] and files[0][1] != files[2][1]


def test_a_customers_history_does_not_depend_on_the_attacks_injected() -> None:
    quiet = simulate(30, 6, 3, START, attacks={})
    attacked = simulate(30, 6, 3, START, attacks={"card_testing": 2, "trial_abuse": 1})
    legit = {c for c, label in quiet.labels.customers.items() if label.segment != ATTACKER}
    assert legit and legit <= set(attacked.labels.customers)
    mine = [e for e in attacked.events if e["id"] in {e["id"] for e in quiet.events}]
    assert mine == quiet.events
    assert not quiet.labels.attacks and {a.kind for a in attacked.labels.attacks} == {
        "card_testing",
        "trial_abuse",
    }


# -- the Stripe shapes ------------------------------------------------------------------------------------
def test_events_have_the_shape_stripe_delivers(year: History) -> None:
    known = set(event_types())
    assert len({e["id"] for e in year.events}) == len(year.events)
    assert [e["created"] for e in year.events] == sorted(e["created"] for e in year.events)
    labels = year.labels
    for event in year.events:
        assert set(event) == ENVELOPE, event["type"]
        assert event["id"].startswith("evt_") and event["object"] == "event"
        assert event["api_version"] == STRIPE_API_VERSION and event["type"] in known
        assert labels.start <= event["created"] < labels.end
        assert event["livemode"] is False and event["pending_webhooks"] == 1
        assert set(event["request"]) == {"id", "idempotency_key"}
        assert (event["request"]["id"] is None) == (event["request"]["idempotency_key"] is None)
        assert set(event["data"]) <= {"object", "previous_attributes"}
        has_previous = "previous_attributes" in event["data"]
        assert has_previous == event["type"].endswith(("updated", "automatically_updated")), event["type"]


@cache
def fixture_shape(event_type: str) -> tuple[str, frozenset[str]]:
    """(`object`, top-level keys) of the real fixture of the object an event of this type carries."""
    resource = resource_for_event_type(event_type)
    assert resource is not None, event_type
    fixture = stripe_object(resource)
    return fixture["object"], frozenset(fixture)


def test_every_object_has_the_keys_of_the_real_fixture_of_its_type(year: History) -> None:
    seen: Counter[str] = Counter()
    for event in year.events:
        kind, keys = fixture_shape(event["type"])
        assert (obj(event)["object"], frozenset(obj(event))) == (kind, keys), event["type"]
        seen[kind] += 1
    assert set(seen) >= {"customer", "subscription", "invoice", "charge", "payment_intent", "payment_method"}
    assert set(seen) >= {"refund", "dispute", "invoice_payment", "price", "product"}


def test_the_details_the_processor_publishes_validate_against_the_registered_schema() -> None:
    schema = load_metadata_schema()
    validator = Draft4Validator(detail_schema("invoice.paid"))  # every Stripe event type shares one
    history = simulate(80, 12, 2, START, attacks=EVERY_ATTACK)  # smaller than `year`: validation is slow
    assert len({e["type"] for e in history.events}) > 25
    for event in history.events:
        parsed = parse_message(json.dumps(event))
        detail = build_detail(parsed, normalize(parsed, schema), stale=False, redelivered=False)
        assert [e.message for e in validator.iter_errors(detail)] == [], event["type"]


def test_previous_attributes_name_what_really_changed(year: History) -> None:
    def differs(before: Any, now: Any) -> bool:
        if isinstance(before, dict) and isinstance(now, dict) and before.keys() <= now.keys():
            return any(differs(value, now[key]) for key, value in before.items())
        return bool(before != now)

    updates = [e for e in year.events if "previous_attributes" in e["data"]]
    assert len(updates) > 100
    for event in updates:
        previous = event["data"]["previous_attributes"]
        assert previous, event["type"]
        for key, before in previous.items():
            assert differs(before, obj(event)[key]), (event["type"], key, before)


def test_events_share_nothing_a_consumer_could_change(year: History) -> None:
    def containers(value: Any) -> Iterator[Any]:
        if isinstance(value, dict | list):
            yield value
            for child in value.values() if isinstance(value, dict) else value:
                yield from containers(child)

    seen = [id(c) for e in year.events[:3_000] for c in containers(e)]
    assert len(seen) == len(set(seen))  # no dict or list is in two places
    before = simulate(20, 3, 9, START).events
    for event in simulate(20, 3, 9, START).events:  # vandalize one history: the next is unaffected
        for container in list(containers(event)):
            if isinstance(container, list):
                container.append("x")
            else:
                container["x"] = 1
    assert simulate(20, 3, 9, START).events == before


def test_a_subscription_sends_nothing_after_it_is_deleted_and_one_renewal_per_period(year: History) -> None:
    per_subscription: dict[str, list[Event]] = defaultdict(list)
    for event in year.events:
        if obj(event)["object"] == "subscription":
            per_subscription[obj(event)["id"]].append(event)
    for events in per_subscription.values():
        deletions = [n for n, e in enumerate(events) if e["type"] == "customer.subscription.deleted"]
        assert deletions in ([], [len(events) - 1])
        assert events[0]["type"] == "customer.subscription.created"
        periods = [obj(e)["items"]["data"][0]["current_period_start"] for e in events]
        assert periods == sorted(periods)
    invoices = Counter(
        (obj(e)["subscription"], obj(e)["lines"]["data"][0]["period"]["start"])
        for e in of_type(year.events, "invoice.created")
    )
    assert max(invoices.values()) == 1


# -- labels -----------------------------------------------------------------------------------------------
def test_a_churned_subscriber_has_its_deletion_at_churned_at_and_the_others_none(
    year: History, by_customer: dict[str, list[Event]]
) -> None:
    subscribers = [c for c in year.labels.customers.values() if c.segment == SUBSCRIPTION]
    assert subscribers
    for label in subscribers:
        deleted = [
            e["created"]
            for e in of_type(by_customer[label.customer_id], "customer.subscription.deleted")
            if obj(e)["id"] == label.subscription_id
        ]
        assert deleted == ([label.churned_at] if label.churned else [])
        assert (label.mechanism in MECHANISMS) if label.churned else label.mechanism is None


def test_a_one_off_buyer_who_left_buys_nothing_after_it(
    year: History, by_customer: dict[str, list[Event]]
) -> None:
    buyers = [c for c in year.labels.customers.values() if c.segment == ONE_OFF]
    left = [c for c in buyers if c.churned]
    assert left and len(left) < len(buyers)
    for label in left:
        assert label.mechanism == "dropout" and label.churned_at is not None
        paid = [e["created"] for e in of_type(by_customer[label.customer_id], "charge.succeeded")]
        assert max(paid) == label.churned_at


def test_every_attack_is_labeled_with_events_that_exist_and_involve_its_customers(year: History) -> None:
    by_id = {e["id"]: e for e in year.events}
    assert sorted(a.kind for a in year.labels.attacks) == sorted(ATTACK_KINDS)
    for label in year.labels.attacks:
        assert label.event_ids and set(label.event_ids) <= set(by_id), label.kind
        assert label.started_at <= label.ended_at and label.account is None
        involved = {customer_of(by_id[e]) for e in label.event_ids}
        if label.kind in ("trial_abuse", "duplicate_charge", "account_takeover", "amount_outlier"):
            assert involved == set(label.customers), label.kind
        for customer in label.customers:
            assert customer in year.labels.customers


def test_labels_round_trip_through_their_file(year: History, tmp_path: Path) -> None:
    write_labels(year, tmp_path / "labels.json")
    assert read_labels(tmp_path / "labels.json") == year.labels


# -- the churn mechanisms leave their traces ---------------------------------------------------------------
def churned(year: History, mechanism: str) -> list[Any]:
    found = [c for c in year.labels.customers.values() if c.mechanism == mechanism]
    assert found, f"no customer churned by {mechanism}"
    return found


def test_involuntary_churn_follows_four_declined_attempts(
    year: History, by_customer: dict[str, list[Event]]
) -> None:
    for mechanism, code in (("failed_payments", "card_declined"), ("expired_card", "expired_card")):
        for label in churned(year, mechanism):
            events = by_customer[label.customer_id]
            failed = [
                e for e in of_type(events, "charge.failed") if e["created"] > label.churned_at - 20 * DAY
            ]
            assert len(failed) == 4 and {obj(e)["failure_code"] for e in failed} == {code}
            assert len(of_type(events, "invoice.payment_failed")) >= 4
            [deleted] = of_type(events, "customer.subscription.deleted")
            assert obj(deleted)["cancellation_details"]["reason"] == "payment_failed"
            if mechanism == "expired_card":
                card = obj(failed[0])["payment_method_details"]["card"]
                expires = datetime(card["exp_year"] + card["exp_month"] // 12, card["exp_month"] % 12 + 1, 1)
                assert expires.replace(tzinfo=UTC).timestamp() <= failed[0]["created"]


def test_voluntary_churn_is_announced_by_cancel_at_period_end_and_downgrades(
    year: History, by_customer: dict[str, list[Event]]
) -> None:
    def monthly_amount(items: dict[str, Any]) -> int:
        item = items["data"][0]
        months = 12 if item["price"]["recurring"]["interval"] == "year" else 1
        return int(item["price"]["unit_amount"] * item["quantity"] / months)

    for mechanism in ("cancel_at_period_end", "downgrade_then_cancel"):
        for label in churned(year, mechanism):
            updates = of_type(by_customer[label.customer_id], "customer.subscription.updated")
            cancels = [
                u for u in updates if u["data"]["previous_attributes"].get("cancel_at_period_end") is False
            ]
            assert cancels and cancels[-1]["created"] < label.churned_at
            assert obj(cancels[-1])["cancel_at"] == label.churned_at  # the period's end
            if mechanism == "downgrade_then_cancel":
                downgrades = [
                    u
                    for u in updates
                    if "items" in u["data"]["previous_attributes"]
                    and "latest_invoice" not in u["data"]["previous_attributes"]  # not a renewal
                    and monthly_amount(u["data"]["previous_attributes"]["items"])
                    > monthly_amount(obj(u)["items"])
                ]
                assert downgrades and label.churned_at - downgrades[-1]["created"] < 62 * DAY


def test_no_signal_churn_has_no_warning_and_unconverted_trials_end_with_the_trial(
    year: History, by_customer: dict[str, list[Event]]
) -> None:
    for label in churned(year, "no_signal"):
        events = by_customer[label.customer_id]
        [deleted] = of_type(events, "customer.subscription.deleted")
        assert deleted["request"]["id"] is not None  # the customer asked, at once
        before = [e for e in events if label.churned_at - 45 * DAY < e["created"] < label.churned_at]
        assert not of_type(before, "charge.failed")
        assert not [e for e in before if "cancel_at_period_end" in e["data"].get("previous_attributes", {})]
    for label in churned(year, "trial_not_converted"):
        events = by_customer[label.customer_id]
        [deleted] = of_type(events, "customer.subscription.deleted")
        assert obj(deleted)["status"] == "canceled" and label.churned_at <= obj(deleted)["trial_end"]
        assert not of_type(events, "charge.succeeded")


def test_most_customers_stay_and_attackers_are_few(year: History) -> None:
    labels = list(year.labels.customers.values())
    segments = Counter(c.segment for c in labels)
    assert 0.1 < segments[ONE_OFF] / (segments[ONE_OFF] + segments[SUBSCRIPTION]) < 0.3
    assert segments[ATTACKER] < 0.05 * len(labels)
    subscribers = [c for c in labels if c.segment == SUBSCRIPTION]
    assert 0.05 < sum(c.churned for c in subscribers) / len(subscribers) < 0.5
    charges = Counter(e["type"] for e in year.events if e["type"] in ("charge.succeeded", "charge.failed"))
    assert charges["charge.failed"] / sum(charges.values()) < 0.15
    assert default_attacks(1_000, 12) == dict.fromkeys(ATTACK_KINDS, 1)


# -- the attacks look like what they are ------------------------------------------------------------------
def test_trial_abuse_is_one_fingerprint_behind_many_new_trials(year: History) -> None:
    events = attack_events(year, "trial_abuse")
    cards = of_type(events, "payment_method.attached")
    trials = of_type(events, "customer.subscription.created")
    assert len({obj(c)["card"]["fingerprint"] for c in cards}) == 1
    assert len({obj(c)["customer"] for c in cards}) == len(trials) >= 4
    assert {obj(t)["status"] for t in trials} == {"trialing"}
    assert trials[-1]["created"] - trials[0]["created"] < 30 * DAY


def test_card_testing_is_a_burst_of_small_declines_on_many_cards(year: History) -> None:
    charges = of_type(attack_events(year, "card_testing"), "charge.failed", "charge.succeeded")
    failed = of_type(charges, "charge.failed")
    assert len(failed) >= 5 and len(failed) / len(charges) > 0.5
    assert len({obj(c)["payment_method_details"]["card"]["fingerprint"] for c in charges}) == len(charges)
    assert max(obj(c)["amount"] for c in charges) <= 500
    assert charges[-1]["created"] - charges[0]["created"] <= 10 * 60


def test_a_duplicate_charge_is_the_same_amount_twice_within_minutes(year: History) -> None:
    first, second = of_type(attack_events(year, "duplicate_charge"), "charge.succeeded")
    assert (obj(first)["customer"], obj(first)["amount"]) == (obj(second)["customer"], obj(second)["amount"])
    assert 0 < second["created"] - first["created"] <= 5 * 60


def test_account_takeover_changes_email_and_card_then_charges_unusually(
    year: History, by_customer: dict[str, list[Event]]
) -> None:
    label = attack(year, "account_takeover")
    events = attack_events(year, "account_takeover")
    assert events[0]["type"] == "customer.updated" and "email" in events[0]["data"]["previous_attributes"]
    [card] = of_type(events, "payment_method.attached")
    [charge] = of_type(events, "charge.succeeded")
    assert obj(charge)["payment_method"] == obj(card)["id"]
    history = [
        obj(e)
        for e in of_type(by_customer[label.customers[0]], "charge.succeeded")
        if e["created"] < events[0]["created"]
    ]
    assert len(history) >= 3
    assert obj(card)["card"]["country"] not in {
        c["payment_method_details"]["card"]["country"] for c in history
    }
    assert obj(charge)["amount"] >= 3 * statistics.median(c["amount"] for c in history)


def test_an_amount_outlier_is_far_from_the_customers_own_history(
    year: History, by_customer: dict[str, list[Event]]
) -> None:
    [charge] = of_type(attack_events(year, "amount_outlier"), "charge.succeeded")
    before = [
        obj(e)["amount"]
        for e in of_type(by_customer[obj(charge)["customer"]], "charge.succeeded")
        if e["created"] < charge["created"]
    ]
    assert len(before) >= 5 and obj(charge)["amount"] >= 8 * statistics.median(before) - 100


def test_spikes_stand_out_from_the_accounts_own_baseline(year: History) -> None:
    def failure_rate(low: int, high: int) -> float:
        charges = [
            e for e in of_type(year.events, "charge.failed", "charge.succeeded") if low <= e["created"] < high
        ]
        charges = [c for c in charges if obj(c)["customer"] not in attack(year, "card_testing").customers]
        return float(sum(c["type"] == "charge.failed" for c in charges) / max(len(charges), 1))

    spike = attack(year, "payment_failure_spike")
    assert {e["type"] for e in attack_events(year, "payment_failure_spike")} >= {"charge.failed"}
    assert failure_rate(spike.started_at, spike.ended_at) > 3 * failure_rate(
        spike.started_at - 14 * DAY, spike.started_at
    )
    disputes = attack(year, "dispute_spike")
    inside = of_type(attack_events(year, "dispute_spike"), "charge.dispute.created")
    baseline = [
        e
        for e in of_type(year.events, "charge.dispute.created")
        if disputes.started_at - 28 * DAY <= e["created"] < disputes.started_at
    ]
    assert len(inside) >= 6 and len(inside) > 3 * len(baseline) / 14
    assert disputes.ended_at - disputes.started_at <= 2 * DAY


def test_the_facts_extractor_reads_the_attacks(year: History) -> None:
    def facts(kind: str) -> list[Any]:
        return [f for e in attack_events(year, kind) for f in facts_of(e["type"], published(e))]

    testing = [f for f in facts("card_testing") if f.kind == "charge" and f.failed]
    assert len(testing) >= 5 and len({f.fingerprint for f in testing}) == len(testing)
    abuse = facts("trial_abuse")
    assert len({f.customer for f in abuse if f.kind == "trial"}) >= 4
    assert len({f.fingerprint for f in abuse if f.kind == "card"}) == 1


def published(event: Event) -> dict[str, Any]:
    parsed = parse_message(json.dumps(event))
    return build_detail(parsed, normalize(parsed, load_metadata_schema()), stale=False, redelivered=False)


# -- deliveries, files, command line ----------------------------------------------------------------------
def test_signed_deliveries_verify_with_the_product_and_the_stripe_sdk() -> None:
    events = simulate(3, 2, 1, START, attacks={}).events[:20]
    deliveries = signed_deliveries(events, SECRET, timestamp=1_800_000_000)
    assert len(deliveries) == len(events)
    for event, (body, headers) in zip(events, deliveries, strict=True):
        assert json.loads(body) == event
        assert headers["Content-Type"].startswith("application/json")
        assert (
            verify_signature(body, headers["Stripe-Signature"], [SECRET], now=1_800_000_100) == 1_800_000_000
        )
        stripe.WebhookSignature.verify_header(
            body.decode(), headers["Stripe-Signature"], SECRET, tolerance=None
        )
    body, headers = deliveries[0]
    with pytest.raises(SignatureError):
        verify_signature(
            body.replace(b"evt_", b"evt_X", 1), headers["Stripe-Signature"], [SECRET], now=1_800_000_000
        )
    _, fresh = signed_delivery(events[0], SECRET)
    assert verify_signature(body, fresh["Stripe-Signature"], [SECRET], now=time.time())


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_jsonl_holds_one_event_per_line_and_reads_back(tmp_path: Path, name: str) -> None:
    history = simulate(10, 3, 2, START)
    assert write_jsonl(history, tmp_path / name) == len(history.events)
    raw = (tmp_path / name).read_bytes()
    text = gzip.decompress(raw) if name.endswith(".gz") else raw
    assert text.count(b"\n") == len(history.events)
    assert list(read_jsonl(tmp_path / name)) == history.events


def test_the_command_writes_events_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    out, labels = tmp_path / "h.jsonl.gz", tmp_path / "labels.json"
    args = parser.parse_args(
        [
            *("simulate", "--customers", "12", "--months", "2", "--seed", "4", "--start", "2025-03-01"),
            *("--attacks", "card_testing=1", "--account", "acct_1Sim"),
            *("--out", str(out), "--labels", str(labels)),
        ]
    )
    assert args.run(args) == 0
    events = list(read_jsonl(out))
    assert (
        events
        == simulate(
            12, 2, 4, datetime(2025, 3, 1, tzinfo=UTC), attacks={"card_testing": 1}, account="acct_1Sim"
        ).events
    )
    assert {e["account"] for e in events} == {"acct_1Sim"}
    assert [a.kind for a in read_labels(labels).attacks] == ["card_testing"]
    assert f"{len(events)} events" in capsys.readouterr().err


def test_arguments_are_checked() -> None:
    assert parse_attacks("card_testing=3, trial_abuse=0") == {"card_testing": 3, "trial_abuse": 0}
    assert parse_attacks("none") == {}
    for bad in ("card_testing", "phishing=1", "card_testing=-1"):
        with pytest.raises(ValueError, match="KIND=COUNT"):
            parse_attacks(bad)
    for kwargs in ({"churn_rate": 1.0}, {"attacks": {"phishing": 1}}, {"attacks": {"card_testing": -1}}):
        with pytest.raises(ValueError, match=r"churn_rate|attacks"):
            simulate(1, 1, 0, START, **kwargs)
    with pytest.raises(ValueError, match="months"):
        simulate(1, 0, 0, START)
    naive = simulate(2, 1, 0, datetime(2025, 1, 1), attacks={})
    assert naive.labels.start == int(START.timestamp())


def test_a_thousand_customers_over_a_year_take_seconds() -> None:
    began = time.process_time()
    history = simulate(1_000, 12, 7, START)
    assert time.process_time() - began < 10
    assert len(history.events) > 30_000
