"""A Stripe-compatible HTTP server on 127.0.0.1 for tests: the real Stripe SDK talks to it over HTTP.

It serves objects put into `objects` by path (`/v1/customers/cus_123`), records every request, and can
be told to fail the next requests with a given status.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeStripe:
    url: str = ""
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer with, in order


def _handler(state: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Request-Id", f"req_fake_{len(state.requests)}")
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            state.requests.append(
                RecordedRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            if state.fail_next:
                status = state.fail_next.pop(0)
                self._answer(status, {"error": {"type": "api_error", "message": f"injected {status}"}})
                return
            obj = state.objects.get(self.path.split("?", 1)[0])
            if obj is None:
                self._answer(404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}})
            else:
                self._answer(200, obj)

    return Handler


@contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    state = FakeStripe()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
