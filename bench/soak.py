"""`make soak`: thousands of deliveries through local mode with faults injected; proves "nothing lost".

Deliveries are built from the real fixtures: 30 % duplicates, shuffled (lifecycle events share seconds),
2 % bad signatures, 1 % expired timestamps, 1 % malformed bodies, a few oversized invoices, a few poison
messages straight into the queue, and 2 % of the events never delivered at all (a missed webhook), which
a catch-up run then lists from a fake Stripe's Events API and recovers. Faults, 5 % each: DynamoDB throttling (answered at the HTTP level, so
the SDK's retry meets it), partial PutEvents failure, processor crash mid-batch (after the store write,
before publication). Publications are counted as EventBridge accepts them. The signals function runs on
the same stream, with its own DynamoDB throttling and partial PutEvents failures, and must raise each
injected duplicate charge exactly once. Failed payments start one dunning workflow per invoice, whose
steps then run on the local clock (bench/dunning_soak.py). Exit code 0 only when every assertion holds.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

from bench import dunning_soak

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CARD = re.compile(r"\b\d{15,16}\b")  # card numbers (timestamps in ms are 13 digits)
WAVE = 500
MISSED_SHARE = 0.02  # events whose webhook never arrives; catch-up must recover every one
POISON = ['{"poison": 1}', "not json at all", '{"id": "evt_poison", "object": "event"}']
DUPLICATE_CHARGES = 5  # customers charged the same amount twice a minute apart: one signal each


def luhn(number: str) -> bool:
    digits = [int(d) for d in number[::-1]]
    return sum(digits[0::2] + [sum(divmod(2 * d, 10)) for d in digits[1::2]]) % 10 == 0


def build_deliveries(
    total: int, rng: random.Random
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    from events import billing_lifecycle, stripe_event, stripe_object

    valid_share = 1 - 0.02 - 0.01 - 0.01
    unique_target = int(total * valid_share * 0.7)
    unique: list[dict[str, Any]] = []
    n = 0
    while len(unique) < unique_target:
        lifecycle = billing_lifecycle(n)
        # Personal data and a card number in the payloads, which must never reach a log line.
        lifecycle[0]["data"]["object"]["email"] = f"customer{n}@example.com"
        lifecycle[8]["data"]["object"]["description"] = "card 4242424242424242"
        unique.extend(lifecycle)
        n += 1
    for i in range(3):  # oversized invoices
        invoice = stripe_object("invoice", id=f"in_Big{i}")
        invoice["lines"]["data"] = [
            {"id": f"il_{i}_{j}", "object": "line_item", "amount": j, "description": f"seat {j}"}
            for j in range(1500)
        ]
        unique.append(stripe_event("invoice.finalized", obj=invoice))
    unique += duplicate_charges(DUPLICATE_CHARGES)
    unique += dunning_soak.failed_payments(dunning_soak.invoice_count(total))
    valid = {e["id"]: e for e in unique}
    deliveries = [{"kind": "valid", "event": e} for e in unique]
    deliveries += [
        {"kind": "valid", "event": rng.choice(unique)} for _ in range(int(len(unique) * 0.3 / 0.7))
    ]
    for kind, share in (("bad_signature", 0.02), ("expired", 0.01), ("malformed", 0.01)):
        deliveries += [
            {"kind": kind, "event": stripe_event("charge.succeeded", id=f"ch_Invalid{kind}{i}")}
            for i in range(int(total * share))
        ]
    rng.shuffle(deliveries)
    return deliveries, valid


def duplicate_charges(count: int) -> list[dict[str, Any]]:
    from events import stripe_event

    found = []
    for n in range(count):
        for k in range(2):
            at = 1_764_000_000 + 3600 * n + 60 * k
            event = stripe_event(
                "charge.succeeded",
                created=at,
                id=f"ch_SoakDup{n}_{k}",
                customer=f"cus_SoakDup{n}",
                amount=4200,
            )
            event["data"]["object"]["created"] = at
            found.append(event)
    return found


def aws_error(request: Any, error_type: str) -> AWSResponse:
    """An AWS JSON-protocol error answered in place of sending `request` (the SDK's retries meet it)."""
    body = json.dumps({"__type": error_type, "message": "injected by the soak"}).encode()
    return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, _Raw(body))


