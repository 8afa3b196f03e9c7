"""The issue's "done when" for dunning, on local mode: the failed payments of a simulated history, signed and
sent like Stripe's deliveries, start one workflow per invoice; `stripe-middleware dunning --advance` moves
the local clock through a small policy while the rest of each invoice's story arrives (Stripe's retries,
failing again or paying it), and the bus shows each step at its day with the customer, invoice, attempt and
churn-risk level, until the invoice is paid or the final stage fires."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator

from events import load_event
from stripe_middleware.dunning.config import DAY, DunningConfig
from stripe_middleware.shared.contract import DetailType
from stripe_middleware_dev.simulate import simulate, write_jsonl
from tests.e2e.conftest import LocalStack, eventually

# Smaller than config/dunning.yaml, so the flow takes three moves of the clock. The day-4 step would retry
# the payment, but Stripe is still retrying these invoices then (days 3, 8 and 14): the middleware must not.
POLICY = {
    "version": 1,
    "steps": [{"day": 1}, {"day": 4, "retry": True}],
    "final": {"day": 9, "action": "leave"},
}
STAGES = DunningConfig.model_validate(POLICY).stages()
STEP_SCHEMA = Draft4Validator(load_event("schemas/dunning-step.detail.schema.json"))


def stories(history: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each invoice whose first payment failed: its `invoice.payment_failed` and `invoice.paid` events."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in history:
        obj = event["data"]["object"]
        if obj.get("object") == "invoice" and event["type"] in ("invoice.payment_failed", "invoice.paid"):
            found.setdefault(obj["id"], []).append(event)
    return {i: s for i, s in found.items() if s[0]["type"] == "invoice.payment_failed"}


def customer_of(event: dict[str, Any]) -> str | None:
    obj = event["data"]["object"]
    return str(obj["id"]) if obj.get("object") == "customer" else obj.get("customer")


def queues_idle(stack: LocalStack, urls: list[str]) -> bool:
    """Nothing waiting or in flight, checked in the pipeline's order: a queue is empty only once what its
    function published reached the next ones."""
    sqs = stack.client("sqs")
    for url in urls:
        counts = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if any(int(n) for n in counts.values()):
            return False
    return True


def drain(subscriber: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Everything the bus delivered to the subscriber so far (it receives ten at a time)."""
    seen = -1
    while len(received := subscriber()) != seen:
        seen = len(received)
    return received


