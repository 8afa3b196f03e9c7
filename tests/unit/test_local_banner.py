"""`stripe-middleware local` prints where everything is on the console, not into the function log that
local mode sends stdout to once it has started."""

from __future__ import annotations

import io
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from stripe_middleware_dev import cli
from stripe_middleware_dev.local import runtime


class Pipeline:
    """What cmd_local needs of LocalPipeline: start() sends stdout to the log, as the real one does."""

    log = io.StringIO()

    def __init__(self, **options: Any) -> None:
        self.options = options

    def start(self) -> dict[str, str]:
        self.real, sys.stdout = sys.stdout, self.log
        keys = ("webhook_url", "connect_webhook_url", "api_url", "webhook_secret", "aws_endpoint_url")
        return {**{k: f"<{k}>" for k in keys}, "region": "us-east-1", "function_log": "functions.log"}

    def stop(self) -> None:
        sys.stdout = self.real


def test_the_banner_and_the_stop_go_to_the_console(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(runtime, "LocalPipeline", Pipeline)
    monkeypatch.setattr(cli.signal, "signal", lambda signum, handler: handler(signal.SIGTERM, None))
    assert cli.main(["--state-dir", str(tmp_path), "local", "--port", "0"]) == 0
    console = capsys.readouterr().out
    assert "webhook URL       <webhook_url>" in console and "signing secret    <webhook_secret>" in console
    assert console.rstrip().endswith("stopped.")
    assert "webhook URL" not in Pipeline.log.getvalue()
