"""One stage of a workflow: check the store, then emit the step event and send the commands it calls for.

Run by the state machine's step function on AWS and by the local clock (`stripe-middleware dunning`).
Repeating a stage (a retried invocation) publishes the same `step_id` and the same idempotency keys, so
subscribers and the command gateway see it once.

Retries and Stripe's own. While Stripe retries an invoice (Smart Retries or a custom schedule; the invoice's
`next_payment_attempt` is set), the middleware never retries it too, and never takes a final action that
would end Stripe's retries early (cancelling a subscription stops the collection of its open invoices).
Two retry schedules on one card double the declines the issuer sees: the card networks cap the retries of a
declined card (Visa 20 in 30 days, 15 before May 2025; Mastercard 10 a day and 35 in 30 days) and charge a
fee for each beyond, issuers read bursts of retries as fraud, and each extra decline lowers the chance that
the attempt Smart Retries timed well gets through.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from stripe_middleware.dunning.config import ACTION_OPERATIONS, RETRY_OPERATION, Stage
from stripe_middleware.dunning.models import Case
from stripe_middleware.dunning.ports import BillingState
from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.shared.publishing import Publication, Publisher

CLOSED_INVOICE = ("paid", "void", "uncollectible")  # paid, voided or written off: nothing left to collect
ENDED_SUBSCRIPTION = ("canceled", "incomplete_expired")


class StepNotPublishedError(UnavailableError):
    """EventBridge refused the step event or one of its commands; running the stage again sends them."""

    code = "step_not_published"


@dataclass(frozen=True)
class StepResult:
    stage: Stage
    stopped: bool  # the workflow ends here: the invoice is closed, or the final stage ran
    reason: str
    detail: dict[str, Any] | None = None  # the published step event; None when the workflow stopped first
    commands: list[dict[str, Any]] = field(default_factory=list)  # the commands sent to the gateway

    def output(self) -> dict[str, Any]:
        """What the step function returns to the state machine (its Choice reads `stopped`)."""
        return {
            "stopped": self.stopped,
            "reason": self.reason,
            "step_id": self.detail["step_id"] if self.detail else None,
        }


def step_id(case: Case, stage: Stage) -> str:
    """Stable per invoice and stage: subscribers de-duplicate on it."""
    return f"dun_{hashlib.sha256(f'{case.invoice_id}#{stage.attempt}'.encode()).hexdigest()[:24]}"


def stripe_attempts(case: Case, invoice: dict[str, Any]) -> tuple[int, int | None]:
    """Stripe's count of attempts and its next attempt (None: Stripe will not retry), from the stored
    invoice, or from the failure that started the workflow when the store holds an older snapshot."""
    stored, next_attempt = invoice.get("attempt_count"), invoice.get("next_payment_attempt")
    stored = stored if isinstance(stored, int) else 0
    if stored < case.attempt_count:
        return case.attempt_count, case.next_payment_attempt
    return stored, next_attempt if isinstance(next_attempt, int) else None


def run_step(
    case: Case, stage: Stage, *, billing: BillingState, publisher: Publisher, now: float
) -> StepResult:
    invoice = billing.invoice(case.invoice_id, account=case.account, livemode=case.livemode)
    if invoice is None:  # never acted on blind: the processor stores an invoice before it is published
        return StepResult(stage, stopped=True, reason="invoice not in the store")
    status = invoice.get("status")
    if status in CLOSED_INVOICE:
        return StepResult(stage, stopped=True, reason=f"invoice {status}")
    subscription = (
        billing.subscription(case.subscription_id, account=case.account, livemode=case.livemode)
        if case.subscription_id
        else None
    )
    churn = (
        billing.churn_risk_level(case.customer_id, account=case.account, livemode=case.livemode)
        if case.customer_id
        else None
    )
    attempts, next_attempt = stripe_attempts(case, invoice)
    retrying = next_attempt is not None  # Stripe's retries are on for this invoice
    commands: list[dict[str, Any]] = []
    retry = _retry(case, stage, retrying, commands)
    action_status = _final_action(case, stage, retrying, subscription, commands) if stage.final else None
    key = step_id(case, stage)
    detail: dict[str, Any] = {
        "step_id": key,
        "invoice_id": case.invoice_id,
        "customer_id": case.customer_id,
        "subscription_id": case.subscription_id,
        "account": case.account,
        "livemode": case.livemode,
        "stage": stage.name,
        "attempt": stage.attempt,
        "steps": stage.steps,
        "day": stage.day,
        "failed_at": iso(case.failed_at),
        "as_of": iso(now),
        "invoice_status": status,
        "amount_remaining": invoice.get("amount_remaining"),
        "currency": invoice.get("currency"),
        "stripe_attempt_count": attempts,
        "next_payment_attempt": iso(next_attempt),
        "subscription_status": subscription.get("status") if subscription else None,
        "churn_risk": churn,
        "retry": retry,
        "action": stage.action,
        "action_status": action_status,
        "commands": [
            {"operation": c["operation"], "idempotency_key": c["idempotency_key"]} for c in commands
        ],
    }
    failed = publisher.publish(
        [
            Publication(key, DetailType.DUNNING_STEP, detail),
            *(Publication(f"{key}/{c['operation']}", DetailType.COMMAND, c) for c in commands),
        ]
    )
    if failed:
        raise StepNotPublishedError(
            f"{len(failed)} of the step's publications were refused: {sorted(failed)}"
        )
    return StepResult(
        stage,
        stopped=stage.final,
        reason="finished" if stage.final else "waiting",
        detail=detail,
        commands=commands,
    )


def _retry(case: Case, stage: Stage, retrying: bool, commands: list[dict[str, Any]]) -> str:
    """`sent`, `off` (this stage does not retry), or `stripe_retrying` (Stripe will; we do not double it)."""
    if not stage.retry:
        return "off"
    if retrying:
        return "stripe_retrying"
    commands.append(_command(case, stage, RETRY_OPERATION, {"id": case.invoice_id}))
    return "sent"


def _final_action(
    case: Case,
    stage: Stage,
    retrying: bool,
    subscription: dict[str, Any] | None,
    commands: list[dict[str, Any]],
) -> str:
    """`sent`, `not_needed` (leave; no subscription, or it ended already), or `stripe_retrying`: Stripe's
    retries are still running, and its own end-of-retries setting decides what happens after them."""
    operation = ACTION_OPERATIONS.get(stage.action or "leave")
    if operation is None:
        return "not_needed"
    if retrying:
        return "stripe_retrying"
    if stage.action == "cancel_subscription":
        ended = subscription is not None and subscription.get("status") in ENDED_SUBSCRIPTION
        if case.subscription_id is None or ended:
            return "not_needed"
        commands.append(_command(case, stage, operation, {"id": case.subscription_id}))
    else:
        commands.append(_command(case, stage, operation, {"id": case.invoice_id}))
    return "sent"


def _command(case: Case, stage: Stage, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """A `stripe-middleware.command` detail in the gateway's CommandRequest shape; its idempotency key is
    the invoice's and the stage's, so the gateway runs it once however often it is sent."""
    command: dict[str, Any] = {
        "operation": operation,
        "params": params,
        "idempotency_key": f"dunning-{case.invoice_id}-{stage.attempt}-{operation}",
    }
    if case.account:
        command["stripe_account"] = case.account
    return command