def test_failed_invoices_are_dunned_at_their_days_until_paid_or_the_final_stage(
    local_stack: LocalStack, subscriber: Any, tmp_path: Path
) -> None:
    history = simulate(
        customers=100, months=2, seed=25, start=datetime(2026, 7, 1, tzinfo=UTC), attacks={}, churn_rate=0.3
    ).events
    failed = stories(history)
    first_failure = {i: s[0] for i, s in failed.items()}
    invoice_of = {e["data"]["object"]["customer"]: i for i, e in reversed(first_failure.items())}
    failed_at = {i: first_failure[i]["created"] for i in invoice_of.values()}
    paid_at = {
        i: s[-1]["created"]
        for i, s in failed.items()
        if i in failed_at and s[-1]["type"] == "invoice.paid" and s[-1]["created"] <= failed_at[i] + 9 * DAY
    }
    unpaid = sorted(set(failed_at) - set(paid_at))
    repeated = [e for i in unpaid for e in failed[i][1:] if e["created"] <= failed_at[i] + STAGES[-1].day * DAY]
    # The history this test needs: some invoices paid while dunned, some never, some failing again.
    assert len(paid_at) >= 2 and len(unpaid) >= 2 and repeated, (paid_at, unpaid)

    policy = tmp_path / "dunning.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    outputs = local_stack.outputs
    sqs, stepfunctions = local_stack.client("sqs"), local_stack.client("stepfunctions")
    [starter_queue] = [
        url
        for url in sqs.list_queues(QueueNamePrefix="Dunning")["QueueUrls"]
        if "DeadLetter" not in url
    ]
    pipeline = [outputs["events_queue_url"], outputs["signals_queue_url"], starter_queue]
    sent: set[str] = set()

    def deliver_until(day: int) -> None:
        """Each customer's events up to `day` days after their invoice first failed, through the webhook."""
        due = [
            e
            for e in history
            if (invoice := invoice_of.get(customer_of(e) or "")) is not None
            and e["id"] not in sent
            and e["created"] <= failed_at[invoice] + day * DAY
        ]
        sent.update(e["id"] for e in due)
        path = tmp_path / f"day-{day}.jsonl"
        write_jsonl(due, path)
        import time; t0=time.time()
        delivered = local_stack.cli("send", "--history", str(path))
        print("send", day, len(due), time.time()-t0)
        assert delivered.returncode == 0, delivered.stdout + delivered.stderr
        eventually(lambda: queues_idle(local_stack, pipeline), timeout=60)
        print("idle", day, time.time()-t0)

    def executions() -> list[str]:
        paginator = stepfunctions.get_paginator("list_executions")
        pages = paginator.paginate(stateMachineArn=outputs["dunning_state_machine_arn"])
        return [e["name"] for page in pages for e in page["executions"] if e["name"] in failed_at]

    def churn_levels() -> dict[str, str]:
        """Each customer's churn-risk level as signals last published it on the bus."""
        risks = sorted(
            (p["detail"] for p in drain(subscriber) if p["detail-type"] == DetailType.SIGNAL_CHURN_RISK),
            key=lambda d: d["as_of"],
        )
        return {d["customer_id"]: d["level"] for d in risks}

    deliver_until(0)  # up to each invoice's first failed payment
    assert sorted(executions()) == sorted(failed_at)  # one workflow per failed invoice

    expected_risk: dict[tuple[str, int], str | None] = {}
    output: list[str] = []
    day = 0
    for stage in STAGES:
        deliver_until(stage.day)  # Stripe's retries up to this day: failing again, or paying the invoice
        levels = churn_levels()
        expected_risk |= {(i, stage.attempt): levels.get(c) for c, i in invoice_of.items()}
        moved = local_stack.cli(
            "dunning", "--advance", f"{stage.day - day}d", env={"DUNNING_CONFIG_PATH": str(policy)}
        )
        assert moved.returncode == 0, moved.stdout + moved.stderr
        output += moved.stdout.splitlines()
        day = stage.day

    # A second invoice.payment_failed of an invoice started nothing, while its workflow ran or after it ended.
    assert sorted(executions()) == sorted(failed_at)
    log = [json.loads(line) for line in Path(outputs["function_log"]).read_text().splitlines() if "{" in line]
    ignored = {r.get("event_id") for r in log if r.get("message") == "dunning already started"}
    assert {e["id"] for e in repeated} <= ignored

    published = drain(subscriber)
    steps = [
        p["detail"]
        for p in published
        if p["detail-type"] == DetailType.DUNNING_STEP and p["detail"]["invoice_id"] in failed_at
    ]
    assert all(list(STEP_SCHEMA.iter_errors(d)) == [] for d in steps)
    by_invoice = {i: sorted((d for d in steps if d["invoice_id"] == i), key=lambda d: d["attempt"]) for i in failed_at}
    customers = {i: c for c, i in invoice_of.items()}
    for invoice, dunned in by_invoice.items():
        # Every stage before the invoice was paid ran, at its day of the local clock, once.
        due = [s for s in STAGES if invoice not in paid_at or paid_at[invoice] > failed_at[invoice] + s.day * DAY]
        assert [(d["attempt"], d["day"], d["stage"]) for d in dunned] == [(s.attempt, s.day, s.name) for s in due]
        ran_at = [datetime.fromisoformat(d["as_of"]).timestamp() for d in dunned]
        assert [round(t - ran_at[0]) for t in ran_at] == [(s.day - due[0].day) * DAY for s in due]
        for detail in dunned:
            assert (detail["customer_id"], detail["invoice_status"]) == (customers[invoice], "open")
            assert detail["churn_risk"] == expected_risk[(invoice, detail["attempt"])], detail
        # Stripe retried each invoice at the day-4 step: the middleware did not retry it too.
        assert [d["retry"] for d in dunned if d["attempt"] == 2] == ["stripe_retrying"] * (len(due) > 1)
        stopped = [line for line in output if line.split()[:1] == [invoice] and "stopped" in line]
        if invoice in paid_at:  # its next stage found it paid, and ended the workflow without a word
            assert len(due) < len(STAGES) and stopped and stopped[0].endswith("stopped, invoice paid")
        else:  # the final stage fired, with the configured action
            final = dunned[-1]
            assert (final["stage"], final["action"], final["action_status"]) == ("final", "leave", "not_needed")
            assert not stopped
    assert any(d["churn_risk"] for d in steps)  # the signals' levels reached the steps
    commands = [p for p in published if p["detail-type"] == DetailType.COMMAND]
    assert not [c for c in commands if any(i in c["detail"]["idempotency_key"] for i in failed_at)]
    running = stepfunctions.list_executions(
        stateMachineArn=outputs["dunning_state_machine_arn"], statusFilter="RUNNING"
    )["executions"]
    assert not [e for e in running if e["name"] in failed_at]  # every workflow ended
    print("\n".join(output))
