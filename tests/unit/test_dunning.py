"""Dunning: the policy (config/dunning.yaml), the starter's one workflow per invoice, and each stage on an
in-memory store and bus: stop when paid or voided, never retry while Stripe retries, the final action.

Invoices, subscriptions and the failed-payment details are built from the real Stripe fixtures and go
through the processor's own normalization, so the details are shaped as the bus delivers them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

from events import load_event, stripe_event, stripe_object
from stripe_middleware.commands.config import GatewayConfig, load_gateway_config
from stripe_middleware.commands.execute import run_command
from stripe_middleware.commands.validation import CommandRejectedError, validate_command
from stripe_middleware.dunning.config import (
    DAY,
    DunningConfig,
    DunningConfigError,
    Stage,
    load_dunning_config,
    waits,
)
from stripe_middleware.dunning.models import Case, NotAFailedInvoiceError, StepRequest, case_from_detail
from stripe_middleware.dunning.start import Message, start_workflows
from stripe_middleware.dunning.step import StepNotPublishedError, run_step, step_id
from stripe_middleware.processing.models import StripeEvent
from stripe_middleware.processing.normalize import normalize
from stripe_middleware.processing.processor import build_detail
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware_dev import REPO_ROOT
from stripe_middleware_dev.dunning import duration
from tests.fakes.dunning import FakeScheduler, InMemoryBilling
from tests.fakes.ports import FakeCommandStore, FakePublisher, FakeRateLimiter, FakeStripeWriter

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z
REPO_DUNNING_YAML = REPO_ROOT / "config" / "dunning.yaml"
STEP_SCHEMA = Draft4Validator(load_event("schemas/dunning-step.detail.schema.json"))
ACCOUNT = "acct_1Nv0FGQ9RKHgCVdK"


def policy(**changes: Any) -> DunningConfig:
    base: dict[str, Any] = {
        "version": 1,
        "steps": [{"day": 1}, {"day": 3, "retry": True}, {"day": 5}, {"day": 7, "retry": True}],
        "final": {"day": 10, "action": "cancel_subscription"},
    }
    return DunningConfig.model_validate({**base, **changes})


# -- objects and details as the bus and the store have them ----------------------------------------------
def invoice(invoice_id: str = "in_dun1", **fields: Any) -> dict[str, Any]:
    values = {
        "id": invoice_id,
        "status": "open",
        "customer": "cus_dun1",
        "subscription": "sub_dun1",
        "next_payment_attempt": None,  # Stripe is not retrying
        "attempt_count": 1,
        "amount_remaining": 2000,
        **fields,
    }
    return stripe_object("invoice", **values)


def subscription(subscription_id: str = "sub_dun1", **fields: Any) -> dict[str, Any]:
    return stripe_object("subscription", id=subscription_id, customer="cus_dun1", status="past_due", **fields)


def failed_payment(
    obj: dict[str, Any], *, at: int = T0, account: str | None = None, **event: Any
) -> dict[str, Any]:
    """The detail the processor publishes for an `invoice.payment_failed` of `obj`."""
    raw = stripe_event(
        "invoice.payment_failed", obj=obj, created=at, account=account, livemode=obj["livemode"], **event
    )
    parsed = StripeEvent.model_validate(raw)
    return build_detail(parsed, normalize(parsed, load_metadata_schema()), stale=False, redelivered=False)


def case_of(obj: dict[str, Any], **kwargs: Any) -> Case:
    return case_from_detail(failed_payment(obj, **kwargs))


class World:
    """The store (with one open invoice and its subscription), the bus, and the policy's stages."""

    def __init__(
        self, config: DunningConfig | None = None, *, account: str | None = None, **fields: Any
    ) -> None:
        self.billing = InMemoryBilling()
        self.publisher = FakePublisher()
        self.stages = (config or policy()).stages()
        self.invoice = invoice(**fields)
        self.billing.put(self.invoice, account=account)
        self.billing.put(subscription(), account=account)
        self.case = case_of(self.invoice, account=account)

    def run(self, attempt: int, *, now: float | None = None) -> Any:
        stage = self.stages[attempt - 1]
        return run_step(
            self.case, stage, billing=self.billing, publisher=self.publisher, now=now or T0 + stage.day * DAY
        )

    def steps(self) -> list[dict[str, Any]]:
        return self.publisher.details(DetailType.DUNNING_STEP)

    def commands(self) -> list[dict[str, Any]]:
        return self.publisher.details(DetailType.COMMAND)


