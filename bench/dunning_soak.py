"""The soak's dunning part: failed payments in the stream, one workflow per invoice, every step once.

Among the soak's deliveries (so with its duplicates, shuffles, missed webhooks and faults), `failed_payments`
makes invoices whose payment fails twice: the first failure and, three days later, Stripe's own retry
failing again (a second `invoice.payment_failed` of the same invoice, another event id). Smart Retries are
on (`next_payment_attempt` set), so the middleware publishes steps but never retries the payment nor cancels
the subscription itself, though its policy (POLICY) asks for both. The starter
Lambda meets Step Functions throttling. Then the local dunning clock (`stripe-middleware dunning
--advance`'s runner) moves one day: every invoice gets its first step; half the invoices are paid (their
`invoice.paid` goes through the webhook); the clock moves past the final stage: a paid invoice's workflow
stops without another step, an unpaid one gets every stage of POLICY. Step publications meet
partial PutEvents failures; a stage whose step was refused runs again, as the state machine's retry does,
with the same `step_id`.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

DAY = 86_400
INVOICES_PER_DELIVERY = 1 / 500  # invoices whose payment fails, per delivery (at least MIN_INVOICES)
MIN_INVOICES = 4
FIRST_FAILURE = 1_764_000_000
RETRY_AFTER_DAYS = 3  # Stripe's own retry of the invoice (Smart Retries)
MAX_STAGE_RUNS = 50  # a stage refused this often is a failure of the soak, not bad luck
# A policy that would retry the payment and cancel the subscription: neither may happen while Stripe retries.
POLICY = {
    "version": 1,
    "steps": [{"day": 1}, {"day": 3, "retry": True}, {"day": 5}],
    "final": {"day": 10, "action": "cancel_subscription"},
}


def invoice_count(total: int) -> int:
    return max(MIN_INVOICES, int(total * INVOICES_PER_DELIVERY))


def _invoice_event(event_type: str, n: int, created: int, **fields: Any) -> dict[str, Any]:
    from events import stripe_event

    return stripe_event(
        event_type,
        created=created,
        id=f"in_SoakDun{n:04d}",
        customer=f"cus_SoakDun{n:04d}",
        subscription=f"sub_SoakDun{n:04d}",
        **({"amount_due": 2000, "amount_remaining": 2000} | fields),
    )


def failed_payments(count: int) -> list[dict[str, Any]]:
    """Each invoice's first failure and Stripe's failed retry, Smart Retries still on after both."""
    events = []
    for n in range(count):
        at = FIRST_FAILURE + 3600 * n
        retry = at + RETRY_AFTER_DAYS * DAY
        for attempt, created, next_attempt in ((1, at, retry), (2, retry, retry + 5 * DAY)):
            events.append(
                _invoice_event(
                    "invoice.payment_failed",
                    n,
                    created,
                    status="open",
                    paid=False,
                    attempt_count=attempt,
                    next_payment_attempt=next_attempt,
                )
            )
    return events


def payments(count: int) -> list[dict[str, Any]]:
    """The `invoice.paid` of every other failed invoice (after its second failure)."""
    return [
        _invoice_event(
            "invoice.paid",
            n,
            FIRST_FAILURE + 3600 * n + (RETRY_AFTER_DAYS + 1) * DAY,
            status="paid",
            paid=True,
            amount_remaining=0,
            attempt_count=3,
            next_payment_attempt=None,
        )
        for n in range(0, count, 2)
    ]


def inject_starter_faults(
    rng: random.Random, rate: float, lock: threading.Lock, injected: Counter[str]
) -> None:
    """Step Functions throttles the starter's StartExecution (the SDK retries; a message that still fails
    goes back to its queue alone)."""
    from bench.soak import aws_error
    from functions.dunning_start import handler as starter

    def throttle(request: Any, **kwargs: Any) -> Any:
        with lock:
            hit = rng.random() < rate
            injected["stepfunctions_throttle"] += hit
        return aws_error(request, "ThrottlingException") if hit else None

    starter.dependencies()._client.meta.events.register("before-send.sfn.StartExecution", throttle)


def run(
    outputs: dict[str, Any],
    *,
    count: int,
    deliver: Callable[[list[dict[str, Any]]], None],
    rng: random.Random,
    rate: float,
    lock: threading.Lock,
    injected: Counter[str],
) -> tuple[dict[str, Any], dict[str, bool]]:
    """Play the workflows the starter began (see the module), `deliver` sending the payments through the
    webhook and waiting for the pipeline; return the report's dunning part and its checks."""
    from bench.soak import fail_some_entries
    from stripe_middleware.dunning.config import DunningConfig
    from stripe_middleware.dunning.step import StepNotPublishedError
    from stripe_middleware_dev.dunning import local_dunning
    from stripe_middleware_dev.targets import Target

    stages = DunningConfig.model_validate(POLICY).stages()
    runner = local_dunning(Target(outputs, local=True))
    runner.stages = [stage.model_dump() for stage in stages]
    accepted: list[dict[str, Any]] = []
    fail_some_entries(runner.adapters.publisher._client, rng, rate, lock, injected, accepted)

    def advance(seconds: int) -> int:
        """Move the clock and run what is due, running a refused stage again; return the refusals."""
        refused = 0
        while True:
            try:
                runner.advance(seconds)
                return refused
            except StepNotPublishedError:
                refused += 1
                if refused >= MAX_STAGE_RUNS:
                    raise
                seconds = 0  # the clock moved already; run the refused stage again

    refused = advance(DAY)
    paid = payments(count)
    deliver(paid)
    refused += advance(stages[-1].day * DAY)

    steps = [a["detail"] for a in accepted if a["detail-type"] == "stripe-middleware.dunning.step"]
    invoices = {f"in_SoakDun{n:04d}" for n in range(count)}
    paid_ids = {e["data"]["object"]["id"] for e in paid}
    executions = [
        e["name"]
        for page in runner.stepfunctions.get_paginator("list_executions").paginate(
            stateMachineArn=outputs["dunning_state_machine_arn"]
        )
        for e in page["executions"]
    ]
    by_invoice: dict[str, set[str]] = defaultdict(set)
    for step in steps:
        by_invoice[step["invoice_id"]].add(step["step_id"])
    expected = {i: 1 if i in paid_ids else len(stages) for i in invoices}
    stage_counts = {i: len(by_invoice.get(i, ())) for i in invoices}
    report = {
        "invoices": count,
        "paid_after_the_first_step": len(paid_ids),
        "workflows_started": len(executions),
        "steps_published": len(steps),
        "distinct_steps": sum(stage_counts.values()),
        "stages_run_again_after_a_refusal": refused,
        "workflows_left_running": len(runner.workflows()),
        "commands_sent": sum(len(s["commands"]) for s in steps),
        "held_back_for_stripe": sum(
            1 for s in steps if "stripe_retrying" in (s["retry"], s["action_status"])
        ),
    }
    checks = {
        "dunning: one workflow per failed invoice, whatever the duplicates": sorted(executions)
        == sorted(invoices),
        "dunning: each stage's step published (paid invoices stop after the first)": stage_counts == expected,
        "dunning: every workflow ended": report["workflows_left_running"] == 0,
        "dunning: no retry or cancellation while Stripe retries": report["commands_sent"] == 0
        and report["held_back_for_stripe"] > 0,
    }
    return report, checks
