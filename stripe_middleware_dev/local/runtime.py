"""`stripe-middleware local`: moto on loopback, the stack's resources, its functions, routes and pollers."""

from __future__ import annotations

import importlib
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

from stripe_middleware_dev import use_repo_config
from stripe_middleware_dev.local.event_source import SqsEventSource
from stripe_middleware_dev.local.provision import LocalResources, provision, synthesize_template
from stripe_middleware_dev.local.warehouse import LocalWarehouse, warehouse_dir
from stripe_middleware_dev.targets import OUTPUT_NAMES

REGION = "us-east-1"
# A poller waits this long on an empty queue (a message sent meanwhile answers at once); polling without a
# wait made a dozen idle pollers spin on moto, which scans the queue on every receive.
LONG_POLL_SECONDS = 2
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": REGION,
}


class PortInUseError(Exception):
    pass


def reserve(port: int) -> socket.socket:
    """Bind 127.0.0.1:port now (0 = any free port), so a busy port fails before anything starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as error:
        sock.close()
        raise PortInUseError(f"port {port} on 127.0.0.1 is already in use ({error.strerror})") from None
    return sock


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class LocalFunctions:
    """Imports each handler with its own environment, and runs one invocation at a time per function."""

    def __init__(self, resources: LocalResources) -> None:
        self.handlers: dict[str, Any] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.names: dict[str, str] = {}
        for logical_id, function in resources.functions.items():
            if logical_id not in resources.triggered():
                continue
            os.environ.update(function.environment)  # read at import / first call, as on Lambda
            module = importlib.import_module(f"functions.{function.name}.handler")
            if hasattr(module, "dependencies"):
                module.dependencies()  # build the clients now, with this function's environment
            self.handlers[logical_id] = module.handler
            self.locks[logical_id] = threading.Lock()
            self.names[logical_id] = function.name

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        with self.locks[logical_id]:
            return self.handlers[logical_id](event, LambdaContext(self.names[logical_id]))


def compile_route(route_key: str) -> tuple[str, re.Pattern[str]]:
    method, path = route_key.split(" ", 1)
    pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return method, re.compile(f"^{pattern}$")


def http_api(pipeline: LocalPipeline) -> type[BaseHTTPRequestHandler]:
    """What API Gateway does locally: match a route, build the HTTP API event, invoke, reply."""
    from events import http_api_event

    routes = [(key, *compile_route(key), fn) for key, fn in pipeline.resources.routes.items()]

    class LocalHttpApi(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            for key, method, pattern, function in routes:
                match = pattern.match(parts.path)
                if match and method == self.command:
                    try:
                        body.decode("utf-8")
                        binary = False
                    except UnicodeDecodeError:
                        binary = True
                    event = http_api_event(
                        parts.path,
                        body,
                        method=self.command,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        base64_encoded=binary,
                        query=dict(parse_qsl(parts.query)) or None,
                        path_parameters=match.groupdict() or None,
                        route_key=key,
                    )
                    response = pipeline.functions.invoke(function, event)
                    self._reply(response["statusCode"], response.get("body", ""), response.get("headers", {}))
                    pipeline.report_request(self.command, parts.path, response)
                    return
            self._reply(404, json.dumps({"message": "Not Found"}), {"content-type": "application/json"})

        def _reply(self, status: int, body: str, headers: dict[str, str]) -> None:
            raw = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return LocalHttpApi


class LocalPipeline:
    def __init__(
        self,
        *,
        port: int,
        aws_port: int = 0,
        webhook_secret: str | None = None,
        state_dir: Path = Path(".local"),
        console: TextIO = sys.stdout,
        quiet: bool = False,
    ) -> None:
        self.http_socket = reserve(port)
        self.aws_socket = reserve(aws_port)
        self.webhook_secret = webhook_secret or f"whsec_local_{secrets.token_hex(16)}"
        self.connect_webhook_secret = f"whsec_local_connect_{secrets.token_hex(12)}"
        self.state_dir = state_dir
        self.console = console
        self.quiet = quiet
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def report_request(self, method: str, path: str, response: dict[str, Any]) -> None:
        if self.quiet:
            return
        detail = ""
        try:
            body = json.loads(response.get("body") or "{}")
            detail = body.get("id") or body.get("error") or ""
        except ValueError:
            pass
        print(f"{method} {path} -> {response['statusCode']} {detail}", file=self.console, flush=True)

    def start(self) -> dict[str, Any]:
        import boto3
        from moto.server import ThreadedMotoServer

        from stripe_middleware_dev.local import moto_query

        moto_query.install()  # a query reads its partition, not the whole table
        aws_port = self.aws_socket.getsockname()[1]
        self.aws_socket.close()  # moto binds it next; the window is a few microseconds
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=aws_port, verbose=False)
        self.moto.start()
        endpoint = f"http://127.0.0.1:{aws_port}"
        os.environ.update(LOCAL_CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
        os.environ.pop("AWS_PROFILE", None)
        use_repo_config()  # config files the layer ships (signals.yaml, ...): the repository's, locally
        clients = {
            n: boto3.client(n, region_name=REGION)
            for n in ("sqs", "dynamodb", "events", "secretsmanager", "stepfunctions")
        }
        self.clients = clients
        self.resources = provision(synthesize_template(), clients, region=REGION)
        outputs = self.resources.outputs
        clients["secretsmanager"].put_secret_value(
            SecretId=outputs["WebhookSecretArn"], SecretString=self.webhook_secret
        )
        clients["secretsmanager"].put_secret_value(
            SecretId=outputs["ConnectWebhookSecretArn"], SecretString=self.connect_webhook_secret
        )
        # The command gateway (and refetches) talk to Stripe with STRIPE_API_KEY, at STRIPE_API_BASE when set.
        stripe_key = os.environ.get("STRIPE_API_KEY") or "sk_test_local_unset"
        clients["secretsmanager"].put_secret_value(
            SecretId=outputs["StripeApiKeySecretArn"], SecretString=stripe_key
        )
        if os.environ.get("STRIPE_API_BASE"):
            for function in self.resources.functions.values():
                function.environment["STRIPE_API_BASE"] = os.environ["STRIPE_API_BASE"]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / "functions.log"
        self._log = self.log_path.open("a", buffering=1)
        # Function logs and metrics (stdout on Lambda) go to the log file; the console stays for us.
        self._real_stdout, sys.stdout = sys.stdout, self._log
        self.functions = LocalFunctions(self.resources)
        self._start_pollers()
        self._start_warehouse()
        self.http = ThreadingHTTPServer(
            self.http_socket.getsockname(), http_api(self), bind_and_activate=False
        )
        self.http.socket.close()
        self.http.socket = self.http_socket
        self.http_socket.listen(128)
        self._serve(self.http.serve_forever)
        port = self.http_socket.getsockname()[1]
        api_url = f"http://127.0.0.1:{port}"
        self.outputs = {
            "webhook_url": f"{api_url}/webhooks/stripe",
            "connect_webhook_url": f"{api_url}/webhooks/stripe/connect",
            "api_url": api_url,
            "aws_endpoint_url": endpoint,
            "region": REGION,
            **{name: outputs[key] for key, name in OUTPUT_NAMES.items() if key in outputs},
            "webhook_secret": self.webhook_secret,
            "connect_webhook_secret": self.connect_webhook_secret,
            "function_log": str(self.log_path),
            "warehouse_dir": str(warehouse_dir(self.state_dir)),
        }
        (self.state_dir / "outputs.json").write_text(json.dumps(self.outputs, indent=2))
        return self.outputs

    def _start_pollers(self) -> None:
        for source in self.resources.event_sources:
            function: str = source["function"]

            def invoke(event: dict[str, Any], context: Any, fn: str = function) -> Any:
                return self.functions.invoke(fn, event)

            poller = SqsEventSource(
                self.clients["sqs"],
                source["queue_url"],
                source["queue_arn"],
                invoke,
                batch_size=source["batch_size"],
                batch_window_seconds=source["batch_window"],
                long_poll_seconds=LONG_POLL_SECONDS,
            )

            def loop(p: SqsEventSource = poller) -> None:
                while not self._stop.is_set():
                    try:
                        p.poll_once()
                    except Exception as error:  # moto stopping, or a transient error: keep polling
                        if self._stop.is_set():
                            return
                        print(f"poller error: {error}", file=self.console, flush=True)
                        time.sleep(0.5)

            self._serve(loop)

    def _start_warehouse(self) -> None:
        """What Firehose does on AWS: the rows of the record kinds, from the bus to Parquet in state_dir."""
        self.warehouse = LocalWarehouse.start(
            self.clients["sqs"],
            self.clients["events"],
            bus_name=self.resources.outputs["EventBusName"],
            state_dir=self.state_dir,
            console=self.console,
        )
        self._serve(lambda: self.warehouse.run(self._stop))

    def _serve(self, target: Any) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if hasattr(self, "warehouse"):
            self.warehouse.close()  # its last batch is written while the emulator still holds the queue
        if hasattr(self, "http"):
            self.http.shutdown()
            self.http.server_close()
        if hasattr(self, "moto"):
            self.moto.stop()
        if hasattr(self, "_real_stdout"):
            sys.stdout = self._real_stdout
