"""The issue's "done when" for dunning, on local mode: the failed payments of a simulated history, signed and
sent like Stripe's deliveries, start one workflow per invoice; `stripe-middleware dunning --advance` moves
the local clock through a small policy while the rest of each invoice's story arrives (Stripe's retries
failing again, or paying it), and the bus shows each step at its day with the customer, invoice, attempt
and churn-risk level, until the invoice is paid or the final stage fires."""

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

# Smaller than config/dunning.yaml, so the whole flow takes three moves of the clock. The day-4 step would
# retry the payment, but Stripe still retries these invoices then (days 3, 8 and 14): the middleware must not.
POLICY = {
    "version": 1,
    "steps": [{"day": 1}, {"day": 4, "retry": True}],
    "final": {"day": 9, "action": "leave"},
}
STAGES = DunningConfig.model_validate(POLICY).stages()
LAST_DAY = STAGES[-1].day
STEP_SCHEMA = Draft4Validator(load_event("schemas/dunning-step.detail.schema.json"))
Subscriber = Callable[[], list[dict[str, Any]]]


def failed_invoices(history: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each invoice whose first payment failed: its `invoice.payment_failed` and `invoice.paid` events up to
    the policy's last day, in order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in history:
        obj = event["data"]["object"]
        if obj.get("object") == "invoice" and event["type"] in ("invoice.payment_failed", "invoice.paid"):
            found.setdefault(obj["id"], []).append(event)
    return {
        invoice: [e for e in story if e["created"] <= story[0]["created"] + LAST_DAY * DAY]
        for invoice, story in found.items()
        if story[0]["type"] == "invoice.payment_failed"
    }


def customer_of(event: dict[str, Any]) -> str | None:
    obj = event["data"]["object"]
    return str(obj["id"]) if obj.get("object") == "customer" else obj.get("customer")


def queues_idle(stack: LocalStack, urls: list[str]) -> bool:
    """Nothing waiting or in flight, checked in the pipeline's order: a queue is empty only once what its
    function published has reached the next ones."""
    sqs = stack.client("sqs")
    for url in urls:
        counts = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if any(int(n) for n in counts.values()):
            return False
    return True


def drain(subscriber: Subscriber) -> list[dict[str, Any]]:
    """Everything the bus delivered to the subscriber so far (it receives ten at a time)."""
    seen = -1
    while len(received := subscriber()) != seen:
        seen = len(received)
    return received


def churn_levels(subscriber: Subscriber) -> dict[str, str]:
    """Each customer's churn-risk level as signals last published it on the bus."""
    published = [p["detail"] for p in drain(subscriber) if p["detail-type"] == DetailType.SIGNAL_CHURN_RISK]
    return {d["customer_id"]: d["level"] for d in sorted(published, key=lambda d: d["as_of"])}


def starter_ignored(stack: LocalStack) -> set[str]:
    """The ids of the failed payments the starter function found a workflow for already (its log)."""
    ignored = set()
    for line in Path(stack.outputs["function_log"]).read_text().splitlines():
        if line.startswith('{"level"') and '"dunning already started"' in line:
            ignored.add(json.loads(line)["event_id"])
    return ignored


def test_failed_invoices_are_dunned_at_their_days_until_paid_or_the_final_stage(
    local_stack: LocalStack, subscriber: Subscriber, tmp_path: Path
) -> None:
    history = simulate(
        customers=200, months=2, seed=15, start=datetime(2026, 7, 1, tzinfo=UTC), attacks={}, churn_rate=0.3
    ).events
    failed = failed_invoices(history)
    paid = [i for i, story in failed.items() if story[-1]["type"] == "invoice.paid"][:2]
    unpaid = [i for i, story in failed.items() if len(story) > 1 and story[-1]["type"] != "invoice.paid"][:2]
    failed_at = {i: failed[i][0]["created"] for i in paid + unpaid}
    paid_at = {i: failed[i][-1]["created"] for i in paid}
    again = [e for i in failed_at for e in failed[i][1:] if e["type"] == "invoice.payment_failed"]
    invoice_of = {failed[i][0]["data"]["object"]["customer"]: i for i in failed_at}
    # What this test needs of the history: invoices paid while dunned (one after failing again), others never.
    assert len(invoice_of) == 4 and any(len(failed[i]) > 2 for i in paid), failed

    policy = tmp_path / "dunning.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    outputs = local_stack.outputs
    sqs, stepfunctions = local_stack.client("sqs"), local_stack.client("stepfunctions")
    [starter_queue] = [u for u in sqs.list_queues(QueueNamePrefix="Dunning")["QueueUrls"] if "Dead" not in u]
    pipeline = [outputs["events_queue_url"], outputs["signals_queue_url"], starter_queue]
    sent: set[str] = set()

    def deliver_until(day: int) -> None:
        """Each customer's events up to `day` days after their invoice first failed, through the webhook;
        then waits until the processor, signals and the dunning starter have handled them."""
        due = [
            e
            for e in history
            if (invoice := invoice_of.get(customer_of(e) or "")) is not None
            and e["id"] not in sent
            and e["created"] <= failed_at[invoice] + day * DAY
        ]
        if not due:
            return
        sent.update(e["id"] for e in due)
        write_jsonl(due, path := tmp_path / f"day-{day}.jsonl")
        delivered = local_stack.cli("send", "--history", str(path))
        assert delivered.returncode == 0, delivered.stdout + delivered.stderr
        eventually(lambda: queues_idle(local_stack, pipeline), timeout=60)

    def workflows() -> list[str]:
        """The executions of the dunning state machine for these invoices, running or ended."""
        pages = stepfunctions.get_paginator("list_executions").paginate(
            stateMachineArn=outputs["dunning_state_machine_arn"]
        )
        return sorted(e["name"] for page in pages for e in page["executions"] if e["name"] in failed_at)

    deliver_until(0)  # each customer's history up to their invoice's first failed payment
    assert workflows() == sorted(failed_at)  # one workflow per failed invoice

    churn_risk: dict[tuple[str, int], str | None] = {}  # (invoice, attempt) -> the level before the step
    ran: list[str] = []
    day = 0
    for stage in STAGES:
        deliver_until(stage.day)  # Stripe's retries up to this day: failing again, or paying the invoice
        levels = churn_levels(subscriber)
        churn_risk |= {(i, stage.attempt): levels.get(c) for c, i in invoice_of.items()}
        moved = local_stack.cli(
            "dunning", "--advance", f"{stage.day - day}d", env={"DUNNING_CONFIG_PATH": str(policy)}
        )
        assert moved.returncode == 0, moved.stdout + moved.stderr
        ran += [
            line.strip() for line in moved.stdout.splitlines() if line.strip().startswith(tuple(failed_at))
        ]
        day = stage.day

    # Stripe's retries failed again while the workflows ran: the starter saw each, and started nothing.
    assert {e["id"] for e in again} <= starter_ignored(local_stack)
    assert workflows() == sorted(failed_at)

    published = drain(subscriber)
    steps = [
        p["detail"]
        for p in published
        if p["detail-type"] == DetailType.DUNNING_STEP and p["detail"]["invoice_id"] in failed_at
    ]
    assert all(list(STEP_SCHEMA.iter_errors(d)) == [] for d in steps)
    for customer, invoice in invoice_of.items():
        dunned = sorted((d for d in steps if d["invoice_id"] == invoice), key=lambda d: d["attempt"])
        # Each stage due before the invoice was paid ran once, at its day on the local clock.
        paid_by = paid_at.get(invoice)
        due = [s for s in STAGES if paid_by is None or paid_by > failed_at[invoice] + s.day * DAY]
        assert [(d["attempt"], d["day"], d["stage"]) for d in dunned] == [
            (s.attempt, s.day, s.name) for s in due
        ]
        ran_at = [datetime.fromisoformat(d["as_of"]).timestamp() for d in dunned]
        assert [t - ran_at[0] for t in ran_at] == [(s.day - due[0].day) * DAY for s in due]
        for detail in dunned:
            assert (detail["customer_id"], detail["invoice_status"]) == (customer, "open")
            assert detail["churn_risk"] == churn_risk[(invoice, detail["attempt"])], detail
            # Stripe was retrying the invoice at the day-4 step: the middleware did not retry it too.
            assert detail["retry"] == ("stripe_retrying" if detail["day"] == 4 else "off")
        lines = [line for line in ran if line.startswith(invoice)]
        if invoice in paid_at:  # the next stage found it paid and ended the workflow, with no event
            assert len(due) < len(STAGES) and lines[-1].endswith("stopped, invoice paid"), lines
        else:  # the final stage fired, with the configured action
            assert (dunned[-1]["stage"], dunned[-1]["action"], dunned[-1]["action_status"]) == (
                "final",
                "leave",
                "not_needed",
            )
            assert "final stage published" in lines[-1], lines
    assert {d["churn_risk"] for d in steps} & {"low", "medium", "high"}  # signals' levels reached the steps
    commands = [p["detail"] for p in published if p["detail-type"] == DetailType.COMMAND]
    assert not [c for c in commands if c.get("params", {}).get("id") in failed_at]  # no retry, no action
    running = stepfunctions.list_executions(
        stateMachineArn=outputs["dunning_state_machine_arn"], statusFilter="RUNNING"
    )["executions"]
    assert not [e for e in running if e["name"] in failed_at]  # every workflow ended
