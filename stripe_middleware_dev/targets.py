"""Where a CLI command acts: the running local mode (`.local/outputs.json`) or a deployed stage (`--stage`).

Both give the same names (table, bus, queue URLs, ...) and boto3 clients that reach them, so every
command (backfill, catchup, redrive, rehearse) is written once for both.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stripe_middleware.shared.contract import SERVICE

# Stack output name -> the name local mode writes in outputs.json.
OUTPUT_NAMES = {
    "TableName": "table_name",
    "EventBusName": "event_bus_name",
    "EventsQueueUrl": "events_queue_url",
    "EventsDeadLetterQueueUrl": "events_dead_letter_queue_url",
    "CommandsQueueUrl": "commands_queue_url",
    "CommandsDeadLetterQueueUrl": "commands_dead_letter_queue_url",
    "StripeApiKeySecretArn": "stripe_api_key_secret_arn",
    "StripeReadOnlyKeySecretArn": "stripe_read_only_key_secret_arn",
    "BackfillStateMachineArn": "backfill_state_machine_arn",
    "BackfillDeadLetterQueueUrl": "backfill_dead_letter_queue_url",
    "CatchupFunctionName": "catchup_function_name",
    "SignalsQueueUrl": "signals_queue_url",
    "SignalsDeadLetterQueueUrl": "signals_dead_letter_queue_url",
    "WarehouseBucketName": "warehouse_bucket_name",
    "AthenaWorkGroupName": "athena_workgroup_name",
    "GlueDatabaseName": "glue_database_name",
    "DunningStateMachineArn": "dunning_state_machine_arn",
    "ReconcileFunctionName": "reconcile_function_name",
}


@dataclass(frozen=True)
class Target:
    outputs: dict[str, Any]
    local: bool

    def client(self, service: str, **options: Any) -> Any:
        import boto3

        if not self.local:
            return boto3.client(service, **options)
        return boto3.client(
            service,
            **options,
            endpoint_url=self.outputs["aws_endpoint_url"],
            region_name=self.outputs["region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto on loopback accepts any credentials
        )

    def require(self, name: str) -> str:
        value = self.outputs.get(name)
        if not value:
            where = "the running local mode" if self.local else "the deployed stack"
            sys.exit(f"error: {where} has no {name}; redeploy (or restart `stripe-middleware local`)")
        return str(value)


def add_stage_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stage",
        help="act on the deployed stack stripe-middleware-<stage> (your AWS credentials), not local mode",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero (`--max`, `--sample`)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return int(text)


def resolve(args: argparse.Namespace) -> Target:
    """The target of a command: `--stage` names a deployed stack, else the running local mode."""
    if getattr(args, "stage", None):
        return deployed(args.stage)
    return local(args.state_dir)


def local(state_dir: Path) -> Target:
    path = state_dir / "outputs.json"
    if not path.exists():
        sys.exit(
            f"{path} not found: start the local stack first with `stripe-middleware local` "
            "(or `make local`), or give --stage to act on a deployed stack"
        )
    return Target(json.loads(path.read_text()), local=True)


def deployed(stage: str) -> Target:
    import boto3

    if not re.fullmatch(r"[a-z0-9-]+", stage):
        sys.exit(f"error: {stage!r} is not a stage name")
    stack = f"{SERVICE}-{stage}"
    try:
        described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except Exception as error:  # no credentials, no such stack: say which and stop
        sys.exit(f"error: cannot read stack {stack}: {error}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return Target({OUTPUT_NAMES.get(k, k): v for k, v in outputs.items()}, local=False)


def local_stripe_key() -> str:
    """The key a local run reads Stripe with: `STRIPE_API_KEY`, a secret (`sk_`) or restricted (`rk_`) key."""
    from stripe_middleware.adapters.stripe.client import is_stripe_key

    key = os.environ.get("STRIPE_API_KEY", "").strip()
    if not is_stripe_key(key):
        raise ValueError(
            "set STRIPE_API_KEY to a secret or restricted key (sk_... or rk_...), and STRIPE_API_BASE for a "
            "Stripe-compatible server; or give --stage to act on a deployed stack"
        )
    return key
