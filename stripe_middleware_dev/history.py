"""`stripe-middleware backfill` and `stripe-middleware catchup`: history, locally or on a deployed stage.

Locally they run in this process against the running local mode (its table, bus and queues) and any
Stripe-compatible server (`STRIPE_API_KEY`, `STRIPE_API_BASE`). With `--stage` they start the deployed
state machine (backfill) or invoke the deployed function (catch-up), under your AWS credentials.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from stripe_middleware_dev import targets, use_repo_config


def register(commands: Any) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="load every Stripe object into the store (resumable; running it again changes nothing)",
    )
    backfill.add_argument("--types", help="comma-separated types (default: all); `--types list` shows them")
    backfill.add_argument(
        "--accounts",
        help="platform (default), all (platform + every connected account), or acct_ ids, comma-separated",
    )
    backfill.add_argument(
        "--created-gte", type=_date, help="only objects created at or after (YYYY-MM-DD or unix)"
    )
    backfill.add_argument("--created-lte", type=_date, help="only objects created at or before")
    backfill.add_argument("--restart", action="store_true", help="read everything again instead of resuming")
    targets.add_stage_argument(backfill)
    backfill.set_defaults(run=run_backfill_command)
    catchup = commands.add_parser(
        "catchup", help="enqueue the Stripe events webhooks missed, from the Events API (last 30 days)"
    )
    catchup.add_argument(
        "--since", type=_date, help="list events from this time (default: where the last run stopped)"
    )
    catchup.add_argument(
        "--grace",
        type=int,
        default=None,
        help="leave events younger than this many seconds to their webhook (default 60)",
    )
    targets.add_stage_argument(catchup)
    catchup.set_defaults(run=run_catchup_command)


def _date(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        return int(datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither YYYY-MM-DD nor a unix timestamp") from None


def _request(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "types": [t for t in (args.types or "").split(",") if t],
        "accounts": [a for a in (args.accounts or "").split(",") if a],
        "created_gte": args.created_gte,
        "created_lte": args.created_lte,
        "restart": datetime.now(UTC).isoformat() if args.restart else "",
    }


def run_backfill_command(args: argparse.Namespace) -> int:
    use_repo_config()
    from stripe_middleware.backfill.options import BackfillOptions
    from stripe_middleware.backfill.resources import RESOURCES
    from stripe_middleware.shared.errors import RejectedError

    if args.types == "list":
        print("\n".join(RESOURCES))
        return 0
    try:
        options = BackfillOptions.from_request(_request(args))
    except RejectedError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    target = targets.resolve(args)
    if not target.local:
        return _start_execution(target, options.to_request())
    return _backfill_locally(target, options)


def _start_execution(target: targets.Target, request: dict[str, Any]) -> int:
    arn = target.require("backfill_state_machine_arn")
    execution = target.client("stepfunctions").start_execution(
        stateMachineArn=arn, input=json.dumps({"options": request})
    )
    region = arn.split(":")[3]
    print(
        f"started {execution['executionArn']}\n"
        f"progress: https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution['executionArn']}\n"
        "(execution history per step, and the BackfillPages/BackfillObjects metrics)"
    )
    return 0


def _backfill_locally(target: targets.Target, options: Any) -> int:
    from stripe_middleware.adapters.history import build
    from stripe_middleware.backfill.ports import BackfillFailedError
    from stripe_middleware.backfill.run import run_backfill
    from stripe_middleware.backfill.settings import HistorySettings
    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware.shared.errors import UnavailableError

    deps = build(_settings(target, HistorySettings, STRIPE_API_VERSION), target.client, _api_key())
    started = time.time()
    backfill = deps.backfill(options, started)
    display = ProgressDisplay(started, options.created_gte, backfill.as_of)
    backfill.on_page = display.update
    types = ", ".join(r.name for r in options.types)
    print(f"backfill {options.run_id} of {types} (as of {_iso(backfill.as_of)})")
    try:
        cursors = run_backfill(options, backfill)
    except (BackfillFailedError, UnavailableError) as error:
        display.finish()
        print(
            f"error: {error}\nNothing after the last stored page was written; run again to resume.",
            file=sys.stderr,
        )
        return 1
    display.finish()
    total = {k: sum(getattr(c, k) for c in cursors) for k in ("objects", "stored", "poison")}
    print(
        f"done: {total['objects']} objects read, {total['stored']} new or changed in the store, "
        f"{total['poison']} could not be stored (in the backfill DLQ), "
        f"{backfill.reader.retries} Stripe retries"
    )
    return 0


def _settings(target: targets.Target, settings_class: Any, api_version: str) -> Any:
    return settings_class(
        table_name=target.require("table_name"),
        event_bus_name=target.require("event_bus_name"),
        stripe_api_version=api_version,
        stripe_api_key_secret_id="",  # the key comes from STRIPE_API_KEY here
        dead_letter_queue_url=target.require("backfill_dead_letter_queue_url"),
        events_queue_url=target.require("events_queue_url"),
        stripe_api_base=os.environ.get("STRIPE_API_BASE") or None,
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


class ProgressDisplay:
    """One line per type: objects, stored, rate, and an ETA where the created range makes one possible
    (lists run newest first, so the `created` of the last object read says how far back we are)."""

    def __init__(self, started: float, created_gte: int | None, as_of: int) -> None:
        self.started, self.created_gte, self.as_of = started, created_gte, as_of
        self.current: str | None = None
        self.tty = sys.stdout.isatty()

    def update(self, cursor: Any) -> None:
        label = f"{cursor.account or 'platform'}/{cursor.resource}"
        if self.current not in (None, label):
            print()  # the previous type is done: keep its last line
        self.current = label
        elapsed = max(time.time() - self.started, 1e-6)
        rate = cursor.objects / elapsed
        line = (
            f"{label:<40} {'done' if cursor.done else 'reading':<8} {cursor.pages:>6} pages "
            f"{cursor.objects:>8} objects {cursor.stored:>8} stored {rate:>8.1f}/s  "
            f"ETA {self._eta(cursor, elapsed)}"
        )
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", flush=True)

    def _eta(self, cursor: Any, elapsed: float) -> str:
        if cursor.done:
            return "0s"
        if self.created_gte is None or cursor.oldest_created is None or self.as_of <= self.created_gte:
            return "n/a"
        share = (self.as_of - cursor.oldest_created) / (self.as_of - self.created_gte)
        return f"{int(elapsed * (1 - share) / share)}s" if 0 < share < 1 else "n/a"

    def finish(self) -> None:
        if self.tty and self.current:
            print()


def run_catchup_command(args: argparse.Namespace) -> int:
    use_repo_config()
    if args.stage and args.grace is not None:
        print(
            "error: --grace is for local runs; a deployed catch-up keeps its configured grace",
            file=sys.stderr,
        )
        return 2
    target = targets.resolve(args)
    if not target.local:
        return _invoke_catchup(target, args.since)
    from stripe_middleware.adapters.history import build
    from stripe_middleware.backfill.catchup import run_catchup
    from stripe_middleware.backfill.ports import BackfillFailedError
    from stripe_middleware.backfill.settings import HistorySettings
    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware.shared.errors import UnavailableError

    try:
        history = build(_settings(target, HistorySettings, STRIPE_API_VERSION), target.client, _api_key())
        catchup = history.catchup()
        if args.grace is not None:
            catchup.grace_seconds = args.grace
        catchup.on_window = lambda r: print(
            f"up to {_iso(r.until)}: {r.listed} events listed, {r.recovered} not processed before (enqueued)",
            flush=True,
        )
        result = run_catchup(catchup, since=args.since)
    except (BackfillFailedError, UnavailableError) as error:
        print(f"error: {error}\nThe cursor stays where the last full window ended.", file=sys.stderr)
        return 1
    return _report_catchup(vars(result) | {"done": result.done})


def _invoke_catchup(target: targets.Target, since: int | None) -> int:
    from botocore.config import Config

    lambda_client = target.client("lambda", config=Config(read_timeout=330, retries={"max_attempts": 0}))
    response = lambda_client.invoke(
        FunctionName=target.require("catchup_function_name"),
        Payload=json.dumps({"since": since} if since else {}).encode(),
    )
    result = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        print(f"error: the catch-up function failed: {result.get('errorMessage', result)}", file=sys.stderr)
        return 1
    if "skipped" in result:
        print(f"catch-up is idle: {result['skipped']}", file=sys.stderr)
        return 1
    return _report_catchup(result)


def _report_catchup(result: dict[str, Any]) -> int:
    if result.get("gap"):
        gap = result["gap"]
        print(
            f"GAP: events from {gap['missed_from']} to {gap['missed_until']} are older than the Events API "
            f"keeps; run `{gap['suggestion']}` to repair the objects",
            file=sys.stderr,
        )
    print(
        f"caught up to {_iso(result['until'])}: {result['listed']} events listed, "
        f"{result['recovered']} recovered (enqueued; the processor publishes each once)"
        + ("" if result["done"] else "; stopped early, run again to go on")
    )
    return 0


def _api_key() -> str:
    try:
        return targets.local_stripe_key()
    except ValueError as error:
        sys.exit(f"error: {error}")
