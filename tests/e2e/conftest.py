"""Local mode started in a subprocess on free ports, driven over real HTTP like a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest

from tests.fakes.stripe_server import FakeStripe, fake_stripe

T = TypeVar("T")


@dataclass
class LocalStack:
    process: subprocess.Popen[str]
    state_dir: Path
    outputs: dict[str, Any]
    stripe: FakeStripe

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.outputs["aws_endpoint_url"],
            region_name=self.outputs["region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stripe_middleware_dev.cli", "--state-dir", str(self.state_dir), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **env} if env else None,
        )


def start_local(
    state_dir: Path, *extra: str, env_extra: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1", **(env_extra or {})}
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "stripe_middleware_dev.cli", "--state-dir", str(state_dir), "local", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def eventually(check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.3) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture(scope="session")
def fake_stripe_api() -> Iterator[FakeStripe]:
    with fake_stripe() as server:
        yield server


@contextmanager
def running_local(state_dir: Path, stripe: FakeStripe) -> Iterator[LocalStack]:
    """`stripe-middleware local` in a subprocess, its state in `state_dir`, talking to the fake Stripe."""
    process = start_local(
        state_dir,
        "--port",
        "0",
        env_extra={"STRIPE_API_KEY": "rk_test_e2e", "STRIPE_API_BASE": stripe.url},
    )
    outputs_file = state_dir / "outputs.json"
    try:
        eventually(lambda: outputs_file.exists() or process.poll() is not None, timeout=180)
        if process.poll() is not None:
            raise RuntimeError(f"local mode exited early:\n{process.stdout.read() if process.stdout else ''}")
        yield LocalStack(process, state_dir, json.loads(outputs_file.read_text()), stripe)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def local_stack(
    tmp_path_factory: pytest.TempPathFactory, fake_stripe_api: FakeStripe
) -> Iterator[LocalStack]:
    with running_local(tmp_path_factory.mktemp("local"), fake_stripe_api) as stack:
        yield stack


def get(stack: LocalStack, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{stack.outputs['api_url']}{path}", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def subscriber(local_stack: LocalStack) -> Any:
    """A queue subscribed to the bus, the way another team would subscribe."""
    sqs, events = local_stack.client("sqs"), local_stack.client("events")
    name = f"subscriber-{time.monotonic_ns()}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = local_stack.outputs["event_bus_name"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["stripe-middleware"]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    received: list[dict[str, Any]] = []

    def poll() -> list[dict[str, Any]]:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return received

    return poll
