"""`stripe-middleware dunning [--advance 3d]`: the dunning workflows, with a clock you can move forward.

Locally the starter Lambda runs as on AWS: each invoice's first `invoice.payment_failed` starts an
execution of the dunning state machine, named by the invoice, on the emulator, where it never runs by
itself. This command plays the state machine: it keeps a clock in the store table (the wall clock plus the
time you advanced) and runs each stage that fell due with the step code the Lambda runs, against local
mode's table and bus, so a week of dunning takes a second. A workflow keeps the stages it started with
(as a state machine's execution does), and ends like one (its execution is stopped on the emulator, so
another failure of the same invoice starts nothing).

With `--stage` it lists the deployed workflows in progress; there the state machine waits in real time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stripe_middleware_dev import targets, use_repo_config

DAY = 86_400
UNITS = {"d": DAY, "h": 3600, "m": 60, "s": 1}


def register(commands: Any) -> None:
    dunning = commands.add_parser(
        "dunning", help="the failed-payment workflows: advance the local clock and run the steps due"
    )
    dunning.add_argument(
        "--advance",
        type=duration,
        default=0,
        help="move the local clock forward (3d, 12h, 30m, 90s) and run every step that falls due",
    )
    targets.add_stage_argument(dunning)
    dunning.set_defaults(run=run_dunning_command)


def duration(text: str) -> int:
    """An argparse type: `3d`, `12h`, `30m`, `90s` (or plain seconds) as seconds."""
    match = re.fullmatch(r"(\d+)([dhms]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 3d, 12h, 30m or 90s")
    return int(match.group(1)) * UNITS.get(match.group(2) or "s", 1)


@dataclass(frozen=True)
class Ran:
    """One stage the local clock ran."""

    invoice_id: str
    due: int  # local time the stage was due (its events carry it as `as_of`)
    result: Any  # dunning.step.StepResult


@dataclass
class Workflow:
    """Local mode's record of one invoice's workflow (under dunning_local_key in the store table)."""

    invoice_id: str
    execution_arn: str
    case: dict[str, Any]
    stages: list[dict[str, Any]]
    started_at: int  # local time
    done: int = 0  # stages run
    status: str = "running"  # running | stopped (the invoice closed) | finished
    reason: str = ""

    def next_due(self) -> int | None:
        if self.status != "running" or self.done >= len(self.stages):
            return None
        return self.started_at + int(self.stages[self.done]["day"]) * DAY


@dataclass
class LocalDunning:
    stepfunctions: Any
    dynamodb: Any
    table_name: str
    state_machine_arn: str
    adapters: Any  # stripe_middleware.adapters.dunning.DunningAdapters
    stages: list[dict[str, Any]]  # the policy a newly seen workflow gets (config.stages())
    wall_clock: Callable[[], float] = time.time
    _offset: int | None = field(default=None, init=False)

    # -- the clock ---------------------------------------------------------------------------------
    def offset(self) -> int:
        if self._offset is None:
            item = self._get(self._clock_key())
            self._offset = int(item["offset"]["N"]) if item else 0
        return self._offset

    def now(self) -> int:
        return int(self.wall_clock()) + self.offset()

    def advance(self, seconds: int) -> list[Ran]:
        """Adopt the workflows started so far (at the time they started), move the clock, run what is due."""
        self.adopt()
        if seconds:
            self._offset = self.offset() + seconds
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item={**self._clock_key(), "offset": {"N": str(self._offset)}},
            )
        return self.run_due()

    # -- workflows ---------------------------------------------------------------------------------
    def adopt(self) -> None:
        """Record each execution started since the last call, with its start on the local clock."""
        for execution in self._running():
            if self._get(self._key(execution["name"])) is not None:
                continue
            described = self.stepfunctions.describe_execution(executionArn=execution["executionArn"])
            started = int(execution["startDate"].timestamp()) + self.offset()
            workflow = Workflow(
                invoice_id=execution["name"],
                execution_arn=execution["executionArn"],
                case=json.loads(described["input"])["case"],
                stages=self.stages,
                started_at=started,
            )
            self._save(workflow, new=True)

    def workflows(self) -> list[Workflow]:
        """The workflows in progress (their executions are running)."""
        found = []
        for execution in self._running():
            item = self._get(self._key(execution["name"]))
            if item is not None:
                found.append(_workflow(item))
        return sorted(found, key=lambda w: (w.next_due() or 0, w.invoice_id))

    def run_due(self) -> list[Ran]:
        from stripe_middleware.dunning.config import Stage
        from stripe_middleware.dunning.models import Case
        from stripe_middleware.dunning.step import run_step

        ran: list[Ran] = []
        now = self.now()
        for workflow in self.workflows():
            case = Case.model_validate(workflow.case)
            while (due := workflow.next_due()) is not None and due <= now:
                stage = Stage.model_validate(workflow.stages[workflow.done])
                result = run_step(
                    case,
                    stage,
                    billing=self.adapters.billing,
                    publisher=self.adapters.publisher,
                    now=due,
                )
                workflow.done += 1
                if result.stopped:
                    workflow.status = "finished" if result.detail is not None else "stopped"
                    workflow.reason = result.reason
                self._save(workflow)
                if result.stopped:
                    self.stepfunctions.stop_execution(
                        executionArn=workflow.execution_arn, cause=result.reason
                    )
                ran.append(Ran(workflow.invoice_id, due, result))
        return ran

    # -- storage -----------------------------------------------------------------------------------
    def _running(self) -> Iterator[dict[str, Any]]:
        paginator = self.stepfunctions.get_paginator("list_executions")
        for page in paginator.paginate(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"):
            yield from page["executions"]

    def _key(self, invoice_id: str) -> dict[str, Any]:
        from stripe_middleware.adapters.dynamodb.table import dunning_local_key, string_key

        return string_key(dunning_local_key(invoice_id))

    def _clock_key(self) -> dict[str, Any]:
        from stripe_middleware.adapters.dynamodb.table import DUNNING_CLOCK_KEY, string_key

        return string_key(DUNNING_CLOCK_KEY)

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.dynamodb.get_item(
            TableName=self.table_name, Key=key, ConsistentRead=True
        ).get("Item")
        return item

    def _save(self, workflow: Workflow, *, new: bool = False) -> None:
        record = dict(vars(workflow))
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": {**self._key(workflow.invoice_id), "workflow": {"S": json.dumps(record)}},
        }
        if new:
            request["ConditionExpression"] = "attribute_not_exists(pk)"
        # A new record loses to one another run of this command adopted meanwhile.
        with contextlib.suppress(self.dynamodb.exceptions.ConditionalCheckFailedException):
            self.dynamodb.put_item(**request)


def _workflow(item: dict[str, Any]) -> Workflow:
    return Workflow(**json.loads(item["workflow"]["S"]))


def local_dunning(target: targets.Target) -> LocalDunning:
    from stripe_middleware.adapters.dunning import build
    from stripe_middleware.dunning.config import load_dunning_config

    table, bus = target.require("table_name"), target.require("event_bus_name")
    return LocalDunning(
        stepfunctions=target.client("stepfunctions"),
        dynamodb=target.client("dynamodb"),
        table_name=table,
        state_machine_arn=target.require("dunning_state_machine_arn"),
        adapters=build(table, bus, target.client),
        stages=[s.model_dump() for s in load_dunning_config().stages()],
    )


def run_dunning_command(args: argparse.Namespace) -> int:
    use_repo_config()
    from stripe_middleware.shared.errors import UnavailableError

    if args.stage and args.advance:
        print("error: --advance moves local mode's clock; on AWS the state machine waits", file=sys.stderr)
        return 2
    target = targets.resolve(args)
    if not target.local:
        return list_deployed(target)
    dunning = local_dunning(target)
    try:
        ran = dunning.advance(args.advance)
    except UnavailableError as error:
        print(f"error: {error}\nThe stage did not run; run the command again to retry it.", file=sys.stderr)
        return 1
    print(f"local clock: {_iso(dunning.now())} ({_span(dunning.offset())} ahead of this machine's)")
    for step in ran:
        print(f"  {step.invoice_id:<30} {_describe(step)}")
    open_workflows = dunning.workflows()
    print(f"{len(open_workflows)} workflow(s) in progress")
    for workflow in open_workflows:
        due = workflow.next_due()
        stage = workflow.stages[workflow.done]
        name = "final stage" if stage.get("action") else f"step {stage['attempt']}"
        print(f"  {workflow.invoice_id:<30} next: {name} (day {stage['day']}) at {_iso(due or 0)}")
    return 0


def _describe(step: Ran) -> str:
    result = step.result
    when = f"day {result.stage.day} ({_iso(step.due)})"
    if result.detail is None:
        return f"{when}: stopped, {result.reason}"
    detail = result.detail
    what = "final stage" if result.stage.final else f"step {result.stage.attempt}/{result.stage.steps}"
    parts = [f"churn risk {detail['churn_risk'] or 'n/a'}", f"retry {detail['retry']}"]
    if detail["action"]:
        parts.append(f"{detail['action']}: {detail['action_status']}")
    parts += [f"sent {c['operation']}" for c in detail["commands"]]
    return f"{when}: {what} published ({', '.join(parts)})"


def list_deployed(target: targets.Target) -> int:
    """The deployed workflows in progress (their executions are running), one line each."""
    client = target.client("stepfunctions")
    paginator = client.get_paginator("list_executions")
    arn = target.require("dunning_state_machine_arn")
    count = 0
    for page in paginator.paginate(stateMachineArn=arn, statusFilter="RUNNING"):
        for execution in page["executions"]:
            count += 1
            print(f"  {execution['name']:<30} started {_iso(execution['startDate'].timestamp())}")
    print(f"{count} workflow(s) in progress")
    return 0


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%MZ")


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, DAY)
    return f"{days}d {rest // 3600}h"
