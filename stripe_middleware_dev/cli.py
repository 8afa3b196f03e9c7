"""`stripe-middleware`: run the pipeline locally and talk to it.

stripe-middleware local [--port 8787] [--webhook-secret whsec_...]   start everything (Ctrl-C stops)
stripe-middleware send [--count N] [--duplicates F] [--shuffle] [--type T] [--history FILE.jsonl[.gz]]
stripe-middleware simulate --customers N --months M --seed S --out FILE.jsonl[.gz] [--labels FILE.json]
stripe-middleware query "SQL" [--format table|csv|json]           SQL on the local warehouse (DuckDB)
stripe-middleware report [--out report.html]                      revenue charts from the local warehouse
stripe-middleware tail                                            print what is published on the bus
stripe-middleware get TYPE ID                                     read an object from the read API
stripe-middleware backfill [--types T,..] [--accounts ..] [--created-gte D] [--restart] [--stage S]
stripe-middleware reconcile --payout PO | --since D [--until D] [--accounts ..] [--stage S] [--json]
stripe-middleware redrive --queue commands|events [--dry-run] [--max N] [--stage S]
stripe-middleware rehearse --api-version V [--sample N] [--types T,..] [--stage S]
stripe-middleware signals train --events FILE.jsonl[.gz] --cutoff DATE [--horizon 60d] --out MODEL.json
stripe-middleware signals backtest --events FILE.jsonl[.gz] --cutoff DATE [--horizon 60d] [--model MODEL.json]
stripe-middleware dunning [--advance 3d] [--stage S]                 failed-payment workflows (local clock)
stripe-middleware status --stage S [--events N] [--json]          webhook endpoints in Stripe vs the stack
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from stripe_middleware_dev import (
    dunning,
    history,
    query,
    reconcile,
    redrive,
    rehearse,
    report,
    signals_cli,
    simulate,
    status,
    targets,
)

STATE_DIR = Path(".local")


def cmd_local(args: argparse.Namespace) -> int:
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every AWS call
    from stripe_middleware_dev.local.runtime import LocalPipeline, PortInUseError

    secret = args.webhook_secret or os.environ.get("STRIPE_WEBHOOK_SECRET")
    try:
        pipeline = LocalPipeline(
            port=args.port, aws_port=args.aws_port, webhook_secret=secret, state_dir=args.state_dir
        )
    except PortInUseError as error:
        print(f"error: {error}. Choose another with --port.", file=sys.stderr)
        return 3
    print("starting: synthesizing the stack and creating its resources on moto ...", flush=True)
    console = sys.stdout  # start() sends stdout (the functions' logs) to the log file
    outputs = pipeline.start()
    print(
        "\nstripe-middleware is running locally (no AWS account; moto on loopback)\n"
        f"  webhook URL       {outputs['webhook_url']}\n"
        f"  Connect webhook   {outputs['connect_webhook_url']}\n"
        f"  API URL           {outputs['api_url']}   (GET /v1/objects/TYPE/ID, /v1/customers/ID/objects)\n"
        f"  signing secret    {outputs['webhook_secret']}\n"
        f"  AWS endpoint      {outputs['aws_endpoint_url']}   (region {outputs['region']})\n"
        f"  outputs           {args.state_dir / 'outputs.json'}\n"
        f"  function logs     {outputs['function_log']}\n\n"
        "In another terminal:  stripe-middleware send   |   stripe-middleware tail   |   "
        "stripe-middleware get customer cus_Local00000\n"
        f"With the Stripe CLI:  stripe listen --forward-to {outputs['webhook_url']}  "
        "(and start this with --webhook-secret <the whsec_ it prints>)\n"
        "Ctrl-C stops.\n",
        file=console,
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print("stopping ...", file=console, flush=True)
    pipeline.stop()
    print("stopped.", file=console, flush=True)
    return 0


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - local URL
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def cmd_send(args: argparse.Namespace) -> int:
    from events import billing_lifecycle, stripe_event
    from stripe_middleware.ingest.signature import compute_signature

    outputs = targets.local(args.state_dir).outputs
    events: list[dict[str, Any]] = list(simulate.read_jsonl(args.history)) if args.history else []
    for n in range(0 if args.history else args.count):
        lifecycle = billing_lifecycle(args.start + n)
        if args.type:
            lifecycle = [e for e in lifecycle if e["type"] == args.type] or [stripe_event(args.type)]
        events.extend(lifecycle)
    rng = random.Random(args.seed)  # noqa: S311 - test data, not cryptography
    deliveries = events + [rng.choice(events) for _ in range(int(len(events) * args.duplicates))]
    if args.shuffle:
        rng.shuffle(deliveries)
    statuses: Counter[int] = Counter()
    for i, event in enumerate(deliveries, 1):
        body = json.dumps(event).encode()
        timestamp = int(time.time())
        signature = f"t={timestamp},v1={compute_signature(body, outputs['webhook_secret'], timestamp)}"
        statuses[
            _post(
                outputs["webhook_url"],
                body,
                {"Stripe-Signature": signature, "Content-Type": "application/json"},
            )
        ] += 1
        if sys.stdout.isatty():
            done = int(30 * i / len(deliveries))
            print(f"\rsending [{'#' * done}{'.' * (30 - done)}] {i}/{len(deliveries)}", end="", flush=True)
    unique = len({e["id"] for e in deliveries})
    print(
        f"\nsent {len(deliveries)} deliveries of {unique} unique events: "
        + ", ".join(f"{code} x {n}" for code, n in sorted(statuses.items()))
    )
    return 0 if set(statuses) <= {200} else 1


def cmd_tail(args: argparse.Namespace) -> int:
    import boto3

    outputs = targets.local(args.state_dir).outputs
    options = {
        "endpoint_url": outputs["aws_endpoint_url"],
        "region_name": outputs["region"],
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
    }
    sqs, events = boto3.client("sqs", **options), boto3.client("events", **options)
    name = f"tail-{os.getpid()}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name=name,
        EventBusName=outputs["event_bus_name"],
        EventPattern=json.dumps({"source": ["stripe-middleware"]}),
    )
    events.put_targets(
        Rule=name, EventBusName=outputs["event_bus_name"], Targets=[{"Id": "tail", "Arn": arn}]
    )
    print(f"tailing {outputs['event_bus_name']} (Ctrl-C stops)", flush=True)
    try:
        while True:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                published = json.loads(message["Body"])
                detail = published["detail"]
                flags = [k for k, v in (detail.get("flags") or {}).items() if v]
                object_id = (detail.get("normalized") or {}).get("object_id") or detail.get("object_id", "")
                print(
                    f"{published['detail-type']:<40} {object_id:<28} "
                    f"{detail.get('id') or detail.get('event_id')}"
                    + (f"  [{', '.join(flags)}]" if flags else ""),
                    flush=True,
                )
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    except KeyboardInterrupt:
        events.remove_targets(Rule=name, EventBusName=outputs["event_bus_name"], Ids=["tail"])
        events.delete_rule(Name=name, EventBusName=outputs["event_bus_name"])
        sqs.delete_queue(QueueUrl=url)
        return 0


def cmd_get(args: argparse.Namespace) -> int:
    outputs = targets.local(args.state_dir).outputs
    url = f"{outputs['api_url']}/v1/objects/{args.type}/{args.id}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local URL
            print(json.dumps(json.loads(response.read()), indent=2))
            return 0
    except urllib.error.HTTPError as error:
        print(error.read().decode(), file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stripe-middleware", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--state-dir", type=Path, default=STATE_DIR, help="where outputs.json lives (default .local)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="run the whole pipeline on this machine")
    local.add_argument("--port", type=int, default=8787, help="HTTP port on 127.0.0.1 (0 = any free port)")
    local.add_argument("--aws-port", type=int, default=0, help="port of the AWS emulator (0 = any free port)")
    local.add_argument(
        "--webhook-secret",
        help="signing secret to verify with (default: $STRIPE_WEBHOOK_SECRET or a new one)",
    )
    local.set_defaults(run=cmd_local)
    send = commands.add_parser("send", help="post signed sample events to the local stack")
    send.add_argument("--count", type=int, default=1, help="how many customers' billing lifecycles")
    send.add_argument("--start", type=int, default=0, help="number of the first customer")
    send.add_argument(
        "--duplicates", type=float, default=0.0, help="extra deliveries of random events, as a fraction"
    )
    send.add_argument("--shuffle", action="store_true", help="deliver in random order, as Stripe may")
    send.add_argument("--type", help="only events of this type")
    send.add_argument("--seed", type=int, default=None)
    send.add_argument(
        "--history", type=Path, help="send these events instead (.jsonl[.gz], e.g. from `simulate`)"
    )
    send.set_defaults(run=cmd_send)
    tail = commands.add_parser("tail", help="print what is published on the bus")
    tail.set_defaults(run=cmd_tail)
    get = commands.add_parser("get", help="read one object from the read API")
    get.add_argument("type")
    get.add_argument("id")
    get.set_defaults(run=cmd_get)
    history.register(commands)
    reconcile.register(commands)
    dunning.register(commands)
    redrive.register(commands)
    rehearse.register(commands)
    signals_cli.register(commands)
    simulate.register(commands)
    report.register(commands)
    query.register(commands)
    status.register(commands)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