def fail_some_entries(
    client: Any,
    rng: random.Random,
    rate: float,
    lock: threading.Lock,
    injected: Counter[str],
    accepted: list[dict[str, Any]],
) -> None:
    """Make `client.put_events` refuse each entry at `rate` (a partial PutEvents failure) and record in
    `accepted` what EventBridge took: what subscribers get (a moto subscriber queue would be O(n^2) to
    drain)."""
    real_put_events = client.put_events

    def put_events(Entries: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        with lock:
            failing = [rng.random() < rate for _ in Entries]
        kept = [e for e, fail in zip(Entries, failing, strict=True) if not fail]
        results = real_put_events(Entries=kept)["Entries"] if kept else []
        accepted.extend(
            {"detail-type": e["DetailType"], "detail": json.loads(e["Detail"])}
            for e, r in zip(kept, results, strict=True)
            if "EventId" in r
        )
        sent = iter(results)
        with lock:
            injected["put_events_entry_failure"] += sum(failing)
        entries = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} if fail else next(sent)
            for fail in failing
        ]
        return {"FailedEntryCount": sum(failing), "Entries": entries}

    client.put_events = put_events


def inject_faults(
    rng: random.Random, rate: float, published: list[dict[str, Any]], lock: threading.Lock
) -> Counter[str]:
    from functions.processor import handler as processor
    from functions.signals import handler as signals

    injected: Counter[str] = Counter()
    deps = processor.dependencies()

    def throttle(request: Any, **kwargs: Any) -> AWSResponse | None:
        with lock:
            hit = rng.random() < rate
        if not hit:
            return None
        injected["dynamodb_throttle"] += 1
        return aws_error(request, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException")

    deps.store._client.meta.events.register("before-send.dynamodb.PutItem", throttle)
    detector = signals.detector()
    detector.keywords["state"]._client.meta.events.register("before-send.dynamodb.PutItem", throttle)

    for client in (deps.publisher._client, detector.keywords["publisher"]._client):
        fail_some_entries(client, rng, rate, lock, injected, published)
    real_publish = deps.publisher.publish

    def crashing_publish(publications: Any) -> Any:
        with lock:
            crash = rng.random() < rate
        if crash:
            injected["crash_mid_batch"] += 1
            raise RuntimeError("injected crash after the store write, before publication")
        return real_publish(publications)

    deps.publisher.publish = crashing_publish  # type: ignore[method-assign]
    return injected


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self._body

    def read(self, *args: Any) -> bytes:
        return self._body


def deliver(url: str, secret: str, delivery: dict[str, Any]) -> tuple[str, int]:
    from stripe_middleware.ingest.signature import compute_signature

    body = json.dumps(delivery["event"]).encode()
    timestamp = int(time.time()) - (3600 if delivery["kind"] == "expired" else 0)
    if delivery["kind"] == "malformed":
        body = body[: len(body) // 2]
    key = "whsec_wrong" if delivery["kind"] == "bad_signature" else secret
    signature = f"t={timestamp},v1={compute_signature(body, key, timestamp)}"
    request = urllib.request.Request(url, data=body, method="POST", headers={"Stripe-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return delivery["kind"], response.status
    except urllib.error.HTTPError as error:
        return delivery["kind"], error.code


def run(total: int, seed: int, fault_rate: float = 0.05) -> int:
    import logging

    from stripe_middleware.processing.models import StripeEvent
    from stripe_middleware.processing.normalize import object_identity
    from stripe_middleware.processing.ordering import order_key
    from stripe_middleware_dev.local.runtime import LocalPipeline

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("stripe_middleware_dev.local.event_source").setLevel(
        logging.CRITICAL
    )  # the crashes are ours
    rng = random.Random(seed)
    state = Path(tempfile.mkdtemp(prefix="soak-"))
    console = sys.stdout
    pipeline = LocalPipeline(port=0, state_dir=state, console=console, quiet=True)
    outputs = pipeline.start()
    try:
        sqs = pipeline.clients["sqs"]
        published: list[dict[str, Any]] = []
        lock = threading.Lock()
        injected = inject_faults(rng, fault_rate, published, lock)
        dunning_soak.inject_starter_faults(rng, fault_rate, lock, injected)
        deliveries, valid = build_deliveries(total, rng)
        missed = set(rng.sample(sorted(valid), max(1, int(len(valid) * MISSED_SHARE))))
        deliveries = [d for d in deliveries if d["event"]["id"] not in missed]
        started = time.monotonic()
        answers: list[tuple[str, int]] = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            # In waves: moto's SQS scans the whole queue on every receive, so a deep backlog slows the
            # emulator (not the product) to a crawl.
            for start in range(0, len(deliveries), WAVE):
                wave = deliveries[start : start + WAVE]
                answers += pool.map(
                    lambda d: deliver(outputs["webhook_url"], outputs["webhook_secret"], d), wave
                )
                _wait_until_drained(sqs, outputs["events_queue_url"], quiet_seconds=0, backlog=WAVE // 5)
        sent = time.monotonic() - started
        for body in POISON:
            sqs.send_message(QueueUrl=outputs["events_queue_url"], MessageBody=body)
        _wait_until_drained(sqs, outputs["events_queue_url"])
        recovered = catch_up(outputs, valid)
        _wait_until_drained(sqs, outputs["events_queue_url"])
        _wait_until_drained(sqs, outputs["signals_queue_url"])
        dunning_queue, dunning_dead_letters = _dunning_queues(sqs)
        _wait_until_drained(sqs, dunning_queue)

        def deliver_now(events: list[dict[str, Any]]) -> None:
            """Through the webhook, then wait until the processor has stored them."""
            for event in events:
                valid[event["id"]] = event
                answers.append(
                    deliver(
                        outputs["webhook_url"], outputs["webhook_secret"], {"kind": "valid", "event": event}
                    )
                )
            _wait_until_drained(sqs, outputs["events_queue_url"])

        dunning, dunning_checks = dunning_soak.run(
            outputs,
            count=dunning_soak.invoice_count(total),
            deliver=deliver_now,
            rng=rng,
            rate=fault_rate,
            lock=lock,
            injected=injected,
        )
        elapsed = time.monotonic() - started
        dunning["dlq_messages"] = len(_drain(sqs, dunning_dead_letters))
        dead = _drain(sqs, outputs["events_dead_letter_queue_url"])
        signals_dead = _drain(sqs, outputs["signals_dead_letter_queue_url"])
        store = _store(pipeline)
    finally:
        pipeline.stop()

    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    for kind, status in answers:
        statuses[kind][status] += 1
    counts = Counter(
        p["detail"]["id"]
        for p in published
        if p["detail-type"].count(".")
        and "id" in p["detail"]
        and not p["detail-type"].startswith("stripe-middleware.")
    )
    lost = [i for i in valid if counts[i] == 0]
    invalid_ids = {d["event"]["id"] for d in deliveries if d["kind"] != "valid"}
    invalid_enqueued = [i for i in invalid_ids if counts[i] or i in store["events"]]
    newest: dict[tuple[str, str], str] = {}
    for event in valid.values():
        parsed = StripeEvent.model_validate(event)
        identity = object_identity(parsed.data.object)
        key = order_key(parsed)
        newest[identity] = max(newest.get(identity, ""), key)
    regressed = [k for k, key in newest.items() if store["objects"].get(k) != key]
    log_text = Path(outputs["function_log"]).read_text()
    leaks = {
        "webhook_secret": outputs["webhook_secret"] in log_text,
        "api_key": bool(re.search(r"\b[sr]k_(live|test)_[A-Za-z0-9]+", log_text)),
        "email": sorted(set(EMAIL.findall(log_text)))[:3],
        "card_number": [n for n in CARD.findall(log_text) if luhn(n)][:3],
    }
    extra = sum(c - 1 for c in counts.values() if c > 1)
    anomalies = [p["detail"] for p in published if p["detail-type"] == "stripe-middleware.signal.anomaly"]
    duplicates = {a["signal_id"]: a["customer_id"] for a in anomalies if a["kind"] == "duplicate_charge"}
    report = {
        "deliveries": len(deliveries),
        "unique_valid_events": len(valid),
        "answers": {k: dict(v) for k, v in statuses.items()},
        "faults_injected": dict(injected),
        "seconds": round(elapsed, 1),
        "sending_seconds": round(sent, 1),
        "missed_webhooks": len(missed),
        "recovered_by_catchup": recovered,
        "lost_valid_events": len(lost),
        "objects_regressed": len(regressed),
        "publications_per_unique_event": round(sum(counts[i] for i in valid) / len(valid), 4),
        "extra_publications_at_least_once": extra,
        "invalid_requests_enqueued": len(invalid_enqueued),
        "dlq_messages": len(dead),
        "dlq_only_poison": sorted(dead) == sorted(POISON),
        "signals_dlq_messages": len(signals_dead),
        "anomalies_published": len(anomalies),
        "duplicate_charge_signals": len(duplicates),
        "dunning": dunning,
        "log_leaks": leaks,
    }
    checks = {
        "0 valid events lost": not lost,
        "catch-up recovered exactly the missed webhooks": recovered == len(missed),
        "0 objects regressed": not regressed,
        "every valid answer 200": set(statuses["valid"]) == {200},
        "every invalid answer 400": all(
            set(statuses[k]) == {400} for k in ("bad_signature", "expired", "malformed")
        ),
        "0 invalid requests enqueued": not invalid_enqueued,
        "DLQ holds only the poison messages": report["dlq_only_poison"],
        "signals: each injected duplicate charge raised once, nothing else": sorted(duplicates.values())
        == [f"cus_SoakDup{n}" for n in range(DUPLICATE_CHARGES)],
        "signals: nothing in the signals DLQ": not signals_dead,
        **dunning_checks,
        "dunning: nothing in the starter's DLQ": dunning["dlq_messages"] == 0,
        "no secret, key, e-mail or card number in logs": not any(leaks.values()),
    }
    report["checks"] = checks
    print(json.dumps(report, indent=2))
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


def catch_up(outputs: dict[str, Any], valid: dict[str, dict[str, Any]]) -> int:
    """One catch-up run against a fake Stripe whose Events API holds every valid event; return how many
    events it found unprocessed and enqueued."""
    from stripe_middleware.adapters.history import build
    from stripe_middleware.backfill.catchup import run_catchup
    from stripe_middleware.backfill.settings import HistorySettings
    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware_dev.targets import Target
    from tests.fakes.stripe_server import fake_stripe

    with fake_stripe() as stripe_server:
        stripe_server.objects.update({f"/v1/events/{i}": e for i, e in valid.items()})
        settings = HistorySettings(
            table_name=outputs["table_name"],
            event_bus_name=outputs["event_bus_name"],
            stripe_api_version=STRIPE_API_VERSION,
            stripe_api_key_secret_id="",
            dead_letter_queue_url=outputs["backfill_dead_letter_queue_url"],
            events_queue_url=outputs["events_queue_url"],
            stripe_api_base=stripe_server.url,
        )
        catchup = build(settings, Target(outputs, local=True).client, "rk_test_soak").catchup()
        newest = max(e["created"] for e in valid.values())
        catchup.clock = lambda: newest + catchup.grace_seconds + 1  # the events are "recent"
        result = run_catchup(catchup, since=min(e["created"] for e in valid.values()))
        return result.recovered


def _wait_until_drained(
    sqs: Any, queue_url: str, quiet_seconds: float = 4.0, timeout: float = 3600, backlog: int = 0
) -> None:
    deadline, quiet_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        busy = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
        if busy > backlog:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > quiet_seconds:
            return
        time.sleep(0.5)
    raise TimeoutError("the events queue did not drain")


def _dunning_queues(sqs: Any) -> tuple[str, str]:
    """The dunning starter's queue and its dead-letter queue."""
    urls = sqs.list_queues(QueueNamePrefix="Dunning")["QueueUrls"]
    [queue] = [u for u in urls if "Dead" not in u]
    [dead_letters] = [u for u in urls if "Dead" in u]
    return queue, dead_letters


def _drain(sqs: Any, url: str) -> list[str]:
    found: list[str] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages", []
    ):
        found += [message["Body"] for message in batch]
    return found


def _store(pipeline: Any) -> dict[str, Any]:
    dynamodb = pipeline.clients["dynamodb"]
    table = pipeline.outputs["table_name"]
    objects: dict[tuple[str, str], str] = {}
    event_ids: set[str] = set()
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="pk, order_key, object_type, object_id"
    ):
        for item in page["Items"]:
            pk = item["pk"]["S"]
            if pk.startswith("EVT#"):
                event_ids.add(pk[4:])
            elif pk.startswith("OBJ#"):
                objects[(item["object_type"]["S"], item["object_id"]["S"])] = item["order_key"]["S"]
    return {"objects": objects, "events": event_ids}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--events", type=int, default=10_000, help="deliveries to send")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    return run(args.events, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
