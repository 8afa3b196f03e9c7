"""Shared measuring helpers: fresh-interpreter timings, AWS call counting, DynamoDB write-unit estimates."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/events",
    "WEBHOOK_SECRET_ID": "webhook",
    "CONNECT_WEBHOOK_SECRET_ID": "connect",
    "POWERTOOLS_SERVICE_NAME": "bench",
}


QUIET = open(os.devnull, "w")  # noqa: SIM115 - function logs during a benchmark; open for the whole run


def fresh_interpreter_ms(code: str, runs: int) -> list[float]:
    """Wall time of `python -c code` (import + client creation), one fresh interpreter per run."""
    env = {**os.environ, **FAKE_AWS_ENV, "PYTHONDONTWRITEBYTECODE": "0"}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
        times.append((time.perf_counter() - start) * 1000)
    return times


def in_process_aws() -> None:
    """Fake credentials and Powertools names for Lambda handlers run in-process on moto."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_METRICS_NAMESPACE="Bench",
        POWERTOOLS_SERVICE_NAME="bench",
    )


def drain_queue(sqs: Any, queue_url: str) -> list[str]:
    """Every message body waiting in the queue, deleted as received."""
    bodies: list[str] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        bodies += [m["Body"] for m in batch]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)],
        )
    return bodies


def median(values: list[float]) -> float:
    return statistics.median(values)


class CallCounter:
    """Counts AWS API calls made through boto3 clients and estimates DynamoDB write units."""

    def __init__(self, gsi_keys: dict[str, tuple[str, ...]] | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.write_units = 0
        self._gsi_keys = gsi_keys or {}  # index partition key -> projected attributes

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register(f"before-parameter-build.{service}", self._before_call)

    def _before_call(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "PutItem":
            self.write_units += self.item_write_units(params["Item"])
        elif model.name == "UpdateItem":
            self.write_units += 1  # the small status/counter items these benchmarks update
        elif model.name == "BatchWriteItem":
            for writes in params["RequestItems"].values():
                self.write_units += sum(
                    self.item_write_units(w["PutRequest"]["Item"]) for w in writes if "PutRequest" in w
                )

    def item_write_units(self, item: dict[str, Any]) -> int:
        units = math.ceil(item_size(item) / 1024) or 1
        for partition_key, projected in self._gsi_keys.items():
            if partition_key in item:  # the item is also written to that index
                index_item = {
                    k: v
                    for k, v in item.items()
                    if k in projected or k in ("pk", "sk") or k.startswith("gsi")
                }
                units += math.ceil(item_size(index_item) / 1024) or 1
        return units

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (strings/binary by length, numbers ~ digits/2+1)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "B":
        return len(data)
    if kind == "N":
        return len(str(Decimal(data)).replace("-", "").replace(".", "")) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) for k, v in data.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in data)
    return len(str(data))


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on a free loopback port (thread-safe, real HTTP), boto3 pointed at it, logs muted;
    the environment is restored on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    from stripe_middleware_dev.local.runtime import reserve

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sock = reserve(0)
    port = sock.getsockname()[1]
    sock.close()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    url = f"http://127.0.0.1:{port}"
    # moto's backends live in the process: start every measure from an empty account.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
    saved = dict(os.environ)
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_METRICS_NAMESPACE="Bench",
        POWERTOOLS_SERVICE_NAME="bench",
    )
    real_stdout, sys.stdout = sys.stdout, QUIET
    try:
        yield url
    finally:
        sys.stdout = real_stdout
        moto.stop()
        os.environ.clear()
        os.environ.update(saved)