# -- the policy -------------------------------------------------------------------------------------------
def test_the_shipped_policy_is_valid_and_only_reaches_out() -> None:
    config = load_dunning_config(REPO_DUNNING_YAML)
    assert [s.day for s in config.steps] == [1, 3, 5, 7] and config.final.day == 10
    assert config.operations() == set()  # no retries, final action `leave`: nothing is sent to Stripe
    assert config.stripe_retries == "detect"


def test_stages_are_the_steps_then_the_final_one_with_the_waits_between() -> None:
    stages = policy().stages()
    assert [(s.attempt, s.day, s.retry, s.action) for s in stages] == [
        (1, 1, False, None),
        (2, 3, True, None),
        (3, 5, False, None),
        (4, 7, True, None),
        (5, 10, False, "cancel_subscription"),
    ]
    assert all(s.steps == 4 for s in stages) and [s.final for s in stages] == [False] * 4 + [True]
    assert [seconds for _, seconds in waits(stages)] == [DAY, 2 * DAY, 2 * DAY, 2 * DAY, 3 * DAY]
    assert policy().operations() == {"invoices.pay", "subscriptions.cancel"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": [{"day": 1, "retyr": True}]}, "retyr"),  # a typo is an unknown key
        ({"reminders": True}, "reminders"),
        ({"steps": [{"day": 0}]}, "greater than or equal to 1"),
        ({"steps": [{"day": 91}]}, "less than or equal to 90"),
        ({"steps": []}, "at least 1"),
        ({"steps": [{"day": 3}, {"day": 3}]}, "increase strictly"),
        ({"steps": [{"day": 5}, {"day": 2}]}, "increase strictly"),
        ({"final": {"day": 7, "action": "leave"}}, "after the last step"),
        ({"final": {"day": 10, "action": "delete_customer"}}, "final.action"),
        ({"stripe_retries": "assume_on"}, "never runs"),  # the base policy retries on two steps
        ({"stripe_retries": "sometimes"}, "stripe_retries"),
    ],
)
def test_a_broken_policy_fails_to_load(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    document = {**yaml.safe_load(REPO_DUNNING_YAML.read_text()), **change}
    if "stripe_retries" in change:
        document["steps"] = policy().model_dump()["steps"]
    path = tmp_path / "dunning.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(DunningConfigError, match=message):
        load_dunning_config(path)


def test_stripe_retries_assume_on_needs_no_retrying_step() -> None:
    config = policy(steps=[{"day": 2}], stripe_retries="assume_on", final={"day": 4, "action": "leave"})
    assert [s.retry for s in config.stages()] == [False, False] and config.operations() == set()


# -- starting: one workflow per invoice -------------------------------------------------------------------
def test_a_failed_payment_names_its_invoice_customer_subscription_and_scope() -> None:
    obj = invoice(
        subscription=None,
        parent={"type": "subscription_details", "subscription_details": {"subscription": "sub_dun1"}},
    )
    case = case_of(obj, at=T0 + 5, account=ACCOUNT)
    assert case.model_dump() == {
        "invoice_id": "in_dun1",
        "customer_id": "cus_dun1",
        "subscription_id": "sub_dun1",  # current API versions name it under parent.subscription_details
        "account": ACCOUNT,
        "livemode": False,
        "failed_at": T0 + 5,
        "event_id": case.event_id,
        "attempt_count": 1,  # the invoice as the failure left it
        "next_payment_attempt": None,
    }
    assert case.event_id.startswith("evt_")


def test_other_details_are_not_failed_invoices() -> None:
    paid = failed_payment(invoice()) | {"type": "invoice.paid"}
    with pytest.raises(NotAFailedInvoiceError):
        case_from_detail(paid)
    with pytest.raises(NotAFailedInvoiceError):
        case_from_detail({"type": "invoice.payment_failed", "normalized": {"object_type": "charge"}})


def envelope(detail: dict[str, Any]) -> str:
    return json.dumps({"detail-type": detail["type"], "source": "stripe-middleware", "detail": detail})


def test_each_invoice_is_dunned_once_however_often_its_payment_fails() -> None:
    scheduler = FakeScheduler()
    first = failed_payment(invoice())
    retried = failed_payment(invoice(attempt_count=2), at=T0 + 3 * DAY)  # Stripe's retry failed too
    other = failed_payment(invoice("in_dun2"))
    outcome = start_workflows(
        [Message("m1", envelope(first)), Message("m2", envelope(retried)), Message("m3", envelope(other))],
        scheduler,
    )
    assert [c.invoice_id for c in outcome.started] == ["in_dun1", "in_dun2"]
    assert [c.invoice_id for c in outcome.already] == ["in_dun1"]
    assert [c.event_id for c in scheduler.cases()] == [first["id"], other["id"]]  # the first failure's case
    again = start_workflows([Message("m1", envelope(first))], scheduler)  # SQS redelivers the first message
    assert [c.invoice_id for c in again.started] == ["in_dun1"] and len(scheduler.executions) == 2
    assert outcome.errors == again.errors == {}


def test_a_message_that_is_not_a_failed_invoice_or_finds_the_scheduler_down_fails_alone() -> None:
    scheduler = FakeScheduler()
    messages = [
        Message("bad-json", "{"),
        Message("a-charge", envelope(failed_payment(invoice()) | {"type": "charge.failed"})),
        Message("good", envelope(failed_payment(invoice()))),
    ]
    outcome = start_workflows(messages, scheduler)
    assert set(outcome.errors) == {"bad-json", "a-charge"} and len(outcome.started) == 1
    scheduler.fail = True
    down = start_workflows([Message("later", envelope(failed_payment(invoice("in_dun3"))))], scheduler)
    assert list(down.errors) == ["later"] and down.started == []


# -- a stage ----------------------------------------------------------------------------------------------
def test_a_step_publishes_its_event_with_the_churn_risk_and_validates_against_its_schema() -> None:
    world = World()
    world.billing.churn[("cus_dun1", None, False)] = "high"
    result = world.run(1)
    [detail] = world.steps()
    assert list(STEP_SCHEMA.iter_errors(detail)) == []
    assert result.stopped is False and result.output() == {
        "stopped": False,
        "reason": "waiting",
        "step_id": detail["step_id"],
    }
    assert {
        k: detail[k] for k in ("invoice_id", "customer_id", "subscription_id", "attempt", "steps", "day")
    } == {
        "invoice_id": "in_dun1",
        "customer_id": "cus_dun1",
        "subscription_id": "sub_dun1",
        "attempt": 1,
        "steps": 4,
        "day": 1,
    }
    assert detail["churn_risk"] == "high" and detail["stage"] == "step"
    assert detail["retry"] == "off" and detail["commands"] == [] and world.commands() == []
    assert (detail["failed_at"], detail["as_of"]) == ("2025-11-24T16:00:00Z", "2025-11-25T16:00:00Z")
    assert detail["subscription_status"] == "past_due" and detail["invoice_status"] == "open"


def test_without_signals_the_churn_risk_is_null() -> None:
    world = World()
    world.run(1)
    assert world.steps()[0]["churn_risk"] is None


@pytest.mark.parametrize("status", ["paid", "void", "uncollectible"])
def test_an_invoice_paid_voided_or_written_off_meanwhile_stops_the_workflow_silently(status: str) -> None:
    world = World()
    world.run(1)
    world.billing.update("in_dun1", status=status)
    result = world.run(2)
    assert (result.stopped, result.reason, result.detail) == (True, f"invoice {status}", None)
    assert len(world.steps()) == 1 and world.commands() == []  # step 2 would have retried


def test_an_invoice_the_store_does_not_have_is_never_acted_on() -> None:
    world = World()
    world.billing.objects.clear()
    result = world.run(2)
    assert result.stopped and result.reason == "invoice not in the store" and world.publisher.published == []


def test_a_retry_step_sends_invoices_pay_through_the_gateway_when_stripe_does_not_retry() -> None:
    world = World(account=ACCOUNT)
    world.run(2)
    [command] = world.commands()
    assert command == {
        "operation": "invoices.pay",
        "params": {"id": "in_dun1"},
        "idempotency_key": "dunning-in_dun1-2-invoices.pay",
        "stripe_account": ACCOUNT,  # a connected account's invoice is paid on that account
    }
    [detail] = world.steps()
    assert detail["retry"] == "sent" and detail["commands"] == [
        {"operation": "invoices.pay", "idempotency_key": "dunning-in_dun1-2-invoices.pay"}
    ]


def test_no_retry_ever_while_stripe_retries_the_invoice_itself() -> None:
    world = World(next_payment_attempt=T0 + 3 * DAY)  # Smart Retries scheduled the next attempt
    for attempt in (1, 2, 3, 4):
        world.run(attempt)
    assert world.commands() == []
    assert [d["retry"] for d in world.steps()] == ["off", "stripe_retrying", "off", "stripe_retrying"]
    assert world.steps()[1]["next_payment_attempt"] == "2025-11-27T16:00:00Z"
    # Stripe's retries are over (its last attempt failed): the next retry step retries.
    world.billing.update("in_dun1", next_payment_attempt=None)
    world.run(4)
    assert [c["operation"] for c in world.commands()] == ["invoices.pay"]


def test_a_stored_snapshot_older_than_the_failure_does_not_hide_stripes_retries() -> None:
    """`invoice.finalized` and the first `invoice.payment_failed` often share a second, and the store may
    keep the finalized snapshot (attempt_count 0, no next attempt): the failure's own word counts then."""
    world = World(next_payment_attempt=T0 + 3 * DAY)  # the case: Stripe retries on day 3
    world.billing.update("in_dun1", attempt_count=0, next_payment_attempt=None)  # the tie's loser is stored
    world.run(2)
    assert world.commands() == [] and world.steps()[0]["retry"] == "stripe_retrying"
    assert (world.steps()[0]["stripe_attempt_count"], world.steps()[0]["next_payment_attempt"]) == (
        1,
        "2025-11-27T16:00:00Z",
    )
    # A stored snapshot at least as new as the failure is the truth: Stripe's last attempt failed.
    world.billing.update("in_dun1", attempt_count=4, next_payment_attempt=None)
    world.run(4)
    assert [c["operation"] for c in world.commands()] == ["invoices.pay"]


@pytest.mark.parametrize(
    ("action", "operation", "params"),
    [
        ("cancel_subscription", "subscriptions.cancel", {"id": "sub_dun1"}),
        ("mark_uncollectible", "invoices.mark_uncollectible", {"id": "in_dun1"}),
    ],
)
def test_the_final_stage_takes_the_configured_action_through_the_gateway(
    action: str, operation: str, params: dict[str, Any]
) -> None:
    world = World(policy(final={"day": 10, "action": action}))
    result = world.run(5)
    assert result.stopped and result.reason == "finished"
    [command] = world.commands()
    assert (command["operation"], command["params"]) == (operation, params)
    assert command["idempotency_key"] == f"dunning-in_dun1-5-{operation}" and "stripe_account" not in command
    [detail] = world.steps()
    assert (detail["stage"], detail["attempt"], detail["action"], detail["action_status"]) == (
        "final",
        5,
        action,
        "sent",
    )
    assert list(STEP_SCHEMA.iter_errors(detail)) == []


def test_leave_only_reports_and_nothing_is_cancelled_twice_or_against_stripes_retries() -> None:
    leave = World(policy(final={"day": 10, "action": "leave"}))
    leave.run(5)
    assert leave.commands() == [] and leave.steps()[0]["action_status"] == "not_needed"
    ended = World()
    ended.billing.update("sub_dun1", status="canceled")  # Stripe (or someone) cancelled it already
    ended.run(5)
    assert ended.commands() == [] and ended.steps()[0]["action_status"] == "not_needed"
    retrying = World(next_payment_attempt=T0 + 12 * DAY)  # cancelling would end Stripe's retries
    retrying.run(5)
    assert retrying.commands() == [] and retrying.steps()[0]["action_status"] == "stripe_retrying"
    one_off = World(subscription=None, parent=None)  # no subscription behind the invoice
    one_off.run(5)
    assert one_off.commands() == [] and one_off.steps()[0]["action_status"] == "not_needed"


def test_a_repeated_stage_sends_the_same_ids_and_keys() -> None:
    world = World()
    world.run(2)
    world.run(2, now=T0 + 3 * DAY + 60)  # the state machine ran the step again (a retry after a timeout)
    first, second = world.steps()
    assert first["step_id"] == second["step_id"] == step_id(world.case, world.stages[1])
    assert [c["idempotency_key"] for c in world.commands()] == ["dunning-in_dun1-2-invoices.pay"] * 2
    assert {d["step_id"] for d in world.steps()} != {step_id(world.case, world.stages[0])}


def test_a_refused_publication_or_an_unavailable_store_fails_the_stage_for_a_retry() -> None:
    world = World()
    key = step_id(world.case, world.stages[1])
    world.publisher.fail_keys = {f"{key}/invoices.pay"}
    with pytest.raises(StepNotPublishedError):
        world.run(2)
    world.publisher.fail_keys = set()
    world.run(2)  # the retry sends both again
    assert [c["operation"] for c in world.commands()] == ["invoices.pay"]
    world.billing.unavailable = {"invoice"}
    with pytest.raises(StoreUnavailableError):
        world.run(3)


def test_the_whole_policy_runs_in_order_and_stops_when_the_invoice_is_paid() -> None:
    world = World()
    outcomes = []
    for stage in world.stages:
        if stage.attempt == 4:
            world.billing.update("in_dun1", status="paid")  # the customer paid after the reminder of day 5
        result = world.run(stage.attempt)
        outcomes.append((stage.day, result.reason))
        if result.stopped:
            break
    assert outcomes == [(1, "waiting"), (3, "waiting"), (5, "waiting"), (7, "invoice paid")]
    assert [d["attempt"] for d in world.steps()] == [1, 2, 3]


def test_the_state_machine_input_round_trips_through_the_step_request() -> None:
    world = World()
    stage = world.stages[-1]
    payload = json.loads(
        json.dumps({"case": world.case.model_dump(), "stage": stage.model_dump(exclude_none=True)})
    )
    request = StepRequest.model_validate(payload)
    assert (request.case, request.stage) == (world.case, stage)
    with pytest.raises(ValueError):
        StepRequest.model_validate({"case": world.case.model_dump(), "stage": {"attempt": 1}})


# -- the gateway runs what dunning sends -------------------------------------------------------------------
def gateway_allowing(*operations: str) -> GatewayConfig:
    shipped = load_gateway_config()
    return shipped.model_copy(update={"operations": (*shipped.operations, *operations)})


def test_final_actions_are_not_allowlisted_by_default_and_every_dunning_command_validates_once_allowed() -> (
    None
):
    schema = load_metadata_schema()
    world = World(policy(final={"day": 10, "action": "cancel_subscription"}))
    world.run(2)
    world.run(5)
    pay, cancel = world.commands()
    validate_command(pay, config=load_gateway_config(), schema=schema)  # invoices.pay is allowed already
    with pytest.raises(CommandRejectedError) as refused:
        validate_command(cancel, config=load_gateway_config(), schema=schema)
    assert refused.value.code == "operation_not_allowed"
    allowing = gateway_allowing("subscriptions.cancel", "invoices.mark_uncollectible")
    for command in (pay, cancel, {"operation": "invoices.mark_uncollectible", "params": {"id": "in_dun1"}}):
        validate_command(command, config=allowing, schema=schema)
    with pytest.raises(CommandRejectedError):  # neither endpoint takes metadata
        validate_command(
            {**cancel, "params": {"id": "sub_dun1", "metadata": {"a": "b"}}}, config=allowing, schema=schema
        )


@pytest.mark.parametrize(
    ("operation", "object_path", "method", "status"),
    [
        ("subscriptions.cancel", "/v1/subscriptions/sub_dun1", "delete", "canceled"),
        ("invoices.mark_uncollectible", "/v1/invoices/in_dun1", "post", "uncollectible"),
    ],
)
def test_the_gateway_cancels_with_delete_and_writes_off_with_post(
    operation: str, object_path: str, method: str, status: str
) -> None:
    stripe = FakeStripeWriter(objects={object_path: {"id": object_path.rsplit("/", 1)[1], "status": "open"}})
    publisher = FakePublisher()
    object_id = object_path.rsplit("/", 1)[1]
    outcome = run_command(
        json.dumps({"operation": operation, "params": {"id": object_id}, "idempotency_key": "dunning-k"}),
        message_id="m1",
        receive_count=1,
        store=FakeCommandStore(),
        limiter=FakeRateLimiter(),
        stripe=stripe,
        livemode=False,
        config=gateway_allowing(operation),
        schema=load_metadata_schema(),
        publisher=publisher,
    )
    assert outcome.status == "succeeded"
    [call] = stripe.calls
    assert call.method == method and call.idempotency_key == "dunning-k"
    assert stripe.objects[object_path]["status"] == status
    assert [p.detail_type for p in publisher.published] == [DetailType.COMMAND_SUCCEEDED]


# -- the local clock's argument ---------------------------------------------------------------------------
def test_durations_read_like_the_readme() -> None:
    assert [duration(t) for t in ("3d", "12h", "30m", "90s", "45")] == [3 * DAY, 12 * 3600, 1800, 90, 45]
    for bad in ("3w", "-1d", "d", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)


def test_a_stage_is_a_value_the_state_machine_can_carry() -> None:
    stage = Stage(attempt=5, steps=4, day=10, action="leave")
    assert stage.final and stage.name == "final" and Stage.model_validate(stage.model_dump()) == stage
